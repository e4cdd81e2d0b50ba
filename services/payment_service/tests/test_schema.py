from pathlib import Path

from django.core.management import call_command


def test_openapi_schema_generates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    # --fail-on-warn turns any drf-spectacular warning into a failure.
    call_command("spectacular", "--file", str(out), "--fail-on-warn", "--validate")
    schema = out.read_text()
    assert "openapi: 3" in schema
    for route in (
        "/api/payments/:",
        "/api/payments/{payment_id}/:",
        "/api/payments/wallet/:",
        "/api/payments/wallets/{user_id}/credit/:",
        "/internal/payments/charge/:",
        "/internal/payments/refund/:",
    ):
        assert route in schema
