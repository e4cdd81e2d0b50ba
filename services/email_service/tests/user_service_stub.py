"""A real HTTP stand-in for user_service on 127.0.0.1: the service-token endpoint
and `GET /internal/users/{id}/`, answered from a dict the test controls."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/internal/users/auth/service-token/"
STUB_SERVICE_TOKEN = "stub-service-token"
_USER_PATH = re.compile(r"^/internal/users/(?P<id>[0-9]+)/$")


@dataclass
class UserServiceStub:
    url: str = ""
    # user id -> {"email", "full_name", "is_active"}
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Answered to every user lookup instead of the users' data (e.g. 503).
    lookup_status: int | None = None
    lookups: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.users = {}
            self.lookup_status = None
            self.lookups = []

    def add(self, user_id: int, email: str, full_name: str = "", *, is_active: bool = True) -> None:
        with self.lock:
            self.users[user_id] = {"email": email, "full_name": full_name, "is_active": is_active}

    def answer(self, path: str, authorization: str | None) -> tuple[int, Any]:
        match = _USER_PATH.match(path)
        if match is None:
            return 404, _error("not_found", "No such resource.")
        if authorization != f"Bearer {STUB_SERVICE_TOKEN}":
            return 401, _error("not_authenticated", "Service token required.")
        with self.lock:
            self.lookups.append(match["id"])
            if self.lookup_status is not None:
                return self.lookup_status, _error("unavailable", "Try later.")
            user = self.users.get(int(match["id"]))
        if user is None:
            return 404, _error("user_not_found", "No such user.")
        return 200, {"id": int(match["id"]), **user}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": {}, "trace_id": None}}


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: UserServiceStub


class _Handler(BaseHTTPRequestHandler):
    server: StubServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == TOKEN_PATH:
            self._send(200, {"access_token": STUB_SERVICE_TOKEN, "token_type": "Bearer", "expires_in": 300})
        else:
            self._send(404, _error("not_found", "No such resource."))

    def do_GET(self) -> None:
        self._send(*self.server.stub.answer(self.path, self.headers.get("Authorization")))

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


def start_stub() -> tuple[UserServiceStub, StubServer, threading.Thread]:
    server = StubServer(("127.0.0.1", 0), _Handler)
    stub = UserServiceStub(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.stub = stub
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return stub, server, thread
