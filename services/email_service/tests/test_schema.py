from pathlib import Path

from django.core.management import call_command


def test_openapi_schema_generates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    # --fail-on-warn turns any drf-spectacular warning into a failure.
    call_command("spectacular", "--file", str(out), "--fail-on-warn", "--validate")
    assert "openapi: 3" in out.read_text()


def test_schema_documents_the_mail_routes_with_bearer_auth(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(out))
    schema = out.read_text()
    for route in ("/internal/emails/:", "/api/emails/:", "/api/emails/{email_id}/:"):
        assert f"\n  {route}\n" in schema
    assert "scheme: bearer" in schema
