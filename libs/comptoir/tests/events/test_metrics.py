"""Metrics from the chassis, scraped from real endpoints after real work: a gunicorn
server with two workers (multiprocess mode), the relay and a consumer process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_INVALID, Consumer, Producer, TopicPartition
from django.db import connections
from eventsapp.models import HandledNote
from prometheus_client.parser import text_string_to_metric_families
from testapp.models import Note

from comptoir import _metrics, kafka_client_config
from comptoir.events import OutboxMessage, _event_metrics, declare_topics, dlq_topic, event_settings
from comptoir.events.testing import wait_for
from events.metrics_support import free_port, scrape, value
from events.support import TESTS_DIR, Spawner, own_retry, publish_notes

SRC_DIR = TESTS_DIR.parent / "src"


@pytest.fixture
def gunicorn(transactional_db: None, tmp_path: Path, notes_topic: str) -> Iterator[str]:
    """The test project under gunicorn, 2 workers sharing one multiprocess folder."""
    port = free_port()
    db = connections["default"].settings_dict
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": f"{TESTS_DIR}{os.pathsep}{SRC_DIR}",
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "EVENTSAPP_NOTES_TOPIC": notes_topic,
        "LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "testproject.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--timeout",
            "60",
        ],
        cwd=TESTS_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def live() -> bool:
        try:
            return httpx.get(f"{base}/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(live, timeout_s=60, what="gunicorn")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_http_metrics_by_route_template_and_status_summed_over_workers(gunicorn: str) -> None:
    note = Note.objects.create(title="t", body="b")
    with httpx.Client(base_url=gunicorn, timeout=10) as client:
        statuses = [client.get(f"/notes/{pk}/").status_code for pk in (note.pk, note.pk, 999_999)]
        statuses.append(client.get("/no/such/path/").status_code)
        for _ in range(20):  # many requests, so both workers answer some
            client.get(f"/notes/{note.pk}/")
    assert statuses == [200, 200, 404, 404]

    samples = scrape(f"{gunicorn}/metrics")
    name = "comptoir_http_requests_total"
    assert value(samples, name, route="notes/<int:pk>/", method="GET", status="200") == 22
    assert value(samples, name, route="notes/<int:pk>/", method="GET", status="404") == 1
    assert value(samples, name, route="<unmatched>", status="404") == 1
    assert (value(samples, name, route="health/live", status="200") or 0) >= 1  # the fixture's polls
    others = [v for labels, v in samples[name] if labels["route"] != "health/live"]
    assert sum(others) == 24  # /metrics itself is not counted
    assert not [labels for labels, _ in samples[name] if "/notes/" in labels["route"]]  # no raw path
    latency = "comptoir_http_request_duration_seconds_count"
    assert value(samples, latency, route="notes/<int:pk>/", method="GET") == 23
    total_time = value(samples, "comptoir_http_request_duration_seconds_sum", route="notes/<int:pk>/")
    assert 0 < (total_time or 0) < 23
    # Two notes lookups and one miss: at least three SELECTs through Django.
    assert (value(samples, "comptoir_db_queries_total", statement="select") or 0) >= 3


def test_outbox_backlog_is_read_at_scrape_time_and_drops_to_zero_after_the_relay(
    gunicorn: str, spawner: Spawner, notes_topic: str
) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    samples = scrape(f"{gunicorn}/metrics")
    assert value(samples, "comptoir_outbox_pending_messages") == 0
    assert value(samples, "comptoir_outbox_oldest_pending_age_seconds") == 0

    publish_notes(3, keys=["a"])
    samples = scrape(f"{gunicorn}/metrics")
    assert value(samples, "comptoir_outbox_pending_messages") == 3
    assert (value(samples, "comptoir_outbox_oldest_pending_age_seconds") or 0) > 0

    relay_port = free_port()
    spawner.start("outbox_relay", "--metrics-port", str(relay_port))
    wait_for(
        lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists(), timeout_s=30, what="relay"
    )
    samples = scrape(f"{gunicorn}/metrics")
    assert value(samples, "comptoir_outbox_pending_messages") == 0
    assert value(samples, "comptoir_outbox_oldest_pending_age_seconds") == 0
    relay = scrape(f"http://127.0.0.1:{relay_port}/metrics")
    assert value(relay, "comptoir_outbox_relayed_total", topic=notes_topic) == 3
    assert value(relay, "comptoir_outbox_pending_messages") == 0


def _sessions_opened() -> int:
    """Connections ever opened to the test database (PostgreSQL's statistics)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_a_metrics_server_reads_the_database_on_one_kept_connection(
    transactional_db: None, spawner: Spawner, notes_topic: str
) -> None:
    """Each scrape is answered on a new thread; the database values are read on one
    long-lived thread whose connection outlives the scrape (it used to be opened
    and closed by every scrape)."""
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    port = free_port()
    spawner.start("outbox_relay", "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}/metrics"

    def answers() -> bool:
        try:
            return value(scrape(url), "comptoir_outbox_pending_messages") == 0
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout_s=60, what="the relay's metrics")
    time.sleep(2.5)  # a backend reports its own start within about a second of idleness
    before = _sessions_opened()
    for _ in range(5):
        assert value(scrape(url), "comptoir_outbox_pending_messages") == 0
    time.sleep(2.5)
    assert _sessions_opened() == before


