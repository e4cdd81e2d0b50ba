"""Fixtures: a real SMTP sink, Celery run eagerly or by a real worker, factories."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection

from comptoir.events.testing import ServiceProcesses, service_processes, unique_topics
from config.celery import app as celery_app
from mailer.models import SentEmail

from .smtp_sink import SmtpSink
from .user_service_stub import TOKEN_PATH, UserServiceStub, start_stub

pytest_plugins = ["comptoir.testing"]

# aiosmtpd logs every SMTP conversation at INFO.
logging.getLogger("mail.log").setLevel(logging.WARNING)

SERVICE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def celery_test_queue() -> Iterator[str]:
    """Tasks run in-process (eager) unless a test asks for the real worker.

    The session gets a queue of its own, so nothing it enqueues can reach the
    devstack's email_service worker (which would look up ids in the real DB).
    """
    queue = f"email_service.test.{uuid.uuid4().hex[:8]}"
    # The app reads Django's CELERY_* settings: its keys carry that prefix, and
    # an unprefixed one would lose to the settings module's value.
    celery_app.conf.CELERY_TASK_DEFAULT_QUEUE = queue
    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = True
    assert celery_app.amqp.default_queue.name == queue
    yield queue
    # Whatever a worker test declared in the broker goes with the session.
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        broker.delete(queue, f"_kombu.binding.{queue}")
    finally:
        broker.close()


@pytest.fixture(autouse=True)
def no_mails_of_earlier_tests() -> None:
    """A test's transaction rolls back: the mail ids it queued are no mail's, and
    a later test's commit would otherwise enqueue them with its own."""
    from mailer.services import _queued_this_transaction

    _queued_this_transaction.email_ids.clear()


@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    # Django's test set-up swaps in the in-memory backend: put SMTP back.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = sink.host
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_TIMEOUT = 5
    yield sink
    # The process keeps its SMTP session open between mails: end it with the sink.
    from mailer.services import _close_mail_connection

    _close_mail_connection()
    sink.stop()


@pytest.fixture
def order_confirmed_request() -> Callable[..., dict[str, Any]]:
    """The body order_service sends for an order-confirmed mail; keywords override."""

    def build(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "template": "order_confirmed",
            "object_id": "42",
            "to": "alice@comptoir.dev",
            "context": {"order_id": 42, "total": "59.90", "currency": "EUR", "full_name": "Alice Martin"},
        }
        body.update(overrides)
        return body

    return build


@pytest.fixture
def email_factory(db: None) -> Callable[..., SentEmail]:
    """Rows of the mail log, as a delivery would have left them."""
    counter = iter(range(1, 10_000))

    def create(**fields: Any) -> SentEmail:
        number = next(counter)
        values: dict[str, Any] = {
            "template": "welcome",
            "object_id": str(number),
            "to": f"user{number}@example.com",
            "subject": f"Welcome to Comptoir, User {number}",
            "body": f"Hello User {number},\n",
            "context": {"full_name": f"User {number}"},
        }
        values.update(fields)
        return SentEmail.objects.create(**values)

    return create


# ------------------------------------------------------------- real worker


@pytest.fixture(scope="module")
def worker_smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@dataclass(frozen=True)
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]


def start_worker(queue: str, sink: SmtpSink, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    """`celery -A config worker` in its own process, on the test database, the test sink
    and the test queue (its own sweep off unless `EMAIL_SWEEP_INTERVAL_S` says otherwise)."""
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EMAIL_HOST": sink.host,
        "EMAIL_PORT": str(sink.port),
        "EMAIL_RETRY_BACKOFF_S": "1",
        "EMAIL_TASK_QUEUE": queue,
        "EMAIL_SWEEP_INTERVAL_S": "0",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    with log.open("wb") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--loglevel=INFO",
                "-Q",
                queue,
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=SERVICE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


@pytest.fixture(scope="module")
def celery_worker_process(
    django_db_setup: None,
    celery_test_queue: str,
    worker_smtp_sink: SmtpSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """`celery -A config worker` in its own process, on the test database and the test sink."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = start_worker(celery_test_queue, worker_smtp_sink, log)
    try:
        yield WorkerProcess(process=worker, log=log)
    finally:
        stop_worker(worker)


@pytest.fixture
def celery_through_broker(celery_worker_process: WorkerProcess) -> Iterator[WorkerProcess]:
    """Tasks go through Redis to the worker process instead of running in-process."""
    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield celery_worker_process
    finally:
        celery_app.conf.CELERY_TASK_ALWAYS_EAGER = True


# ------------------------------------------------------------------ events


@pytest.fixture(scope="session")
def user_service_stub() -> Iterator[UserServiceStub]:
    stub, server, thread = start_stub()
    yield stub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def user_service(user_service_stub: UserServiceStub, settings: Any) -> UserServiceStub:
    """user_service (its internal user lookup and the service-token endpoint) answered by the stub."""
    user_service_stub.reset()
    user_service_stub.add(2, "alice@comptoir.dev", "Alice Martin")
    user_service_stub.add(3, "bob@comptoir.dev", "Bob Durand")
    settings.USER_SERVICE_URL = user_service_stub.url
    settings.SERVICE_TOKEN_URL = f"{user_service_stub.url}{TOKEN_PATH}"
    return user_service_stub


# What email_service consumes.
EVENT_TYPES = ["order.confirmed", "order.cancelled", "user.registered"]


@pytest.fixture
def event_topics(settings: Any) -> dict[str, str]:
    """Topics of the test's own for every event type the service reads (here and in subprocesses)."""
    topics = unique_topics(EVENT_TYPES)
    settings.COMPTOIR_EVENTS = {**getattr(settings, "COMPTOIR_EVENTS", {}), "TOPICS": topics}
    return topics


@pytest.fixture
def processes(
    transactional_db: None, event_topics: dict[str, str], tmp_path: Path
) -> Iterator[ServiceProcesses]:
    """The service's own consumer process(es), started by the test, stopped and cleaned after."""
    yield from service_processes(tmp_path, event_topics)
