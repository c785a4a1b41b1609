"""The protocol-agnostic object service: put, get, head, list, copy, delete.

Bytes are cut into fixed-size chunks named by their SHA-256 and handed to a
:class:`~storage.blobs.BlobStore`; tiny objects live inline in their metadata
row.  A version becomes visible only in the transaction that commits its
metadata, after every chunk is stored, so readers never see half an object.
Chunks of an upload that never commits are left unreferenced for garbage
collection.

Memory per upload is bounded by about three chunks (the one being filled, one
queued, one being written), never by the object's size.

The transactions live in :mod:`storage.object_commit`, listings in
:mod:`storage.object_list`, the value types in :mod:`storage.object_types`
(re-exported here).
"""

from __future__ import annotations

import contextvars
import hashlib
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from typing import Any

import outcome
import trio
from tortoise.exceptions import IntegrityError

from storage import errors, events, names, object_list, sql
from storage.blobs import BlobStore, ChunkNotFound, check_chunk_id, chunk_id_of
from storage.buckets import BucketInfo
from storage.db import Database
from storage.events import Event, EventBus
from storage.object_commit import (
    CommitHook,
    commit_row_steps,
    commit_version_after,
    delete_unversioned_steps,
    delete_version_steps,
    find_row,
    find_version,
    object_info,
    set_tags_steps,
)
from storage.object_types import (
    NULL_VERSION,
    DeleteResult,
    ListEntry,
    ListPage,
    ObjectInfo,
    StoredData,
    VersionEntry,
    VersionPage,
    WriteCondition,
    new_version_id,
)
from storage.object_types import to_info as _to_info
from storage.pending import PendingRegistry
from storage.versions import Retention

# Re-exported: the protocols import these from here.
__all__ = [
    "NULL_VERSION", "DeleteResult", "ListEntry", "ListPage", "ObjectInfo", "ObjectService",
    "StoredData", "VersionEntry", "VersionPage", "WriteCondition", "new_version_id",
]

# Below this, hashing in the event loop is cheaper than a hop to a worker thread.
_THREAD_HASH_MIN = 128 * 1024


def _well_formed_id(digest: str | None) -> str | None:
    """``digest`` if it can be a chunk id, else None (then the chunk is hashed)."""
    try:
        return check_chunk_id(digest) if digest is not None else None
    except ValueError:
        return None


def _is_foreign_key(exc: Exception) -> bool:
    return isinstance(exc, IntegrityError) and "foreign" in str(exc).lower()


