from django.db import models


class BenchOrder(models.Model):
    """The business row written with each event."""

    user_id = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)


class OrderEffect(models.Model):
    """The consumer's effect: one row per handled order.created."""

    event_id = models.UUIDField()
    order_id = models.CharField(max_length=64)
