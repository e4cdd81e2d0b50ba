from comptoir import create_celery_app
from mailer.sweep import MailSweep

app = create_celery_app("email_service")
# The requeue sweep of lost mail deliveries runs in the worker (EMAIL_SWEEP_INTERVAL_S).
app.steps["worker"].add(MailSweep)
