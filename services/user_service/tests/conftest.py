from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from django.test import Client
from django.test.utils import override_settings

from users.models import ServiceClient, User
from users.revocation import REVOKED_ACCESS_KEY
from users.services import service_client_set

if TYPE_CHECKING:
    from comptoir.testing import TokenFactory

pytest_plugins = ["comptoir.testing"]

PASSWORD = "Plenty-of-entropy-42"
SERVICE_SECRET = "s3cret-for-tests"


@pytest.fixture(scope="session")
def shared_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing key for the whole run (RSA generation is slow); rotation tests use their own."""
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(autouse=True)
def _isolated_settings(settings: Any, shared_keys_dir: Path) -> Iterator[None]:
    settings.JWT_PRIVATE_KEYS_DIR = str(shared_keys_dir)
    # Fast hashing: the tests exercise the flows, not PBKDF2's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Throttle counters in a cache of this test's own, never left over from another run.
    cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    with override_settings(CACHES={"default": cache}):
        yield


REVOCATION_DB = 12  # a Redis database of the tests' own: a running gateway never reads it


@pytest.fixture
def revocation_list(settings: Any) -> Iterator[redis.Redis]:
    """The real Redis that access-token revocations go to, emptied before and after the test."""
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    settings.TOKEN_REVOCATION_REDIS_URL = f"{base}/{REVOCATION_DB}"
    client = redis.Redis.from_url(settings.TOKEN_REVOCATION_REDIS_URL, decode_responses=True)
    client.delete(REVOKED_ACCESS_KEY)
    try:
        yield client
    finally:
        client.delete(REVOKED_ACCESS_KEY)
        client.close()


@pytest.fixture
def fresh_keys_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    settings.JWT_PRIVATE_KEYS_DIR = str(folder)
    return folder


@pytest.fixture
def tokens(tokens: TokenFactory, settings: Any) -> TokenFactory:
    """The chassis fixture, with this service's own keys still trusted beside the test key."""
    settings.COMPTOIR_JWKS_PROVIDER = "tests.support.service_and_test_jwks"
    return tokens


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(
        email: str = "ada@example.com",
        *,
        password: str = PASSWORD,
        full_name: str = "Ada Lovelace",
        is_staff: bool = False,
        is_active: bool = True,
    ) -> User:
        return User.objects.create_user(
            email, password, full_name=full_name, is_staff=is_staff, is_active=is_active
        )

    return make


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user()


@pytest.fixture
def make_service_client(db: None) -> Callable[..., ServiceClient]:
    def make(
        name: str = "order_service", *, secret: str = SERVICE_SECRET, active: bool = True
    ) -> ServiceClient:
        return service_client_set(name=name, secret=secret, is_active=active)

    return make


class Api:
    """JSON calls to this service, the way clients make them."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def post(self, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.client.post(path, body or {}, content_type="application/json", headers=headers)

    def patch(self, path: str, body: dict[str, Any], **headers: str) -> Any:
        return self.client.patch(path, body, content_type="application/json", headers=headers)

    def get(self, path: str, **headers: str) -> Any:
        return self.client.get(path, headers=headers)

    def login(self, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
        response = self.post("/api/users/auth/login/", {"email": email, "password": password})
        assert response.status_code == 200, response.json()
        body: dict[str, Any] = response.json()
        return body

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)
