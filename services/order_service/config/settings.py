"""order_service settings: the chassis's base settings plus what this service owns."""

from django.core.exceptions import ImproperlyConfigured

from comptoir.settings import *

INSTALLED_APPS += ["orders"]

# --- The order saga -------------------------------------------------------
# "orchestration": order_service drives the steps as Celery tasks over HTTP;
# "choreography": it publishes order.created and follows the other services'
# events. Read when an order is placed and stored on it (Order.saga_mode).
SAGA_MODE = env.str("SAGA_MODE", default="orchestration")
if SAGA_MODE not in ("orchestration", "choreography"):
    raise ImproperlyConfigured(f"SAGA_MODE must be orchestration or choreography, not {SAGA_MODE!r}")
# A step failing for a transient reason (timeout, unreachable, 5xx) is retried
# after min(MAX, BACKOFF * 2^(attempt-1)) seconds, half of it jittered; a
# forward step before the charge gives up (and the saga compensates, reason
# system_error) after SAGA_STEP_MAX_ATTEMPTS runs: with the defaults, never
# before 4 minutes. Compensations and the steps after a successful charge never
# give up (past SAGA_STEP_MAX_ATTEMPTS the latter log "saga stuck going forward").
SAGA_STEP_MAX_ATTEMPTS = env.int("SAGA_STEP_MAX_ATTEMPTS", default=20)
SAGA_RETRY_BACKOFF_S = env.float("SAGA_RETRY_BACKOFF_S", default=1.0)
SAGA_RETRY_BACKOFF_MAX_S = env.float("SAGA_RETRY_BACKOFF_MAX_S", default=30.0)
# An active saga that has not moved for this long (beyond a scheduled retry)
# has lost its task (worker killed, broker restarted): the sweeper re-enqueues it.
SAGA_STALL_SECONDS = env.float("SAGA_STALL_SECONDS", default=30.0)
SAGA_SWEEP_INTERVAL_S = env.float("SAGA_SWEEP_INTERVAL_S", default=10.0)

# An order still PENDING this long after it was placed has missed its saga
# deadline (both modes): the reconciliation auditor reports it. Above the
# longest the saga may take with the settings above (20 attempts, 30 s apart).
SAGA_DEADLINE_S = env.float("SAGA_DEADLINE_S", default=900.0)
# A choreographed order (no coordinator to retry or give up) still PENDING this
# long after it was placed is cancelled by the beat (reason system_error) and
# order.cancelled makes payment_service refund and product_service release
# whatever they did, or leave a tombstone that refuses what comes later (an
# event parked in a dead-letter topic, replayed or not). Below SAGA_DEADLINE_S,
# so the auditor only reports an order this failed to settle.
CHOREOGRAPHY_DEADLINE_S = env.float("CHOREOGRAPHY_DEADLINE_S", default=600.0)
if not 0 < CHOREOGRAPHY_DEADLINE_S < SAGA_DEADLINE_S:
    raise ImproperlyConfigured("CHOREOGRAPHY_DEADLINE_S must be positive and below SAGA_DEADLINE_S")

# --- Prices --------------------------------------------------------------------
# A product's price, name and currency, as product_service's quote gave them, are
# kept this long by each web process (0: every order asks for a quote). An order
# placed from kept prices is still never confirmed at a price the catalogue no
# longer asks: its reservation names each line's price and product_service holds
# nothing if one changed (the order is cancelled, reason price_changed).
ORDER_PRICE_CACHE_S = env.float("ORDER_PRICE_CACHE_S", default=30.0)
if ORDER_PRICE_CACHE_S < 0:
    raise ImproperlyConfigured("ORDER_PRICE_CACHE_S cannot be negative")
CACHES["prices"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "order_service-prices",
    "OPTIONS": {"MAX_ENTRIES": 10_000},
}

# --- Customers -----------------------------------------------------------------
# A customer user_service found active (and their contact for the mails) is kept
# this long in Redis, shared by the web and worker processes (0: every order asks
# user_service). A closed account's `user.deactivated` sends its orders back to
# user_service at once; they are refused no later than this after it closed.
ORDER_CUSTOMER_CACHE_S = env.float("ORDER_CUSTOMER_CACHE_S", default=30.0)
if ORDER_CUSTOMER_CACHE_S < 0:
    raise ImproperlyConfigured("ORDER_CUSTOMER_CACHE_S cannot be negative")