def _lost_latest_race(exc: Exception) -> bool:
    """Another writer became the key's latest version first (unique index)."""
    return isinstance(exc, IntegrityError) and not _is_foreign_key(exc)


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
        retention: Retention | None = None,
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
        # Time Machine defaults for accounts without a policy of their own.
        self.retention = retention or Retention()

    # -- writing ----------------------------------------------------------------

    async def store_stream(
        self, body: AsyncIterable[bytes], *, allow_inline: bool = True,
        body_sha256: Callable[[], str | None] | None = None,
    ) -> StoredData:
        """Cut ``body`` into chunks and store them; nothing is referenced yet.

        ``body_sha256``, asked once ``body`` is exhausted, may give the hex
        SHA-256 of the whole body, already verified (a SigV4-signed payload):
        a body of one chunk then takes it for its chunk id instead of hashing
        again: a signed PUT 1 MiB cost 4.0 ms of CPU instead of 5.0, and one
        node process took 330-338 of them a second instead of 275-277
        (bench/s3_bench.py's load generator, c=8).

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
                small = b"".join(head)
                return StoredData(size=have, md5=hashlib.md5(small).digest(), chunks=[],
                                  inline_data=small)
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

        async def store_part(index: int, data: bytes, md5_done: trio.Event,
                             known_id: str | None) -> None:
            try:
                if known_id is not None:
                    cid = known_id
                elif len(data) < _THREAD_HASH_MIN:
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

        async def seal(nursery: trio.Nursery, data: bytes, known_id: str | None = None) -> None:
            nonlocal md5_tail
            await window.acquire()
            done = trio.Event()
            nursery.start_soon(md5_part, data, md5_tail, done)
            md5_tail = done
            chunks.append(("", len(data)))
            nursery.start_soon(store_part, len(chunks) - 1, data, done, known_id)

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
                    # The whole body in one chunk: its verified hash is the id.
                    whole = body_sha256() if body_sha256 is not None and not chunks else None
                    await seal(nursery, b"".join(parts), _well_formed_id(whole))
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
        body_sha256: Callable[[], str | None] | None = None,
    ) -> ObjectInfo:
        """Store a new version of ``key`` from ``body``.

        ``checksums`` is read after the body is exhausted, so a protocol may
        fill it while streaming.  Raises BadDigest if ``content_md5`` does not
        match, IncompleteBody if ``expected_size`` is not what arrived,
        QuotaExceeded if the account has no room, and PreconditionFailed (or
        NoSuchKey) if ``condition`` does not hold when the version would
        commit; in each case nothing becomes visible.  ``body_sha256``: as
        :meth:`store_stream` takes it.
        """
        stored = await self.store_stream(body, body_sha256=body_sha256)
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
                # The chunks as a tuple: the write relay sends a list
                # argument's contents back (an out-parameter).
                committed = await self._db.write(commit_row_steps, bucket, key, fields,
                                                 tuple(chunks), condition, emitted, origin,
                                                 self.retention)
                info = object_info(bucket, key, fields, chunks, committed)
            else:
                info = await self._db.run(commit_version_after, before, bucket, key, fields,
                                          chunks, condition, emitted, origin, self.retention)
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
        v = await self._db.run(find_version, bucket, key, version_id)
        return _to_info(bucket.name, v)

    async def read_object(
        self, info: ObjectInfo, start: int = 0, stop: int | None = None
    ) -> AsyncGenerator[bytes, None]:
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
        self, bucket: BucketInfo, *, prefix: str = "", delimiter: str = "", marker: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """List latest versions by key (see :func:`storage.object_list.list_objects`)."""
        return await object_list.list_objects(self._db, bucket, prefix=prefix,
                                              delimiter=delimiter, marker=marker,
                                              max_keys=max_keys)

    async def list_versions(
        self, bucket: BucketInfo, *, prefix: str = "", delimiter: str = "",
        key_marker: str = "", version_id_marker: str = "", max_keys: int = 1000,
    ) -> VersionPage:
        """List versions and delete markers (see :func:`storage.object_list.list_versions`)."""
        return await object_list.list_versions(
            self._db, bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
            version_id_marker=version_id_marker, max_keys=max_keys)

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
        return await self._commit_copy(src, dst_bucket, dst_key, content_type=content_type,
                                       user_metadata=user_metadata, headers=headers, tags=tags,
                                       condition=condition)

    async def restore_version(self, bucket: BucketInfo, key: str, row_id: int) -> ObjectInfo:
        """Make a copy of any earlier version of ``key`` (Time Machine history
        included) its new current version; NoSuchVersion if there is none."""
        src = _to_info(bucket.name, await self._db.run(find_row, bucket, key, row_id))
        return await self._commit_copy(src, bucket, key)

    async def _commit_copy(
        self, src: ObjectInfo, dst_bucket: BucketInfo, dst_key: str, *,
        content_type: str | None = None, user_metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> ObjectInfo:
        replace = user_metadata is not None
        fields = {
            "size": src.size, "etag": src.etag,
            "content_type": (content_type or src.content_type) if replace else src.content_type,
            "user_metadata": dict(user_metadata or {}) if replace else dict(src.user_metadata),
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
        await sql.retry(lambda: self._db.run(set_tags_steps, bucket, key, version_id, dict(tags)))

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
                result = await self._db.write(delete_version_steps, bucket, key, version_id,
                                              condition, emitted, origin)
            else:
                result = await self._db.write(delete_unversioned_steps, bucket, key,
                                              condition, emitted, origin)
            return result, emitted

        # A promotion to latest may lose to a concurrent writer's new latest
        # version (the unique index): retry against the winner.
        result, emitted = await sql.retry(attempt, also=_lost_latest_race)
        self.events.publish(emitted)
        return result
