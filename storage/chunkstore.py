"""One node's chunks on its local disk.

Layout: ``<root>/chunks/ab/cd/abcd...`` (two fan-out levels keep directories
small), temporary files in ``<root>/tmp``.  A write goes to a temp file, is
fsynced and renamed into place, so a crash never leaves a half chunk under a
real name.  Every read re-hashes the bytes: a corrupt file is reported (and
moved aside to ``<root>/corrupt``), never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import trio

from storage.blobs import ChunkCorrupt, ChunkNotFound, check_chunk_id


class LocalChunkStore:
    """A :class:`~storage.blobs.BlobStore` over one directory."""

    def __init__(self, root: Path, limiter: trio.CapacityLimiter | None = None) -> None:
        self.root = Path(root)
        self._chunks = self.root / "chunks"
        self._tmp = self.root / "tmp"
        self._corrupt = self.root / "corrupt"
        for d in (self._chunks, self._tmp, self._corrupt):
            d.mkdir(parents=True, exist_ok=True)
        self._limiter = limiter or trio.CapacityLimiter(8)
        # Orders "touch an existing chunk" (a write that found it present)
        # against "delete it if idle" (GC): a write that was told the chunk
        # is stored must never see it unlinked right after.
        self._touch_lock = threading.Lock()

    def path_of(self, chunk_id: str) -> Path:
        """Where a chunk's file lives (whether or not it exists)."""
        check_chunk_id(chunk_id)
        return self._chunks / chunk_id[:2] / chunk_id[2:4] / chunk_id

    async def put_chunk(self, chunk_id: str, data: bytes) -> None:
        """Store a chunk durably; a chunk already present is only touched,
        which tells garbage collection it is in use again."""
        path = self.path_of(chunk_id)
        await trio.to_thread.run_sync(self._write, path, data, limiter=self._limiter)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            with self._touch_lock:
                os.utime(path)
            return
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{path.name}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.rename(tmp, path)
        # The rename itself must survive a crash before the write is acknowledged.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def get_chunk(self, chunk_id: str) -> bytes:
        """Read and verify a chunk."""
        path = self.path_of(chunk_id)
        return await trio.to_thread.run_sync(self._read, chunk_id, path, limiter=self._limiter)

    def _read(self, chunk_id: str, path: Path) -> bytes:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ChunkNotFound(chunk_id, "not on this node") from None
        if hashlib.sha256(data).hexdigest() != chunk_id:
            self._quarantine(path)
            raise ChunkCorrupt(chunk_id, "stored bytes do not match the id")
        return data

    def _quarantine(self, path: Path) -> None:
        # Keep the evidence for the operator, out of the serving path.
        with contextlib.suppress(OSError):
            os.replace(path, self._corrupt / f"{path.name}.{secrets.token_hex(4)}")

    async def has_chunk(self, chunk_id: str) -> bool:
        """Whether the chunk file exists."""
        path = self.path_of(chunk_id)
        return await trio.to_thread.run_sync(path.exists, limiter=self._limiter)

    async def delete_chunk(self, chunk_id: str) -> None:
        """Remove the chunk file if present."""
        path = self.path_of(chunk_id)
        await trio.to_thread.run_sync(
            lambda: path.unlink(missing_ok=True), limiter=self._limiter
        )

    async def delete_if_idle(self, chunk_id: str, idle_since: float) -> int | None:
        """Remove the chunk file unless it was written or touched at or after
        ``idle_since`` (unix time); the bytes freed, or None if kept or absent."""
        path = self.path_of(chunk_id)
        return await trio.to_thread.run_sync(self._delete_if_idle, path, idle_since,
                                             limiter=self._limiter)

    def _delete_if_idle(self, path: Path, idle_since: float) -> int | None:
        with self._touch_lock:
            try:
                st = path.stat()
                if st.st_mtime >= idle_since:
                    return None
                os.unlink(path)
            except FileNotFoundError:
                return None
        return st.st_size

    async def size_of(self, chunk_id: str) -> int | None:
        """The chunk file's size in bytes, or None if it is absent."""
        path = self.path_of(chunk_id)

        def size() -> int | None:
            try:
                return path.stat().st_size
            except FileNotFoundError:
                return None

        return await trio.to_thread.run_sync(size, limiter=self._limiter)

    async def quarantine(self, chunk_id: str) -> None:
        """Move a chunk file known to be bad (e.g. truncated) out of the serving path."""
        path = self.path_of(chunk_id)
        await trio.to_thread.run_sync(self._quarantine, path, limiter=self._limiter)

    def remove_stale_temp_files(self, older_than: float) -> int:
        """Delete temp files of writes that never finished (a crash, a kill)
        last modified more than ``older_than`` seconds ago; how many were
        removed.  Blocking: run it in a thread.  A live write's temp file is
        younger than any sensible bound (a chunk write takes well under one)."""
        cutoff = time.time() - older_than
        removed = 0
        for entry in os.scandir(self._tmp):
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def iter_chunk_ids(self) -> Iterator[str]:
        """Every chunk id stored here (blocking; run it in a thread)."""
        for top in sorted(self._chunks.iterdir()):
            for mid in sorted(top.iterdir()):
                for f in sorted(mid.iterdir()):
                    yield f.name
