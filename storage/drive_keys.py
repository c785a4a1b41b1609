"""Keys of the v2-drive API (seed 004): ``cs_live_sk_``, ``cs_test_sk_``, ``cs_live_pk_``.

The prefix is the key's type, as the document's table shows it:

* ``cs_live_sk_``: production secret key, full access within its scopes;
* ``cs_test_sk_``: sandbox secret key, confined to the account's sandbox
  folder (see :mod:`storage.drive`) whatever its scopes;
* ``cs_live_pk_``: public key, read-only (``files.read`` only).

A key is its prefix and 32 random letters and digits (about 190 bits), shown
once.  Only its SHA-256 is stored, as for the v1-pro keys (storage/api_keys.py,
whose hashing this reuses).  Creating and revoking a key record
``key.created`` / ``key.revoked`` in the events outbox in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from storage import errors, events
from storage.accounts import AccountInfo, _account
from storage.api_keys import hash_key, new_key
from storage.db import Database
from storage.events import Event, EventBus, EventType
from storage.models import DriveKey

SCOPES = ("files.read", "files.write", "teams.read", "teams.write", "audit.read",
          "webhooks.read", "webhooks.write")
# (kind, env) of each prefix.
PREFIXES = {"cs_live_sk_": ("sk", "live"), "cs_test_sk_": ("sk", "test"),
            "cs_live_pk_": ("pk", "live")}
PUBLIC_SCOPES = ("files.read",)
MAX_KEY_LEN = 11 + 64


class InvalidDriveKey(errors.StorageError):
    """A key request with an unknown type or scopes."""

    code = "InvalidDriveKey"
    kind = errors.Kind.INVALID


class TooManyDriveKeys(errors.StorageError):
    """The account already holds its maximum number of v2-drive keys."""

    code = "TooManyDriveKeys"
    kind = errors.Kind.LIMIT


@dataclass(frozen=True)
class DriveKeyInfo:
    """A key as listed: never the key itself."""

    id: str
    account_id: str
    name: str
    kind: str  # sk | pk
    env: str  # live | test
    scopes: tuple[str, ...]
    key_prefix: str
    key_last4: str
    created_at: datetime

    @property
    def sandbox(self) -> bool:
        """Whether the key reaches the sandbox only."""
        return self.env == "test"


def _info(k: DriveKey) -> DriveKeyInfo:
    created = k.created_at if k.created_at.tzinfo else k.created_at.replace(tzinfo=UTC)
    return DriveKeyInfo(id=k.id, account_id=k.account_id,  # type: ignore[attr-defined]
                        name=k.name, kind=k.kind, env=k.env, scopes=tuple(k.scopes),
                        key_prefix=k.key_prefix, key_last4=k.key_last4, created_at=created)


def check_scopes(prefix: str, scopes: Iterable[str] | None) -> tuple[str, ...]:
    """The scopes of a new key of type ``prefix`` (None: all it may hold)."""
    if prefix not in PREFIXES:
        raise InvalidDriveKey(f"type must be one of {', '.join(PREFIXES)}")
    allowed = PUBLIC_SCOPES if PREFIXES[prefix][0] == "pk" else SCOPES
    if scopes is None:
        return allowed
    wanted = set(scopes)
    if not wanted or wanted - set(allowed):
        raise InvalidDriveKey(f"scopes must be a non-empty subset of {', '.join(allowed)}")
    return tuple(s for s in allowed if s in wanted)


class DriveKeyService:
    """Create, list, revoke and resolve v2-drive keys."""

    def __init__(self, db: Database, *, max_keys: int = 20,
                 events_bus: EventBus | None = None) -> None:
        self._db = db
        self.max_keys = max_keys
        self._events = events_bus or EventBus()

    async def create(self, account_id: str, prefix: str, name: str = "",
                     scopes: Iterable[str] | None = None) -> tuple[DriveKeyInfo, str]:
        """A new key of type ``prefix`` and the key itself (shown once)."""
        chosen = check_scopes(prefix, scopes)
        kind, env = PREFIXES[prefix]
        key = new_key(prefix)
        info = DriveKeyInfo(id=f"key_{secrets.token_hex(8)}", account_id=account_id, name=name,
                            kind=kind, env=env, scopes=chosen, key_prefix=key[:len(prefix) + 4],
                            key_last4=key[-4:],
                            created_at=datetime.now(UTC).replace(microsecond=0))
        created = Event(EventType.KEY_CREATED, account_id, {
            "keyId": info.id, "name": name, "keyPrefix": info.key_prefix,
            "scopes": list(chosen), "type": "drive_key"},
            origin=events.current_origin(), actor=account_id)
        limit = self.max_keys

        async def tx() -> None:
            async with in_transaction() as conn:
                if await DriveKey.filter(account_id=account_id).count() >= limit:
                    raise TooManyDriveKeys(f"An account can hold at most {limit} keys.")
                await DriveKey.create(id=info.id, account_id=account_id, name=name, kind=kind,
                                      env=env, key_hash=hash_key(key), key_prefix=info.key_prefix,
                                      key_last4=info.key_last4, scopes=list(chosen),
                                      created_at=info.created_at)
                await events.record(conn, [created])

        await self._db.run(tx)
        self._events.publish([created])
        return info, key

    async def list(self, account_id: str) -> list[DriveKeyInfo]:
        """The account's keys, oldest first."""

        async def q() -> list[DriveKeyInfo]:
            rows = await DriveKey.filter(account_id=account_id).order_by("created_at", "id")
            return [_info(k) for k in rows]

        return await self._db.run(q)

    async def revoke(self, account_id: str, key_id: str) -> bool:
        """Revoke one of the account's keys; False if it has no such key."""
        revoked = Event(EventType.KEY_REVOKED, account_id, {"keyId": key_id, "type": "drive_key"},
                        origin=events.current_origin(), actor=account_id)

        async def tx() -> int:
            async with in_transaction() as conn:
                count = await DriveKey.filter(account_id=account_id, id=key_id).delete()
                if count:
                    await events.record(conn, [revoked])
                return count

        if not await self._db.run(tx):
            return False
        self._events.publish([revoked])
        return True

    async def resolve(self, key: str) -> tuple[DriveKeyInfo, AccountInfo] | None:
        """The key and its account, or None for an unknown (or revoked) key."""
        if not key.startswith(tuple(PREFIXES)) or len(key) > MAX_KEY_LEN:
            return None
        digest = hash_key(key)

        async def q() -> tuple[DriveKeyInfo, AccountInfo] | None:
            row = await DriveKey.get_or_none(key_hash=digest).select_related("account")
            return None if row is None else (_info(row), _account(row.account))

        return await self._db.run(q)
