"""order_service's error codes (the chassis `ErrorCode` holds the shared ones)."""

from enum import StrEnum


class OrderErrorCode(StrEnum):
    ORDER_NOT_FOUND = "order_not_found"
    DUPLICATE_PRODUCT = "duplicate_product"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    ORDER_TOTAL_TOO_LARGE = "order_total_too_large"
    INVALID_STATUS_TRANSITION = "invalid_status_transition"
    INVALID_CANCEL_REASON = "invalid_cancel_reason"
    # product_service refused the quote without a standard error body of its own.
    PRODUCT_QUOTE_REJECTED = "product_quote_rejected"
    # product_service answered, but not with a quote this service can trust.
    PRODUCT_QUOTE_INVALID = "product_quote_invalid"
