"""Accounts and their S3 access keys."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage import errors, events, sql
from storage.crypto import (
    SecretBox,
    hash_password,
    new_access_key_id,
    new_id,
    new_secret_key,
    verify_password,
)
from storage.db import Database
from storage.events import Event, EventBus, EventType
from storage.models import AccessKey, Account


@dataclass(frozen=True)
class AccountInfo:
    """An account without its secrets."""

    id: str
    email: str
    plan: str
    quota_bytes: int
    used_bytes: int
    object_count: int
    is_admin: bool
    status: str
    created_at: datetime


@dataclass(frozen=True)
class AccessKeyInfo:
    """An access key as listed: never the secret."""

    access_key: str
    account_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Credentials:
    """A new key pair: the only time the secret leaves the server."""

    access_key: str
    secret_key: str
    name: str


def _account(a: Account) -> AccountInfo:
    return AccountInfo(
        id=a.id, email=a.email, plan=a.plan, quota_bytes=a.quota_bytes,
        used_bytes=a.used_bytes, object_count=a.object_count, is_admin=a.is_admin,
        status=a.status, created_at=a.created_at,
    )


def _key(k: AccessKey) -> AccessKeyInfo:
    return AccessKeyInfo(
        access_key=k.access_key, account_id=k.account_id,  # type: ignore[attr-defined]
        name=k.name, created_at=k.created_at,
    )


@functools.cache
def _dummy_password_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


class AccountService:
    """Create and look up accounts and key pairs."""

    def __init__(
        self, db: Database, box: SecretBox, *, default_quota: int, max_access_keys: int = 5,
        events: EventBus | None = None,
    ) -> None:
        self._db = db
        self._events = events or EventBus()
        self._box = box
        self._default_quota = default_quota
        self._max_keys = max_access_keys
        self._opened: dict[tuple[str, str], str] = {}

    async def create_account(
        self,
        email: str,
        password: str | None = None,
        *,
        is_admin: bool = False,
        quota_bytes: int | None = None,
        plan: str = "free",
    ) -> AccountInfo:
        """Create an account; raises AccountExists for a taken email."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise ValueError("email must look like name@example.com")
        if not plan.strip() or len(plan) > 32:  # accounts.plan is 32 wide
            raise ValueError("plan must be 1-32 characters")
        # scrypt is deliberately slow: hash in a worker thread, not on the
        # trio thread nor the asyncio side.
        pw_hash = await trio.to_thread.run_sync(hash_password, password) if password else None
        quota = self._default_quota if quota_bytes is None else quota_bytes

        async def tx() -> AccountInfo:
            try:
                a = await Account.create(
                    id=new_id("user"), email=email, password_hash=pw_hash, quota_bytes=quota,
                    is_admin=is_admin, plan=plan,
                )
            except IntegrityError:
                raise errors.AccountExists() from None
            return _account(a)

        return await self._db.run(tx)

    async def get(self, account_id: str) -> AccountInfo:
        """The account with this id."""

        async def q() -> AccountInfo:
            a = await Account.get_or_none(id=account_id)
            if a is None:
                raise errors.StorageError("no such account")
            return _account(a)

        return await self._db.run(q)

    async def check_room(
        self, account_id: str, size: int | None, known: AccountInfo | None = None
    ) -> None:
        """Refuse (QuotaExceeded) an upload of ``size`` bytes that cannot fit
        in ``account_id``'s quota, before a byte of it is read.

        The commit enforces the quota exactly; this only saves reading and
        storing bytes that would be thrown away.  ``known`` is a copy the
        caller already has (it may be stale: it is re-read before refusing).
        The account is the bucket owner's, whoever uploads.
        """
        if size is None:
            return
        if (known is not None and known.id == account_id
                and known.used_bytes + size <= known.quota_bytes):
            return
        account = await self.get(account_id)
        # Time Machine history is charged but yields to new data at the
        # commit (storage/versions.py): only what it cannot free refuses.
        if (account.used_bytes + size > account.quota_bytes
                and account.used_bytes - await self._history_bytes(account_id) + size
                > account.quota_bytes):
            # Refused early is still refused for the quota: quota.exceeded
            # (at most once an hour, as when the commit refuses).
            event = await sql.retry(lambda: self._db.write(
                events.quota_exceeded_steps, account_id, events.current_origin()))
            if event is not None:
                self._events.publish([event])
            raise errors.QuotaExceeded()

    async def _history_bytes(self, account_id: str) -> int:
        """Bytes of the account's Time Machine history (what a write may reclaim)."""

        async def q(fetch: Any, dialect: str) -> int:
            text = ("SELECT COALESCE(SUM(v.size), 0) AS n FROM object_versions v "
                    "JOIN buckets b ON b.id = v.bucket_id "
                    "WHERE b.account_id = ? AND v.history_at IS NOT NULL")
            if dialect == "postgres":
                text = text.replace("?", "$1")
            rows = await fetch(text, [account_id])
            return int(rows[0]["n"])

        return await self._db.read(q)

    async def check_password(self, email: str, password: str) -> AccountInfo | None:
        """The account if ``password`` is right, else None (constant-time check)."""

        async def q() -> tuple[AccountInfo, str | None] | None:
            a = await Account.get_or_none(email=email.strip().lower())
            return (_account(a), a.password_hash) if a else None

        found = await self._db.run(q)
        stored = found[1] if found and found[1] else _dummy_password_hash()
        # scrypt takes tens of milliseconds: off the trio thread.  Unknown
        # emails are checked against a dummy hash so that a failed login takes
        # as long whether or not the account exists (no enumeration by timing).
        ok = await trio.to_thread.run_sync(verify_password, password, stored)
        return found[0] if found and found[1] and ok else None

    async def first_admin(self) -> AccountInfo | None:
        """The oldest admin account, if one exists."""

        async def q() -> AccountInfo | None:
            a = await Account.filter(is_admin=True).order_by("created_at").first()
            return _account(a) if a else None

        return await self._db.run(q)

    # -- access keys -------------------------------------------------------------

    async def create_access_key(self, account_id: str, name: str = "") -> Credentials:
        """A new key pair for the account (at most ``max_access_keys``)."""
        access_key = new_access_key_id()
        secret = new_secret_key()
        sealed = self._box.seal(secret, context=access_key)
        limit = self._max_keys

        created = Event(EventType.KEY_CREATED, account_id,
                        {"accessKeyId": access_key, "name": name},
                        origin=events.current_origin())

        async def tx() -> None:
            async with in_transaction() as conn:
                if await AccessKey.filter(account_id=account_id).count() >= limit:
                    raise errors.TooManyAccessKeys(f"An account can have at most {limit} keys.")
                await AccessKey.create(
                    access_key=access_key, account_id=account_id, name=name, secret_enc=sealed
                )
                await events.record(conn, [created])

        await self._db.run(tx)
        self._events.publish([created])
        return Credentials(access_key=access_key, secret_key=secret, name=name)

    async def list_access_keys(self, account_id: str) -> list[AccessKeyInfo]:
        """The account's keys, oldest first."""

        async def q() -> list[AccessKeyInfo]:
            keys = await AccessKey.filter(account_id=account_id).order_by("created_at")
            return [_key(k) for k in keys]

        return await self._db.run(q)

    async def delete_access_key(self, account_id: str, access_key: str) -> bool:
        """Revoke one of the account's keys; False if it has no such key."""

        revoked = Event(EventType.KEY_REVOKED, account_id, {"accessKeyId": access_key},
                        origin=events.current_origin())

        async def tx() -> int:
            async with in_transaction() as conn:
                count = await AccessKey.filter(
                    account_id=account_id, access_key=access_key).delete()
                if count:
                    await events.record(conn, [revoked])
                return count

        if not await self._db.run(tx):
            return False
        self._events.publish([revoked])
        return True

    async def resolve_access_key(self, access_key: str) -> tuple[AccountInfo, str] | None:
        """The owning account and the plaintext secret of an access key, if it
        exists and its account is active."""

        async def q() -> tuple[AccountInfo, str] | None:
            k = await AccessKey.get_or_none(access_key=access_key).select_related("account")
            if k is None or k.account.status != "active":
                return None
            return _account(k.account), k.secret_enc

        found = await self._db.run(q)
        if found is None:
            return None
        account, sealed = found
        return account, self._box.open(sealed, context=access_key)

    def open_secret(self, access_key: str, sealed: str) -> str:
        """The plaintext of a key's sealed secret (decryptions are cached by
        the sealed value, so a changed secret is never served stale)."""
        cache = self._opened
        hit = cache.get((access_key, sealed))
        if hit is None:
            hit = self._box.open(sealed, context=access_key)
            if len(cache) >= 10_000:
                cache.clear()
            cache[(access_key, sealed)] = hit
        return hit

    async def secret_of(self, access_key: str) -> str:
        """The plaintext secret of a key (for printing first credentials)."""
        found = await self.resolve_access_key(access_key)
        if found is None:
            raise errors.StorageError("no such access key")
        return found[1]
