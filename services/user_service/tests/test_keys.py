import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import CommandError, call_command

from users import keys

SERVICE_DIR = Path(__file__).resolve().parent.parent


def pem_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.pem"))


def test_the_first_key_is_generated_on_first_use_readable_by_the_owner_only(fresh_keys_dir: Path) -> None:
    assert not fresh_keys_dir.exists()

    key = keys.active_signing_key()

    (name,) = pem_files(fresh_keys_dir)
    assert name == f"{key.kid}.pem"
    assert key.kid.startswith("0001-")
    assert key.kid == f"0001-{keys.jwk_thumbprint(key.public_key)[:16]}"
    assert stat.S_IMODE((fresh_keys_dir / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh_keys_dir.stat().st_mode) == 0o700
    assert [k["kid"] for k in keys.jwks()["keys"]] == [key.kid]


def test_the_jwks_has_no_private_material(fresh_keys_dir: Path) -> None:
    (jwk,) = keys.jwks()["keys"]

    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}


# Each worker waits for the go file, then asks for the signing key: they race on an empty folder.
WORKER = """
import os, sys, time
from django.conf import settings
settings.configure(JWT_PRIVATE_KEYS_DIR=sys.argv[1], JWT_SIGNING_KEY_PEM="", JWT_PUBLISHED_KEYS=2)
from users.keys import active_signing_key
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.001)
print(active_signing_key().kid)
"""


def test_workers_starting_together_agree_on_one_key(fresh_keys_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(fresh_keys_dir), str(go)],
            cwd=SERVICE_DIR,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    go.touch()
    kids = {worker.communicate(timeout=60)[0].strip() for worker in workers}

    assert [worker.returncode for worker in workers] == [0, 0, 0, 0]
    (kid,) = kids
    assert kid.startswith("0001-")
    assert pem_files(fresh_keys_dir) == [f"{kid}.pem"]


def test_rotation_publishes_the_new_key_first_and_keeps_the_previous(fresh_keys_dir: Path) -> None:
    first = keys.active_signing_key()

    second = keys.rotate_signing_key()

    assert second.kid.startswith("0002-")
    assert keys.active_signing_key().kid == second.kid
    assert [k["kid"] for k in keys.jwks()["keys"]] == [second.kid, first.kid]

    third = keys.rotate_signing_key()

    assert third.kid.startswith("0003-")
    assert [k["kid"] for k in keys.jwks()["keys"]] == [third.kid, second.kid]
    assert pem_files(fresh_keys_dir) == sorted([f"{second.kid}.pem", f"{third.kid}.pem"])


def test_the_rotate_command_reports_the_keys(fresh_keys_dir: Path) -> None:
    first = keys.active_signing_key()
    out = StringIO()

    call_command("rotate_signing_key", stdout=out)

    active = keys.active_signing_key()
    assert out.getvalue() == f"active signing key: {active.kid}\npublished: {active.kid}, {first.kid}\n"


def test_rfc7638_thumbprint() -> None:
    # The example key of RFC 7638, section 3.1, and its published thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCi"
        "FV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9"
        "c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF"
        "44-csFCur-kEgU8awapJzKnqDKgw"
    )
    public_key = jwt.PyJWK.from_dict({"kty": "RSA", "n": n, "e": "AQAB"}).key

    assert keys.jwk_thumbprint(public_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _pem(private_key: rsa.RSAPrivateKey) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_keys_from_environment_variables(settings: Any, fresh_keys_dir: Path) -> None:
    current = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    previous = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    previous_public = previous.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.JWT_SIGNING_KEY_PEM = _pem(current)
    settings.JWT_SIGNING_KEY_ID = "2026-11"
    settings.JWT_PREVIOUS_KEY_PEM = previous_public.decode()
    settings.JWT_PREVIOUS_KEY_ID = ""

    assert keys.active_signing_key().kid == "2026-11"
    assert [k["kid"] for k in keys.jwks()["keys"]] == ["2026-11", keys.jwk_thumbprint(previous.public_key())]
    assert not fresh_keys_dir.exists()  # nothing generated on disk
    with pytest.raises(CommandError, match="JWT_SIGNING_KEY_PEM"):
        call_command("rotate_signing_key")


def test_a_public_key_alone_cannot_be_the_signing_key(settings: Any) -> None:
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    settings.JWT_SIGNING_KEY_PEM = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

    with pytest.raises(keys.KeyStoreError, match="must hold a private key"):
        keys.active_signing_key()
