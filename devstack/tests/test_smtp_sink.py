"""The devstack's SMTP sink, as a real aiosmtpd process: what a client sends is
kept in the Maildir, whole and readable by `mailbox.Maildir`."""

from __future__ import annotations

import mailbox
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SINK_ARGV = [sys.executable, "-m", "aiosmtpd", "-n"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, maildir = free_port(), tmp_path / "mail"
    process = subprocess.Popen(
        [*SINK_ARGV, "-l", f"127.0.0.1:{port}", "-c", "devstack.smtp_sink.MaildirSink", str(maildir)],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "the sink exited"
                assert time.monotonic() < deadline, "the sink never listened"
                time.sleep(0.1)
        yield port, maildir
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_mails_sent_in_one_session_are_kept_whole_and_read_back(sink: tuple[int, Path]) -> None:
    port, maildir = sink
    sent = []
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for number in range(3):
            message = EmailMessage()
            message["From"] = "shop@comptoir.dev"
            message["To"] = f"customer{number}@example.com"
            message["Subject"] = f"Order {number} confirmed - déjà payée"
            message.set_content(f"Thank you.\nLine two of mail {number}.\n")
            message.add_alternative(f"<p>Mail {number}</p>", subtype="html")
            client.send_message(message)
            sent.append(message)

    assert not list((maildir / "tmp").iterdir())  # nothing half written
    kept = sorted(mailbox.Maildir(maildir, create=False), key=lambda mail: str(mail["To"]))
    assert [str(mail["To"]) for mail in kept] == [f"customer{n}@example.com" for n in range(3)]
    for mail, original in zip(kept, sent, strict=True):
        assert mail["X-MailFrom"] == "shop@comptoir.dev"
        assert mail["X-RcptTo"] == original["To"]
        assert str(make_header(decode_header(mail["Subject"]))) == original["Subject"]
        text, html = (part.get_payload(decode=True) for part in mail.walk() if not part.is_multipart())
        assert text == original.get_body(("plain",)).get_content().encode()  # type: ignore[union-attr]
        assert html.strip() == original.get_body(("html",)).get_content().strip().encode()  # type: ignore[union-attr]


def test_the_sink_refuses_to_start_without_its_folder() -> None:
    result = subprocess.run(
        [*SINK_ARGV, "-l", f"127.0.0.1:{free_port()}", "-c", "devstack.smtp_sink.MaildirSink"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "the Maildir folder" in result.stderr
