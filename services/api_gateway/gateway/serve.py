"""`python -m gateway.serve --port 8000`: uvicorn with one worker per core.

uvloop + httptools; no uvicorn access log (the gateway writes its own ECS
line), uvicorn's own lines in ECS JSON like the rest, and no proxy-header trust
at this level (the app trusts only `GATEWAY_TRUSTED_PROXIES`). Prometheus
metrics are served on a port of their own (`--metrics-port`, default
`COMPTOIR_METRICS_PORT` else 9400; 0: none), which is not routed to the public:
the supervising process serves them, aggregated across the workers through
`PROMETHEUS_MULTIPROC_DIR` (a fresh temporary folder unless one is given).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import uvicorn

DEFAULT_METRICS_PORT = 9400


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.serve", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GATEWAY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("GATEWAY_WORKERS", str(os.cpu_count() or 1)))
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("COMPTOIR_METRICS_PORT") or DEFAULT_METRICS_PORT),
    )
    args = parser.parse_args(argv)
    created = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        created = tempfile.mkdtemp(prefix="comptoir-gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    if args.metrics_port:
        # Imported once the multiprocess folder is chosen: prometheus_client reads it at import.
        from prometheus_client import start_http_server

        from gateway.metrics import registry

        start_http_server(args.metrics_port, addr=args.host, registry=registry())
    from .observability import logging_config  # after PROMETHEUS_MULTIPROC_DIR is set

    try:
        uvicorn.run(
            "gateway.app:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_config=logging_config(),
            server_header=False,
            proxy_headers=False,
        )
    finally:
        if created:
            shutil.rmtree(created, ignore_errors=True)


if __name__ == "__main__":
    main()
