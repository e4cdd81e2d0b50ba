from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from comptoir.testing import TokenFactory
from mailer.models import SentEmail

from .smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db

REQUEST_URL = "/internal/emails/"
LIST_URL = "/api/emails/"

RequestBody = Callable[..., dict[str, Any]]


def _post(client: Client, body: dict[str, Any], token: str) -> Any:
    return client.post(REQUEST_URL, body, content_type="application/json", headers=TokenFactory.header(token))


# ------------------------------------------------------------ POST /internal/emails/


def test_service_request_queues_then_delivers_the_mail(
    client: Client,
    tokens: TokenFactory,
    smtp_sink: SmtpSink,
    order_confirmed_request: RequestBody,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _post(
            client, order_confirmed_request(), tokens.service("order_service", scopes=["emails:send"])
        )
    assert response.status_code == 202, response.json()
    email = SentEmail.objects.get()
    assert response.json() == {"id": email.pk, "status": "QUEUED"}
    assert len(callbacks) == 1
    assert (email.status, email.attempts) == ("SENT", 1)
    [mail] = smtp_sink.mails()
    assert mail.rcpt_tos == ["alice@comptoir.dev"]
    assert mail.subject == "Your Comptoir order #42 is confirmed"
    assert mail.text == (
        "Hello Alice Martin,\n\n"
        "Good news: your order #42 is confirmed and paid.\n\n"
        "Total: 59.90 EUR\n\n"
        "Thank you for shopping at Comptoir.\n\n"
        "— The Comptoir team\n"
    )


def test_same_request_again_answers_the_same_mail_and_sends_no_second_one(
    client: Client,
    tokens: TokenFactory,
    smtp_sink: SmtpSink,
    order_confirmed_request: RequestBody,
    django_capture_on_commit_callbacks: Any,
) -> None:
    token = tokens.service("order_service", scopes=["emails:send"])
    with django_capture_on_commit_callbacks(execute=True):
        first = _post(client, order_confirmed_request(), token)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = _post(client, order_confirmed_request(), token)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"id": first.json()["id"], "status": "SENT"}
    assert callbacks == []
    assert SentEmail.objects.count() == 1
    assert len(smtp_sink.mails()) == 1


def test_unknown_template_is_refused_and_writes_nothing(
    client: Client,
    tokens: TokenFactory,
    smtp_sink: SmtpSink,
    order_confirmed_request: RequestBody,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _post(
            client,
            order_confirmed_request(template="newsletter"),
            tokens.service("order_service", scopes=["emails:send"]),
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("unknown_template", "No mail template named 'newsletter'.")
    assert error["details"] == {
        "template": "newsletter",
        "known": ["welcome", "order_confirmed", "order_cancelled"],
    }
    assert callbacks == []
    assert SentEmail.objects.count() == 0
    assert smtp_sink.mails() == []


def test_missing_context_is_refused_with_the_missing_keys(
    client: Client, tokens: TokenFactory, smtp_sink: SmtpSink, order_confirmed_request: RequestBody
) -> None:
    body = order_confirmed_request(context={"order_id": 42})
    response = _post(client, body, tokens.service("order_service", scopes=["emails:send"]))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "missing_context"
    assert error["details"] == {"template": "order_confirmed", "missing": ["total", "currency"]}
    assert SentEmail.objects.count() == 0
    assert smtp_sink.mails() == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"to": "not-an-address"}, "to"),
        ({"to": None}, "to"),
        ({"object_id": ""}, "object_id"),
        ({"object_id": "x" * 65}, "object_id"),
        ({"context": ["order_id", 42]}, "context"),
        ({"template": None}, "template"),
    ],
)
def test_invalid_fields_are_refused_with_a_validation_error(
    client: Client,
    tokens: TokenFactory,
    order_confirmed_request: RequestBody,
    overrides: dict[str, Any],
    field: str,
) -> None:
    response = _post(
        client, order_confirmed_request(**overrides), tokens.service("order_service", scopes=["emails:send"])
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == [field]
    assert SentEmail.objects.count() == 0


def test_status_attempts_and_id_in_a_request_are_ignored(
    client: Client,
    tokens: TokenFactory,
    smtp_sink: SmtpSink,
    order_confirmed_request: RequestBody,
    django_capture_on_commit_callbacks: Any,
) -> None:
    body = order_confirmed_request(
        status="SENT", attempts=9, id=123456789, last_error="forged", sent_at="2020-01-01T00:00:00Z"
    )
    with django_capture_on_commit_callbacks(execute=False):
        response = _post(client, body, tokens.service("order_service", scopes=["emails:send"]))
    assert response.status_code == 202
    email = SentEmail.objects.get()
    assert response.json() == {"id": email.pk, "status": "QUEUED"}
    assert email.pk != 123456789
    assert (email.status, email.attempts, email.last_error, email.sent_at) == ("QUEUED", 0, "", None)


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("user", 403), ("staff", 403), ("service without the scope", 403), ("service", 202)],
)
def test_request_authorization(
    client: Client,
    tokens: TokenFactory,
    order_confirmed_request: RequestBody,
    django_capture_on_commit_callbacks: Any,
    who: str,
    status: int,
) -> None:
    headers = {
        "anonymous": {},
        "user": tokens.header(tokens.user(2)),
        "staff": tokens.header(tokens.user(1, is_staff=True)),
        "service without the scope": tokens.header(tokens.service("order_service")),
        "service": tokens.header(tokens.service("order_service", scopes=["emails:send"])),
    }[who]
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            REQUEST_URL, order_confirmed_request(), content_type="application/json", headers=headers
        )
    assert response.status_code == status
    assert SentEmail.objects.count() == (1 if status == 202 else 0)
    if status != 202:
        expected = {401: "not_authenticated", 403: "permission_denied"}[status]
        if who == "service without the scope":
            expected = "insufficient_scope"
        assert response.json()["error"]["code"] == expected


