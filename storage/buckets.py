"""Buckets: creation rules, ownership, versioning state, tags and CORS rules.

Tags and CORS rules are not part of :class:`BucketInfo` (which every request
loads): they are read only by the operations that need them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage import errors, events, names, refs, sql
from storage.db import Database
from storage.events import Event, EventBus, EventType
from storage.models import Account, Bucket
from storage.object_types import from_utc_micros, utc_micros


@dataclass(frozen=True)
class BucketInfo:
    """What the rest of the core needs to know about a bucket."""

    id: int
    name: str
    account_id: str
    region: str
    versioning: str  # "", "Enabled" or "Suspended"
    created_at: datetime

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Every relayed write (storage/write_relay.py) sends its bucket: as
        # plain values, a UTC creation time as microseconds since the epoch.
        # The default pickle of the dataclass and its aware datetime (the
        # timezone reduced through a timedelta) cost several times as much.
        created: datetime | int = self.created_at
        if created.tzinfo is UTC:  # type: ignore[union-attr]
            created = utc_micros(self.created_at)
        return _bucket_info, (self.id, self.name, self.account_id, self.region,
                              self.versioning, created)


def _bucket_info(id: int, name: str, account_id: str, region: str, versioning: str,
                 created: datetime | int) -> BucketInfo:
    if type(created) is int:
        created = from_utc_micros(created)
    return BucketInfo(id, name, account_id, region, versioning, created)  # type: ignore[arg-type]


def _delete_bucket_steps(bucket: BucketInfo, lock: str, emitted: list[Event],
                         origin: str) -> sql.UnitOfWork[None]:
    """Delete the bucket if it holds no version, aborting its open uploads.

    The bucket row is locked first (FOR UPDATE conflicts with the key-share
    lock a version or upload insert takes on the bucket it references): a
    concurrent PutObject either committed before, and is seen here, or fails
    on the vanished bucket afterwards.  Never a version deleted by the
    foreign key's cascade without its references released.
    """
    bucket_id = bucket.id
    found = yield (sql.FETCH, "SELECT id FROM buckets WHERE id = ?" + lock, (bucket_id,))
    if not found:
        raise errors.NoSuchBucket()
    # Time Machine history (storage/versions.py) is not content S3 sees: it
    # goes with the bucket, released here.
    versions = yield (sql.FETCH, "SELECT id FROM object_versions WHERE bucket_id = ? "
                      "AND history_at IS NULL LIMIT 1", (bucket_id,))
    if versions:
        raise errors.BucketNotEmpty()
    history = yield (sql.FETCH, "DELETE FROM object_versions WHERE bucket_id = ? AND "
                     f"history_at IS NOT NULL RETURNING {refs.VERSION_RETURNING}", (bucket_id,))
    if history:
        yield from refs.release_steps(bucket.account_id, refs.dropped(history))
    yield from refs.retire_uploads_steps(bucket_id)
    yield (sql.EXECUTE, "DELETE FROM buckets WHERE id = ?", (bucket_id,))
    changes = [Event(EventType.BUCKET_DELETED, bucket.account_id, {"bucket": bucket.name},
                     origin=origin)]
    yield from events.record_steps(changes)
    emitted.extend(changes)


def _info(b: Bucket) -> BucketInfo:
    return BucketInfo(
        id=b.id, name=b.name, account_id=b.account_id,  # type: ignore[attr-defined]
        region=b.region, versioning=b.versioning, created_at=b.created_at,
    )


class BucketService:
    """Create, find, list and delete buckets.

    New names are checked here, with the one rule of :mod:`storage.names`,
    whatever protocol creates the bucket.
    """

    def __init__(self, db: Database, *, max_buckets: int = 10,
                 events: EventBus | None = None) -> None:
        self._db = db
        self._max_buckets = max_buckets
        self._events = events or EventBus()

    async def create(self, account_id: str, name: str, region: str = "") -> BucketInfo:
        """Create a bucket owned by ``account_id`` (InvalidBucketName for a bad name)."""
        names.check_bucket_name(name)
        max_buckets = self._max_buckets
        created = Event(EventType.BUCKET_CREATED, account_id, {"bucket": name, "region": region},
                        origin=events.current_origin())

        async def tx() -> BucketInfo:
            existing = await Bucket.get_or_none(name=name)
            if existing is not None:
                if existing.account_id == account_id:  # type: ignore[attr-defined]
                    raise errors.BucketAlreadyOwnedByYou()
                raise errors.BucketAlreadyExists()
            async with in_transaction() as conn:
                if not await Account.exists(id=account_id):
                    raise errors.StorageError("account does not exist")
                if await Bucket.filter(account_id=account_id).count() >= max_buckets:
                    raise errors.TooManyBuckets(
                        f"You can create up to {max_buckets} buckets per account."
                    )
                try:
                    b = await Bucket.create(name=name, account_id=account_id, region=region)
                except IntegrityError:
                    raise errors.BucketAlreadyExists() from None
                await events.record(conn, [created])
            return _info(b)

        info = await sql.retry(lambda: self._db.run(tx))
        self._events.publish([created])
        return info

    async def get(self, name: str) -> BucketInfo:
        """The bucket called ``name``; raises NoSuchBucket."""

        async def q() -> BucketInfo:
            b = await Bucket.get_or_none(name=name)
            if b is None:
                raise errors.NoSuchBucket()
            return _info(b)

        return await self._db.run(q)

    async def list_for(self, account_id: str) -> list[BucketInfo]:
        """The account's buckets, by name."""

        async def q() -> list[BucketInfo]:
            return [_info(b) for b in await Bucket.filter(account_id=account_id).order_by("name")]

        return await self._db.run(q)

    async def delete(self, bucket: BucketInfo) -> None:
        """Delete a bucket without versions or delete markers; BucketNotEmpty otherwise.

        Multipart uploads still in progress are aborted with it, in the same
        transaction (their parts' chunk references released), as S3 does.
        """
        # Row locks need FOR UPDATE on PostgreSQL; SQLite's write transaction
        # already excludes every other writer.
        lock = " FOR UPDATE" if self._db.dialect == "postgres" else ""
        origin = events.current_origin()

        async def attempt() -> list[Event]:
            emitted: list[Event] = []
            await self._db.write(_delete_bucket_steps, bucket, lock, emitted, origin)
            return emitted

        self._events.publish(await sql.retry(attempt))

    async def set_versioning(self, bucket: BucketInfo, status: str) -> BucketInfo:
        """Set S3 versioning to ``Enabled`` or ``Suspended``."""
        if status not in ("Enabled", "Suspended"):
            raise ValueError(f"versioning status must be Enabled or Suspended, not {status!r}")

        async def tx() -> BucketInfo:
            await Bucket.filter(id=bucket.id).update(versioning=status)
            return _info(await Bucket.get(id=bucket.id))

        return await sql.retry(lambda: self._db.run(tx))

    async def get_tags(self, bucket: BucketInfo) -> dict[str, str]:
        """The bucket's tags ({} when it has none); NoSuchBucket if it is gone."""
        return dict(await self._get_column(bucket, "tags") or {})

    async def set_tags(self, bucket: BucketInfo, tags: Mapping[str, str] | None) -> None:
        """Replace the bucket's tags (None or {} removes them)."""
        await self._set_column(bucket, "tags", dict(tags) if tags else None)

    async def get_cors(self, bucket: BucketInfo) -> list[dict[str, Any]] | None:
        """The bucket's CORS rules as stored by :meth:`set_cors`, or None."""
        return await self._get_column(bucket, "cors")

    async def set_cors(self, bucket: BucketInfo, rules: Sequence[Mapping[str, Any]] | None) -> None:
        """Replace the bucket's CORS rules (JSON-able mappings; None removes them)."""
        await self._set_column(bucket, "cors", [dict(r) for r in rules] if rules else None)

    async def _get_column(self, bucket: BucketInfo, column: str) -> Any:
        async def q() -> Any:
            rows = await Bucket.filter(id=bucket.id).values_list(column, flat=True)
            if not rows:
                raise errors.NoSuchBucket()
            return rows[0]

        return await self._db.run(q)

    async def _set_column(self, bucket: BucketInfo, column: str, value: Any) -> None:
        async def q() -> None:
            if not await Bucket.filter(id=bucket.id).update(**{column: value}):
                raise errors.NoSuchBucket()

        await sql.retry(lambda: self._db.run(q))
