"""SFTP file handles: streaming uploads and chunk-cached downloads.

Uploads stream: SFTP writes are coalesced into 1 MiB blocks and handed to a
trio task feeding ``ObjectService.put_object`` through a bounded channel, so a
1 GiB put holds a few MiB at most.  Clients pipeline writes at increasing
offsets; out-of-order writes are reassembled inside ``sftp.reorder_window``
bytes, anything else (rewriting earlier bytes, a gap at close) fails with a
clear SFTP error.  The object becomes visible when the handle is closed; a
session that ends without closing its handle (interrupted put) commits
nothing.

Downloads read whole chunks and serve the client's small reads from them,
prefetching the next chunk; reads at any offset work (resumed ``get``).
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

import asyncssh
import trio

from protocols.sftp.paths import Target
from protocols.sftp.statuses import sftp_error
from storage.buckets import BucketInfo
from storage.objects import ObjectInfo

if TYPE_CHECKING:
    from protocols.sftp.server import BucketSFTPServer

BLOCK = 1024 * 1024


class ReadHandle:
    """Serves reads at any offset from whole chunks, prefetching the next one."""

    def __init__(self, server: BucketSFTPServer, info: ObjectInfo) -> None:
        self.target: Target | None = None
        self.started = 0.0
        self.transferred = 0
        self.server = server
        self.info = info
        self.starts: list[int] = []
        pos = 0
        for _cid, size in info.chunks:
            self.starts.append(pos)
            pos += size
        self.cache: dict[int, Any] = {}  # chunk index -> asyncio future of its bytes

    def _future(self, i: int) -> Any:
        fut = self.cache.get(i)
        if fut is None:
            cid = self.info.chunks[i][0]
            fut = self.cache[i] = self.server.bridge.call_trio_soon(self.server.ops.get_chunk, cid)
        return fut

    async def read(self, offset: int, size: int) -> bytes:
        info = self.info
        end = min(offset + size, info.size)
        if offset >= end:
            return b""
        if info.inline_data is not None:
            return info.inline_data[offset:end]
        parts: list[bytes] = []
        pos = offset
        i = 0
        while pos < end:
            i = bisect.bisect_right(self.starts, pos) - 1
            try:
                data = await self._future(i)
            except Exception as exc:
                self.cache.pop(i, None)
                raise sftp_error(exc) from None
            lo = pos - self.starts[i]
            hi = min(end - self.starts[i], len(data))
            parts.append(data[lo:hi])
            pos = self.starts[i] + hi
        if i + 1 < len(info.chunks):
            self._future(i + 1)  # prefetch while the client consumes this chunk
        for j in [j for j in self.cache if j < i - 1 or j > i + 2]:
            self.cache.pop(j).cancel()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def size(self) -> int:
        return self.info.size

    async def close(self, aborted: bool) -> None:
        for fut in self.cache.values():
            fut.cancel()
        self.cache.clear()


class WriteHandle:
    """Feeds sequential SFTP writes into a streaming ``put_object``."""

    def __init__(self, server: BucketSFTPServer, bucket: BucketInfo, key: str) -> None:
        self.target: Target | None = None
        self.started = 0.0
        self.transferred = 0
        self.server = server
        self.next = 0
        self.buf = bytearray()
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.window = server.services.settings.sftp.reorder_window
        self.send, recv = trio.open_memory_channel[bytes | None](2)
        self.future = server.bridge.call_trio_soon(server.ops.upload, bucket, key, recv)
        self.closed = False

    def _failure(self) -> asyncssh.SFTPError:
        if self.future.done() and not self.future.cancelled() and self.future.exception():
            return sftp_error(self.future.exception())
        return asyncssh.SFTPFailure("The upload failed")

    async def _push(self, block: bytes) -> None:
        try:
            await self.server.bridge.call_trio(self.send.send, block)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self._failure() from None

    async def write(self, offset: int, data: bytes) -> int:
        if self.future.done():
            raise self._failure()
        if offset != self.next:
            if offset < self.next or offset in self.pending:
                raise asyncssh.SFTPFailure(
                    "Non-sequential write: this server stores objects and only accepts "
                    "writes at increasing offsets")
            if offset + len(data) - self.next > self.window:
                raise asyncssh.SFTPFailure(
                    "Write too far ahead of the contiguous data (reorder window exceeded)")
            self.pending[offset] = bytes(data)
            self.pending_bytes += len(data)
            return len(data)
        self.buf += data
        self.next += len(data)
        while self.next in self.pending:
            piece = self.pending.pop(self.next)
            self.pending_bytes -= len(piece)
            self.buf += piece
            self.next += len(piece)
        if len(self.buf) >= BLOCK:
            block = bytes(self.buf)
            self.buf.clear()
            await self._push(block)
        return len(data)

    def size(self) -> int:
        return self.next

    async def close(self, aborted: bool) -> ObjectInfo | None:
        if self.closed:
            return None
        self.closed = True
        if aborted or self.pending:
            self.future.cancel()
            if self.pending and not aborted:
                raise asyncssh.SFTPFailure(
                    f"Incomplete upload: data missing at offset {self.next}; nothing was stored")
            return None
        if self.buf:
            await self._push(bytes(self.buf))
            self.buf.clear()
        await self.server.bridge.call_trio(self.send.aclose)
        try:
            return await self.future
        except Exception as exc:
            raise sftp_error(exc) from None
