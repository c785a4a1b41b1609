"""Share links: a public, optionally protected, code for one object version.

Decisions (the product document is silent on them):

* A share **pins the version** it was made of (version id and ETag): the
  link serves exactly the bytes the owner shared.  Once that version is gone
  (overwritten in an unversioned bucket, deleted, the bucket deleted) the
  link answers 410 Gone, like an expired one; it never starts serving newer,
  possibly private, content under an old link.
* Codes are 16 url-safe characters from 96 random bits; the share id
  (``share_...``) is a separate random value, so the id shown to the owner
  does not reveal the code.
* ``downloads`` is counted in the database with one conditional
  ``UPDATE ... WHERE downloads < max_downloads``: nodes racing on the last
  download serialize on the row, and exactly one of them wins.  Every
  request that returns bytes (a whole file or a range) counts as one
  download; a HEAD or a refused request does not.
* Passwords are scrypt-hashed (storage/crypto.py), verified in constant time.
* Events ``share.created`` and ``share.downloaded`` are written in the
  transaction of the change (storage/events.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from storage import errors, events, sql
from storage.buckets import BucketInfo
from storage.crypto import hash_password, new_id, verify_password
from storage.db import Database
from storage.events import Event, EventBus, EventType
from storage.models import Share
from storage.objects import ObjectInfo

#: The expiry choices the product offers.
EXPIRY = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
MAX_DOWNLOADS = 1_000_000
CODE_BYTES = 12  # 96 bits


class ShareGone(errors.StorageError):
    """This share link has expired or is no longer available."""

    # Expired, out of downloads, deactivated, or its version is gone: the
    # protocols answer 410 without saying which (the object stays unnamed).
    code = "ShareGone"
    kind = errors.Kind.NOT_FOUND


@dataclass(frozen=True)
class ShareInfo:
    """One share as the protocols see it."""

    id: str
    code: str
    account_id: str
    bucket_id: int
    bucket: str
    key: str
    version_id: str
    etag: str
    file_name: str
    file_size: int
    content_type: str
    password_hash: str | None
    expires_at: datetime | None
    max_downloads: int | None
    downloads: int
    active: bool
    created_at: datetime

    @property
    def has_password(self) -> bool:
        """Whether downloads need the password."""
        return bool(self.password_hash)

    def is_live(self, now: datetime | None = None) -> bool:
        """Active, not expired and not out of downloads (as last read)."""
        now = now or datetime.now(UTC)
        if not self.active:
            return False
        if self.expires_at is not None and _aware(self.expires_at) <= now:
            return False
        return self.max_downloads is None or self.downloads < self.max_downloads

    def password_ok(self, password: str) -> bool:
        """Whether ``password`` opens this share (constant-time; True without one)."""
        return not self.password_hash or verify_password(password, self.password_hash)


def _aware(ts: datetime) -> datetime:
    # Some backends hand back naive UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _info(s: Share) -> ShareInfo:
    return ShareInfo(
        id=s.id, code=s.code, account_id=s.account_id,  # type: ignore[attr-defined]
        bucket_id=s.bucket_id, bucket=s.bucket, key=s.key, version_id=s.version_id,
        etag=s.etag, file_name=s.file_name, file_size=s.file_size,
        content_type=s.content_type, password_hash=s.password_hash,
        expires_at=_aware(s.expires_at) if s.expires_at else None,
        max_downloads=s.max_downloads, downloads=s.downloads, active=s.active,
        created_at=_aware(s.created_at),
    )


def new_code() -> str:
    """An unguessable, url-safe share code (96 random bits)."""
    return secrets.token_urlsafe(CODE_BYTES)


class ShareService:
    """Create, list, deactivate and count downloads of shares (shared database)."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus

    async def create(
        self, account_id: str, bucket: BucketInfo, obj: ObjectInfo, *, file_name: str,
        password: str = "", expires_in: str = "", max_downloads: int | None = None,
    ) -> ShareInfo:
        """Share the version ``obj`` of ``bucket``; the caller checked READ access.

        ``expires_in`` is one of :data:`EXPIRY` ("" for never); the password,
        if any, is stored scrypt-hashed.
        """
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": new_id("share", 12), "code": new_code(), "account_id": account_id,
            "bucket_id": bucket.id, "bucket": bucket.name, "key": obj.key,
            "version_id": obj.version_id, "etag": obj.etag, "file_name": file_name,
            "file_size": obj.size, "content_type": obj.content_type,
            "password_hash": hash_password(password) if password else None,
            "expires_at": now + EXPIRY[expires_in] if expires_in else None,
            "max_downloads": max_downloads, "downloads": 0, "active": True, "created_at": now,
        }
        event = Event(EventType.SHARE_CREATED, bucket.account_id, {
            "shareId": row["id"], "bucket": bucket.name, "key": obj.key,
            "fileName": file_name, "size": obj.size,
            "expiresAt": _iso(row["expires_at"]), "maxDownloads": max_downloads,
            "passwordProtected": bool(password),
        }, origin=events.current_origin(), actor=account_id, at=now)

        async def tx() -> Share:
            async with in_transaction() as conn:
                share = await Share.create(using_db=conn, **row)
                await events.record(conn, [event])
                return share

        share = await sql.retry(lambda: self._db.run(tx))
        self._bus.publish([event])
        return _info(share)

    async def list_for(self, account_id: str, limit: int = 1000) -> list[ShareInfo]:
        """The account's shares, newest first."""

        async def q() -> list[Share]:
            return await Share.filter(account_id=account_id).order_by("-created_at").limit(limit)

        return [_info(s) for s in await self._db.run(q)]

    async def by_code(self, code: str) -> ShareInfo | None:
        """The share of ``code`` (live or not), None if there is none."""
        if not code or len(code) > 32:
            return None

        async def q() -> Share | None:
            return await Share.get_or_none(code=code)

        share = await self._db.run(q)
        return _info(share) if share is not None else None

    async def is_public(self, bucket_id: int, key: str, version_id: str, etag: str) -> bool:
        """Whether a live share without password or download limit exposes this
        very version (what lets ``/api/img`` transform it for anyone: a limited
        share must not become unlimited through transforms)."""

        async def q() -> list[Share]:
            return await Share.filter(bucket_id=bucket_id, key=key, version_id=version_id,
                                      etag=etag, active=True, password_hash=None,
                                      max_downloads=None).limit(20)

        now = datetime.now(UTC)
        return any(_info(s).is_live(now) for s in await self._db.run(q))

    async def deactivate(self, account_id: str, share_id: str) -> bool:
        """Deactivate the account's share ``share_id``; False if it has none such."""

        async def tx() -> int:
            return await Share.filter(id=share_id, account_id=account_id).update(active=False)

        return bool(await sql.retry(lambda: self._db.run(tx)))

    async def claim_download(self, share: ShareInfo, *, ranged: bool = False) -> int:
        """Count one download of ``share``, atomically across nodes; the new count.

        Raises :class:`ShareGone` if the share was deactivated, expired or ran
        out of downloads, including because a concurrent download (on any
        node) took the last one.  ``share.downloaded`` is recorded in the
        same transaction.
        """
        now = datetime.now(UTC)
        if share.expires_at is not None and share.expires_at <= now:
            raise ShareGone()
        origin = events.current_origin()  # read here: tx() runs on the bridge's thread

        async def tx() -> tuple[int, Event]:
            async with in_transaction() as conn:
                rows = await sql.fetch(
                    conn,
                    "UPDATE shares SET downloads = downloads + 1 WHERE id = ? AND active = ? "
                    "AND (max_downloads IS NULL OR downloads < max_downloads) "
                    "RETURNING downloads",
                    (share.id, True))
                if not rows:
                    raise ShareGone()
                count = int(rows[0]["downloads"])
                event = Event(EventType.SHARE_DOWNLOADED, share.account_id, {
                    "shareId": share.id, "bucket": share.bucket, "key": share.key,
                    "fileName": share.file_name, "size": share.file_size,
                    "downloads": count, "maxDownloads": share.max_downloads,
                    "range": ranged,
                }, origin=origin, at=now)
                await events.record(conn, [event])
                return count, event

        count, event = await sql.retry(lambda: self._db.run(tx))
        self._bus.publish([event])
        return count


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
