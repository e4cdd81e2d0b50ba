"""The files the devstack's and the dashboards generator's docstrings send a reader
to exist (a renamed test or script must not leave its old name behind)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_PATH = re.compile(
    r"(?<![\w./])((?:devstack|tests|deploy|libs|services|bench)/[\w./-]*\w\.(?:py|sh|ya?ml|json|xml))\b"
)
DOCUMENTED = sorted(
    [*(REPO_ROOT / "devstack").glob("*.py"), REPO_ROOT / "deploy/observability/grafana/generate.py"]
)


@pytest.mark.parametrize("module", DOCUMENTED, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_file_a_docstring_names_exists(module: Path) -> None:
    tree = ast.parse(module.read_text())
    docstrings = [
        ast.get_docstring(node) or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    ]
    named = {path for text in docstrings for path in REPO_PATH.findall(text)}
    missing = sorted(path for path in named if not (REPO_ROOT / path).exists())
    assert missing == []


def test_the_traces_backend_docstring_names_the_script_that_builds_jaeger() -> None:
    from devstack import _observability

    assert "devstack/jaeger.sh" in (_observability.__doc__ or "")
    assert "make traces-backend" in (_observability.__doc__ or "")
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^traces-backend:.*\n\t@bash devstack/jaeger\.sh$", makefile, re.M)
