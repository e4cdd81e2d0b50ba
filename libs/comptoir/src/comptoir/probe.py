"""Probes of the processes that have no HTTP port, for Kubernetes and compose.

    python -m comptoir.probe live relay      # the relay's loop turned within --max-age-s
    python -m comptoir.probe ready consumer  # the consumer's dependencies answer
    python -m comptoir.probe live consumer relay  # both loops of `consume_events --with-relay`

`live` only reads the heartbeat file the process's loop touches (no Django set-up,
no network): a dependency outage, which the loop survives, is not a reason to
restart it. `ready` sets Django up and runs the checks that kind of process needs
(`comptoir._health.PROCESS_CHECKS`), printing them; exit status 0 or 1. With
several kinds (a consumer process that runs the relay too), each must pass. The
service is $COMPTOIR_SERVICE (every image sets it) or `--service`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._health import PROCESS_CHECKS, Heartbeat

DEFAULT_MAX_AGE_S = 120.0


def live(service: str, process: str, max_age_s: float) -> tuple[bool, str]:
    age = Heartbeat(service, process).age_s()
    if age is None:
        return False, f"{service} {process}: no heartbeat yet"
    if age > max_age_s:
        return False, f"{service} {process}: last heartbeat {age:.0f} s ago (over {max_age_s:g} s)"
    return True, f"{service} {process}: heartbeat {age:.0f} s ago"


def ready(process: str) -> tuple[bool, str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from ._health import checks_of, run_checks

    results = run_checks(checks_of(process))
    failed = sorted(name for name, result in results.items() if result != "ok")
    return not failed, json.dumps({"checks": results, "failed": failed})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comptoir.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", choices=["live", "ready"])
    parser.add_argument("process", nargs="+", choices=sorted(PROCESS_CHECKS))
    parser.add_argument("--service", default=os.environ.get("COMPTOIR_SERVICE"))
    parser.add_argument("--max-age-s", type=float, default=DEFAULT_MAX_AGE_S)
    args = parser.parse_args(argv)
    if args.probe == "live":
        if not args.service:
            parser.error("name the service: --service, or set COMPTOIR_SERVICE")
        results = [live(args.service, process, args.max_age_s) for process in args.process]
    else:
        results = [ready(process) for process in args.process]
    for _ok, report in results:
        print(report)
    return 0 if all(ok for ok, _report in results) else 1


if __name__ == "__main__":
    sys.exit(main())
