"""Gateway benchmark: the same wrk load, interleaved, against an upstream directly,
through nginx, and through the gateway (JWT verification and rate limiting on).

    .venv/bin/python bench/gateway/run.py                       # stub only
    .venv/bin/python bench/gateway/run.py --product-service     # + product_service

Everything runs on 127.0.0.1 on free ports, started and stopped by this script:

- the stub upstream (services/api_gateway/tests/stub.py) under uvicorn, one worker;
- nginx 1 worker, keep-alive pool to the stub (config generated in a temp dir);
- the gateway, one uvicorn worker (`python -m gateway.serve --workers 1`), every
  upstream pointed at the stub (which also serves the JWKS of a key made here),
  rate limiting on in Redis with a budget the run cannot exhaust;
- with --product-service: product_service's own Procfile command (gunicorn) on
  a free port against its devstack database (migrated and seeded), trusting the
  same JWKS, and a second gateway and a second nginx pointed at it (nginx: the
  latency a proxy adds on that route when it costs almost no CPU).

Every request carries `Authorization: Bearer <token>` (a valid access token), to
every target, so the direct runs receive the same bytes. Runs are interleaved
A B B A per concurrency level (direct, nginx, gateway, gateway, nginx, direct).
The script prints a Markdown table and writes the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_DIR = ROOT / "services" / "api_gateway"
PRODUCT_DIR = ROOT / "services" / "product_service"
VENV_BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6380/13"

sys.path.insert(0, str(GATEWAY_DIR))
from tests.tokens import TokenFactory  # noqa: E402 - the gateway tests' token maker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"bench: {url} exited early (code {process.returncode})")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            if response.status == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"bench: {url} not ready within {deadline_s} s")


@contextlib.contextmanager
def running(
    argv: list[str], *, cwd: Path, env: dict[str, str], log: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(ready_url, process)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    upstream stub {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://stub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def running_nginx(
    folder: Path, *, upstream_port: int, port: int
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """nginx per NGINX_CONF in `folder` (config, pid, logs, temp paths), proxying to `upstream_port`."""
    (folder / "nginx.conf").write_text(NGINX_CONF.format(tmp=folder, upstream_port=upstream_port, port=port))
    argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(folder), "-c", str(folder / "nginx.conf")]
    return running(
        [*argv, "-e", str(folder / "nginx-error.log"), "-g", "daemon off;"],
        cwd=folder,
        env=dict(os.environ),
        log=folder / "nginx.log",
        ready_url=f"http://127.0.0.1:{port}/health/live",
    )


@dataclass
class Result:
    target: str
    connections: int
    round: int
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    load_before: float
    requests: int
    target_cpu_us_per_request: float  # the proxy's own processes (or the upstream's, for direct)
    upstream_cpu_us_per_request: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unparsable latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, *, connections: int, threads: int, duration_s: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if rps is None or total is None or len(percentiles) != 4:
        raise SystemExit(f"bench: unexpected wrk output:\n{out}")
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {
        "requests_per_s": float(rps.group(1)),
        "p50_ms": _ms(percentiles["50"]),
        "p75_ms": _ms(percentiles["75"]),
        "p90_ms": _ms(percentiles["90"]),
        "p99_ms": _ms(percentiles["99"]),
        "errors": errors,
        "requests": int(total.group(1)),
    }


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(group: int) -> float:
    """User + system CPU of every process in a process group (a server and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp (fields after the command name, from state on)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def interleaved(
    targets: dict[str, tuple[str, int]],
    *,
    upstream: int,
    levels: list[int],
    threads: int,
    duration_s: int,
    script: Path,
    warmup_s: int,
) -> list[Result]:
    """targets: name -> (URL, process group whose CPU is the target's cost); upstream: its group."""
    names = list(targets)
    order = names + names[::-1]  # A B C C B A
    results = []
    for name in names:  # warm every target (connection pools, JWKS, caches)
        wrk(targets[name][0], connections=max(levels), threads=threads, duration_s=warmup_s, script=script)
    for connections in levels:
        for position, name in enumerate(order):
            url, group = targets[name]
            load = os.getloadavg()[0]
            own_before, upstream_before = cpu_seconds(group), cpu_seconds(upstream)
            figures = wrk(url, connections=connections, threads=threads, duration_s=duration_s, script=script)
            own = cpu_seconds(group) - own_before
            upstream_cpu = cpu_seconds(upstream) - upstream_before
            count = max(1, int(figures["requests"]))
            result = Result(
                target=name,
                connections=connections,
                round=1 if position < len(names) else 2,
                load_before=round(load, 2),
                target_cpu_us_per_request=round(own / count * 1e6, 1),
                upstream_cpu_us_per_request=round(upstream_cpu / count * 1e6, 1),
                **figures,  # type: ignore[arg-type]
            )
            print(
                f"  c={connections:<3} {name:<18} {result.requests_per_s:9.0f} req/s  "
                f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}  "
                f"cpu/req {result.target_cpu_us_per_request:6.0f} us  (load {load:.1f})",
                flush=True,
            )
            results.append(result)
    return results


