"""product_service's error codes (the shared ones are in `comptoir.ErrorCode`)."""

from enum import StrEnum


class CatalogErrorCode(StrEnum):
    INVALID_FILTER = "invalid_filter"
    PRODUCT_NOT_FOUND = "product_not_found"
    PRODUCT_INACTIVE = "product_inactive"
    PRODUCT_IN_USE = "product_in_use"
    SKU_TAKEN = "sku_taken"
    CATEGORY_NOT_FOUND = "category_not_found"
    CATEGORY_TAKEN = "category_taken"
    CATEGORY_IN_USE = "category_in_use"
    CURRENCY_MISMATCH = "currency_mismatch"
    INSUFFICIENT_STOCK = "insufficient_stock"
    RESERVATION_NOT_FOUND = "reservation_not_found"
    RESERVATION_MISMATCH = "reservation_mismatch"
    RESERVATION_RELEASED = "reservation_released"
    RESERVATION_COMMITTED = "reservation_committed"
    ORDER_COMPENSATED = "order_compensated"
    # A reservation named the price (and currency) its order was placed at, and the
    # catalogue's differs now: nothing is held, the order is cancelled.
    PRICE_CHANGED = "price_changed"


class StockRejectionReason(StrEnum):
    """The `reason` of `stock.rejected`: the order's cancel reason code."""

    INSUFFICIENT_STOCK = "insufficient_stock"
    PRICE_CHANGED = "price_changed"
