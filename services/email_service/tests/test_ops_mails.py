"""`GET /api/ops/email_service/mails/`: the mail log for the operations console, staff only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from comptoir.testing import TokenFactory
from mailer.models import SentEmail

URL = "/api/ops/email_service/mails/"

pytestmark = pytest.mark.django_db


def test_staff_only(client: Client, tokens: TokenFactory) -> None:
    assert client.get(URL).status_code == 401
    for token in (tokens.user(7), tokens.service("order_service")):
        response = client.get(URL, headers=tokens.header(token))
        assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")


def test_newest_first_with_the_order_of_order_mails(
    client: Client, tokens: TokenFactory, email_factory: Callable[..., SentEmail]
) -> None:
    welcome = email_factory()
    sent_at = timezone.now()
    confirmed = email_factory(
        template="order_confirmed", object_id="42", subject="Order 42", status="SENT", sent_at=sent_at
    )
    staff = tokens.header(tokens.user(1, is_staff=True))

    body = client.get(URL, headers=staff).json()

    assert body["results"] == [
        {
            "id": confirmed.pk,
            "to": confirmed.to,
            "subject": "Order 42",
            "template": "order_confirmed",
            "status": "SENT",
            "sent_at": sent_at.isoformat().replace("+00:00", "Z"),
            "order_id": 42,
        },
        {
            "id": welcome.pk,
            "to": welcome.to,
            "subject": welcome.subject,
            "template": "welcome",
            "status": "QUEUED",
            "sent_at": None,
            "order_id": None,
        },
    ]
    assert [m["id"] for m in client.get(URL + "?limit=1", headers=staff).json()["results"]] == [confirmed.pk]
    for bad in ["0", "501", "x", "-1"]:
        response = client.get(f"{URL}?limit={bad}", headers=staff)
        assert (response.status_code, response.json()["error"]["code"]) == (400, "validation_error")
