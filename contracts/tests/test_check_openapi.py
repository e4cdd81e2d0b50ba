"""The REST compatibility checker refuses what breaks a client and lets the rest through."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from check_openapi import OPENAPI_DIR, breaking_changes, history_problems, stale_documents


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "paths": {
            "/api/things/": {
                "get": {
                    "parameters": [
                        {"in": "query", "name": "page", "required": False, "schema": {"type": "integer"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Thing"},
                                    }
                                }
                            },
                        },
                        "404": {"description": "", "content": {"application/json": {"schema": {}}}},
                    },
                },
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ThingInput"}}
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                            },
                        }
                    },
                },
            },
            "/api/things/{id}/": {"delete": {"responses": {"204": {"description": ""}}}},
        },
        "components": {
            "schemas": {
                "Thing": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "kind": {"$ref": "#/components/schemas/KindEnum"},
                        "parent": {"$ref": "#/components/schemas/Thing"},
                    },
                    "required": ["id", "name"],
                },
                "ThingInput": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"$ref": "#/components/schemas/KindEnum"},
                        "note": {"type": "string"},
                    },
                    "required": ["name"],
                },
                "KindEnum": {"type": "string", "enum": ["a", "b"]},
            }
        },
    }


def _changed(edit: Any) -> list[str]:
    old = _document()
    new = copy.deepcopy(old)
    edit(new)
    return breaking_changes(old, new)


def test_an_unchanged_document_is_compatible() -> None:
    assert breaking_changes(_document(), _document()) == []


def test_additions_are_compatible() -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["paths"]["/api/other/"] = {"get": {"responses": {"200": {"description": ""}}}}
        doc["paths"]["/api/things/{id}/"]["get"] = {"responses": {"200": {"description": ""}}}
        doc["components"]["schemas"]["Thing"]["properties"]["colour"] = {"type": "string"}
        doc["components"]["schemas"]["ThingInput"]["properties"]["colour"] = {"type": "string"}
        doc["components"]["schemas"]["KindEnum"]["enum"].append("c")
        doc["paths"]["/api/things/"]["get"]["responses"]["429"] = {"description": ""}
        doc["paths"]["/api/things/"]["get"]["parameters"].append(
            {"in": "query", "name": "search", "required": False, "schema": {"type": "string"}}
        )

    assert _changed(add) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda doc: doc["paths"].pop("/api/things/{id}/"),
            "/api/things/{id}/: the route was removed",
        ),
        (
            lambda doc: doc["paths"]["/api/things/"].pop("post"),
            "POST /api/things/: the operation was removed",
        ),
        (
            lambda doc: doc["components"]["schemas"]["Thing"]["properties"].pop("kind"),
            "GET /api/things/: response 200[]: response field 'kind' was removed",
        ),
        (
            lambda doc: doc["components"]["schemas"]["Thing"]["required"].remove("name"),
            "GET /api/things/: response 200[]: response field 'name' is no longer always present",
        ),
        (
            lambda doc: doc["components"]["schemas"]["Thing"]["properties"]["name"].update(nullable=True),
            "GET /api/things/: response 200[]: response field 'name' may now be null",
        ),
        (
            lambda doc: doc["components"]["schemas"]["Thing"]["properties"]["id"].update(type="string"),
            "GET /api/things/: response 200[].id: type changed from integer to string",
        ),
        (
            lambda doc: doc["components"]["schemas"]["ThingInput"]["required"].append("note"),
            "POST /api/things/: request: request field 'note' became required",
        ),
        (
            lambda doc: doc["components"]["schemas"]["KindEnum"]["enum"].remove("b"),
            "POST /api/things/: request.kind: request values ['b'] are no longer accepted",
        ),
        (
            lambda doc: doc["paths"]["/api/things/"]["get"]["parameters"][0].update(required=True),
            "GET /api/things/: query parameter 'page' became required",
        ),
        (
            lambda doc: doc["paths"]["/api/things/"]["post"]["responses"].pop("201"),
            "POST /api/things/: response 201 was removed",
        ),
    ],
    ids=[
        "route removed",
        "operation removed",
        "response field removed",
        "response field optional",
        "response field nullable",
        "field type changed",
        "request field required",
        "request enum value dropped",
        "parameter required",
        "success status removed",
    ],
)
def test_a_breaking_change_is_named(edit: Any, expected: str) -> None:
    assert expected in _changed(edit)


def test_an_error_status_may_go_and_an_unused_request_field_may_be_dropped() -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["paths"]["/api/things/"]["get"]["responses"].pop("404")
        doc["components"]["schemas"]["ThingInput"]["properties"].pop("note")

    assert _changed(edit) == []


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "contracts@comptoir.dev")
    _git(tmp_path, "config", "user.name", "Contracts")
    (tmp_path / "openapi").mkdir()
    (tmp_path / "openapi" / "things.yaml").write_text(yaml.safe_dump(_document()))
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "things v1")
    return tmp_path


def test_history_refuses_a_breaking_change_before_and_after_it_is_committed(repo: Path) -> None:
    broken = _document()
    del broken["paths"]["/api/things/{id}/"]
    (repo / "openapi" / "things.yaml").write_text(yaml.safe_dump(broken))
    assert history_problems(repo / "openapi") == ["things.yaml: /api/things/{id}/: the route was removed"]

    _git(repo, "commit", "-q", "-am", "drop the route")
    assert history_problems(repo / "openapi") == ["things.yaml: /api/things/{id}/: the route was removed"]


def test_history_accepts_a_compatible_change_and_refuses_a_deleted_contract(repo: Path) -> None:
    grown = _document()
    grown["paths"]["/api/other/"] = {"get": {"responses": {"200": {"description": ""}}}}
    (repo / "openapi" / "things.yaml").write_text(yaml.safe_dump(grown))
    assert history_problems(repo / "openapi") == []

    (repo / "openapi" / "things.yaml").unlink()
    assert history_problems(repo / "openapi") == [
        "openapi/things.yaml: a committed REST contract was deleted"
    ]


def test_a_document_that_is_not_what_the_code_generates_is_stale(tmp_path: Path) -> None:
    (tmp_path / "things.yaml").write_text("openapi: 3.0.3\n")
    problems = stale_documents(tmp_path, {"things": "openapi: 3.0.3\npaths: {}\n"})
    assert len(problems) == 1
    assert problems[0].startswith("things.yaml is not what the code generates; run `make openapi`")
    assert "+paths: {}" in problems[0]
    assert stale_documents(tmp_path, {"things": "openapi: 3.0.3\n"}) == []


def test_the_committed_documents_are_compatible_with_their_history() -> None:
    assert sorted(p.stem for p in OPENAPI_DIR.glob("*.yaml")) == [
        "api_gateway",
        "email_service",
        "order_service",
        "payment_service",
        "product_service",
        "user_service",
    ]
    assert history_problems(OPENAPI_DIR) == []
