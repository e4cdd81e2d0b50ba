"""`manage.py dlq list|show|replay|purge`: the dead letters of the topics this service consumes."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import autodiscover_modules

from comptoir.events import (
    DeadLetter,
    dlq_topic,
    get_dead_letter,
    handled_topics,
    list_dead_letters,
    purge_dead_letters,
    replay_dead_letter,
)


def _dlq_name(topic: str) -> str:
    """This service's dead-letter topic of an event topic (a `.dlq` name is taken as it is)."""
    return topic if topic.endswith(".dlq") else dlq_topic(topic, settings.COMPTOIR["SERVICE_NAME"])


class Command(BaseCommand):
    help = "List, show, replay (to the consumer group that failed them) or purge dead letters."
    # Where `purge` reads its confirmation (tests pass a StringIO).
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="one line per dead letter")
        listing.add_argument(
            "--topic", action="append", help="an event topic or a .dlq topic (default: every one handled)"
        )
        listing.add_argument("--limit", type=int, default=1000)
        show = actions.add_parser("show", help="headers and envelope of one dead letter")
        show.add_argument("id", help="<dlq topic>:<partition>:<offset>, as `list` prints")
        replay = actions.add_parser(
            "replay", help="hand dead letters back to the group that failed them (its first retry topic)"
        )
        replay.add_argument("ids", nargs="*", help="ids as `list` prints")
        replay.add_argument("--all", action="store_true", help="every dead letter of --topic")
        replay.add_argument("--topic", action="append")
        purge = actions.add_parser("purge", help="delete the dead letters of a topic")
        purge.add_argument("--topic", action="append", required=True)
        purge.add_argument("--before-offset", type=int, default=None, help="keep this offset and later")
        purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args: Any, **options: Any) -> None:
        bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
        action = options["action"]
        if action == "show":
            letter = get_dead_letter(options["id"], bootstrap_servers=bootstrap)
            if letter is None:
                raise CommandError(f"no dead letter {options['id']}")
            self._show(letter)
            return
        topics = [_dlq_name(topic) for topic in options.get("topic") or []]
        if not topics:
            autodiscover_modules("handlers")
            topics = [_dlq_name(topic) for topic in handled_topics()]
        if action == "list":
            listed = 0
            for topic in topics:
                for letter in list_dead_letters(topic, bootstrap_servers=bootstrap, limit=options["limit"]):
                    self.stdout.write(self._line(letter))
                    listed += 1
            if not listed:
                self.stdout.write(f"no dead letters in {', '.join(topics) or 'any topic'}")
        elif action == "replay":
            if options["ids"]:
                letters = []
                for letter_id in options["ids"]:
                    letter = get_dead_letter(letter_id, bootstrap_servers=bootstrap)
                    if letter is None:
                        raise CommandError(f"no dead letter {letter_id}")
                    letters.append(letter)
            elif options["all"]:
                letters = [
                    letter
                    for topic in topics
                    for letter in list_dead_letters(topic, bootstrap_servers=bootstrap)
                ]
            else:
                raise CommandError("name dead letter ids, or --all (with --topic to narrow)")
            for letter in letters:
                origin = replay_dead_letter(letter, bootstrap_servers=bootstrap)
                self.stdout.write(f"replayed {letter.id} -> {origin}")
        elif action == "purge":
            if not options["yes"] and not self._confirmed(topics, options.get("stdin") or sys.stdin):
                raise CommandError("nothing purged")
            for topic in topics:
                deleted = purge_dead_letters(
                    topic, bootstrap_servers=bootstrap, before_offset=options["before_offset"]
                )
                self.stdout.write(f"purged {deleted} dead letter(s) from {topic}")

    def _confirmed(self, topics: list[str], stdin: Any) -> bool:
        """Purging cannot be undone: ask, unless `--yes`; a non-interactive run must say `--yes`."""
        if not stdin.isatty() and stdin is sys.stdin:
            raise CommandError("purge deletes dead letters for good: confirm with --yes")
        self.stdout.write(f"Delete the dead letters of {', '.join(topics)} for good? [y/N] ", ending="")
        self.stdout.flush()
        answer = stdin.readline().strip().lower()
        return answer in {"y", "yes"}

    def _line(self, letter: DeadLetter) -> str:
        when = datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
        return "\t".join(
            [
                letter.id,
                when,
                letter.header("event_type") or "?",
                (letter.key or b"").decode(errors="replace"),
                letter.header("x-consumer-group") or "?",
                f"attempts={letter.header('x-attempts')}",
                f"{letter.header('x-error-type')}: {letter.header('x-error-message')}",
            ]
        )

    def _show(self, letter: DeadLetter) -> None:
        self.stdout.write(f"id: {letter.id}")
        self.stdout.write(f"key: {(letter.key or b'').decode(errors='replace')}")
        for name, value in letter.headers:
            self.stdout.write(f"header {name}: {value.decode(errors='replace')}")
        try:
            body = json.dumps(json.loads(letter.value or b""), indent=2, ensure_ascii=False)
        except ValueError:
            body = repr(letter.value)
        self.stdout.write(body)
