"""``csb_live_`` Bearer keys of the v1-pro API (seed 002).

A key is ``csb_live_`` followed by 32 random letters and digits (about 190
bits), shown once at creation.  Only its SHA-256 is stored: the key is
random enough that a plain hash cannot be reversed by guessing, and a
lookup by hash needs no per-key salt.  The owner recognises a key by its
name, its first characters (``key_prefix``) and its last four.

Each key carries scopes (``upload``, ``import``, ``read``; all three by
default) and an optional expiry; an account holds at most ``max_keys``
(expired keys count until revoked).  Creating and revoking a key record
``key.created`` / ``key.revoked`` in the events outbox, in the same
transaction.  Keys are looked up in the shared database on every request,
so a revocation stops the key at once on every node.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from storage import errors, events
from storage.accounts import AccountInfo, _account
from storage.db import Database
from storage.events import Event, EventBus, EventType
from storage.models import ApiKey

PREFIX = "csb_live_"
SCOPES = ("upload", "import", "read")
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LEN = 32
# Longest key accepted for a lookup (anything longer is not one of ours).
MAX_KEY_LEN = len(PREFIX) + 64


class TooManyApiKeys(errors.StorageError):
    """The account already holds its maximum number of API keys."""

    code = "TooManyApiKeys"
    kind = errors.Kind.LIMIT


class InvalidScopes(errors.StorageError):
    """The scopes asked for are not a non-empty subset of the known ones."""

    code = "InvalidScopes"
    kind = errors.Kind.INVALID


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as listed: never the key itself."""

    id: str
    account_id: str
    name: str
    scopes: tuple[str, ...]
    key_prefix: str
    key_last4: str
    created_at: datetime
    expires_at: datetime | None

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the key is past its expiry."""
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: the only time its plaintext leaves the server."""

    info: ApiKeyInfo
    key: str


def new_key(prefix: str) -> str:
    """A fresh bearer key: ``prefix`` and 32 random letters and digits (190 bits)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LEN))


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _aware(ts: datetime | None) -> datetime | None:
    # Some backends hand back naive UTC.
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


def _info(k: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=k.id, account_id=k.account_id,  # type: ignore[attr-defined]
        name=k.name, scopes=tuple(k.scopes), key_prefix=k.key_prefix,
        key_last4=k.key_last4, created_at=_aware(k.created_at) or k.created_at,
        expires_at=_aware(k.expires_at),
    )


def check_scopes(scopes: Iterable[str] | None) -> tuple[str, ...]:
    """The scopes asked for, validated and in canonical order (None: all)."""
    if scopes is None:
        return SCOPES
    wanted = set(scopes)
    unknown = wanted - set(SCOPES)
    if unknown or not wanted:
        raise InvalidScopes(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


class ApiKeyService:
    """Create, list, revoke and resolve ``csb_live_`` keys."""

    def __init__(self, db: Database, *, max_keys: int = 10,
                 events_bus: EventBus | None = None) -> None:
        self._db = db
        self.max_keys = max_keys
        self._events = events_bus or EventBus()

    async def create(self, account_id: str, name: str = "", scopes: Iterable[str] | None = None,
                     expires_at: datetime | None = None) -> NewApiKey:
        """A new key for the account (TooManyApiKeys past ``max_keys``)."""
        chosen = check_scopes(scopes)
        key = new_key(PREFIX)
        info = ApiKeyInfo(
            id=f"key_{secrets.token_hex(8)}", account_id=account_id, name=name, scopes=chosen,
            key_prefix=key[: len(PREFIX) + 6] + "...", key_last4=key[-4:],
            created_at=datetime.now(UTC).replace(microsecond=0), expires_at=expires_at,
        )
        created = Event(EventType.KEY_CREATED, account_id, {
            "keyId": info.id, "name": name, "keyPrefix": info.key_prefix,
            "scopes": list(chosen), "type": "api_key"}, origin=events.current_origin())
        limit = self.max_keys

        async def tx() -> None:
            async with in_transaction() as conn:
                if await ApiKey.filter(account_id=account_id).count() >= limit:
                    raise TooManyApiKeys(f"An account can hold at most {limit} API keys.")
                await ApiKey.create(
                    id=info.id, account_id=account_id, name=name, key_hash=hash_key(key),
                    key_prefix=info.key_prefix, key_last4=info.key_last4,
                    scopes=list(chosen), created_at=info.created_at, expires_at=expires_at,
                )
                await events.record(conn, [created])

        await self._db.run(tx)
        self._events.publish([created])
        return NewApiKey(info, key)

    async def list(self, account_id: str) -> list[ApiKeyInfo]:
        """The account's keys, oldest first."""

        async def q() -> list[ApiKeyInfo]:
            rows = await ApiKey.filter(account_id=account_id).order_by("created_at", "id")
            return [_info(k) for k in rows]

        return await self._db.run(q)

    async def revoke(self, account_id: str, key_id: str) -> bool:
        """Revoke one of the account's keys; False if it has no such key."""
        revoked = Event(EventType.KEY_REVOKED, account_id, {"keyId": key_id, "type": "api_key"},
                        origin=events.current_origin())

        async def tx() -> int:
            async with in_transaction() as conn:
                count = await ApiKey.filter(account_id=account_id, id=key_id).delete()
                if count:
                    await events.record(conn, [revoked])
                return count

        if not await self._db.run(tx):
            return False
        self._events.publish([revoked])
        return True

    async def resolve(self, key: str) -> tuple[ApiKeyInfo, AccountInfo] | None:
        """The key and its account, or None for an unknown (or revoked) key.

        Expiry and the account's standing are the caller's to judge: each
        has its own error."""
        if not key.startswith(PREFIX) or len(key) > MAX_KEY_LEN:
            return None
        digest = hash_key(key)

        async def q() -> tuple[ApiKeyInfo, AccountInfo] | None:
            row = await ApiKey.get_or_none(key_hash=digest).select_related("account")
            return None if row is None else (_info(row), _account(row.account))

        return await self._db.run(q)
