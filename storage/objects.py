"""The protocol-agnostic object service: put, get, head, list, copy, delete.

Bytes are cut into fixed-size chunks named by their SHA-256 and handed to a
:class:`~storage.blobs.BlobStore`; tiny objects live inline in their metadata
row.  A version becomes visible only in the transaction that commits its
metadata, after every chunk is stored, so readers never see half an object.
Chunks of an upload that never commits are left unreferenced for garbage
collection.

Memory per upload is bounded by about three chunks (the one being filled, one
queued, one being written), never by the object's size.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import outcome
import trio
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from storage import errors, events, names, pending, refs, sql
from storage.blobs import BlobStore, ChunkNotFound, chunk_id_of
from storage.buckets import BucketInfo
from storage.db import Database
from storage.events import Event, EventBus, EventType
from storage.listing import Cursor, prefix_upper_bound, roll_up, start_cursor
from storage.models import ObjectVersion
from storage.pending import PendingRegistry

NULL_VERSION = "null"
# Below this, hashing in the event loop is cheaper than a hop to a worker thread.
_THREAD_HASH_MIN = 128 * 1024


@dataclass(frozen=True)
class WriteCondition:
    """A conditional write, checked in the transaction that commits it.

    ``if_match``: the key's latest version must have one of these ETags
    (``"*"``: any version); NoSuchKey when there is none.  ``if_none_match``:
    the key must have no latest version (a delete marker counts as none).
    """

    if_match: frozenset[str] | None = None
    if_none_match: bool = False

    def check(self, latest: Mapping[str, Any] | None) -> None:
        """Raise unless the condition holds for ``latest`` (an etag/marker row)."""
        exists = latest is not None and not latest["is_delete_marker"]
        if self.if_match is not None:
            if not exists:
                raise errors.NoSuchKey()
            assert latest is not None
            if "*" not in self.if_match and latest["etag"] not in self.if_match:
                raise errors.PreconditionFailed(condition="If-Match")
        if self.if_none_match and exists:
            raise errors.PreconditionFailed(condition="If-None-Match")


@dataclass(frozen=True)
class ObjectInfo:
    """One object version as the protocols see it."""

    bucket: str
    key: str
    version_id: str
    size: int
    etag: str  # without quotes
    content_type: str
    last_modified: datetime
    user_metadata: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    checksums: Mapping[str, str] = field(default_factory=dict)
    is_delete_marker: bool = False
    is_latest: bool = True
    chunks: tuple[tuple[str, int], ...] = ()
    inline_data: bytes | None = None
    # Sizes of the parts of a multipart upload, in order; () if stored in one piece.
    part_sizes: tuple[int, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListEntry:
    """A key in a listing."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str
    version_id: str


@dataclass(frozen=True)
class ListPage:
    """One page of a listing, in UTF-8 byte order of keys."""

    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # The last key or common prefix returned: pass it back as ``marker``.
    next_marker: str | None


@dataclass(frozen=True)
class VersionEntry:
    """One version or delete marker in a version listing."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    size: int
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class VersionPage:
    """One page of a version listing: keys in UTF-8 byte order, each key's
    versions newest first."""

    entries: list[VersionEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # Pass both back as key_marker / version_id_marker for the next page;
    # next_version_id_marker is None when the page ended on a common prefix.
    next_key_marker: str | None
    next_version_id_marker: str | None


@dataclass(frozen=True)
class DeleteResult:
    """What a delete did (S3 reports both fields)."""

    version_id: str | None
    delete_marker: bool


@dataclass
class StoredData:
    """Bytes of a new version or part, stored but not yet referenced."""

    size: int
    md5: bytes
    chunks: list[tuple[str, int]]
    inline_data: bytes | None
    # Set when a long upload registered its chunks in pending_chunks: the
    # commit that references them deletes those rows.
    pending_token: str | None = None


def _is_foreign_key(exc: Exception) -> bool:
    return isinstance(exc, IntegrityError) and "foreign" in str(exc).lower()


def _lost_latest_race(exc: Exception) -> bool:
    """Another writer became the key's latest version first (unique index)."""
    return isinstance(exc, IntegrityError) and not _is_foreign_key(exc)


