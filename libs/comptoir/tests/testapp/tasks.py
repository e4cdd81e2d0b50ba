"""Tasks the chassis tests run through a real Celery worker."""

import os

from celery import shared_task


# The chassis stores no task's result unless the task asks for it (its caller reads it).
@shared_task(ignore_result=False)
def multiply(x: int, y: int) -> dict[str, int]:
    """Returns the product and the worker's pid, which proves another process ran it."""
    return {"product": x * y, "pid": os.getpid()}
