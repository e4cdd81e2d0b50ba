"""The customer of an order: user_service says the user may order, and how to reach them.

Asking user_service (`upstream.user_verify`) is one HTTP request per order, for
an answer that rarely changes. A customer user_service found active is kept
for ORDER_CUSTOMER_CACHE_S in Redis (`CACHES["customers"]`, shared by the web
and worker processes), and `user.deactivated` (published in the transaction
that closes the account) replaces it with a marker that sends every order of
that user to user_service again until the keep time has run out:

- the marker is written with `set` and a customer is kept with `add`, so a
  verification that was already on its way when the account closed cannot put
  the customer back;
- a refused user (missing, inactive) is never kept: each order asks;
- when Redis fails, the order asks user_service (and keeps nothing); a
  deactivation whose marker cannot be written fails its event, which the
  consumer retries. In every case a closed account is refused no later than
  ORDER_CUSTOMER_CACHE_S after it closed (its access tokens are refused at
  the gateway at once already).
"""

from __future__ import annotations

import contextlib
import logging

import redis
from django.conf import settings
from django.core.cache import caches

from .models import Customer
from .upstream import user_verify

logger = logging.getLogger(__name__)

_KEY = "customer:{}"
# The value kept for a closed account (a kept customer is an (email, name) pair).
_DEACTIVATED = "deactivated"


def customer_kept(*, user_id: int) -> Customer | None:
    """The customer kept for the user, asking nobody: None when none is kept
    (never verified, expired, the account closed, keeping off) or Redis does not
    answer, for `customer_verify` to settle."""
    if settings.ORDER_CUSTOMER_CACHE_S <= 0:
        return None
    try:
        return _customer(caches["customers"].get(_KEY.format(user_id)))
    except redis.RedisError:
        return None  # customer_verify meets the same error, logs it and asks user_service


def customer_verify(*, user_id: int) -> Customer:
    """The user's contact if they may order; `StepRefused` (user_inactive) if
    not, `UpstreamError` when nobody can tell."""
    keep_s = settings.ORDER_CUSTOMER_CACHE_S
    if keep_s <= 0:
        return user_verify(user_id=user_id)
    key = _KEY.format(user_id)
    try:
        kept = caches["customers"].get(key)
    except redis.RedisError as error:
        logger.warning("kept customers unreadable; asking user_service", extra={"error": repr(error)})
        return user_verify(user_id=user_id)
    customer = _customer(kept)
    if customer is not None:
        return customer
    customer = user_verify(user_id=user_id)
    if kept is None:
        with contextlib.suppress(redis.RedisError):  # asked again next time
            caches["customers"].add(key, (customer.email, customer.full_name), timeout=keep_s)
    return customer


def _customer(kept: object) -> Customer | None:
    """A kept customer is an (email, name) pair; anything else (nothing, the
    closed account's marker) is none."""
    if isinstance(kept, tuple):
        email, full_name = kept
        return Customer(email=email, full_name=full_name)
    return None


def customer_forget(*, user_id: int) -> None:
    """The account closed: its next orders ask user_service until a kept
    customer would have expired. Raises when Redis cannot take the marker."""
    keep_s = settings.ORDER_CUSTOMER_CACHE_S
    if keep_s > 0:
        caches["customers"].set(_KEY.format(user_id), _DEACTIVATED, timeout=keep_s)
