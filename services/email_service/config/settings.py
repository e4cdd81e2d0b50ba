"""email_service settings: the chassis's base settings plus mail delivery."""

from comptoir.settings import *

INSTALLED_APPS += ["mailer"]

# Outgoing mail: Django's SMTP backend, pointed at the devstack's SMTP sink by
# default (Mailpit or a real relay in deployment).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=1025)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# Seconds before a stuck SMTP server counts as a failed attempt (then retried).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Comptoir <no-reply@comptoir.dev>")

# Delivery retries of the `send_email` task: exponential backoff (factor, cap in
# seconds, full jitter) on SMTP and connection errors, then the mail is FAILED.
EMAIL_SEND_MAX_RETRIES = env.int("EMAIL_SEND_MAX_RETRIES", default=5)
EMAIL_RETRY_BACKOFF_S = env.int("EMAIL_RETRY_BACKOFF_S", default=5)
EMAIL_RETRY_BACKOFF_MAX_S = env.int("EMAIL_RETRY_BACKOFF_MAX_S", default=300)

# A mail is never dropped when its delivery task is lost (Redis down when the
# consumer's transaction commits, a retry that could not be published): a QUEUED
# mail whose task has not run EMAIL_REQUEUE_AFTER_S after it was queued (or after
# its last attempt's retry window) is enqueued again by the worker's sweep
# (`mailer.sweep`, a thread of the worker process), every EMAIL_SWEEP_INTERVAL_S
# (0: no sweep). The delivery is idempotent (row lock, SENT once), so a task that
# was only slow costs nothing more.
EMAIL_REQUEUE_AFTER_S = env.float("EMAIL_REQUEUE_AFTER_S", default=60.0)
EMAIL_SWEEP_INTERVAL_S = env.float("EMAIL_SWEEP_INTERVAL_S", default=30.0)

# The mails' events wait up to this long at the broker to come in batches (fewer,
# larger transactions and delivery tasks); a mail leaves that much later.
COMPTOIR_EVENTS = {**COMPTOIR_EVENTS, "CONSUMER_LINGER_MS": env.int("EMAIL_CONSUMER_LINGER_MS", default=200)}

# The Celery queue mails are delivered through (the `worker` process reads
# `email_service`; tests give the processes they start a queue of their own).
CELERY_TASK_DEFAULT_QUEUE = env.str("EMAIL_TASK_QUEUE", default="email_service")
# Mails go out one at a time over one kept SMTP session (mailer.services): the
# worker runs them in its own process, with no pool process beside it.
CELERY_WORKER_POOL = "solo"
