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

    def iter_chunk_ids(self) -> Iterator[str]:
        """Every chunk id stored here (blocking; run it in a thread)."""
        for top in sorted(self._chunks.iterdir()):
            for mid in sorted(top.iterdir()):
                for f in sorted(mid.iterdir()):
                    yield f.name
