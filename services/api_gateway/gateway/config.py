"""The gateway's configuration: `routes.yaml` (or the file `GATEWAY_CONFIG` names),
then environment overrides.

Environment variables (all optional):

- `<SERVICE>_URL` (e.g. `PRODUCT_SERVICE_URL`): an upstream's base URL; the
  devstack sets these. `GATEWAY_<SERVICE>_TIMEOUT_S` its timeout, or
  `GATEWAY_TIMEOUT_S` for every upstream.
- `JWT_ISSUER`, `JWT_AUDIENCE`, `GATEWAY_JWKS_URL` (default: user_service's
  JWKS route).
- `GATEWAY_REDIS_URL` (else `REDIS_URL`), `GATEWAY_RATE_LIMIT_ENABLED`,
  `GATEWAY_RATE_LIMIT_PREFIX`, `GATEWAY_RATE_LIMIT_STRATEGY`,
  `GATEWAY_RATE_LIMIT_AUTHENTICATED`, `GATEWAY_RATE_LIMIT_ANONYMOUS`,
  `GATEWAY_RATE_LIMIT_LOGIN` (per client address), `GATEWAY_RATE_LIMIT_LOGIN_FAILURES`
  (failed logins per account) (`limits` expressions such as `20/minute`),
  `GATEWAY_RATE_LIMIT_BATCH_MAX` (`1`: one Redis call per request, no batching).
- `GATEWAY_REVOCATION_REDIS_URL` (else the rate limits' Redis): where user_service
  lists revoked access tokens (its `TOKEN_REVOCATION_REDIS_URL` must name the same).
- `GATEWAY_MAX_BODY_BYTES`, `GATEWAY_BODY_TIMEOUT_S` (a request body must arrive whole
  within it, else 408), `GATEWAY_CONNECT_TIMEOUT_S`, `GATEWAY_RETRIES`,
  `GATEWAY_RETRY_BACKOFF_S`, `GATEWAY_POOL_SIZE`.
- `GATEWAY_BREAKER_FAILURE_THRESHOLD`, `GATEWAY_BREAKER_RESET_TIMEOUT_S`.
- `GATEWAY_TRUSTED_PROXIES` (comma separated addresses or networks, e.g. the
  ingress controller's pod network): only a connection from one of them may say
  who the client is (`X-Forwarded-For`, read from the right, skipping trusted
  hops; `X-Forwarded-Proto`). Empty (the default): the connection's own address.
- `GATEWAY_CORS_ORIGINS` (comma separated), `GATEWAY_HEALTH_TIMEOUT_S`,
  `GATEWAY_HEALTH_CACHE_S` (how long one readiness report is reused),
  `GATEWAY_ACCESS_LOG` (`0` turns the per-request log line off),
  `GATEWAY_PRESERVE_HOST` (`0`: the upstream sees its own host, not the client's).
- `GATEWAY_TRACES_URL` (the trace backend's Jaeger query API, e.g. `http://jaeger:16686`),
  `GATEWAY_PROMETHEUS_URL`, `GATEWAY_OPS_TIMEOUT_S`: what the staff-only
  `/api/ops/traces/` and `/api/ops/metrics/` routes read.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path(__file__).with_name("routes.yaml")
JWKS_PATH = "/api/users/auth/jwks/"


class ConfigError(Exception):
    """The configuration file or an environment override is not usable."""


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str
    timeout_s: float


@dataclass(frozen=True)
class Route:
    prefix: str
    upstream: str


@dataclass(frozen=True)
class PublicRule:
    methods: frozenset[str]
    path: str
    exact: bool

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        return path == self.path if self.exact else path.startswith(self.path)


@dataclass(frozen=True)
class AuthConfig:
    jwks_url: str
    issuer: str
    audience: str
    jwks_lifetime_s: float
    jwks_refetch_cooldown_s: float
    verified_cache_size: int
    verified_cache_ttl_s: float
    revocation_redis_url: str


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool
    redis_url: str
    key_prefix: str
    strategy: str
    authenticated: str
    anonymous: str
    login: str
    login_failures: str
    login_paths: frozenset[str]
    batch_max: int


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    allow_credentials: bool
    max_age: int


@dataclass(frozen=True)
class Settings:
    upstreams: dict[str, Upstream]
    routes: tuple[Route, ...]
    public: tuple[PublicRule, ...]
    auth: AuthConfig
    rate_limit: RateLimitConfig
    cors: CorsConfig
    max_body_bytes: int
    body_timeout_s: float
    connect_timeout_s: float
    retries: int
    retry_backoff_s: float
    pool_size: int
    breaker_failure_threshold: int
    breaker_reset_timeout_s: float
    health_timeout_s: float
    health_cache_s: float
    trusted_proxies: tuple[str, ...]
    access_log: bool
    preserve_host: bool
    # Paths (prefixes) only staff may call: an access token with `is_staff`, else 403.
    staff_prefixes: tuple[str, ...] = ()
    # The operations routes' backends: the trace store's Jaeger query API, Prometheus.
    traces_url: str = ""
    prometheus_url: str = ""
    ops_timeout_s: float = 5.0
    # Below the services' request-line limit (gunicorn: 4094 bytes), so that a
    # longer URI is refused here in the standard body instead of in their HTML.
    max_uri_bytes: int = 4000

    def route_for(self, path: str) -> Route | None:
        """The route whose prefix is the longest match (routes are kept sorted)."""
        for route in self.routes:
            if path.startswith(route.prefix):
                return route
        return None

    def is_public(self, method: str, path: str) -> bool:
        return any(rule.matches(method, path) for rule in self.public)

    def is_staff_only(self, path: str) -> bool:
        return path.startswith(self.staff_prefixes)


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"config section {name!r} must be a mapping")
    return value


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: Any) -> str:
        return self.environ.get(name, str(default))

    def number(self, name: str, default: Any) -> float:
        raw = self.environ.get(name)
        try:
            return float(default if raw is None else raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={raw!r} is not a number") from None

    def integer(self, name: str, default: Any) -> int:
        raw = self.environ.get(name)
        try:
            return int(default if raw is None else raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={raw!r} is not an integer") from None

    def flag(self, name: str, default: Any) -> bool:
        raw = self.environ.get(name)
        if raw is None:
            return bool(default)
        return raw.strip().lower() not in {"0", "false", "no", "off", ""}

    def items(self, name: str, default: Any) -> tuple[str, ...]:
        raw = self.environ.get(name)
        if raw is None:
            return tuple(str(item) for item in (default or []))
        return tuple(item.strip() for item in raw.split(",") if item.strip())


def _networks(name: str, items: tuple[str, ...]) -> tuple[str, ...]:
    """Addresses or networks, each checked: a typo must not silently trust nobody (or everybody)."""
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network") from None
    return items


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = _Env(os.environ if environ is None else environ)
    path = Path(env.text("GATEWAY_CONFIG", DEFAULT_CONFIG))
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read gateway config {path}: {error}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"gateway config {path} must be a mapping")

    default_timeout = env.environ.get("GATEWAY_TIMEOUT_S")
    upstreams: dict[str, Upstream] = {}
    for name, spec in _section(raw, "upstreams").items():
        upper = name.upper()
        timeout = env.number(f"GATEWAY_{upper}_TIMEOUT_S", default_timeout or spec.get("timeout_s", 10))
        url = env.text(f"{upper}_URL", spec["url"]).rstrip("/")
        upstreams[name] = Upstream(name=name, url=url, timeout_s=timeout)

    routes = []
    for item in raw.get("routes", []):
        if item["upstream"] not in upstreams:
            raise ConfigError(f"route {item['prefix']!r} names an unknown upstream {item['upstream']!r}")
        if not str(item["prefix"]).startswith("/api/"):
            raise ConfigError(f"route {item['prefix']!r}: only /api/ paths are routed")
        routes.append(Route(prefix=str(item["prefix"]), upstream=str(item["upstream"])))
    routes.sort(key=lambda route: len(route.prefix), reverse=True)

    public = []
    for item in raw.get("public", []):
        methods = frozenset(str(m).upper() for m in item["methods"])
        if "path" in item:
            public.append(PublicRule(methods=methods, path=str(item["path"]), exact=True))
        else:
            public.append(PublicRule(methods=methods, path=str(item["prefix"]), exact=False))

    rl_raw = _section(raw, "rate_limit")
    rate_limit_redis_url = (
        env.environ.get("GATEWAY_REDIS_URL")
        or env.environ.get("REDIS_URL")
        or str(rl_raw.get("redis_url", "redis://127.0.0.1:6380/0"))
    )
    auth_raw = _section(raw, "auth")
    user_url = upstreams["user_service"].url if "user_service" in upstreams else ""
    auth = AuthConfig(
        jwks_url=env.text(
            "GATEWAY_JWKS_URL", user_url + str(auth_raw.get("jwks_path", "/api/users/auth/jwks/"))
        ),
        issuer=env.text("JWT_ISSUER", auth_raw.get("issuer", "comptoir-user-service")),
        audience=env.text("JWT_AUDIENCE", auth_raw.get("audience", "comptoir")),
        jwks_lifetime_s=env.number("GATEWAY_JWKS_LIFETIME_S", auth_raw.get("jwks_lifetime_s", 300)),
        jwks_refetch_cooldown_s=env.number(
            "GATEWAY_JWKS_REFETCH_COOLDOWN_S", auth_raw.get("jwks_refetch_cooldown_s", 5)
        ),
        verified_cache_size=env.integer(
            "GATEWAY_VERIFIED_CACHE_SIZE", auth_raw.get("verified_cache_size", 10000)
        ),
        verified_cache_ttl_s=env.number(
            "GATEWAY_VERIFIED_CACHE_TTL_S", auth_raw.get("verified_cache_ttl_s", 60)
        ),
        revocation_redis_url=env.environ.get("GATEWAY_REVOCATION_REDIS_URL") or rate_limit_redis_url,
    )

    strategy = env.text("GATEWAY_RATE_LIMIT_STRATEGY", rl_raw.get("strategy", "sliding-window-counter"))
    if strategy not in {"fixed-window", "sliding-window-counter", "moving-window"}:
        raise ConfigError(f"unknown rate limit strategy {strategy!r}")
    rate_limit = RateLimitConfig(
        enabled=env.flag("GATEWAY_RATE_LIMIT_ENABLED", rl_raw.get("enabled", True)),
        redis_url=rate_limit_redis_url,
        key_prefix=env.text("GATEWAY_RATE_LIMIT_PREFIX", rl_raw.get("key_prefix", "comptoir-gateway")),
        strategy=strategy,
        authenticated=env.text(
            "GATEWAY_RATE_LIMIT_AUTHENTICATED", rl_raw.get("authenticated", "1200/minute")
        ),
        anonymous=env.text("GATEWAY_RATE_LIMIT_ANONYMOUS", rl_raw.get("anonymous", "300/minute")),
        login=env.text("GATEWAY_RATE_LIMIT_LOGIN", rl_raw.get("login", "10/minute")),
        login_failures=env.text(
            "GATEWAY_RATE_LIMIT_LOGIN_FAILURES", rl_raw.get("login_failures", "10/15minutes")
        ),
        login_paths=frozenset(str(p) for p in rl_raw.get("login_paths", ["/api/users/auth/login/"])),
        batch_max=max(1, env.integer("GATEWAY_RATE_LIMIT_BATCH_MAX", rl_raw.get("batch_max", 64))),
    )

    cors_raw = _section(raw, "cors")
    cors = CorsConfig(
        allow_origins=env.items("GATEWAY_CORS_ORIGINS", cors_raw.get("allow_origins", [])),
        allow_methods=tuple(str(m) for m in cors_raw.get("allow_methods", ["GET"])),
        allow_headers=tuple(str(h) for h in cors_raw.get("allow_headers", [])),
        expose_headers=tuple(str(h) for h in cors_raw.get("expose_headers", [])),
        allow_credentials=bool(cors_raw.get("allow_credentials", False)),
        max_age=int(cors_raw.get("max_age", 600)),
    )

    staff_prefixes = tuple(str(item["prefix"]) for item in raw.get("staff", []))
    ops_raw = _section(raw, "ops")

    limits_raw = _section(raw, "limits")
    breaker_raw = _section(raw, "breaker")
    health_raw = _section(raw, "health")
    return Settings(
        upstreams=upstreams,
        routes=tuple(routes),
        public=tuple(public),
        auth=auth,
        rate_limit=rate_limit,
        cors=cors,
        max_body_bytes=env.integer("GATEWAY_MAX_BODY_BYTES", limits_raw.get("max_body_bytes", 1048576)),
        body_timeout_s=env.number("GATEWAY_BODY_TIMEOUT_S", limits_raw.get("body_timeout_s", 10)),
        max_uri_bytes=env.integer("GATEWAY_MAX_URI_BYTES", limits_raw.get("max_uri_bytes", 4000)),
        connect_timeout_s=env.number("GATEWAY_CONNECT_TIMEOUT_S", limits_raw.get("connect_timeout_s", 2)),
        retries=env.integer("GATEWAY_RETRIES", limits_raw.get("retries", 2)),
        retry_backoff_s=env.number("GATEWAY_RETRY_BACKOFF_S", limits_raw.get("retry_backoff_s", 0.05)),
        pool_size=env.integer("GATEWAY_POOL_SIZE", limits_raw.get("pool_size", 200)),
        breaker_failure_threshold=env.integer(
            "GATEWAY_BREAKER_FAILURE_THRESHOLD", breaker_raw.get("failure_threshold", 5)
        ),
        breaker_reset_timeout_s=env.number(
            "GATEWAY_BREAKER_RESET_TIMEOUT_S", breaker_raw.get("reset_timeout_s", 10)
        ),
        health_timeout_s=env.number("GATEWAY_HEALTH_TIMEOUT_S", health_raw.get("timeout_s", 2)),
        health_cache_s=env.number("GATEWAY_HEALTH_CACHE_S", health_raw.get("cache_s", 1)),
        trusted_proxies=_networks(
            "GATEWAY_TRUSTED_PROXIES", env.items("GATEWAY_TRUSTED_PROXIES", raw.get("trusted_proxies", []))
        ),
        access_log=env.flag("GATEWAY_ACCESS_LOG", True),
        preserve_host=env.flag("GATEWAY_PRESERVE_HOST", limits_raw.get("preserve_host", True)),
        staff_prefixes=staff_prefixes,
        traces_url=env.text("GATEWAY_TRACES_URL", ops_raw.get("traces_url", "http://127.0.0.1:16686")).rstrip(
            "/"
        ),
        prometheus_url=env.text(
            "GATEWAY_PROMETHEUS_URL", ops_raw.get("prometheus_url", "http://127.0.0.1:9090")
        ).rstrip("/"),
        ops_timeout_s=env.number("GATEWAY_OPS_TIMEOUT_S", ops_raw.get("timeout_s", 5)),
    )
