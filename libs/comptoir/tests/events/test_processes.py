"""Real relay and consumer processes: SIGKILL at the worst moment, SIGTERM mid-stream,
per-key order over a long stream shared by two consumers, and the relay as a thread
of the consumer process (`consume_events --with-relay`)."""

from __future__ import annotations

import json
import signal
from collections import defaultdict
from pathlib import Path

from eventsapp.models import HandledNote

from comptoir.events import InboxMessage, OutboxMessage, declare_topics, event_settings
from comptoir.events.testing import read_topic, wait_for
from events.support import Spawner, committed_total, publish_notes


def test_relay_killed_between_ack_and_sent_mark_resends_and_the_effect_happens_once(
    spawner: Spawner, notes_topic: str, group_id: str
) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    (envelope,) = publish_notes(1, keys=["order-1"])
    crashing = spawner.start_module("eventsapp.crash_after_ack")
    assert crashing.wait(timeout=60) == -signal.SIGKILL
    assert len(read_topic(notes_topic)) == 1  # the broker has it...
    assert OutboxMessage.objects.get().sent_at is None  # ...the outbox does not know

    spawner.start("outbox_relay")
    wait_for(lambda: OutboxMessage.objects.get().sent_at is not None, timeout_s=30, what="the sent mark")
    sent = read_topic(notes_topic)
    assert [json.loads(m.value() or b"")["event_id"] for m in sent] == [str(envelope.event_id)] * 2

    spawner.start("consume_events", "--group-id", group_id)
    wait_for(lambda: committed_total(group_id, notes_topic) == 2, timeout_s=60, what="both deliveries")
    assert list(HandledNote.objects.values_list("event_id", flat=True)) == [envelope.event_id]
    assert list(InboxMessage.objects.values_list("event_id", flat=True)) == [envelope.event_id]


def test_sigterm_mid_stream_loses_nothing_and_applies_nothing_twice(
    spawner: Spawner, notes_topic: str, group_id: str
) -> None:
    total = 300
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    spawner.start("outbox_relay")
    # At INFO: the consumer's totals are its "left the group" record.
    first = spawner.start("consume_events", "--group-id", group_id, LOG_LEVEL="INFO")
    envelopes = publish_notes(total, keys=["a", "b", "c", "d"], work_ms=10)
    wait_for(lambda: HandledNote.objects.count() >= 30, timeout_s=60, what="the stream to be under way")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    handled_before = HandledNote.objects.count()
    assert 30 <= handled_before < total, "SIGTERM was meant to land mid-stream"
    assert InboxMessage.objects.count() == handled_before
    assert committed_total(group_id, notes_topic) == handled_before
    assert "duplicates=0" in spawner.output(first)

    second = spawner.start("consume_events", "--group-id", group_id, LOG_LEVEL="INFO")
    wait_for(lambda: committed_total(group_id, notes_topic) == total, timeout_s=90, what="the rest")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    assert "duplicates=0" in spawner.output(second)  # the first committed all it handled
    handled = list(HandledNote.objects.values_list("event_id", flat=True))
    assert len(handled) == total
    assert sorted(handled) == sorted(e.event_id for e in envelopes)


def test_thousand_events_over_five_keys_keep_per_key_order_across_two_consumers(
    spawner: Spawner, notes_topic: str, group_id: str
) -> None:
    total, keys = 1000, ["k1", "k2", "k3", "k4", "k5"]
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    spawner.start("outbox_relay")
    consumers = [spawner.start("consume_events", "--group-id", group_id) for _ in range(2)]
    publish_notes(total, keys=keys)
    wait_for(lambda: HandledNote.objects.count() >= total, timeout_s=120, what=f"{total} handled")
    per_key: dict[str, list[int]] = defaultdict(list)
    for key, seq in HandledNote.objects.order_by("id").values_list("aggregate_id", "seq"):
        per_key[key].append(seq)
    assert {key: len(seqs) for key, seqs in per_key.items()} == dict.fromkeys(keys, 200)
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"{key} out of order"
    assert HandledNote.objects.values("event_id").distinct().count() == total
    for consumer in consumers:
        consumer.send_signal(signal.SIGTERM)
    assert [c.wait(timeout=30) for c in consumers] == [0, 0]


def test_consumer_with_relay_publishes_and_consumes_in_one_process_through_a_sigkill(
    spawner: Spawner, notes_topic: str, group_id: str, tmp_path: Path
) -> None:
    """`consume_events --with-relay`: the outbox reaches the broker and the handlers from
    one process; SIGKILLed mid-stream, the next one loses nothing and applies nothing twice;
    both loops leave their heartbeat; SIGTERM stops both and exits 0."""
    total = 200
    heartbeats = tmp_path / "heartbeats"
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    first = spawner.start(
        "consume_events", "--with-relay", "--group-id", group_id, COMPTOIR_HEARTBEAT_DIR=str(heartbeats)
    )
    envelopes = publish_notes(total, keys=["a", "b", "c"], work_ms=10)
    wait_for(lambda: HandledNote.objects.count() >= 20, timeout_s=60, what="the stream to be under way")
    assert {path.name for path in heartbeats.iterdir()} == {
        "comptoir-comptoir_chassis-relay.heartbeat",
        "comptoir-comptoir_chassis-consumer.heartbeat",
    }
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL

    second = spawner.start("consume_events", "--with-relay", "--group-id", group_id, LOG_LEVEL="INFO")
    wait_for(lambda: not OutboxMessage.objects.filter(sent_at=None).exists(), timeout_s=60, what="the outbox")
    wait_for(lambda: HandledNote.objects.count() >= total, timeout_s=90, what=f"{total} handled")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    assert "relay: stopped after" in spawner.output(second)  # the relay's own clean stop
    handled = list(HandledNote.objects.values_list("event_id", flat=True))
    assert sorted(handled) == sorted(e.event_id for e in envelopes)  # each once


def test_consumer_exits_non_zero_when_its_relay_thread_fails(
    spawner: Spawner, notes_topic: str, group_id: str
) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    publish_notes(1, keys=["a"])
    process = spawner.start_module("eventsapp.relay_fails_in_consumer", GROUP_ID=group_id, LOG_LEVEL="INFO")
    assert process.wait(timeout=60) == 1  # well before its --max-seconds
    output = spawner.output(process)
    assert 'the outbox relay failed: RuntimeError("the relay\'s batch failed")' in output
    assert OutboxMessage.objects.get().sent_at is None
