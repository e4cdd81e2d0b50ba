"""How the devstack starts its trace backend: the sink's flags and store, Jaeger's bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack import _observability, otlp_sink

BOUND_VARIABLES = ("COMPTOIR_TRACES_MAX_AGE_S", "COMPTOIR_TRACES_MAX_TRACES", "COMPTOIR_TRACES_MAX_BYTES")


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The devstack's state in a folder of the test's own, without a built Jaeger, bounds unset."""
    monkeypatch.setattr(_observability, "STATE_DIR", tmp_path)
    monkeypatch.setattr(_observability, "JAEGER_BIN", tmp_path / "tools" / "bin" / "jaeger")
    for name in BOUND_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def sink_bounds(argv: list[str]) -> otlp_sink.Bounds:
    """The bounds the sink reads from the command line the devstack starts it with."""
    assert argv[1:3] == ["-m", "devstack.otlp_sink"]
    args = otlp_sink.parse_args(argv[3:])
    return otlp_sink.Bounds(max_age_s=args.max_age_s, max_traces=args.max_traces, max_bytes=args.max_bytes)


def test_the_defaults_are_the_sinks_own() -> None:
    assert _observability.TRACE_BOUNDS == {
        "COMPTOIR_TRACES_MAX_AGE_S": otlp_sink.DEFAULT_MAX_AGE_S,
        "COMPTOIR_TRACES_MAX_TRACES": otlp_sink.DEFAULT_MAX_TRACES,
        "COMPTOIR_TRACES_MAX_BYTES": otlp_sink.DEFAULT_MAX_BYTES,
    }


def test_the_sink_gets_a_sqlite_store_and_the_default_bounds(state_dir: Path) -> None:
    argv = list(_observability.traces_process().argv)

    assert argv[argv.index("--store") + 1] == str(state_dir / "traces" / "spans.sqlite")
    assert sink_bounds(argv) == otlp_sink.Bounds(max_age_s=3600, max_traces=50_000, max_bytes=256 * 2**20)


def test_the_bounds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPTOIR_TRACES_MAX_AGE_S", "600")
    monkeypatch.setenv("COMPTOIR_TRACES_MAX_TRACES", "1234")
    monkeypatch.setenv("COMPTOIR_TRACES_MAX_BYTES", str(64 * 2**20))

    argv = list(_observability.traces_process().argv)
    jaeger = json.loads(_observability.jaeger_config().read_text())

    assert sink_bounds(argv) == otlp_sink.Bounds(max_age_s=600, max_traces=1234, max_bytes=64 * 2**20)
    assert jaeger["extensions"]["jaeger_storage"]["backends"]["memstore"] == {"memory": {"max_traces": 1234}}


def test_jaeger_keeps_as_many_traces_as_the_sink() -> None:
    jaeger = json.loads(_observability.jaeger_config().read_text())

    assert jaeger["extensions"]["jaeger_storage"]["backends"]["memstore"] == {
        "memory": {"max_traces": 50_000}
    }


@pytest.mark.parametrize("raw", ["many", "0", "-5", "1.5"])
def test_a_bound_that_is_no_positive_whole_number_stops_the_devstack(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("COMPTOIR_TRACES_MAX_TRACES", raw)

    with pytest.raises(SystemExit, match=rf"^devstack: COMPTOIR_TRACES_MAX_TRACES='{raw}' is not a positive"):
        _observability.traces_process()


def test_preparing_the_sink_removes_the_older_json_lines_file_only(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = state_dir / "traces"
    traces.mkdir()
    (traces / "spans.jsonl").write_bytes(b"{}\n" * (2**20 // 3))
    (traces / "spans.sqlite").write_bytes(b"kept")
    process = _observability.traces_process()
    assert process.prepare is not None

    process.prepare()

    assert sorted(path.name for path in traces.iterdir()) == ["spans.sqlite"]
    assert (traces / "spans.sqlite").read_bytes() == b"kept"
    legacy = traces / "spans.jsonl"
    assert capsys.readouterr().out == f"devstack: removed {legacy} (1 MiB of spans in the older format)\n"
    process.prepare()  # nothing left to remove
    assert capsys.readouterr().out == ""
