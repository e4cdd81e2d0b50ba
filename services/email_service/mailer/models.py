from django.db import models
from django.db.models import Q
from django.utils import timezone


class SentEmail(models.Model):
    """One transactional mail: what was asked, what was rendered, how delivery went.

    The unique (template, object_id) pair is the idempotency key: asking twice
    for the order-confirmed mail of order 42 finds the first row instead of
    sending a second mail.
    """

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Failed"

    template = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    to = models.EmailField(max_length=254)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    html_body = models.TextField(blank=True, default="")
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # While QUEUED: when the sweep enqueues the delivery again if it has not run
    # by then (its task lost). Pushed back by every enqueue and every attempt.
    requeue_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "object_id"], name="mailer_sentemail_template_object_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="mailer_sentemail_status_idx"),
            models.Index(fields=["to"], name="mailer_sentemail_to_idx"),
            models.Index(
                fields=["requeue_at"], condition=Q(status="QUEUED"), name="mailer_sentemail_requeue_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template}:{self.object_id} → {self.to} ({self.status})"
