"""The query of the internal audit routes, which the reconciliation auditor pages through.

A service that lets the auditor read its rows answers keyset pages:
`?after=<id>&limit=<n>` (the rows with an id above `after`, at most `limit` of
them) gives `{"results": [...], "next_after": <the last id, or null on the
last page>}`. Routes listing per-order rows also take a window on the creation
time (`since`, `until`) or a list of order ids (`order_id`, repeated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

AUDIT_MAX_PAGE_SIZE = 500
AUDIT_DEFAULT_PAGE_SIZE = 200
# An order id as the services keep it (a number or a UUID, as a string).
ORDER_ID_MAX_LENGTH = 64


class AuditPageQuerySerializer(serializers.Serializer[Any]):
    """Keyset paging: the rows with an id above `after`, at most `limit` of them."""

    after = serializers.IntegerField(min_value=0, default=0)
    limit = serializers.IntegerField(
        min_value=1, max_value=AUDIT_MAX_PAGE_SIZE, default=AUDIT_DEFAULT_PAGE_SIZE
    )


class AuditWindowQuerySerializer(AuditPageQuerySerializer):
    """Also a window on the creation time, or a list of order ids (`order_id`, repeated)."""

    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    order_id = serializers.ListField(
        child=serializers.CharField(max_length=ORDER_ID_MAX_LENGTH),
        required=False,
        max_length=AUDIT_MAX_PAGE_SIZE,
    )


def audit_page_query(serializer_class: type[AuditPageQuerySerializer], request: Request) -> dict[str, Any]:
    """The validated query (a 400 `validation_error` otherwise); `order_id` may repeat."""
    data: dict[str, Any] = {key: request.query_params.get(key) for key in request.query_params}
    if "order_id" in request.query_params:
        data["order_id"] = request.query_params.getlist("order_id")
    query = serializer_class(data=data)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def audit_next_after(rows: Sequence[Any], limit: int, key: str = "pk") -> int | None:
    """The `after` of the next page: the last row's `key`, or None when this page is the last."""
    return int(getattr(rows[-1], key)) if len(rows) == limit else None
