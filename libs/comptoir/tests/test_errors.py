"""Every failure answers the one error body, with the right status and no leak."""

from __future__ import annotations

import pytest
from django.test import Client
from testapp.models import Note


@pytest.mark.django_db
def test_validation_error_has_code_message_and_field_details(client: Client) -> None:
    response = client.post("/notes/", {"title": ""}, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "The request is not valid; see details."
    assert error["details"] == {
        "title": ["This field may not be blank."],
        "body": ["This field is required."],
    }
    assert error["trace_id"] == response["X-Request-ID"]
    assert Note.objects.count() == 0


@pytest.mark.django_db
def test_application_error_keeps_its_code_and_status(client: Client) -> None:
    response = client.post("/notes/", {"title": "taken", "body": "x"}, content_type="application/json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "title_taken"
    assert Note.objects.count() == 0


@pytest.mark.django_db
def test_not_found_from_domain_code(client: Client) -> None:
    response = client.get("/notes/999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "note_not_found"
    assert response.json()["error"]["message"] == "No note 999999."


def test_malformed_json_is_a_parse_error(client: Client) -> None:
    response = client.post("/notes/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_unknown_url_is_a_json_404(client: Client) -> None:
    response = client.get("/no/such/path")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unexpected_exception_is_a_bare_500(client: Client) -> None:
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert "secret" not in response.content.decode()


def test_request_id_is_propagated_when_sane_and_replaced_when_not(client: Client) -> None:
    assert client.get("/health/live", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    replaced = client.get("/health/live", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert replaced != "bad id\nwith newline"
    assert len(replaced) == 32
