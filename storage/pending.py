"""Chunks of uploads still streaming: protected from garbage collection.

A chunk is written before anything references it; the reference comes with
the commit at the end of the upload.  GC deletes unreferenced chunk files
older than ``storage.gc_grace_seconds``, so an upload that outlasts the grace
period would lose its first chunks and then commit a version that cannot be
read.  While an upload streams, :class:`PendingChunks` registers its chunks
in ``pending_chunks`` every quarter of the grace period, with an expiry of
half the grace period, and GC keeps any chunk with a live row.

The cost is nil for an upload shorter than a quarter of the grace period
(15 minutes by default): its chunk files are young enough to be safe, so it
writes no row, and tracking it costs a few microseconds (measured: about
5 us on an 8 KiB chunked store_stream of about 140 us).  One
background task per object service writes one transaction per quarter grace
period for all longer uploads; a commit deletes its upload's rows, and rows
of an upload that died expire.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence

import trio

from storage import errors, sql
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import PendingChunk

log = logging.getLogger("cloudstorage.pending")


def _register_steps(
    batches: Sequence[tuple[str, Sequence[str], bool]], expires_at: float
) -> sql.UnitOfWork[None]:
    """For each (token, chunks new since last time, whether it has rows):
    refresh its rows and add the new ones."""
    for token, new, refresh in batches:
        if refresh:
            yield (sql.EXECUTE, "UPDATE pending_chunks SET expires_at = ? WHERE token = ?",
                   (expires_at, token))
        if new:
            yield (sql.MANY,
                   "INSERT INTO pending_chunks (chunk_id, token, expires_at) VALUES (?, ?, ?) "
                   "ON CONFLICT (token, chunk_id) DO UPDATE SET expires_at = excluded.expires_at",
                   [(cid, token, expires_at) for cid in sorted(set(new))])


def release_steps(token: str | None) -> sql.UnitOfWork[None]:
    """Drop an upload's pending rows (in its commit: the chunks are referenced now)."""
    if token is not None:
        yield (sql.EXECUTE, "DELETE FROM pending_chunks WHERE token = ?", (token,))


class PendingChunks:
    """The chunks one upload stored (see :meth:`PendingRegistry.open`)."""

    def __init__(self, registry: PendingRegistry) -> None:
        self.token = secrets.token_hex(16)
        self.started = trio.current_time()
        self._registry = registry
        self.new: list[str] = []
        self._stored: list[tuple[float, str]] = []  # (trio clock when stored, chunk id)
        self.registered = False
        self.failed: BaseException | None = None

    def stored(self, chunk_id: str) -> None:
        """Record a chunk this upload has just stored."""
        self.new.append(chunk_id)
        self._stored.append((trio.current_time(), chunk_id))

    def stop(self) -> None:
        """Stop refreshing this upload's rows (idempotent)."""
        self._registry.forget(self)

    async def close(self, blobs: BlobStore) -> str | None:
        """The upload stored its last chunk: stop refreshing, check the old
        chunks, and return the token whose rows its commit must delete (None
        if it wrote none).  ServiceUnavailable if protection failed."""
        self.stop()
        if self.failed is not None:
            raise errors.ServiceUnavailable(
                "This upload's chunks could not be protected from garbage collection; "
                "retry the upload.") from self.failed
        await self._verify(blobs)
        return self.token if self.registered else None

    async def _verify(self, blobs: BlobStore) -> None:
        # Chunks stored more than half a grace period ago: a formality while
        # the rows protect them, and no round trip for a shorter upload.
        old = trio.current_time() - self._registry.grace / 2
        for when, cid in self._stored:
            if when >= old:
                break
            if not await blobs.has_chunk(cid):
                raise errors.ServiceUnavailable(
                    "A chunk of this upload was lost while it streamed; retry the upload.")


class PendingRegistry:
    """The uploads of one object service that are streaming, kept registered
    by one background task: one transaction per quarter grace period for all
    of them, none while no upload is older than that."""

    def __init__(self, db: Database, gc_grace: float) -> None:
        self._db = db
        self.grace = gc_grace
        self.period = gc_grace / 4
        self._active: dict[str, PendingChunks] = {}
        self._running = False

    def open(self) -> PendingChunks:
        """Start tracking an upload's chunks (call :meth:`PendingChunks.close` at its end)."""
        upload = PendingChunks(self)
        self._active[upload.token] = upload
        if not self._running:
            # A system task: it outlives any one request, ends with the run.
            self._running = True
            trio.lowlevel.spawn_system_task(self._keep_alive, name="pending-chunks")
        return upload

    def forget(self, upload: PendingChunks) -> None:
        """Stop refreshing ``upload``'s rows (its commit deletes them)."""
        self._active.pop(upload.token, None)

    async def _keep_alive(self) -> None:
        try:
            while True:
                await trio.sleep(self.period)
                await self.flush()
        finally:
            self._running = False

    async def flush(self) -> None:
        """Register (and refresh) the chunks of every upload older than one period.

        Younger uploads need nothing yet: their chunk files are younger than
        a quarter of the grace period, and the next flush comes in time.
        """
        now = trio.current_time()
        due = [u for u in self._active.values() if now - u.started >= self.period]
        if not due:
            return
        batches = []
        for upload in due:
            batches.append((upload.token, upload.new, upload.registered))
            upload.new = []
        # Two periods: one flush may come late without the rows lapsing.
        expires_at = time.time() + 2 * self.period
        try:
            await sql.retry(lambda: self._db.write(_register_steps, batches, expires_at))
        except Exception as exc:  # a background task: the uploads report it
            log.error("cannot register the chunks of %d streaming upload(s): %s", len(due), exc)
            for upload in due:
                upload.failed = exc
            return
        for upload in due:
            upload.registered = True


async def live_among(chunk_ids: Sequence[str], now: float) -> set[str]:
    """Those of ``chunk_ids`` that an upload still streaming has stored (a bridge unit)."""
    if not chunk_ids:
        return set()
    rows = await PendingChunk.filter(chunk_id__in=list(chunk_ids), expires_at__gt=now
                                     ).values_list("chunk_id", flat=True)
    return {str(chunk_id) for chunk_id in rows}


async def forget_expired(now: float) -> None:
    """Delete rows of uploads that died (a bridge unit)."""
    await PendingChunk.filter(expires_at__lt=now).delete()
