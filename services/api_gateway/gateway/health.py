"""`/health/live`: the gateway answers. `/health/ready`: 200 once started, with a
report of every upstream's own readiness and of Redis, checked concurrently within
`health.timeout_s`: one upstream down makes only its routes answer 503, so it must
not take the gateway out of rotation."""

from __future__ import annotations

import asyncio

import aiohttp

from .config import Settings
from .ratelimit import Limiter


async def _upstream_ready(session: aiohttp.ClientSession, url: str, timeout: aiohttp.ClientTimeout) -> str:
    try:
        async with session.get(url + "/health/ready", timeout=timeout) as response:
            await response.read()
            return "ok" if response.status == 200 else f"failed: status {response.status}"
    except (aiohttp.ClientError, TimeoutError) as error:
        return f"failed: {type(error).__name__}"


async def readiness(
    settings: Settings, session: aiohttp.ClientSession, limiter: Limiter | None
) -> dict[str, str]:
    timeout = aiohttp.ClientTimeout(total=settings.health_timeout_s)
    names = sorted(settings.upstreams)
    checks = [_upstream_ready(session, settings.upstreams[name].url, timeout) for name in names]
    results = await asyncio.gather(*checks)
    report = dict(zip(names, results, strict=True))
    if limiter is not None:
        try:
            async with asyncio.timeout(settings.health_timeout_s):
                ok = await limiter.ping()
        except TimeoutError:
            ok = False
        report["redis"] = "ok" if ok else "failed: unreachable"
    return report
