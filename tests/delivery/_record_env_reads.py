"""Run inside a process's folder with that process's environment: starts it as far as
it goes without its network peers, and writes which environment variables it read.

    python _record_env_reads.py OUT.json KIND COMMAND...

KIND is the process (web, worker, beat, relay, consumer, migrate, seed, gateway,
frontend: the storefront's web process, a Django project without Celery);
COMMAND the container's command (the image's CMD for web). `os.environ` records every
variable looked up by name (`[]`, `get`, `in`, `os.getenv`, django-environ,
gunicorn's defaults) from before the first import of the process's code.
"""

from __future__ import annotations

import json
import os
import re
import sys

read: set[str] = set()


class RecordingEnviron(os._Environ):  # type: ignore[type-arg]
    def __getitem__(self, key: str) -> str:
        read.add(key)
        return str(super().__getitem__(key))

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            read.add(key)
        return super().__contains__(key)

    # Walking the whole environment (copying it for a child process, wsgiref's
    # snapshot) reads no variable in particular.
    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(self.decodekey(k), self.decodevalue(v)) for k, v in self._data.items()]  # type: ignore[attr-defined]

    def values(self) -> list[str]:  # type: ignore[override]
        return [value for _, value in self.items()]

    def copy(self) -> dict[str, str]:
        return dict(self.items())


os.environ.__class__ = RecordingEnviron


def start_django_process(kind: str, command: list[str]) -> None:
    sys.path.insert(0, os.getcwd())
    if kind == "web":
        from gunicorn.app.wsgiapp import WSGIApplication

        sys.argv = command
        WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn")
        import config.wsgi
    import django

    django.setup()
    import config.celery

    if kind in {"worker", "beat"}:
        config.celery.app.loader.import_default_modules()
    from django.core.management import ManagementUtility

    for name in re.findall(r"manage\.py (\w+)", " ".join(command)):
        ManagementUtility(["manage.py", name]).fetch_command(name).create_parser("manage.py", name)


def start_frontend(command: list[str]) -> None:
    sys.path.insert(0, os.getcwd())
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = command
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn")
    import config.wsgi  # noqa: F401 - django.setup(): settings, apps, middleware's imports


def start_gateway() -> None:
    sys.path.insert(0, os.getcwd())
    # Importing the app builds it as a uvicorn worker does: settings, logging, tracing.
    import gateway.app
    import gateway.serve
    import uvicorn

    uvicorn.run = lambda *args, **kwargs: None
    gateway.serve.main([])


def main() -> None:
    out, kind, *command = sys.argv[1:]
    if kind == "gateway":
        start_gateway()
    elif kind == "frontend":
        start_frontend(command)
    else:
        start_django_process(kind, command)
    with open(out, "w") as file:
        json.dump(sorted(read), file)


if __name__ == "__main__":
    main()