# ------------------------------------------------------------ GET /api/emails/


def _row(email: SentEmail) -> dict[str, Any]:
    return {
        "id": email.pk,
        "template": email.template,
        "object_id": email.object_id,
        "to": email.to,
        "subject": email.subject,
        "status": email.status,
        "attempts": email.attempts,
        "last_error": email.last_error,
        "created_at": email.created_at.isoformat().replace("+00:00", "Z"),
        "sent_at": email.sent_at.isoformat().replace("+00:00", "Z") if email.sent_at else None,
    }


def test_staff_lists_the_mail_log_newest_first(
    client: Client, tokens: TokenFactory, email_factory: Callable[..., SentEmail]
) -> None:
    older = email_factory()
    newer = email_factory(template="order_confirmed", status="FAILED", attempts=6, last_error="down")
    response = client.get(LIST_URL, headers=tokens.header(tokens.user(1, is_staff=True)))
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [_row(newer), _row(older)],
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("template=order_cancelled", ["cancelled"]),
        ("status=SENT", ["sent"]),
        ("to=BOB@comptoir.dev", ["cancelled", "sent"]),
        ("template=welcome&status=QUEUED", ["queued"]),
        ("template=welcome&to=bob@comptoir.dev", ["sent"]),
    ],
)
def test_staff_filters_the_mail_log(
    client: Client,
    tokens: TokenFactory,
    email_factory: Callable[..., SentEmail],
    query: str,
    expected: list[str],
) -> None:
    emails = {
        "queued": email_factory(to="alice@comptoir.dev"),
        "sent": email_factory(to="bob@comptoir.dev", status="SENT"),
        "cancelled": email_factory(template="order_cancelled", to="bob@comptoir.dev", status="FAILED"),
    }
    response = client.get(f"{LIST_URL}?{query}", headers=tokens.header(tokens.user(1, is_staff=True)))
    assert response.status_code == 200
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [emails[name].pk for name in expected]


def test_invalid_status_filter_is_a_validation_error(client: Client, tokens: TokenFactory) -> None:
    response = client.get(f"{LIST_URL}?status=LOST", headers=tokens.header(tokens.user(1, is_staff=True)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == ["status"]


def test_staff_reads_one_mail_with_its_body(
    client: Client, tokens: TokenFactory, email_factory: Callable[..., SentEmail]
) -> None:
    email = email_factory(html_body="<p>Hi</p>")
    response = client.get(f"{LIST_URL}{email.pk}/", headers=tokens.header(tokens.user(1, is_staff=True)))
    assert response.status_code == 200
    assert response.json() == {
        **_row(email),
        "body": email.body,
        "html_body": "<p>Hi</p>",
        "context": email.context,
    }


def test_unknown_mail_is_404(client: Client, tokens: TokenFactory) -> None:
    response = client.get(f"{LIST_URL}987654321/", headers=tokens.header(tokens.user(1, is_staff=True)))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("user", 403), ("service", 403), ("staff", 200)],
)
@pytest.mark.parametrize("route", ["list", "detail"])
def test_mail_log_authorization(
    client: Client,
    tokens: TokenFactory,
    email_factory: Callable[..., SentEmail],
    route: str,
    who: str,
    status: int,
) -> None:
    email = email_factory(to="user2@example.com")
    headers = {
        "anonymous": {},
        # Even the recipient is no staff: the mail log is not a customer inbox.
        "user": tokens.header(tokens.user(2, email="user2@example.com")),
        "service": tokens.header(tokens.service("order_service", scopes=["emails:send"])),
        "staff": tokens.header(tokens.user(1, is_staff=True)),
    }[who]
    url = LIST_URL if route == "list" else f"{LIST_URL}{email.pk}/"
    response = client.get(url, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == 'Bearer realm="comptoir"'
    elif status == 403:
        assert response.json()["error"]["code"] == "permission_denied"
        assert "results" not in response.json()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_mail_log_is_read_only(
    client: Client, tokens: TokenFactory, email_factory: Callable[..., SentEmail], method: str
) -> None:
    email = email_factory()
    response = getattr(client, method)(
        f"{LIST_URL}{email.pk}/",
        {"status": "SENT", "to": "evil@example.com"},
        content_type="application/json",
        headers=tokens.header(tokens.user(1, is_staff=True)),
    )
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    stored = SentEmail.objects.get(pk=email.pk)
    assert (stored.status, stored.to) == ("QUEUED", email.to)


def test_numeric_object_id_is_the_same_key_as_its_string(
    client: Client,
    tokens: TokenFactory,
    order_confirmed_request: RequestBody,
    django_capture_on_commit_callbacks: Any,
) -> None:
    token = tokens.service("order_service", scopes=["emails:send"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = _post(client, order_confirmed_request(object_id=42), token)
        again = _post(client, order_confirmed_request(object_id="42"), token)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert len(callbacks) == 1
    assert SentEmail.objects.get().object_id == "42"
