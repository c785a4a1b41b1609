"""Dashboard sessions: server-side, expiring, revocable.

The cookie carries a random 256-bit token; the database stores only its
SHA-256, so neither a database dump nor a log of queries reveals a usable
session.  Every request looks the session up in the shared database, so a
logout on one node is effective on every node at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from storage.accounts import AccountInfo, _account
from storage.db import Database
from storage.models import LoginFailure, Session


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    """Create, resolve and revoke dashboard sessions."""

    def __init__(self, db: Database, *, ttl_seconds: int) -> None:
        self._db = db
        self.ttl_seconds = ttl_seconds

    async def create(self, account_id: str) -> str:
        """A new session for the account; returns the token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl_seconds)

        async def tx() -> None:
            # Opportunistic clean-up keeps the table small without a worker.
            await Session.filter(account_id=account_id, expires_at__lt=now).delete()
            await Session.create(
                token_hash=_hash(token), account_id=account_id, created_at=now,
                expires_at=expires,
            )

        await self._db.run(tx)
        return token

    async def resolve(self, token: str) -> AccountInfo | None:
        """The active account of a live session, else None."""
        if not token or len(token) > 128:
            return None
        digest = _hash(token)

        async def q() -> AccountInfo | None:
            s = await Session.get_or_none(token_hash=digest).select_related("account")
            if s is None:
                return None
            if s.expires_at <= datetime.now(UTC):
                await Session.filter(token_hash=digest).delete()
                return None
            if s.account.status != "active":
                return None
            return _account(s.account)

        return await self._db.run(q)

    async def revoke(self, token: str) -> None:
        """End a session (logout); unknown tokens are ignored."""
        digest = _hash(token)

        async def tx() -> None:
            await Session.filter(token_hash=digest).delete()

        await self._db.run(tx)

    async def revoke_all(self, account_id: str) -> None:
        """End every session of an account (password change, suspension)."""

        async def tx() -> None:
            await Session.filter(account_id=account_id).delete()

        await self._db.run(tx)


class LoginAttempts:
    """At most ``limit`` failed logins per subject in any ``window`` seconds,
    counted in the shared database, so the limit holds for the whole
    cluster exactly (failed logins are rare enough for a round trip each).

    An attempt is recorded (committed) *before* the password is checked, and
    then every other recorded attempt is counted: of two concurrent attempts
    the one that counts last sees the other, so concurrent attempts on
    several nodes can only make each other wait, never slip past the limit
    together.
    """

    def __init__(self, db: Database, limit: int, window: float = 60.0) -> None:
        self._db = db
        self.limit = max(limit, 1)
        self.window = window

    async def attempt(self, subject: str) -> float:
        """Record an attempt: 0 if it may go ahead, else the seconds to wait.

        An allowed attempt stays recorded (a failure) unless :meth:`succeeded`."""
        digest = _hash(subject)
        now = datetime.now(UTC)
        since = now - timedelta(seconds=self.window)

        async def record() -> int:
            # Expired rows go first, so the table only holds the last window.
            await LoginFailure.filter(subject=digest, at__lt=since).delete()
            return (await LoginFailure.create(subject=digest, at=now)).id

        async def refused_until(row_id: int) -> datetime | None:
            # Every other attempt recorded within the window.
            others = LoginFailure.filter(subject=digest, at__gte=since).exclude(id=row_id)
            if await others.count() < self.limit:
                return None
            await LoginFailure.filter(id=row_id).delete()  # refused: not an attempt
            # Allowed again once the limit-th most recent of them has expired.
            nth = await others.order_by("-at").offset(self.limit - 1).first()
            return nth.at if nth is not None else now

        row_id = await self._db.run(record)
        until = await self._db.run(refused_until, row_id)
        if until is None:
            return 0.0
        if until.tzinfo is None:  # some backends hand back naive UTC
            until = until.replace(tzinfo=UTC)
        return max((until + timedelta(seconds=self.window) - now).total_seconds(), 0.001)

    async def succeeded(self, subject: str) -> None:
        """A right password: forget the subject's failures."""
        digest = _hash(subject)

        async def forget() -> None:
            await LoginFailure.filter(subject=digest).delete()

        await self._db.run(forget)
