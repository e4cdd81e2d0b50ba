"""The benchmark's handler: one effect row; after its commit, a datagram to the driver
(when BENCH_UDP_PORT is set) carrying the order id and the commit time."""

import os
import socket
import time

from django.db import transaction

from comptoir.events import Envelope, event_handler

from .models import OrderEffect

_SOCKET = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
_PORT = int(os.environ.get("BENCH_UDP_PORT", "0"))


@event_handler("order.created")
def record_order(event: Envelope) -> None:
    order_id = event.payload["order_id"]
    OrderEffect.objects.create(event_id=event.event_id, order_id=order_id)
    if _PORT:
        transaction.on_commit(
            lambda: _SOCKET.sendto(f"{order_id} {time.monotonic()}".encode(), ("127.0.0.1", _PORT))
        )
