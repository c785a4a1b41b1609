"""The image-transform result cache: results stored as chunks in the blob layer.

A result is keyed by the SHA-256 of the source's identity (bucket id, key,
version id, ETag) and the transform's canonical parameters with the output
format (protocols/img/params.py ``canonical``), so a changed source (new
ETag or version) is simply a different key, and the old entries age out.

* Bytes: cut into ``chunk_size`` chunks named by their SHA-256 and written
  through the node's :class:`~storage.blobs.BlobStore` (replicated like any
  object's chunks); the ``image_variants`` row lists them and holds one
  ``chunk_refs`` reference per listing, taken in the transaction that inserts
  the row and released in the one that deletes it, so GC never collects a
  cached result and collects it once evicted.
* Bounded: :meth:`ImageCache.collect` (the ``image-cache`` worker) drops the
  least recently used entries until the cache is within ``max_bytes`` and
  ``max_entries``.  ``used_at`` is refreshed at most once a minute per entry
  per node, so a hot image does not cost a write per request.
* Each node also keeps the hottest results in memory (``memory_bytes``): the
  key names the exact bytes, so a memory hit is never stale.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import refs, sql
from storage.blobs import BlobStore, chunk_id_of
from storage.db import Database

# used_at is refreshed at most this often per entry (seconds).
TOUCH_EVERY = 60.0
# Entries evicted per transaction by collect().
EVICT_BATCH = 200


@dataclass(frozen=True)
class CachedImage:
    """A transform result: bytes and what the response needs to say about them."""

    data: bytes
    content_type: str
    width: int
    height: int


class _MemoryLRU:
    """The hottest results of this node, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, CachedImage] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> CachedImage | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, item: CachedImage) -> None:
        if len(item.data) > self.max_bytes // 8 or key in self._items:
            return  # one huge result must not flush everything else
        self._items[key] = item
        self._bytes += len(item.data)
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old.data)


def _insert_steps(row: dict, chunks: list[tuple[str, int]]) -> sql.UnitOfWork[bool]:
    """Insert the entry and reference its chunks; False if another node won."""
    inserted = yield (sql.FETCH,
                      "INSERT INTO image_variants (id, bucket_id, size, content_type, width, "
                      "height, chunks, created_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (id) DO NOTHING RETURNING id",
                      (row["id"], row["bucket_id"], row["size"], row["content_type"],
                       row["width"], row["height"], json.dumps([list(c) for c in chunks]),
                       row["created_at"], row["used_at"]))
    if inserted:
        yield from refs.reference_steps(chunks)
    return bool(inserted)


def _evict_steps(limit: int) -> sql.UnitOfWork[tuple[int, int]]:
    """Delete the ``limit`` least recently used entries, releasing their chunks."""
    rows = yield (sql.FETCH,
                  "DELETE FROM image_variants WHERE id IN (SELECT id FROM image_variants "
                  "ORDER BY used_at LIMIT ?) RETURNING size, chunks", (limit,))
    # Only the rows this DELETE removed are released (storage/refs.py's rule).
    yield from refs.unreference_steps(sql.json_column(r["chunks"], []) for r in rows)
    return len(rows), sum(int(r["size"]) for r in rows)


def _dialect_sql(dialect: str, statement: str) -> str:
    """``?`` placeholders as the dialect of a raw read wants them."""
    if dialect != "postgres":
        return statement
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _m: f"${next(counter)}", statement)


class ImageCache:
    """Cached transform results of the whole cluster (shared database + blob layer)."""

    def __init__(self, db: Database, blobs: BlobStore, *, chunk_size: int,
                 max_bytes: int, max_entries: int, memory_bytes: int = 64 * 1024 * 1024) -> None:
        self._db = db
        self._blobs = blobs
        self._chunk_size = chunk_size
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._memory = _MemoryLRU(memory_bytes)
        self._touched: dict[str, float] = {}

    async def get(self, key: str) -> CachedImage | None:
        """The cached result of ``key``, or None."""
        hit = self._memory.get(key)
        if hit is not None:
            return hit

        async def q(fetch: Any, dialect: str) -> list[dict]:
            return await fetch(_dialect_sql(dialect, "SELECT size, content_type, width, height, "
                                            "chunks FROM image_variants WHERE id = ?"), [key])

        rows = await self._db.read(q)
        if not rows:
            return None
        row = rows[0]
        parts = [await self._blobs.get_chunk(cid) for cid, _size in
                 sql.json_column(row["chunks"], [])]
        item = CachedImage(b"".join(parts), row["content_type"], int(row["width"]),
                           int(row["height"]))
        if len(item.data) != int(row["size"]):
            return None  # cannot happen with verified chunks; recompute rather than serve it
        self._memory.put(key, item)
        await self._touch(key)
        return item

    async def put(self, key: str, bucket_id: int, item: CachedImage) -> None:
        """Store ``item`` as the result of ``key`` (idempotent across nodes)."""
        self._memory.put(key, item)
        chunks: list[tuple[str, int]] = []
        view = memoryview(item.data)
        for start in range(0, len(item.data), self._chunk_size):
            piece = bytes(view[start:start + self._chunk_size])
            cid = chunk_id_of(piece)
            # Unreferenced until the row commits: GC's grace period covers it.
            await self._blobs.put_chunk(cid, piece)
            chunks.append((cid, len(piece)))
        now = time.time()
        row = {"id": key, "bucket_id": bucket_id, "size": len(item.data),
               "content_type": item.content_type, "width": item.width, "height": item.height,
               "created_at": datetime.now(UTC), "used_at": now}
        await sql.retry(lambda: self._db.write(_insert_steps, row, chunks))
        self._touched[key] = now

    async def _touch(self, key: str) -> None:
        now = time.time()
        if now - self._touched.get(key, 0.0) < TOUCH_EVERY:
            return
        if len(self._touched) > 100_000:
            self._touched.clear()
        self._touched[key] = now

        def steps() -> sql.UnitOfWork[None]:
            yield (sql.EXECUTE, "UPDATE image_variants SET used_at = ? WHERE id = ?", (now, key))

        await self._db.write(steps)

    async def usage(self) -> tuple[int, int]:
        """``(entries, bytes)`` of the whole cache."""

        async def q(fetch: Any, _dialect: str) -> list[dict]:  # no parameters
            return await fetch("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b "
                               "FROM image_variants", [])

        row = (await self._db.read(q))[0]
        return int(row["n"]), int(row["b"])

    async def collect(self) -> tuple[int, int]:
        """Evict least recently used entries until within the bounds;
        ``(entries, bytes)`` evicted."""
        evicted = freed = 0
        while True:
            entries, size = await self.usage()
            if entries <= self.max_entries and size <= self.max_bytes:
                return evicted, freed
            # Enough entries to get back under both bounds, at most a batch.
            over = max(entries - self.max_entries, 1)
            if size > self.max_bytes and entries:
                over = max(over, int((size - self.max_bytes) / (size / entries)) + 1)
            n, b = await sql.retry(
                functools.partial(self._db.write, _evict_steps, min(over, EVICT_BATCH)))
            if n == 0:
                return evicted, freed
            evicted, freed = evicted + n, freed + b
