from pathlib import Path

from django.core.management import call_command


def test_openapi_schema_generates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    # --fail-on-warn turns any drf-spectacular warning into a failure.
    call_command("spectacular", "--file", str(out), "--fail-on-warn", "--validate")
    assert "openapi: 3" in out.read_text()