def summarize(results: list[Result], baseline: str) -> str:
    rows = [
        "| conc. | target | req/s (runs) | mean req/s | ratio vs direct | p50 ms | p99 ms | "
        "p50 added vs direct | CPU µs/req of the target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for connections in sorted({r.connections for r in results}):
        at_level = [r for r in results if r.connections == connections]
        by_target: dict[str, list[Result]] = {}
        for r in at_level:
            by_target.setdefault(r.target, []).append(r)
        base = by_target[baseline]
        base_rps = statistics.mean(r.requests_per_s for r in base)
        base_p50 = statistics.mean(r.p50_ms for r in base)
        for target, runs in by_target.items():
            rps = statistics.mean(r.requests_per_s for r in runs)
            p50 = statistics.mean(r.p50_ms for r in runs)
            p99 = statistics.mean(r.p99_ms for r in runs)
            cpu = statistics.mean(r.target_cpu_us_per_request for r in runs)
            rows.append(
                f"| {connections} | {target} | {' / '.join(f'{r.requests_per_s:.0f}' for r in runs)} | "
                f"{rps:.0f} | {rps / base_rps:.2f}x | {p50:.2f} | {p99:.2f} | {p50 - base_p50:+.2f} | "
                f"{cpu:.0f} |"
            )
    return "\n".join(rows)


def gateway_env(upstream: str, jwks_url: str, prefix: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "GATEWAY_JWKS_URL": jwks_url,
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_RATE_LIMIT_PREFIX": prefix,
        # On, checked in Redis for every request, but out of reach for this run.
        "GATEWAY_RATE_LIMIT_AUTHENTICATED": "1000000000/minute",
        "GATEWAY_RATE_LIMIT_ANONYMOUS": "1000000000/minute",
    }
    for service in ("USER", "PRODUCT", "ORDER", "PAYMENT", "EMAIL"):
        env[f"{service}_SERVICE_URL"] = upstream
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def forget_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def product_env(port: int, jwks_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "JWKS_URL": jwks_url,
        "THROTTLE_ANON": "1000000000/minute",
        "THROTTLE_USER": "1000000000/minute",
        "PYTHONUNBUFFERED": "1",
    }
    devstack_env = subprocess.run(
        [sys.executable, "-m", "devstack", "env"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    for line in devstack_env.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key and key not in env:
            env[key] = value
    return env


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--levels", default="4,32", help="wrk connection counts, comma separated")
    parser.add_argument("--product-service", action="store_true", help="also measure product_service")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results"))
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"bench: {tool} is not installed")

    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    tmp.chmod(0o755)  # nginx workers may run as another user when started by root
    factory = TokenFactory()
    (tmp / "jwks.json").write_text(json.dumps(factory.jwks))
    token = factory.user(2, lifetime_s=6 * 3600)
    script = tmp / "auth.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    prefix = f"gateway-bench-{uuid.uuid4().hex[:8]}"
    ports = {
        name: free_port()
        for name in ("stub", "nginx", "gateway", "product", "gateway_product", "nginx_product")
    }
    stub_url = f"http://127.0.0.1:{ports['stub']}"
    jwks_url = f"{stub_url}/api/users/auth/jwks/"
    path = "/api/products/1/"
    report: dict[str, object] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "threads": args.threads,
        "levels": levels,
    }
    print(f"bench: temp dir {tmp}; {os.cpu_count()} CPUs; load {os.getloadavg()}", flush=True)
    stub_env = {
        **os.environ,
        "STUB_NAME": "bench",
        "STUB_AREAS": "products",
        "STUB_RECORD": "0",
        "STUB_JWKS_FILE": str(tmp / "jwks.json"),
    }
    uvicorn_stub = [
        sys.executable, "-m", "uvicorn", "tests.stub:app", "--port", str(ports["stub"]),
        "--no-access-log", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    # No metrics endpoint: the platform's own gateway may hold the default metrics port.
    gateway_cmd = [sys.executable, "-m", "gateway.serve", "--workers", "1", "--metrics-port", "0", "--port"]
    try:
        with contextlib.ExitStack() as stack:
            stub = stack.enter_context(
                running(
                    uvicorn_stub,
                    cwd=GATEWAY_DIR,
                    env=stub_env,
                    log=tmp / "stub.log",
                    ready_url=f"{stub_url}/health/live",
                )
            )
            nginx_process = stack.enter_context(
                running_nginx(tmp, upstream_port=ports["stub"], port=ports["nginx"])
            )
            gateway = stack.enter_context(
                running(
                    [*gateway_cmd, str(ports["gateway"])],
                    cwd=GATEWAY_DIR,
                    env=gateway_env(stub_url, jwks_url, prefix),
                    log=tmp / "gateway.log",
                    ready_url=f"http://127.0.0.1:{ports['gateway']}/health/live",
                )
            )
            print("== stub upstream: direct vs nginx vs gateway", flush=True)
            stub_results = interleaved(
                {
                    "direct (stub)": (f"{stub_url}{path}", stub.pid),
                    "nginx": (f"http://127.0.0.1:{ports['nginx']}{path}", nginx_process.pid),
                    "gateway": (f"http://127.0.0.1:{ports['gateway']}{path}", gateway.pid),
                },
                upstream=stub.pid,
                levels=levels,
                threads=args.threads,
                duration_s=args.duration,
                script=script,
                warmup_s=args.warmup,
            )
            report["stub"] = [asdict(r) for r in stub_results]
            print(summarize(stub_results, "direct (stub)"), flush=True)

        if args.product_service:
            report["product_service"] = bench_product_service(
                args, levels, ports, tmp, jwks_url, stub_env, script
            )
    finally:
        forget_keys(prefix)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"bench: figures written to {target}; logs in {tmp}")
    return 0


def bench_product_service(
    args: argparse.Namespace,
    levels: list[int],
    ports: dict[str, int],
    tmp: Path,
    jwks_url: str,
    stub_env: dict[str, str],
    script: Path,
) -> list[dict[str, object]]:
    """product_service as the devstack runs it (its Procfile), directly and through a gateway."""
    env = product_env(ports["product"], jwks_url)
    commands = [["migrate", "--noinput"]]
    if (PRODUCT_DIR / "catalog" / "management" / "commands" / "seed_demo.py").exists():
        commands.append(["seed_demo"])
    for command in commands:
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=PRODUCT_DIR, env=env, check=True, capture_output=True
        )
    procfile = (PRODUCT_DIR / "Procfile").read_text()
    web = next(line.split(":", 1)[1] for line in procfile.splitlines() if line.startswith("web:"))
    argv = [part.replace("$PORT", str(ports["product"])) for part in web.split()]
    product_url = f"http://127.0.0.1:{ports['product']}"
    stub_url = jwks_url.removesuffix("/api/users/auth/jwks/")
    prefix = f"gateway-bench-{uuid.uuid4().hex[:8]}"
    uvicorn_stub = [
        sys.executable, "-m", "uvicorn", "tests.stub:app", "--port", stub_url.rsplit(":", 1)[1],
        "--no-access-log", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    try:
        with contextlib.ExitStack() as stack:
            # The stub only serves the JWKS here (product_service and the gateway both fetch it).
            stack.enter_context(
                running(uvicorn_stub, cwd=GATEWAY_DIR, env=stub_env, log=tmp / "stub2.log",
                        ready_url=f"{stub_url}/health/live")
            )  # fmt: skip
            product = stack.enter_context(
                running(
                    argv,
                    cwd=PRODUCT_DIR,
                    env=env,
                    log=tmp / "product.log",
                    ready_url=f"{product_url}/health/live",
                )
            )
            with urllib.request.urlopen(f"{product_url}/api/products/", timeout=10) as response:  # noqa: S310
                listing = json.loads(response.read())
            items = listing["results"] if isinstance(listing, dict) else listing
            product_id = items[0]["id"]
            path = f"/api/products/{product_id}/"
            gateway = stack.enter_context(
                running(
                    [
                        sys.executable,
                        "-m",
                        "gateway.serve",
                        "--workers",
                        "1",
                        "--metrics-port",
                        "0",
                        "--port",
                        str(ports["gateway_product"]),
                    ],
                    cwd=GATEWAY_DIR,
                    env=gateway_env(product_url, jwks_url, prefix),
                    log=tmp / "gateway-product.log",
                    ready_url=f"http://127.0.0.1:{ports['gateway_product']}/health/live",
                )
            )
            # nginx in front of the same service: what a proxy that costs almost
            # nothing (C, ~25 µs per request) adds on this route and machine, the
            # reference for the gateway's added latency.
            nginx_dir = tmp / "nginx-product"
            nginx_dir.mkdir(exist_ok=True)
            nginx_dir.chmod(0o755)  # nginx workers may run as another user when started by root
            nginx_product = stack.enter_context(
                running_nginx(nginx_dir, upstream_port=ports["product"], port=ports["nginx_product"])
            )
            print(f"== product_service ({' '.join(argv[:1])} per its Procfile): GET {path}", flush=True)
            results = interleaved(
                {
                    "direct (product_service)": (f"{product_url}{path}", product.pid),
                    "nginx": (f"http://127.0.0.1:{ports['nginx_product']}{path}", nginx_product.pid),
                    "gateway": (f"http://127.0.0.1:{ports['gateway_product']}{path}", gateway.pid),
                },
                upstream=product.pid,
                levels=levels,
                threads=args.threads,
                duration_s=args.duration,
                script=script,
                warmup_s=args.warmup,
            )
            print(summarize(results, "direct (product_service)"), flush=True)
            return [asdict(r) for r in results]
    finally:
        forget_keys(prefix)


if __name__ == "__main__":
    sys.exit(main())