def test_consumer_reports_outcomes_lag_retries_and_dead_letters(
    spawner: Spawner, notes_topic: str, group_id: str
) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    spawner.start("outbox_relay")
    port = free_port()
    spawner.start("consume_events", "--group-id", group_id, "--metrics-port", str(port))
    publish_notes(4, keys=["k1", "k2"])
    publish_notes(1, keys=["k3"], start=4, fail_times=1)  # handled on its first retry
    publish_notes(1, keys=["k4"], start=5, fail_times=9)  # 2 retries, then the DLQ
    wait_for(lambda: HandledNote.objects.count() == 5, timeout_s=60, what="5 notes handled")
    url = f"http://127.0.0.1:{port}/metrics"

    def settled() -> bool:
        samples = scrape(url)
        return (
            value(samples, "comptoir_consumer_dead_letters_total", group=group_id) == 1
            and value(samples, "comptoir_dlq_messages", group=group_id) == 1
            and value(samples, "comptoir_consumer_lag", group=group_id, topic=notes_topic) == 0
        )

    wait_for(settled, timeout_s=60, what="dead letter and lag reported", interval_s=1.0)
    samples = scrape(url)
    consumed = "comptoir_consumer_messages_total"
    assert value(samples, consumed, group=group_id, topic=notes_topic, outcome="handled") == 4
    assert (
        value(
            samples,
            consumed,
            group=group_id,
            topic=own_retry(notes_topic, 1),
            outcome="handled",
        )
        == 1
    )
    assert value(samples, consumed, group=group_id, outcome="failed") == 4  # 1 + 3 attempts of k4
    assert value(samples, "comptoir_consumer_retries_total", group=group_id, topic=notes_topic) == 3
    assert value(samples, "comptoir_consumer_dead_letters_total", group=group_id, topic=notes_topic) == 1
    assert value(samples, "comptoir_dlq_messages", group=group_id, topic=notes_topic) == 1
    lags = [v for labels, v in samples["comptoir_consumer_lag"] if labels["topic"] == notes_topic]
    assert lags
    assert set(lags) == {0.0}


def test_a_service_s_own_collector_is_read_on_each_scrape(db: None) -> None:
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    from comptoir import _metrics, metrics

    class Backlog(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            family = GaugeMetricFamily("comptoir_test_backlog", "A service's own gauge.", labels=["mode"])
            family.add_metric(["choreography"], 2)
            yield family

    collector = Backlog()
    metrics.register_scrape_collector(collector)
    metrics.register_scrape_collector(collector)  # once, however often it is registered
    try:
        body, _ = metrics.render()
        without_database, _ = metrics.render(include_database=False)
    finally:
        _metrics._scrape_collectors.remove(collector)
    assert body.decode().count('comptoir_test_backlog{mode="choreography"} 2.0') == 1
    assert "comptoir_test_backlog" not in without_database.decode()
    assert "comptoir_test_backlog" not in metrics.render()[0].decode()


def _rendered() -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample this process's metrics render."""
    body, _ = _metrics.render(include_database=False)
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return samples


def test_the_lag_report_reads_every_partitions_ends_and_the_dlq_sizes(
    notes_topic: str, group_id: str, db: None
) -> None:
    settings = event_settings()
    declare_topics([notes_topic], settings, with_failure_topics=True)
    producer = Producer(kafka_client_config())
    for partition, count in ((0, 5), (1, 2)):
        for n in range(count):
            producer.produce(notes_topic, value=b"{}", key=f"k{n}".encode(), partition=partition)
    dlq = dlq_topic(notes_topic, settings.service)
    for n in range(3):
        producer.produce(dlq, value=b"{}", key=f"d{n}".encode())
    assert producer.flush(30) == 0
    probe = Consumer(
        {**kafka_client_config(), "group.id": group_id, "enable.auto.commit": False, "log_level": 3}
    )
    try:
        # The group committed 1 on partition 1; partition 0 was read up to 2; the rest never.
        probe.commit(offsets=[TopicPartition(notes_topic, 1, 1)], asynchronous=False)
        positions = [
            TopicPartition(notes_topic, 0, 2),
            TopicPartition(notes_topic, 1, OFFSET_INVALID),
            TopicPartition(notes_topic, 2, OFFSET_INVALID),
            TopicPartition(own_retry(notes_topic, 1), 0, OFFSET_INVALID),
        ]
        asking = _CountingProbe(probe)
        _event_metrics.report_lag(settings.service, group_id, [notes_topic], positions, asking)  # type: ignore[arg-type]
    finally:
        probe.close()
    samples = _rendered()
    lags = {
        (labels["topic"], labels["partition"]): lag
        for labels, lag in samples["comptoir_consumer_lag"]
        if labels["group"] == group_id
    }
    assert lags == {
        (notes_topic, "0"): 3,  # 5 written, read up to 2
        (notes_topic, "1"): 1,  # 2 written, 1 committed
        (notes_topic, "2"): 0,  # empty
        (own_retry(notes_topic, 1), "0"): 0,
    }
    assert value(samples, "comptoir_dlq_messages", group=group_id, topic=notes_topic) == 3
    # Offsets asked of the broker: one request per end for the four partitions, one
    # per end for the DLQ's (two per partition when asked one at a time).
    assert asking.calls == {"committed": 1, "offsets_for_times": 4}, asking.calls


class _CountingProbe:
    """A real client whose offset queries are counted, by method."""

    def __init__(self, client: Consumer) -> None:
        self.client = client
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name in {"committed", "offsets_for_times", "get_watermark_offsets"}:
            self.calls[name] = self.calls.get(name, 0) + 1
        return attribute