CACHES["customers"] = {
    "BACKEND": "comptoir._redis_cache.RedisCache",
    "LOCATION": REDIS_URL,
    "KEY_PREFIX": "order_service",
    # An order asks user_service rather than wait on a Redis that does not answer.
    "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
}

# --- The reconciliation auditor (orders.reconciliation) --------------------
# Rows younger than this are still in flight and not judged (choreography
# refunds and releases after the order is CANCELLED).
RECONCILE_SETTLE_S = env.float("RECONCILE_SETTLE_S", default=300.0)
# Rows per page asked of payment_service and product_service (their routes cap it at 500).
RECONCILE_PAGE_SIZE = env.int("RECONCILE_PAGE_SIZE", default=200)
if not 1 <= RECONCILE_PAGE_SIZE <= 500:
    raise ImproperlyConfigured("RECONCILE_PAGE_SIZE must be between 1 and 500")
# Offending ids shown (and logged) per violation kind.
RECONCILE_SAMPLE_SIZE = env.int("RECONCILE_SAMPLE_SIZE", default=10)
# How often Celery beat runs the auditor (comptoir_reconciliation_violations).
RECONCILE_INTERVAL_S = env.float("RECONCILE_INTERVAL_S", default=900.0)
# What the periodic run looks at: orders, payments and reservations created in the
# last RECONCILE_WINDOW_S (0: all of history, as `manage.py reconcile` does by default),
# so its cost follows the traffic, not the age of the database. Wallets and stock
# are always checked whole.
RECONCILE_WINDOW_S = env.float("RECONCILE_WINDOW_S", default=86400.0)
# How far before the previous periodic run's cutoff the next one starts: a margin for
# rows that run could not see yet (a transaction still open, a service's clock apart).
# The cutoff is RECONCILE_SETTLE_S behind the run, so a margin of seconds is ample; a
# margin of a whole interval judged every row twice.
RECONCILE_OVERLAP_S = env.float("RECONCILE_OVERLAP_S", default=10.0)

# acks_late and reject_on_worker_lost come from the chassis. A task whose
# worker died with it stays unacknowledged in Redis until the visibility
# timeout, then is delivered again: keep it short (the sweeper is the other
# safety net) but above the longest retry countdown, which is held unacked too.
# The unacked keys are this service's own: every service shares one Redis
# database, and another service's worker must not restore our tasks (or we theirs)
# with its own timeout.
# A saga step mostly waits on another service's HTTP answer: threads wait side by
# side in one process (prefork would hold a process, and its memory, per waiting step).
CELERY_WORKER_POOL = "threads"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=60),
    "unacked_key": "order_service.unacked",
    "unacked_index_key": "order_service.unacked_index",
    "unacked_mutex_key": "order_service.unacked_mutex",
}
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= SAGA_RETRY_BACKOFF_MAX_S:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT_S must exceed SAGA_RETRY_BACKOFF_MAX_S")
CELERY_BEAT_SCHEDULE = {
    "sweep-stalled-sagas": {
        "task": "orders.sweep_stalled_sagas",
        "schedule": SAGA_SWEEP_INTERVAL_S,
        # A sweep nobody ran in time is superseded by the next one.
        "options": {"expires": SAGA_SWEEP_INTERVAL_S},
    },
    "expire-choreographed-orders": {
        "task": "orders.expire_choreographed_orders",
        "schedule": SAGA_SWEEP_INTERVAL_S,
        "options": {"expires": SAGA_SWEEP_INTERVAL_S},
    },
    "reconcile": {
        "task": "orders.reconcile",
        "schedule": RECONCILE_INTERVAL_S,
        "options": {"expires": RECONCILE_INTERVAL_S},
    },
}

SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    "OrderStatusEnum": "orders.models.OrderStatus",
    "CancelReasonEnum": "orders.models.CancelReason",
    "SagaModeEnum": "orders.models.SagaMode",
    "SagaStepEnum": "orders.models.SagaStep",
    "TimelineStatusEnum": "orders.models.TimelineStatus",
}
