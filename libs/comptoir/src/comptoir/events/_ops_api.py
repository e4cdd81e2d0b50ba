"""The staff-only operations API of a service's event backbone, mounted under
`/api/ops/<service>/` (the gateway routes that prefix to the service):

    urlpatterns = [*ops_urlpatterns(), ...]                  # events and dead letters
    urlpatterns = [*ops_urlpatterns(extra=[path("sagas/", SagasOpsApi.as_view())]), ...]

| method | path | answer |
| --- | --- | --- |
| GET | `processes/` | relay/consumer/worker/beat: heartbeat age, consumer groups' members (broker) |
| GET | `events/` | outbox backlog, consumer lag per group/topic/partition, dead letters per topic |
| GET | `dlq/?topic=&limit=` | the dead letters (of one topic: an event topic or its `.dlq` name) |
| GET | `dlq/<id>/` | one dead letter: headers, error, payload (text when not JSON) |
| POST | `dlq/<id>/replay/` | 202, written back to its topic; a second time 409 `already_replayed` |
| POST | `dlq/purge/` | `{"topic": ..., "confirm": true}`: 200 with the count; no confirm 400 |

Every route needs an end user's access token with `is_staff` (401 without a
token, 403 for anyone else). A broker that does not answer is a 503.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comptoir._auth import IsStaff, Principal
from comptoir._errors import ApplicationError, ErrorCode, NotFoundError
from comptoir._schema import ErrorResponseSerializer

from . import _ops
from ._dlq import DeadLetter

ALREADY_REPLAYED = "already_replayed"
CONFIRMATION_REQUIRED = "confirmation_required"
UNKNOWN_TOPIC = "unknown_topic"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 200

_ERROR = OpenApiResponse(ErrorResponseSerializer)


def _unavailable(error: _ops.BrokerUnavailable) -> ApplicationError:
    return ApplicationError(
        ErrorCode.UNAVAILABLE,
        "The Kafka broker did not answer; retry shortly.",
        details={"reason": str(error)[:300]},
        status_code=503,
    )


# Response shapes (documentation of the contract; the views build plain dicts).


class OutboxStatusSerializer(serializers.Serializer[Any]):
    pending = serializers.IntegerField()
    oldest_pending_age_s = serializers.FloatField(allow_null=True)
    published_last_hour = serializers.IntegerField()


class ConsumerLagSerializer(serializers.Serializer[Any]):
    group = serializers.CharField()
    topic = serializers.CharField()
    partition = serializers.IntegerField()
    lag = serializers.IntegerField()


class DeadLetterCountSerializer(serializers.Serializer[Any]):
    topic = serializers.CharField()
    count = serializers.IntegerField()


class EventsStatusSerializer(serializers.Serializer[Any]):
    service = serializers.CharField()
    outbox = OutboxStatusSerializer()
    consumers = ConsumerLagSerializer(many=True)
    dead_letters = DeadLetterCountSerializer(many=True)


class ConsumerGroupSerializer(serializers.Serializer[Any]):
    group = serializers.CharField()
    state = serializers.CharField(help_text="The broker's: stable, empty, preparingrebalance...")
    members = serializers.IntegerField()


class ProcessSerializer(serializers.Serializer[Any]):
    process = serializers.CharField(help_text="A Procfile kind: relay, consumer, worker, beat.")
    status = serializers.CharField(help_text="ok, stale, down or unknown.")
    heartbeat_age_s = serializers.FloatField(allow_null=True)
    groups = ConsumerGroupSerializer(many=True, required=False, help_text="consumer: the broker's view")
    workers = serializers.IntegerField(
        allow_null=True, required=False, help_text="worker: Celery workers consuming the service's queue"
    )


class ProcessesSerializer(serializers.Serializer[Any]):
    service = serializers.CharField()
    processes = ProcessSerializer(many=True)


class DeadLetterSerializer(serializers.Serializer[Any]):
    id = serializers.CharField(help_text="<dlq topic>:<partition>:<offset>")
    topic = serializers.CharField()
    event_type = serializers.CharField(allow_null=True)
    event_id = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    failed_at = serializers.CharField()
    attempts = serializers.IntegerField(allow_null=True)
    replayed_at = serializers.DateTimeField(allow_null=True, help_text="When it was replayed, if it was.")


class DeadLetterListSerializer(serializers.Serializer[Any]):
    results = DeadLetterSerializer(many=True)


class DeadLetterDetailSerializer(DeadLetterSerializer):
    partition = serializers.IntegerField()
    offset = serializers.IntegerField()
    key = serializers.CharField()
    consumer_group = serializers.CharField(allow_null=True)
    original_topic = serializers.CharField(allow_null=True)
    headers = serializers.DictField(child=serializers.CharField())
    payload = serializers.JSONField(help_text="The message value: JSON when it parses, else text.")


class ReplaySerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    replayed_to = serializers.CharField()
    replayed_at = serializers.DateTimeField()


class PurgeInputSerializer(serializers.Serializer[Any]):
    topic = serializers.CharField(help_text="An event topic, or its dead-letter topic's name.")
    confirm = serializers.BooleanField(
        default=False, help_text="Must be true: purged letters are gone for good."
    )


class PurgeSerializer(serializers.Serializer[Any]):
    topic = serializers.CharField()
    purged = serializers.IntegerField()


class OpsApi(APIView):
    """Base of every operations route: staff only."""

    permission_classes = (IsStaff,)


class EventsOpsApi(OpsApi):
    @extend_schema(
        operation_id="ops_events",
        summary="Outbox backlog, consumer lag and dead letters of this service (staff)",
        responses={200: EventsStatusSerializer, 503: _ERROR},
    )
    def get(self, request: Request) -> Response:
        try:
            return Response(_ops.events_status())
        except _ops.BrokerUnavailable as error:
            raise _unavailable(error) from None


class ProcessesOpsApi(OpsApi):
    @extend_schema(
        operation_id="ops_processes",
        summary="The service's relay, consumer, worker and beat processes as it sees them (staff)",
        description=(
            "`status`: `ok` (heartbeat within 120 s, every consumer group has members, a worker "
            "answers on the service's queue), `stale` (an old heartbeat), `down` (a consumer group "
            "without members, no worker), `unknown` (no heartbeat visible from the web process: "
            "another host)."
        ),
        responses={200: ProcessesSerializer, 503: _ERROR},
    )
    def get(self, request: Request) -> Response:
        try:
            return Response(_ops.processes_status())
        except _ops.BrokerUnavailable as error:
            raise _unavailable(error) from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"limit must be a whole number from 1 to {MAX_LIMIT}.",
            details={"limit": [f"not a number from 1 to {MAX_LIMIT}: {raw!r}"]},
        )
    return limit


def _own_topic(topic: str) -> str:
    resolved = _ops.resolve_dead_letter_topic(topic)
    if resolved is None:
        raise ApplicationError(
            UNKNOWN_TOPIC,
            f"{settings.COMPTOIR['SERVICE_NAME']} has no dead-letter topic for {topic!r}.",
            details={"topic": topic, "known": _ops.dead_letter_topics()},
        )
    return resolved


class DeadLetterListOpsApi(OpsApi):
    @extend_schema(
        operation_id="ops_dlq_list",
        summary="Dead letters of this service, oldest first (staff)",
        parameters=[
            OpenApiParameter("topic", str, description="An event topic or its `.dlq` name (default: all)"),
            OpenApiParameter("limit", int, description=f"At most this many (1-{MAX_LIMIT}, default 200)"),
        ],
        responses={200: DeadLetterListSerializer, 400: _ERROR, 503: _ERROR},
    )
    def get(self, request: Request) -> Response:
        limit = _limit(request)
        topic = request.query_params.get("topic")
        try:
            letters = _ops.dead_letter_list(topic=_own_topic(topic) if topic else None, limit=limit)
        except _ops.BrokerUnavailable as error:
            raise _unavailable(error) from None
        return Response({"results": letters})


def _letter(letter_id: str) -> DeadLetter:
    try:
        letter = _ops.dead_letter_get(letter_id)
    except _ops.BrokerUnavailable as error:
        raise _unavailable(error) from None
    if letter is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"No dead letter {letter_id!r} in this service's topics.")
    return letter


class DeadLetterDetailOpsApi(OpsApi):
    @extend_schema(
        operation_id="ops_dlq_retrieve",
        summary="One dead letter: headers, error, payload (staff)",
        responses={200: DeadLetterDetailSerializer, 503: _ERROR},
    )
    def get(self, request: Request, letter_id: str) -> Response:
        letter = _letter(letter_id)
        return Response(_ops.letter_detail(letter, _ops.replay_record(letter.id)))


class DeadLetterReplayOpsApi(OpsApi):
    @extend_schema(
        operation_id="ops_dlq_replay",
        summary="Write a dead letter back to its topic, once (staff)",
        description="202 once written; a letter replayed before answers 409 `already_replayed`.",
        request=None,
        responses={202: ReplaySerializer, 503: _ERROR},
    )
    def post(self, request: Request, letter_id: str) -> Response:
        letter = _letter(letter_id)
        principal = request.user
        by = f"user:{principal.user_id}" if isinstance(principal, Principal) else ""
        try:
            record = _ops.dead_letter_replay(letter=letter, replayed_by=by)
        except _ops.AlreadyReplayed as already:
            raise ApplicationError(
                ALREADY_REPLAYED,
                f"{letter.id} was replayed already; a dead letter is replayed once.",
                details={
                    "replayed_to": already.record.replayed_to,
                    "replayed_at": already.record.replayed_at,
                },
                status_code=409,
            ) from None
        except _ops.BrokerUnavailable as error:
            raise _unavailable(error) from None
        return Response(
            {"id": record.letter_id, "replayed_to": record.replayed_to, "replayed_at": record.replayed_at},
            status=status.HTTP_202_ACCEPTED,
        )


class DeadLetterPurgeOpsApi(OpsApi):
    @extend_schema(
        operation_id="ops_dlq_purge",
        summary="Delete every dead letter of one topic, for good (staff)",
        request=PurgeInputSerializer,
        responses={200: PurgeSerializer, 503: _ERROR},
    )
    def post(self, request: Request) -> Response:
        given = PurgeInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        topic = _own_topic(given.validated_data["topic"])
        if given.validated_data["confirm"] is not True:
            raise ApplicationError(
                CONFIRMATION_REQUIRED,
                f'Purging deletes the dead letters of {topic} for good: send "confirm": true.',
                details={"confirm": ["must be true"]},
            )
        try:
            purged = _ops.dead_letter_purge(topic=topic)
        except _ops.BrokerUnavailable as error:
            raise _unavailable(error) from None
        return Response({"topic": topic, "purged": purged})


def ops_urlpatterns(extra: list[URLPattern | URLResolver] | None = None) -> list[URLResolver]:
    """The operations routes, under `api/ops/<service>/`; `extra` adds the service's own."""
    routes: list[URLPattern | URLResolver] = [
        path("events/", EventsOpsApi.as_view(), name="events"),
        path("processes/", ProcessesOpsApi.as_view(), name="processes"),
        path("dlq/", DeadLetterListOpsApi.as_view(), name="dlq-list"),
        path("dlq/purge/", DeadLetterPurgeOpsApi.as_view(), name="dlq-purge"),
        path("dlq/<str:letter_id>/", DeadLetterDetailOpsApi.as_view(), name="dlq-detail"),
        path("dlq/<str:letter_id>/replay/", DeadLetterReplayOpsApi.as_view(), name="dlq-replay"),
        *(extra or []),
    ]
    service = settings.COMPTOIR["SERVICE_NAME"]
    return [path(f"api/ops/{service}/", include((routes, "ops"), namespace="ops"))]
