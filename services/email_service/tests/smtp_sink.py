"""A real SMTP server for the tests (aiosmtpd), keeping every mail it accepts."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    # The client's (address, port): one per SMTP session.
    peer: tuple[Any, ...] = ()

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert isinstance(part, EmailMessage)
        # SMTP carries CRLF line ends; compare with what the template wrote.
        return str(part.get_content()).replace("\r\n", "\n")

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return None if part is None else str(part.get_content())


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.sink.rejected_recipients:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.sink.lock:
            self.sink.received.append(
                ReceivedMail(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,
                    peer=tuple(session.peer),
                )
            )
        return "250 Message accepted for delivery"


class SmtpSink:
    """Listens on 127.0.0.1:<free port> in a thread; `received` is what arrived, in order."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.lock = threading.Lock()
        self.received: list[ReceivedMail] = []
        self.rejected_recipients: set[str] = set()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listens again on the same port (a stopped controller cannot restart)."""
        if self._controller is None:
            controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        """Closes the port: connections are refused until `start`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def mails(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, *, timeout_s: float = 30.0) -> list[ReceivedMail]:
        """Polls until `count` mails arrived (or the deadline passed), then returns them all."""
        deadline = time.monotonic() + timeout_s
        while len(self.mails()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.mails()
