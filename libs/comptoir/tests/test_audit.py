"""The audit routes' query: keyset paging, the window, repeated order ids."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from comptoir import AuditPageQuerySerializer, AuditWindowQuerySerializer, audit_next_after, audit_page_query


def _request(query: str) -> Request:
    return Request(APIRequestFactory().get(f"/internal/audit/?{query}"))


def test_a_page_query_defaults_to_the_first_page_of_200() -> None:
    assert audit_page_query(AuditPageQuerySerializer, _request("")) == {"after": 0, "limit": 200}


def test_a_window_query_keeps_every_repeated_order_id_and_the_window() -> None:
    query = audit_page_query(
        AuditWindowQuerySerializer,
        _request("after=7&limit=3&order_id=12&order_id=ab-1&since=2026-01-01T00:00:00Z"),
    )
    assert query == {
        "after": 7,
        "limit": 3,
        "order_id": ["12", "ab-1"],
        "since": datetime(2026, 1, 1, tzinfo=UTC),
    }


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "after=-1", "after=x", "since=yesterday"])
def test_a_query_out_of_range_is_refused(query: str) -> None:
    with pytest.raises(ValidationError):
        audit_page_query(AuditWindowQuerySerializer, _request(query))


def test_next_after_is_the_last_rows_key_on_a_full_page_only() -> None:
    rows = [SimpleNamespace(pk=3, product_id=30), SimpleNamespace(pk=5, product_id=50)]
    assert audit_next_after(rows, 2) == 5
    assert audit_next_after(rows, 2, "product_id") == 50
    assert audit_next_after(rows, 3) is None