def new_version_id() -> str:
    """A unique, roughly time-ordered version id."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def _now() -> datetime:
    return datetime.now(UTC)


def _to_info(bucket: str, v: ObjectVersion) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket, key=v.key, version_id=v.version_id, size=v.size, etag=v.etag,
        content_type=v.content_type, last_modified=v.created_at,
        user_metadata=v.user_metadata or {}, headers=v.headers or {},
        checksums=v.checksums or {}, is_delete_marker=v.is_delete_marker,
        is_latest=bool(v.is_latest), chunks=tuple((c, s) for c, s in v.chunks or ()),
        inline_data=bytes(v.inline_data) if v.inline_data is not None else None,
        part_sizes=tuple(v.part_sizes or ()), tags=v.tags or {},
    )


# -- units of work ------------------------------------------------------------------
# Written as steps (storage.sql.UnitOfWork) so one text runs both on the
# SQLite group-commit writer and through the ORM.


# A hook run first inside a commit's transaction (given the connection); it may
# raise to roll the whole commit back.  Its first statement must write, so that
# SQLite takes its write lock up front.
CommitHook = Callable[[Any], Awaitable[None]]


# Columns a commit writes, in the order of _INSERT_VERSION's placeholders.
_VERSION_COLUMNS = (
    "bucket_id", "key", "version_id", "is_latest", "is_delete_marker", "size", "etag",
    "content_type", "user_metadata", "headers", "checksums", "chunks", "inline_data",
    "created_at", "part_sizes", "tags", "upload_id",
)
_INSERT_VERSION = (
    "INSERT INTO object_versions (" + ", ".join(f'"{c}"' for c in _VERSION_COLUMNS)
    + ") VALUES (" + ", ".join("?" for _ in _VERSION_COLUMNS) + ")"
)


def _json(value: Any, empty: str) -> str:
    # Most of a small object's JSON columns are empty: no encoder for those.
    return json.dumps(value) if value else empty


def _commit_steps(
    bucket: BucketInfo,
    key: str,
    fields: dict[str, Any],
    chunks: list[tuple[str, int]],
    condition: WriteCondition | None = None,
    emitted: list[Event] | None = None,
    origin: str = "",
) -> sql.UnitOfWork[ObjectInfo]:
    """Make a new version (or delete marker) the latest one, if ``condition`` holds.

    Records the change's events (object.created / updated / deleted, and
    quota.warning when usage rose through its threshold) in the same
    transaction and appends them to ``emitted``.

    Raw SQL rather than the ORM: this is every PutObject's transaction, and
    the query builder and model instances cost several times the statements.
    """
    versioned = bucket.versioning == "Enabled"
    version_id = new_version_id() if versioned else NULL_VERSION
    created_at = _now()
    is_marker = bool(fields.get("is_delete_marker"))
    row = {
        "bucket_id": bucket.id, "key": key, "version_id": version_id, "is_latest": True,
        "is_delete_marker": is_marker, "size": fields["size"], "etag": fields["etag"],
        "content_type": fields["content_type"],
        "user_metadata": _json(fields.get("user_metadata"), "{}"),
        "headers": _json(fields.get("headers"), "{}"),
        "checksums": _json(fields.get("checksums"), "{}"),
        "chunks": _json([list(c) for c in chunks], "[]"),
        "inline_data": fields.get("inline_data"), "created_at": created_at,
        "part_sizes": _json(list(fields.get("part_sizes") or ()), "[]"),
        "tags": _json(fields.get("tags"), "{}"), "upload_id": fields.get("upload_id"),
    }
    # The first statement writes, so SQLite takes its write lock up front
    # instead of failing to upgrade a read snapshot later.  Its row lock is
    # also what makes a condition atomic: the version it was checked against
    # stays latest until this commits (a racing first writer of the key
    # loses on the unique latest index and retries against the winner).
    demote = ('UPDATE object_versions SET is_latest = NULL '
              'WHERE bucket_id = ? AND "key" = ? AND is_latest = ?')
    # What it demotes tells the condition, and the event (created or updated).
    demoted = yield (sql.FETCH, demote + " RETURNING etag, is_delete_marker, size, content_type",
                     (bucket.id, key, True))
    latest = demoted[0] if demoted else None
    if not versioned:
        replaced = yield (sql.FETCH,
                          'DELETE FROM object_versions WHERE bucket_id = ? AND "key" = ? '
                          "AND version_id = ? RETURNING size, is_delete_marker, chunks, "
                          "etag, is_latest",
                          (bucket.id, key, NULL_VERSION))
        if latest is None:
            # On PostgreSQL a null version committed after the demote took
            # its snapshot is only seen here, still marked latest.
            latest = next((r for r in replaced if r["is_latest"]), None)
        if replaced:
            yield from refs.release_steps(bucket.account_id, refs.dropped(replaced))
    if condition is not None:
        condition.check(latest)
    existed = latest is not None and not latest["is_delete_marker"]
    changes: list[Event] = []
    if not is_marker:
        used, quota = yield from refs.charge_steps(bucket.account_id, fields["size"], 1)
        changes.append(Event(
            EventType.OBJECT_UPDATED if existed else EventType.OBJECT_CREATED,
            bucket.account_id,
            events.object_data(bucket.name, key, fields["size"], fields["content_type"]),
            origin=origin))
        warning = events.quota_crossing(bucket.account_id, used, fields["size"], quota, origin)
        if warning is not None:
            changes.append(warning)
    elif existed:
        assert latest is not None
        # A delete marker hides the object: to its users it is deleted.
        changes.append(_deleted(bucket, key, latest, origin))
    yield from refs.reference_steps(chunks)
    yield (sql.EXECUTE, _INSERT_VERSION, [row[c] for c in _VERSION_COLUMNS])
    yield from events.record_steps(changes)
    if emitted is not None:
        emitted.extend(changes)
    if fields.get("pending_token"):
        # Only an upload that outlasted a quarter of the GC grace has rows.
        yield from pending.release_steps(fields["pending_token"])
    return ObjectInfo(
        bucket=bucket.name, key=key, version_id=version_id, size=fields["size"],
        etag=fields["etag"], content_type=fields["content_type"], last_modified=created_at,
        user_metadata=dict(fields.get("user_metadata") or {}),
        headers=dict(fields.get("headers") or {}), checksums=dict(fields.get("checksums") or {}),
        is_delete_marker=is_marker, is_latest=True, chunks=tuple(chunks),
        inline_data=fields.get("inline_data"),
        part_sizes=tuple(fields.get("part_sizes") or ()), tags=dict(fields.get("tags") or {}),
    )


def _deleted(bucket: BucketInfo, key: str, row: Mapping[str, Any], origin: str,
             version_id: str | None = None) -> Event:
    """object.deleted for a removed (or hidden) version described by ``row``."""
    data = events.object_data(bucket.name, key, int(row.get("size") or 0),
                              row.get("content_type") or "")
    if version_id is not None:
        data["versionId"] = version_id
    return Event(EventType.OBJECT_DELETED, bucket.account_id, data, origin=origin)


async def _commit_version_after(
    before: CommitHook,
    bucket: BucketInfo,
    key: str,
    fields: dict[str, Any],
    chunks: list[tuple[str, int]],
    condition: WriteCondition | None,
    emitted: list[Event],
    origin: str,
) -> ObjectInfo:
    """:func:`_commit_steps` in an ORM transaction that ``before`` opens."""
    async with in_transaction() as conn:
        await before(conn)
        return await sql.drive(conn, _commit_steps(bucket, key, fields, chunks, condition,
                                                   emitted, origin))


async def _find_version(bucket: BucketInfo, key: str, version_id: str | None) -> ObjectVersion:
    if version_id is None:
        v = await ObjectVersion.get_or_none(bucket_id=bucket.id, key=key, is_latest=True)
        if v is None:
            raise errors.NoSuchKey()
        if v.is_delete_marker:
            raise errors.NoSuchKey(delete_marker=True, version_id=v.version_id)
        return v
    v = await ObjectVersion.get_or_none(bucket_id=bucket.id, key=key, version_id=version_id)
    if v is None:
        raise errors.NoSuchVersion(version_id=version_id)
    return v


async def _set_tags(
    bucket: BucketInfo, key: str, version_id: str, tags: dict[str, str]
) -> None:
    changed = await ObjectVersion.filter(
        bucket_id=bucket.id, key=key, version_id=version_id, is_delete_marker=False
    ).update(tags=tags)
    if not changed:
        raise errors.NoSuchVersion(version_id=version_id)


def _delete_version_steps(
    bucket: BucketInfo, key: str, version_id: str, condition: WriteCondition | None,
    emitted: list[Event], origin: str,
) -> sql.UnitOfWork[DeleteResult]:
    """Delete one version for good; the newest remaining one becomes latest.

    Only what this statement deleted is released: of racing deletes of one
    version, exactly one gets the row back (the others find nothing).
    ``condition`` is checked against the version deleted (rolling it back).
    """
    gone = yield (sql.FETCH,
                  'DELETE FROM object_versions WHERE bucket_id = ? AND "key" = ? '
                  f"AND version_id = ? RETURNING is_latest, etag, content_type, "
                  f"{refs.VERSION_RETURNING}",
                  (bucket.id, key, version_id))
    if condition is not None:
        condition.check(gone[0] if gone else None)
    if not gone:
        # S3 answers success for a version that is already gone.
        return DeleteResult(version_id=version_id, delete_marker=False)
    yield from refs.release_steps(bucket.account_id, refs.dropped(gone))
    if not gone[0]["is_delete_marker"]:
        changes = [_deleted(bucket, key, gone[0], origin, version_id)]
        yield from events.record_steps(changes)
        emitted.extend(changes)
    if gone[0]["is_latest"]:
        yield (sql.EXECUTE,
               "UPDATE object_versions SET is_latest = ? WHERE id = (SELECT id FROM "
               'object_versions WHERE bucket_id = ? AND "key" = ? ORDER BY id DESC LIMIT 1)',
               (True, bucket.id, key))
    return DeleteResult(version_id=version_id, delete_marker=bool(gone[0]["is_delete_marker"]))


def _delete_unversioned_steps(
    bucket: BucketInfo, key: str, condition: WriteCondition | None, emitted: list[Event],
    origin: str,
) -> sql.UnitOfWork[DeleteResult]:
    """Delete every version of ``key`` (an unversioned bucket holds at most one),
    if ``condition`` holds for its latest version (else roll back)."""
    gone = yield (sql.FETCH,
                  'DELETE FROM object_versions WHERE bucket_id = ? AND "key" = ? '
                  f"RETURNING is_latest, etag, content_type, {refs.VERSION_RETURNING}",
                  (bucket.id, key))
    latest = next((r for r in gone if r["is_latest"]), None)
    if condition is not None:
        condition.check(latest)
    if gone:
        yield from refs.release_steps(bucket.account_id, refs.dropped(gone))
    if latest is not None and not latest["is_delete_marker"]:
        changes = [_deleted(bucket, key, latest, origin)]
        yield from events.record_steps(changes)
        emitted.extend(changes)
    return DeleteResult(version_id=None, delete_marker=False)


async def _fetch_listing(
    bucket_id: int, after: str | None, inclusive: bool, upper: str | None, limit: int
) -> list[dict[str, Any]]:
    # Raw SQL: a page is up to 1000 rows, and the query builder plus per-row
    # field conversion cost more than the query itself.
    query = (
        'SELECT "key", size, etag, created_at, content_type, version_id FROM object_versions '
        "WHERE bucket_id = ? AND is_latest = ? AND is_delete_marker = ?"
    )
    params: list[Any] = [bucket_id, True, False]
    if after is not None:
        query += ' AND "key" >= ?' if inclusive else ' AND "key" > ?'
        params.append(after)
    if upper is not None:
        query += ' AND "key" < ?'
        params.append(upper)
    query += ' ORDER BY "key" LIMIT ?'
    params.append(limit)
    rows = await sql.fetch(ObjectVersion._meta.db, query, params)
    for row in rows:
        moment = row["created_at"]
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        row["created_at"] = moment
    return rows


async def _fetch_versions(
    bucket_id: int,
    after: str | None,
    inclusive: bool,
    after_id: int | None,
    upper: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    q = ObjectVersion.filter(bucket_id=bucket_id)
    if after is not None:
        if after_id is not None:
            # Resume inside a key: its older versions (smaller ids), then later keys.
            q = q.filter(Q(key__gt=after) | Q(key=after, id__lt=after_id))
        else:
            q = q.filter(key__gte=after) if inclusive else q.filter(key__gt=after)
    if upper is not None:
        q = q.filter(key__lt=upper)
    return await q.order_by("key", "-id").limit(limit).values(
        "id", "key", "version_id", "is_latest", "is_delete_marker", "size", "etag", "created_at"
    )


async def _version_row_id(bucket_id: int, key: str, version_id: str) -> int | None:
    row = await ObjectVersion.filter(bucket_id=bucket_id, key=key, version_id=version_id).first()
    return row.id if row is not None else None


class _Prefetch:
    """One chunk fetched in the background while an earlier one is consumed.

    It runs as a system task so that :meth:`ObjectService.read_object` can stay
    a plain async generator (a nursery may not stay open across its yields).
    A consumer that goes away simply drops it: the fetch finishes on its own
    (one chunk, verified, then discarded).
    """

    __slots__ = ("_done", "_outcome")

    def __init__(self, fetch: Callable[[str], Awaitable[bytes]], chunk_id: str) -> None:
        self._done = trio.Event()
        self._outcome: outcome.Outcome[bytes] | None = None
        trio.lowlevel.spawn_system_task(
            self._run, fetch, chunk_id, name=f"prefetch {chunk_id[:12]}",
            context=contextvars.copy_context(),
        )

    async def _run(self, fetch: Callable[[str], Awaitable[bytes]], chunk_id: str) -> None:
        try:
            self._outcome = outcome.Value(await fetch(chunk_id))
        except Exception as exc:  # handed to the consumer, never raised here
            self._outcome = outcome.Error(exc)
        except BaseException:  # cancelled: the process is shutting down
            self._outcome = outcome.Error(
                ChunkNotFound(chunk_id, "read interrupted by shutdown"))
            raise
        finally:
            self._done.set()

    async def result(self) -> bytes:
        """The verified bytes, or the fetch's exception."""
        await self._done.wait()
        assert self._outcome is not None
        return self._outcome.unwrap()


