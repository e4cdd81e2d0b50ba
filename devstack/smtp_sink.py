"""The devstack's SMTP sink handler: every mail kept as received, in a Maildir.

aiosmtpd's own `Mailbox` handler parses each message into an `email.message`,
writes it out again and fsyncs the file: at saturation that was the sink's whole
cost, most of it the fsync. This one writes the bytes it was given (line ends
made LF, as Maildir files have them) after two headers naming the envelope, then
moves the file from `tmp/` to `new/`: a reader never sees half a mail, and
`mailbox.Maildir` reads the folder as usual. A local sink loses nothing worth an
fsync: a mail there is only for reading later.

    python -m aiosmtpd -n -l 127.0.0.1:1025 -c devstack.smtp_sink.MaildirSink .devstack/mail
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any


class MaildirSink:
    """An aiosmtpd handler: accepts every mail and keeps it in the Maildir `mail_dir`."""

    def __init__(self, mail_dir: str | os.PathLike[str]) -> None:
        self.mail_dir = Path(mail_dir)
        for sub in ("tmp", "new", "cur"):
            (self.mail_dir / sub).mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

    @classmethod
    def from_cli(cls, parser: ArgumentParser, *args: str) -> MaildirSink:
        if len(args) != 1:
            parser.error("MaildirSink takes one argument: the Maildir folder")
        return cls(args[0])

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or b""
        headers = f"X-MailFrom: {envelope.mail_from}\nX-RcptTo: {', '.join(envelope.rcpt_tos)}\n"
        self.keep(headers.encode() + content.replace(b"\r\n", b"\n"))
        return "250 OK"

    def keep(self, data: bytes) -> Path:
        """Writes one mail into tmp/, then moves it into new/; returns its path."""
        name = f"{time.time_ns() // 1000}.P{os.getpid()}Q{next(self._numbers)}.{self._host}"
        staged = self.mail_dir / "tmp" / name
        staged.write_bytes(data)
        kept = self.mail_dir / "new" / name
        os.replace(staged, kept)
        return kept
