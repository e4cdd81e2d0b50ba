"""Start-up refuses to run in production (`DEBUG=False`) on development secrets.

The local defaults of the chassis (a `local-only-insecure-*` SECRET_KEY, a
`<service>-local-secret` client secret, Kafka without a password) are there so
that `DJANGO_DEBUG=true` works out of the box; the devstack passes secrets drawn
for the checkout. A process with `DEBUG=False` whose secret is missing or one
of those development values stops at settings time with an error naming the
variable, instead of running with a secret anybody can read in the repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.core.exceptions import ImproperlyConfigured

# Shorter than this is not a production secret (the devstack draws 43 characters).
MIN_SECRET_LENGTH = 32
# Fragments of the development defaults and of the examples' placeholders.
DEVELOPMENT_MARKERS = ("local-only-insecure", "local-secret", "django-insecure", "change-me", "changeme")


def secret_problem(name: str, value: str | None) -> str | None:
    """Why `value` of the variable `name` is not a production secret, or None."""
    if not value:
        return f"{name} is not set"
    lowered = value.lower()
    for marker in DEVELOPMENT_MARKERS:
        if marker in lowered:
            return f"{name} is a development value (contains {marker!r})"
    if len(value) < MIN_SECRET_LENGTH:
        return f"{name} is shorter than {MIN_SECRET_LENGTH} characters"
    return None


def kafka_credentials_problem(environ: Mapping[str, str]) -> str | None:
    """Kafka must authenticate in production: SASL with a real password, or mutual TLS."""
    protocol = environ.get("KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
    if protocol == "SSL":
        return None  # mutual TLS: the client certificate is the credential
    if protocol == "PLAINTEXT":
        return (
            "KAFKA_SASL_PASSWORD is not set (KAFKA_SECURITY_PROTOCOL is PLAINTEXT: "
            "set SASL_SSL or SASL_PLAINTEXT with KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD, "
            "or SSL with client certificates)"
        )
    return secret_problem("KAFKA_SASL_PASSWORD", environ.get("KAFKA_SASL_PASSWORD"))


def require_production_secrets(
    *, debug: bool, environ: Mapping[str, str], secrets: Iterable[str] = (), kafka: bool = True
) -> None:
    """Raises ImproperlyConfigured naming every variable that is missing or a development value.

    Nothing is checked with `debug`: development runs on the local defaults.
    """
    if debug:
        return
    problems = [problem for name in secrets if (problem := secret_problem(name, environ.get(name)))]
    if kafka and (problem := kafka_credentials_problem(environ)):
        problems.append(problem)
    if problems:
        raise ImproperlyConfigured(
            "refusing to start with DEBUG=False: "
            + "; ".join(problems)
            + ". Give every secret a random value (the devstack does), "
            "or set DJANGO_DEBUG=true for development."
        )