# -- the service ------------------------------------------------------------------------


async def _chain(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for piece in head:
        yield piece
    async for piece in rest:
        yield piece


class ObjectService:
    """Objects of buckets, over a metadata database and a blob store."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        chunk_size: int = 4 * 1024 * 1024,
        inline_threshold: int = 4 * 1024,
        hash_limiter: trio.CapacityLimiter | None = None,
        write_window: int = 4,
        read_ahead: int = 2,
        gc_grace: float | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._db = db
        # Committed changes are published here after their transaction.
        self.events = events or EventBus()
        self.blobs = blobs
        self.chunk_size = chunk_size
        self.inline_threshold = inline_threshold
        self._hash_limiter = hash_limiter or trio.CapacityLimiter(4)
        # Chunks of one upload hashed/written at once, and chunks of one read
        # fetched ahead of the one being sent: memory per transfer is bounded
        # by these (times the chunk size), never by the object's size.
        self.write_window = max(1, write_window)
        self.read_ahead = max(0, read_ahead)
        # The GC grace period of the cluster: uploads that outlast a quarter
        # of it register their chunks as pending (storage.pending).  None:
        # no GC runs over this store.
        self._pending = PendingRegistry(db, gc_grace) if gc_grace else None

    # -- writing ----------------------------------------------------------------

    async def store_stream(
        self, body: AsyncIterable[bytes], *, allow_inline: bool = True
    ) -> StoredData:
        """Cut ``body`` into chunks and store them; nothing is referenced yet.

        Chunks are pipelined: while the body keeps arriving, up to
        ``write_window`` sealed chunks are hashed and written concurrently
        (SHA-256 of each chunk in a worker thread, the object's running MD5
        in chunk order in another, the blob write in a third), so memory is
        bounded by about ``write_window + 2`` chunks, never by the size.

        If ``body`` raises (a protocol found a bad checksum, the client went
        away), the exception propagates and the chunks already written stay
        unreferenced, to be collected.
        """
        if allow_inline:
            # Most PUTs by count are small enough to live inline: read those
            # without the pipeline's nursery and tasks.
            stream = aiter(body)
            head: list[bytes] = []
            have = 0
            async for piece in stream:
                head.append(piece if type(piece) is bytes else bytes(piece))
                have += len(piece)
                if have > self.inline_threshold:
                    break
            else:
                inline = b"".join(head)
                return StoredData(size=have, md5=hashlib.md5(inline).digest(), chunks=[],
                                  inline_data=inline)
            body = _chain(head, stream)
        cs = self.chunk_size
        md5 = hashlib.md5()
        # Slots filled in as chunks get their ids; the order is the body's.
        chunks: list[tuple[str, int]] = []
        window = trio.Semaphore(self.write_window)
        limiter = self._hash_limiter
        # The MD5 of chunk n may only start once chunk n-1 went in.
        md5_tail = trio.Event()
        md5_tail.set()
        size = 0

        async def md5_part(data: bytes, prev: trio.Event, done: trio.Event) -> None:
            await prev.wait()
            if len(data) < _THREAD_HASH_MIN:
                md5.update(data)
            else:
                await trio.to_thread.run_sync(md5.update, data, limiter=limiter)
            done.set()

        async def store_part(index: int, data: bytes, md5_done: trio.Event) -> None:
            try:
                if len(data) < _THREAD_HASH_MIN:
                    cid = chunk_id_of(data)
                else:
                    cid = await trio.to_thread.run_sync(chunk_id_of, data, limiter=limiter)
                chunks[index] = (cid, len(data))
                await self.blobs.put_chunk(cid, data)
                if protect is not None:
                    protect.stored(cid)
                await md5_done.wait()
            finally:
                window.release()

        async def seal(nursery: trio.Nursery, data: bytes) -> None:
            nonlocal md5_tail
            await window.acquire()
            done = trio.Event()
            nursery.start_soon(md5_part, data, md5_tail, done)
            md5_tail = done
            chunks.append(("", len(data)))
            nursery.start_soon(store_part, len(chunks) - 1, data, done)

        inline: bytes | None = None
        parts: list[bytes | memoryview] = []
        have = 0  # bytes in ``parts``
        protect = self._pending.open() if self._pending is not None else None
        try:
            async with trio.open_nursery() as nursery:
                async for piece in body:
                    n = len(piece)
                    size += n
                    pos = 0
                    if n - pos >= cs - have:
                        with memoryview(piece) as view:
                            while n - pos >= cs - have:
                                take = cs - have
                                if not parts and pos == 0 and n == cs and type(piece) is bytes:
                                    data = piece  # a whole chunk as it came: no copy
                                else:
                                    parts.append(view[pos:pos + take])
                                    data = b"".join(parts)
                                parts.clear()
                                have = 0
                                pos += take
                                await seal(nursery, data)
                            rest = bytes(view[pos:]) if pos < n else b""
                    elif type(piece) is bytes:
                        rest = piece  # immutable: safe to keep without a copy
                    else:
                        rest = bytes(piece)  # the producer may reuse its buffer
                    if rest:
                        parts.append(rest)
                        have += len(rest)
                if not chunks and allow_inline and have <= self.inline_threshold:
                    inline = b"".join(parts)
                    md5.update(inline)
                elif have or not chunks:
                    await seal(nursery, b"".join(parts))
                parts.clear()
        except BaseExceptionGroup as group:
            # Callers want the body's own error (BadDigest, a disconnect), not
            # a group around it.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from group
            # Chunks stored in parallel fail alike (a lost write quorum): one error.
            first = group.exceptions[0]
            if all(type(exc) is type(first) for exc in group.exceptions):
                raise first from group
            raise
        finally:
            if protect is not None:
                protect.stop()  # an upload that failed too
        token = await protect.close(self.blobs) if protect is not None else None
        return StoredData(size=size, md5=md5.digest(), chunks=chunks, inline_data=inline,
                          pending_token=token)

    async def put_object(
        self,
        bucket: BucketInfo,
        key: str,
        body: AsyncIterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        user_metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksums: Mapping[str, str] | None = None,
        content_md5: bytes | None = None,
        expected_size: int | None = None,
        tags: Mapping[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> ObjectInfo:
        """Store a new version of ``key`` from ``body``.

        ``checksums`` is read after the body is exhausted, so a protocol may
        fill it while streaming.  Raises BadDigest if ``content_md5`` does not
        match, IncompleteBody if ``expected_size`` is not what arrived,
        QuotaExceeded if the account has no room, and PreconditionFailed (or
        NoSuchKey) if ``condition`` does not hold when the version would
        commit; in each case nothing becomes visible.
        """
        stored = await self.store_stream(body)
        if expected_size is not None and stored.size != expected_size:
            raise errors.IncompleteBody(
                f"received {stored.size} bytes of the declared {expected_size}"
            )
        if content_md5 is not None and content_md5 != stored.md5:
            raise errors.BadDigest()
        return await self.commit(
            bucket, key, stored, etag=stored.md5.hex(), content_type=content_type,
            user_metadata=user_metadata, headers=headers, checksums=checksums, tags=tags,
            condition=condition,
        )

    async def commit(
        self,
        bucket: BucketInfo,
        key: str,
        stored: StoredData,
        *,
        etag: str,
        content_type: str = "application/octet-stream",
        user_metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksums: Mapping[str, str] | None = None,
        before: CommitHook | None = None,
        tags: Mapping[str, str] | None = None,
        part_sizes: Sequence[int] = (),
        condition: WriteCondition | None = None,
        upload_id: str | None = None,
    ) -> ObjectInfo:
        """Make stored bytes the latest version of ``key`` (one transaction).

        ``before`` runs first inside that transaction (multipart completion
        uses it to retire the upload ``upload_id`` atomically with the new
        version, and passes the sizes of the parts in ``part_sizes``);
        ``condition`` is checked in it too.
        """
        fields = {
            "size": stored.size, "etag": etag, "content_type": content_type,
            "user_metadata": dict(user_metadata or {}), "headers": dict(headers or {}),
            "checksums": dict(checksums or {}), "inline_data": stored.inline_data,
            "tags": dict(tags or {}), "part_sizes": list(part_sizes), "upload_id": upload_id,
            "pending_token": stored.pending_token,
        }
        return await self._commit(bucket, key, fields, stored.chunks, before, condition)

    async def _commit(
        self,
        bucket: BucketInfo,
        key: str,
        fields: dict[str, Any],
        chunks: list[tuple[str, int]],
        before: CommitHook | None = None,
        condition: WriteCondition | None = None,
    ) -> ObjectInfo:
        names.check_key(key)
        origin = events.current_origin()

        async def attempt() -> tuple[ObjectInfo, list[Event]]:
            emitted: list[Event] = []  # afresh for each try: a rolled-back one emitted nothing
            if before is None:
                info = await self._db.write(_commit_steps, bucket, key, fields, chunks,
                                            condition, emitted, origin)
            else:
                info = await self._db.run(_commit_version_after, before, bucket, key, fields,
                                          chunks, condition, emitted, origin)
            return info, emitted

        try:
            # PostgreSQL aborts one of two writers racing on the same key
            # (deadlock / serialization failure), and another writer may
            # become latest between our demote and insert: the loser retries.
            info, emitted = await sql.retry(attempt, also=_lost_latest_race)
        except IntegrityError as exc:
            if _is_foreign_key(exc):
                raise errors.NoSuchBucket() from None
            raise
        except errors.QuotaExceeded:
            await self._quota_exceeded(bucket.account_id, origin)
            raise
        self.events.publish(emitted)
        return info

    async def _quota_exceeded(self, account_id: str, origin: str) -> None:
        """Record quota.exceeded for a refused write (at most once an hour)."""
        event = await sql.retry(
            lambda: self._db.write(events.quota_exceeded_steps, account_id, origin))
        if event is not None:
            self.events.publish([event])

    # -- reading ----------------------------------------------------------------

    async def head_object(
        self, bucket: BucketInfo, key: str, version_id: str | None = None
    ) -> ObjectInfo:
        """The latest (or the given) version's metadata; NoSuchKey/NoSuchVersion."""
        v = await self._db.run(_find_version, bucket, key, version_id)
        return _to_info(bucket.name, v)

    async def read_object(
        self, info: ObjectInfo, start: int = 0, stop: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the bytes ``[start, stop)`` of a version, chunk by chunk.

        While a chunk is being consumed (sent to a client), the next
        ``read_ahead`` chunks are already being fetched and verified in the
        background, so disk, hashing and the network overlap; memory stays
        bounded by ``read_ahead + 1`` chunks per read.
        """
        stop = info.size if stop is None else min(stop, info.size)
        if start < 0 or start > stop:
            raise errors.InvalidRange()
        if info.inline_data is not None:
            if stop > start:
                yield info.inline_data[start:stop]
            return
        wanted: list[tuple[str, int, int]] = []  # (chunk id, lo, hi) within the chunk
        offset = 0
        for cid, csize in info.chunks:
            end = offset + csize
            if end > start and offset < stop:
                wanted.append((cid, max(start - offset, 0), min(stop - offset, csize)))
            offset = end
            if offset >= stop:
                break
        get = self.blobs.get_chunk
        ahead: deque[_Prefetch] = deque()  # chunks i.. once the first one is fetched
        nxt = 1  # the next chunk to start fetching in the background
        for i, (cid, lo, hi) in enumerate(wanted):
            # Keep the next chunks coming while this one is fetched and consumed.
            while nxt < len(wanted) and nxt <= i + self.read_ahead:
                ahead.append(_Prefetch(get, wanted[nxt][0]))
                nxt += 1
            data = await ahead.popleft().result() if i > 0 and ahead else await get(cid)
            yield data if lo == 0 and hi == len(data) else data[lo:hi]

    async def get_bytes(self, info: ObjectInfo) -> bytes:
        """The whole version in memory (small objects, tests)."""
        return b"".join([piece async for piece in self.read_object(info)])

    # -- listing ---------------------------------------------------------------------

    async def list_objects(
        self,
        bucket: BucketInfo,
        *,
        prefix: str = "",
        delimiter: str = "",
        marker: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """List latest versions by key, rolling keys up to ``delimiter``.

        ``marker`` is exclusive; when it is a rolled-up common prefix, the
        whole prefix is skipped, so paging with ``next_marker`` never returns
        a prefix twice.
        """
        upper = prefix_upper_bound(prefix) if prefix else None

        async def fetch(cursor: Cursor, limit: int) -> list[dict[str, Any]]:
            return await self._db.run(
                _fetch_listing, bucket.id, cursor.key, cursor.inclusive, upper, limit
            )

        page = await roll_up(
            fetch, prefix=prefix, delimiter=delimiter,
            cursor=start_cursor(prefix, delimiter, marker), limit=max_keys,
            key_of=lambda row: row["key"],
        )
        entries = [
            ListEntry(
                key=row["key"], size=row["size"], etag=row["etag"],
                last_modified=row["created_at"], content_type=row["content_type"],
                version_id=row["version_id"],
            )
            for row in page.rows
        ]
        return ListPage(entries, page.prefixes, page.truncated,
                        page.last[0] if page.last else None)

    async def list_versions(
        self,
        bucket: BucketInfo,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionPage:
        """List every version and delete marker, by key then newest first.

        Paging follows S3: ``key_marker`` alone skips every version of that key
        (or the whole common prefix it names); with ``version_id_marker`` the
        listing resumes after that version of the key.
        """
        upper = prefix_upper_bound(prefix) if prefix else None
        after_id = None
        if key_marker and version_id_marker:
            after_id = await self._db.run(
                _version_row_id, bucket.id, key_marker, version_id_marker
            )

        async def fetch(cursor: Cursor, limit: int) -> list[dict[str, Any]]:
            return await self._db.run(
                _fetch_versions, bucket.id, cursor.key, cursor.inclusive, cursor.sub, upper,
                limit,
            )

        page = await roll_up(
            fetch, prefix=prefix, delimiter=delimiter,
            cursor=start_cursor(prefix, delimiter, key_marker, after_id), limit=max_keys,
            key_of=lambda row: row["key"], sub_of=lambda row: row["id"],
        )
        entries = [
            VersionEntry(
                key=row["key"], version_id=row["version_id"], is_latest=bool(row["is_latest"]),
                is_delete_marker=row["is_delete_marker"], size=row["size"],
                etag=row["etag"], last_modified=row["created_at"],
            )
            for row in page.rows
        ]
        next_key, last_row = page.last if page.last else (None, None)
        return VersionPage(entries, page.prefixes, page.truncated, next_key,
                           last_row["version_id"] if last_row else None)

    # -- copy and delete ---------------------------------------------------------------

    async def copy_object(
        self,
        src_bucket: BucketInfo,
        src_key: str,
        dst_bucket: BucketInfo,
        dst_key: str,
        *,
        version_id: str | None = None,
        content_type: str | None = None,
        user_metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> ObjectInfo:
        """Copy a version without moving bytes (chunks are shared by reference).

        Metadata is copied unless ``user_metadata`` (with ``content_type`` and
        ``headers``) is given, which replaces it; tags likewise with ``tags``.
        ``condition`` applies to the destination key.
        """
        src = await self.head_object(src_bucket, src_key, version_id)
        if src.is_delete_marker:
            raise errors.MethodNotAllowed("The source version is a delete marker.")
        replace = user_metadata is not None
        fields = {
            "size": src.size, "etag": src.etag,
            "content_type": (content_type or src.content_type) if replace else src.content_type,
            "user_metadata": dict(user_metadata) if replace else dict(src.user_metadata),
            "headers": dict(headers or {}) if replace else dict(src.headers),
            "checksums": dict(src.checksums), "inline_data": src.inline_data,
            "tags": dict(tags) if tags is not None else dict(src.tags),
            # The copy keeps the source's ETag ("...-N"), so it keeps its parts too.
            "part_sizes": list(src.part_sizes),
        }
        return await self._commit(dst_bucket, dst_key, fields, list(src.chunks),
                                  condition=condition)

    async def set_tags(
        self, bucket: BucketInfo, key: str, version_id: str, tags: Mapping[str, str]
    ) -> None:
        """Replace the tags of one version (not a delete marker); NoSuchVersion if gone.

        Tags are not content: the version keeps its id, ETag and time.
        """
        await sql.retry(lambda: self._db.run(_set_tags, bucket, key, version_id, dict(tags)))

    async def delete_object(
        self, bucket: BucketInfo, key: str, version_id: str | None = None,
        condition: WriteCondition | None = None,
    ) -> DeleteResult:
        """Delete as S3 does: a specific version permanently, else the null
        version (unversioned) or a new delete marker (versioned).

        ``condition`` (If-Match) is checked in the delete's own transaction,
        against the version deleted or hidden: PreconditionFailed (or
        NoSuchKey) and nothing changes when it does not hold.
        """
        if version_id is None and bucket.versioning != "":
            fields = {"size": 0, "etag": "", "content_type": "", "is_delete_marker": True}
            marker = await self._commit(bucket, key, fields, [], condition=condition)
            return DeleteResult(version_id=marker.version_id, delete_marker=True)
        origin = events.current_origin()

        async def attempt() -> tuple[DeleteResult, list[Event]]:
            emitted: list[Event] = []
            if version_id is not None:
                result = await self._db.write(_delete_version_steps, bucket, key, version_id,
                                              condition, emitted, origin)
            else:
                result = await self._db.write(_delete_unversioned_steps, bucket, key,
                                              condition, emitted, origin)
            return result, emitted

        # A promotion to latest may lose to a concurrent writer's new latest
        # version (the unique index): retry against the winner.
        result, emitted = await sql.retry(attempt, also=_lost_latest_race)
        self.events.publish(emitted)
        return result
