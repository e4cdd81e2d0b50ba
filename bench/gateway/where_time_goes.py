"""Where the gateway's time goes: its ASGI application driven in-process (no HTTP
server in front, so uvicorn's share is left out) against a real stub upstream and
real Redis, with CPU time per request for each variant, and a cProfile listing.

    .venv/bin/python bench/gateway/where_time_goes.py [--requests 6000] [--cprofile]

Variants: everything on; access log off; rate limit batching off (one Redis call
per request); rate limiting off; access log and rate limiting off. The difference
between two variants is the CPU cost of what was turned off. Subtracting the
"everything on" figure from the CPU per request that run.py measures for the
whole gateway process gives the HTTP server's (uvicorn's) share.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_DIR = ROOT / "services" / "api_gateway"
sys.path.insert(0, str(GATEWAY_DIR))

from tests.conftest import free_port, stop, wait_until_live  # noqa: E402
from tests.tokens import TokenFactory  # noqa: E402

VARIANTS: dict[str, dict[str, str]] = {
    "everything on": {},
    "access log off": {"GATEWAY_ACCESS_LOG": "0"},
    "rate-limit batching off": {"GATEWAY_RATE_LIMIT_BATCH_MAX": "1"},
    "rate limiting off": {"GATEWAY_RATE_LIMIT_ENABLED": "0"},
    "log + rate limiting off": {"GATEWAY_ACCESS_LOG": "0", "GATEWAY_RATE_LIMIT_ENABLED": "0"},
}


async def drive(requests: int, concurrency: int, token: str, profile: bool) -> dict[str, Any]:
    from gateway.app import create_app

    app = create_app()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def lifespan_receive() -> dict[str, Any]:
        return await inbox.get()

    async def lifespan_send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan_receive, lifespan_send)
    )
    await outbox.get()
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"authorization", f"Bearer {token}".encode()),
    ]

    async def one() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/api/products/1/", "raw_path": b"/api/products/1/",
            "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"profile: the gateway answered {sent[0]['status']}: {sent[1:]}")

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await worker(200)  # warm: JWKS, pools, caches
    profiler = cProfile.Profile() if profile else None
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    if profiler:
        profiler.enable()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    done = (requests // concurrency) * concurrency
    result: dict[str, Any] = {
        "requests": done,
        "wall_req_per_s": round(done / elapsed),
        "user_us_per_request": round((after.ru_utime - before.ru_utime) / done * 1e6, 1),
        "system_us_per_request": round((after.ru_stime - before.ru_stime) / done * 1e6, 1),
    }
    result["cpu_us_per_request"] = round(result["user_us_per_request"] + result["system_us_per_request"], 1)
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        result["profile"] = text.getvalue()
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan
    return result


def child(args: argparse.Namespace) -> int:
    import uvloop

    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the access log goes nowhere, as in production to a file
    result = uvloop.run(drive(args.requests, args.concurrency, os.environ["PROFILE_TOKEN"], args.cprofile))
    Path(os.environ["PROFILE_OUT"]).write_text(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="each variant this many times, interleaved")
    parser.add_argument("--cprofile", action="store_true", help="print cProfile's top functions per variant")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    tmp = Path(tempfile.mkdtemp(prefix="gateway-profile-"))
    factory = TokenFactory()
    (tmp / "jwks.json").write_text(json.dumps(factory.jwks))
    port = free_port()
    stub_url = f"http://127.0.0.1:{port}"
    log = tmp / "stub.log"
    with log.open("ab") as out:
        stub = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.stub:app", "--port", str(port), "--no-access-log",
             "--loop", "uvloop", "--http", "httptools"],
            cwd=GATEWAY_DIR,
            env={
                **os.environ,
                "STUB_RECORD": "0",
                "STUB_AREAS": "products",
                "STUB_JWKS_FILE": str(tmp / "jwks.json"),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    prefix = f"gateway-profile-{uuid.uuid4().hex[:8]}"
    figures: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    try:
        wait_until_live(stub_url, stub, log)
        for _ in range(args.rounds):
            for name, overrides in VARIANTS.items():
                out_file = tmp / "result.json"
                env = {
                    **os.environ,
                    **{
                        f"{s}_SERVICE_URL": stub_url for s in ("USER", "PRODUCT", "ORDER", "PAYMENT", "EMAIL")
                    },
                    "GATEWAY_REDIS_URL": "redis://127.0.0.1:6380/13",
                    "GATEWAY_RATE_LIMIT_PREFIX": prefix,
                    "GATEWAY_RATE_LIMIT_AUTHENTICATED": "1000000000/minute",
                    "PROFILE_TOKEN": factory.user(2, lifetime_s=3600),
                    "PROFILE_OUT": str(out_file),
                    **overrides,
                }
                subprocess.run(
                    [sys.executable, __file__, "--child", "--requests", str(args.requests),
                     "--concurrency", str(args.concurrency), *(["--cprofile"] if args.cprofile else [])],
                    cwd=GATEWAY_DIR,
                    env=env,
                    check=True,
                )  # fmt: skip
                result = json.loads(out_file.read_text())
                figures[name].append(result)
                user, system = result["user_us_per_request"], result["system_us_per_request"]
                print(
                    f"  {name:<26} {result['cpu_us_per_request']:6.0f} us CPU/req "
                    f"(user {user:.0f}, system {system:.0f}), "
                    f"{result['wall_req_per_s']} req/s in-process, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                if args.cprofile:
                    print(result["profile"])
    finally:
        stop(stub)
    print("\n| variant | CPU µs per request (runs) | mean |\n| --- | --- | --- |")
    for name, runs in figures.items():
        values = [r["cpu_us_per_request"] for r in runs]
        print(f"| {name} | {' / '.join(f'{v:.0f}' for v in values)} | {sum(values) / len(values):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
