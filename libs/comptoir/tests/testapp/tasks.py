"""Tasks the chassis tests run through a real Celery worker."""

import os

from celery import shared_task


@shared_task
def multiply(x: int, y: int) -> dict[str, int]:
    """Returns the product and the worker's pid, which proves another process ran it."""
    return {"product": x * y, "pid": os.getpid()}
