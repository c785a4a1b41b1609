"""Secrets at rest: encryption with the cluster key, password hashing, ids.

* S3 secret keys must be recoverable (SigV4 signs with them), so they are
  encrypted with AES-256-GCM under a key derived from the cluster secret.
* Passwords and API tokens are only ever verified, so they are hashed: scrypt
  (memory-hard) for passwords.
* Every comparison of secret material is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_ALNUM_UPPER = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def derive_key(cluster_secret: bytes, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose, derived from the cluster secret (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"cloudstorage", info=purpose.encode()
    ).derive(cluster_secret)


class SecretBox:
    """Encrypts short secrets for storage in the metadata database."""

    _VERSION = "v1"

    def __init__(self, cluster_secret: bytes) -> None:
        self._aead = AESGCM(derive_key(cluster_secret, "secret-box"))

    def seal(self, plaintext: str, context: str = "") -> str:
        """Encrypt ``plaintext``; ``context`` (e.g. the access key id) is bound
        as associated data so a ciphertext cannot be moved to another row."""
        nonce = secrets.token_bytes(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{self._VERSION}:{base64.b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, context: str = "") -> str:
        """Decrypt what :meth:`seal` produced; raises ValueError if tampered."""
        version, _, payload = sealed.partition(":")
        if version != self._VERSION:
            raise ValueError("unknown secret format")
        raw = base64.b64decode(payload)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except Exception as exc:  # InvalidTag: wrong cluster key or tampering
            raise ValueError("secret cannot be decrypted with this cluster key") from exc


_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """Hash a password with scrypt and a random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    fields = (_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, base64.b64encode(salt).decode(),
              base64.b64encode(digest).decode())
    return "$".join(["scrypt", *map(str, fields)])


def verify_password(password: str, stored: str | None) -> bool:
    """Check ``password`` against a :func:`hash_password` result in constant time."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt_b64),
            n=int(n), r=int(r), p=int(p), dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    a_b = a.encode() if isinstance(a, str) else a
    b_b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_b, b_b)


def new_access_key_id() -> str:
    """An S3 access key id: ``CS`` + 18 upper-case letters and digits."""
    return "CS" + "".join(secrets.choice(_ALNUM_UPPER) for _ in range(18))


def new_secret_key() -> str:
    """A 40-character S3 secret access key."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def new_id(prefix: str, nbytes: int = 9) -> str:
    """A random url-safe id with a readable prefix, e.g. ``user_3kT9...``."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes).replace('-', 'x').replace('_', 'y')}"
