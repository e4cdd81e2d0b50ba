from django.db import models


class HandledNote(models.Model):
    """One row per handler run that committed: duplicates would show as two rows."""

    event_id = models.UUIDField()
    aggregate_id = models.CharField(max_length=100)
    seq = models.IntegerField()
    attempt = models.IntegerField()
    group = models.CharField(max_length=200)
    pid = models.IntegerField()


class Breakage(models.Model):
    """While a row names an aggregate, its handler fails (a bug to fix, then replay)."""

    aggregate_id = models.CharField(max_length=100, unique=True)
