"""SFTP credentials: the opt-in password and SSH public keys of an account.

The SFTP username is the account id (``user_...``), which is stable, unique
and not an email address.  Passwords are scrypt-hashed (verified in a worker
thread: scrypt is deliberately slow and must not stall the event loop); public
keys are stored in OpenSSH one-line form with their SHA-256 fingerprint, the
value an SSH server compares.  Disabling SFTP keeps the keys but refuses
every login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import trio
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from tortoise.exceptions import IntegrityError

from storage import errors
from storage.accounts import AccountInfo, _account
from storage.crypto import hash_password, new_id, verify_password
from storage.db import Database
from storage.models import Account, SftpCredential, SftpPublicKey

MIN_PASSWORD = 8
MAX_KEYS = 20


class InvalidPublicKey(errors.StorageError):
    """The SSH public key is not in OpenSSH format ("ssh-ed25519 AAAA...")."""

    code = "InvalidPublicKey"
    kind = errors.Kind.INVALID


class DuplicatePublicKey(errors.StorageError):
    """This public key is already registered."""

    code = "DuplicatePublicKey"
    kind = errors.Kind.CONFLICT


@dataclass(frozen=True)
class SftpStatus:
    """Whether SFTP is on for an account, and its username."""

    enabled: bool
    username: str


@dataclass(frozen=True)
class PublicKeyInfo:
    """A registered SSH key, as listed."""

    id: str
    name: str
    fingerprint: str
    public_key: str
    created_at: datetime


def parse_public_key(text: str) -> tuple[str, str]:
    """Validate an OpenSSH public key line; returns (``type base64``, fingerprint).

    The fingerprint is OpenSSH's ``SHA256:<unpadded base64>`` of the key blob.
    """
    parts = text.strip().split()
    if len(parts) < 2 or len(text) > 16384:
        raise InvalidPublicKey()
    line = f"{parts[0]} {parts[1]}"
    try:
        load_ssh_public_key(line.encode())
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, binascii.Error, TypeError):
        raise InvalidPublicKey() from None
    except Exception:  # cryptography's UnsupportedAlgorithm
        raise InvalidPublicKey("Unsupported SSH key type.") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return line, f"SHA256:{digest}"


_DUMMY_HASH: list[str] = []


def _verify(password: str, stored: str | None) -> bool:
    # Without a stored hash, verify against a dummy one anyway, so a wrong
    # username costs as much time as a wrong password.
    if stored is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hash_password("dummy password"))
        verify_password(password, _DUMMY_HASH[0])
        return False
    return verify_password(password, stored)


class SftpUserService:
    """Enable/disable SFTP, manage keys, and authenticate SFTP logins."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enable(self, account_id: str, password: str) -> SftpStatus:
        """Set the SFTP password (>= 8 characters) and turn SFTP on."""
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"password must be at least {MIN_PASSWORD} characters")
        pw_hash = await trio.to_thread.run_sync(hash_password, password)
        now = datetime.now(UTC)

        async def tx() -> None:
            updated = await SftpCredential.filter(account_id=account_id).update(
                password_hash=pw_hash, enabled=True, updated_at=now
            )
            if not updated:
                await SftpCredential.create(
                    account_id=account_id, password_hash=pw_hash, enabled=True, updated_at=now
                )

        await self._db.run(tx)
        return SftpStatus(enabled=True, username=account_id)

    async def disable(self, account_id: str) -> SftpStatus:
        """Turn SFTP off: every later login of the account fails."""

        async def tx() -> None:
            await SftpCredential.filter(account_id=account_id).update(
                enabled=False, updated_at=datetime.now(UTC)
            )

        await self._db.run(tx)
        return SftpStatus(enabled=False, username=account_id)

    async def status(self, account_id: str) -> SftpStatus:
        """Whether SFTP is enabled for the account."""

        async def q() -> bool:
            c = await SftpCredential.get_or_none(account_id=account_id)
            return bool(c and c.enabled)

        return SftpStatus(enabled=await self._db.run(q), username=account_id)

    # -- keys ------------------------------------------------------------------

    async def add_key(self, account_id: str, public_key: str, name: str = "") -> PublicKeyInfo:
        """Register an SSH public key for the account."""
        line, fingerprint = parse_public_key(public_key)
        now = datetime.now(UTC)
        key_id = new_id("sshkey")

        async def tx() -> PublicKeyInfo:
            if await SftpPublicKey.filter(account_id=account_id).count() >= MAX_KEYS:
                raise errors.StorageError(f"An account can have at most {MAX_KEYS} SSH keys.")
            try:
                k = await SftpPublicKey.create(
                    id=key_id, account_id=account_id, name=name[:128], public_key=line,
                    fingerprint=fingerprint, created_at=now,
                )
            except IntegrityError:
                raise DuplicatePublicKey() from None
            return PublicKeyInfo(k.id, k.name, k.fingerprint, k.public_key, k.created_at)

        return await self._db.run(tx)

    async def list_keys(self, account_id: str) -> list[PublicKeyInfo]:
        """The account's SSH keys, oldest first."""

        async def q() -> list[PublicKeyInfo]:
            rows = await SftpPublicKey.filter(account_id=account_id).order_by("created_at")
            return [PublicKeyInfo(k.id, k.name, k.fingerprint, k.public_key, k.created_at)
                    for k in rows]

        return await self._db.run(q)

    async def delete_key(self, account_id: str, key_id: str) -> bool:
        """Remove one of the account's keys; False if it has no such key."""

        async def tx() -> int:
            return await SftpPublicKey.filter(account_id=account_id, id=key_id).delete()

        return bool(await self._db.run(tx))

    # -- authentication --------------------------------------------------------

    async def _enabled_account(self, username: str) -> tuple[AccountInfo, str] | None:
        async def q() -> tuple[AccountInfo, str] | None:
            c = await SftpCredential.get_or_none(account_id=username)
            if c is None or not c.enabled:
                return None
            a = await Account.get_or_none(id=username)
            if a is None or a.status != "active":
                return None
            return _account(a), c.password_hash

        if not username or len(username) > 40:
            return None
        return await self._db.run(q)

    async def check_password(self, username: str, password: str) -> AccountInfo | None:
        """The account if SFTP is enabled for it and the password is right."""
        found = await self._enabled_account(username)
        stored = found[1] if found else None
        ok = await trio.to_thread.run_sync(_verify, password, stored)
        return found[0] if found and ok else None

    async def check_key(self, username: str, fingerprint: str) -> AccountInfo | None:
        """The account if SFTP is enabled and a key with this fingerprint is registered."""
        found = await self._enabled_account(username)
        if found is None:
            return None

        async def q() -> bool:
            return await SftpPublicKey.exists(account_id=username, fingerprint=fingerprint)

        return found[0] if await self._db.run(q) else None
