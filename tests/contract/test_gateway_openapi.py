"""Every public operation, fuzzed through the gateway as an anonymous client, a
customer and a staff user: no server error, no status the document does not
declare, every body conforming to its schema and content type."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from conftest import ROLES, Caller, load_gateway_schema
from platform_client import GATEWAY_URL, Platform
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

REPO = Path(__file__).resolve().parents[2]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# Operations that revoke the token they are sent with (logout revokes its session's).
SESSION_ENDING = {"/api/users/auth/logout/"}
GATEWAY_STATUSES = {"413", "414", "429", "502", "503", "504"}

schema = load_gateway_schema()


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_operation_answers_as_documented(
    case: Any, role: str, callers: dict[str, Caller], platform: Platform
) -> None:
    caller = callers[role]
    if case.method.upper() in WRITES and case.path in caller.own:
        case.path_parameters.update(caller.own[case.path])
    headers = caller.headers
    if case.path in SESSION_ENDING and caller.credentials is not None:
        headers = {"Authorization": f"Bearer {platform.login(*caller.credentials)}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "patch", "delete"}
    ]


def test_the_published_document_is_the_committed_contract(published_document: dict[str, Any]) -> None:
    committed = yaml.safe_load((REPO / "contracts" / "openapi" / "api_gateway.yaml").read_text())
    assert published_document == committed


def test_every_operation_declares_the_gateways_statuses_with_the_one_error_body(
    published_document: dict[str, Any],
) -> None:
    schemas = published_document["components"]["schemas"]
    assert [name for name in schemas if name.endswith("ErrorResponse")] == ["ErrorResponse"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    operations = _operations(published_document)
    assert len(operations) > 20
    for method, path, operation in operations:
        responses = operation["responses"]
        assert set(responses) >= GATEWAY_STATUSES, f"{method} {path}: {sorted(responses)}"
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"]["application/json"]["schema"] == error_ref, (method, path, status)


def test_the_checks_refuse_a_status_the_document_does_not_declare(
    published_document: dict[str, Any], callers: dict[str, Caller]
) -> None:
    # The same checks against a document that forgot a status the route answers.
    stripped = copy.deepcopy(published_document)
    del stripped["paths"]["/api/orders/{order_id}/"]["get"]["responses"]["404"]
    strict = schemathesis.openapi.from_dict(stripped)
    strict.config.update(base_url=GATEWAY_URL)
    case = strict["/api/orders/{order_id}/"]["GET"].Case(path_parameters={"order_id": 2_000_000_000})
    customer = callers["customer"]
    response = case.call(headers=customer.headers)

    assert response.status_code == 404
    with pytest.raises(BaseExceptionGroup) as raised:
        case.validate_response(response, checks=CHECKS, headers=customer.headers)
    assert [type(failure).__name__ for failure in raised.value.exceptions] == ["UndefinedStatusCode"]
