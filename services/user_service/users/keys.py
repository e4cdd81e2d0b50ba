"""The RS256 signing keys: the active key signs, the previous one stays published.

Keys come from one of two places:

- PEM environment variables (a secret store injects them): `JWT_SIGNING_KEY_PEM`
  signs, `JWT_PREVIOUS_KEY_PEM` (private or public half) is still published.
  The deployment rotates them; `rotate_signing_key` refuses.
- a folder, `JWT_PRIVATE_KEYS_DIR`, of `<kid>.pem` files where the kid is
  `<sequence>-<RFC 7638 thumbprint prefix>`. The highest sequence signs; the
  `JWT_PUBLISHED_KEYS` highest are published, so a token signed just before a
  rotation still verifies everywhere. The first key is generated on first use.

Several gunicorn workers may start at once, and the rotation command may run
beside them: writers take an exclusive `flock` on the folder and write each key
under a temporary name before renaming it into place, so a reader sees a whole
key file or none. Readers never lock: they list the folder and reload only when
the listing changed.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"
KEY_SIZE_BITS = 2048
_KEY_FILE = re.compile(r"^(?P<sequence>\d{4,})-[A-Za-z0-9_-]+\.pem$")
_LISTING_ATTEMPTS = 3


class KeyStoreError(Exception):
    """The signing keys cannot be read or changed as asked."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public_key: rsa.RSAPublicKey
    # None for a previous key known only by its public half: it verifies, never signs.
    private_key: rsa.RSAPrivateKey | None

    def signer(self) -> rsa.RSAPrivateKey:
        if self.private_key is None:
            raise KeyStoreError(f"key {self.kid} has no private half: it cannot sign")
        return self.private_key

    def public_jwk(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638: the SHA-256 of the canonical public JWK, base64url without padding."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def active_signing_key() -> SigningKey:
    """The key new tokens are signed with."""
    return _all_keys()[0]


def published_keys() -> list[SigningKey]:
    """The keys a verifier accepts: the active one first, then the previous one(s)."""
    return _all_keys()[: max(1, settings.JWT_PUBLISHED_KEYS)]


def jwks() -> dict[str, Any]:
    """The public JWK Set; also the `COMPTOIR_JWKS_PROVIDER` this service verifies with."""
    return {"keys": [key.public_jwk() for key in published_keys()]}


def rotate_signing_key(*, keep: int | None = None) -> SigningKey:
    """Makes a new active key; keeps the `keep` newest keys (new one included), deletes the rest."""
    if settings.JWT_SIGNING_KEY_PEM:
        raise KeyStoreError(
            "signing keys come from JWT_SIGNING_KEY_PEM: rotate them in the secret store, "
            "moving the current key to JWT_PREVIOUS_KEY_PEM"
        )
    keep = max(2, keep if keep is not None else settings.JWT_PUBLISHED_KEYS)
    folder = Path(settings.JWT_PRIVATE_KEYS_DIR)
    with _folder_lock(folder):
        files = _key_files(folder)
        sequence = files[0][0] + 1 if files else 1
        key = _write_new_key(folder, sequence)
        for _, old in files[keep - 1 :]:
            old.unlink(missing_ok=True)
    return key


# --- where keys come from -----------------------------------------------------


def _all_keys() -> list[SigningKey]:
    """Every known key, newest first."""
    if settings.JWT_SIGNING_KEY_PEM:
        keys = [_key_from_pem(settings.JWT_SIGNING_KEY_PEM, settings.JWT_SIGNING_KEY_ID)]
        if keys[0].private_key is None:
            raise KeyStoreError("JWT_SIGNING_KEY_PEM must hold a private key")
        if settings.JWT_PREVIOUS_KEY_PEM:
            keys.append(_key_from_pem(settings.JWT_PREVIOUS_KEY_PEM, settings.JWT_PREVIOUS_KEY_ID))
        return keys
    return _folder_keys(Path(settings.JWT_PRIVATE_KEYS_DIR))


@functools.lru_cache(maxsize=8)
def _key_from_pem(pem: str, kid: str) -> SigningKey:
    data = pem.encode()
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        private_key = None
    if private_key is not None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise KeyStoreError("signing keys must be RSA keys")
        public_key = private_key.public_key()
    else:
        try:
            loaded = serialization.load_pem_public_key(data)
        except ValueError as error:
            raise KeyStoreError(f"not a PEM RSA key: {error}") from None
        if not isinstance(loaded, rsa.RSAPublicKey):
            raise KeyStoreError("signing keys must be RSA keys")
        public_key = loaded
    return SigningKey(kid=kid or jwk_thumbprint(public_key), public_key=public_key, private_key=private_key)


_cache_lock = threading.Lock()
# folder -> (listing it was loaded from, keys newest first)
_folder_cache: dict[str, tuple[tuple[tuple[str, int], ...], list[SigningKey]]] = {}


def _folder_keys(folder: Path) -> list[SigningKey]:
    for _ in range(_LISTING_ATTEMPTS):
        files = _key_files(folder)
        if not files:
            _create_first_key(folder)
            continue
        try:
            return _load_listing(folder, [path for _, path in files])
        except FileNotFoundError:
            # A rotation pruned a file between the listing and the read: list again.
            continue
    raise KeyStoreError(f"the key folder {folder} keeps changing or stays empty")


def _load_listing(folder: Path, paths: list[Path]) -> list[SigningKey]:
    listing = tuple((path.name, path.stat().st_mtime_ns) for path in paths)
    with _cache_lock:
        cached = _folder_cache.get(str(folder))
    if cached is not None and cached[0] == listing:
        return cached[1]
    keys = []
    for path in paths:
        key = _key_from_pem(path.read_text(), path.stem)
        if key.private_key is None:
            raise KeyStoreError(f"{path} must hold a private key")
        keys.append(key)
    with _cache_lock:
        _folder_cache[str(folder)] = (listing, keys)
    return keys


def _key_files(folder: Path) -> list[tuple[int, Path]]:
    """The folder's key files, highest sequence (newest) first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _KEY_FILE.match(path.name)
        if match:
            found.append((int(match["sequence"]), path))
    return sorted(found, key=lambda item: item[0], reverse=True)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _create_first_key(folder: Path) -> None:
    with _folder_lock(folder):
        # Another worker may have written it while this one waited for the lock.
        if not _key_files(folder):
            _write_new_key(folder, 1)


def _write_new_key(folder: Path, sequence: int) -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE_BITS)
    public_key = private_key.public_key()
    kid = f"{sequence:04d}-{jwk_thumbprint(public_key)[:16]}"
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = folder / f".{kid}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / f"{kid}.pem")
    return SigningKey(kid=kid, public_key=public_key, private_key=private_key)
