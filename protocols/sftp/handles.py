"""SFTP file handles: streaming uploads and chunk-cached downloads.

Uploads stream: SFTP writes are coalesced into blocks of one chunk and handed to a
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
import contextlib
from typing import TYPE_CHECKING, Any

import asyncssh
import trio

from protocols.sftp.paths import Target
from protocols.sftp.statuses import sftp_error
from storage.buckets import BucketInfo
from storage.objects import ObjectInfo

if TYPE_CHECKING:
    from protocols.sftp.server import BucketSFTPServer

# Chunks fetched ahead of the one being read.
READ_AHEAD = 2
# Blocks a write may leave queued before it waits for the upload to take them.
QUEUED_BLOCKS = 2


class ReadHandle:
    """Serves reads at any offset from whole chunks, reading ahead.

    Clients keep many reads in flight (OpenSSH: 64 of up to 255 KiB, so 16
    MiB ahead) and the handler answers them one by one: every read starts
    fetching the ``READ_AHEAD`` chunks after its own, so the next chunk is
    already verified when the first read reaches it.  At most the chunk
    before, the current one and those ahead are held: memory is bounded by
    ``READ_AHEAD + 2`` chunks whatever the file size.
    """

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
        first = bisect.bisect_right(self.starts, offset) - 1
        for j in range(first + 1, min(first + 1 + READ_AHEAD, len(info.chunks))):
            self._future(j)  # started before waiting on this read's own chunk
        parts: list[bytes] = []
        pos = offset
        i = first
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
        # Drop what a sequential reader is done with (and, after a seek, what
        # it will not reach soon).
        for j in [j for j in self.cache if j < first - 1 or j > i + READ_AHEAD]:
            self.cache.pop(j).cancel()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def size(self) -> int:
        return self.info.size

    async def close(self, aborted: bool) -> None:
        for fut in self.cache.values():
            fut.cancel()
        self.cache.clear()


class WriteHandle:
    """Feeds sequential SFTP writes into a streaming ``put_object``.

    Nothing starts on open: a file that fits in one block is stored by the
    close, in one bridge call and one commit.  A bigger one starts the upload
    with its first block; blocks are then handed to it write-behind -- a
    write never waits for the trio side unless ``QUEUED_BLOCKS`` blocks are
    already waiting, so the client's pipeline of writes keeps flowing while
    the previous blocks are hashed and stored.  A block is exactly one chunk
    of the object store, which then stores it without another copy; memory
    per upload is a few chunks, whatever the file size.
    """

    def __init__(self, server: BucketSFTPServer, bucket: BucketInfo, key: str) -> None:
        self.target: Target | None = None
        self.started = 0.0
        self.transferred = 0
        self.server = server
        self.bucket = bucket
        self.key = key
        self.next = 0
        # The contiguous bytes not cut into a block yet, as the client sent
        # them: a block is joined from these in one copy.  Appending to a
        # bytearray and slicing blocks off it copied every byte twice: 13 %
        # of the asyncio thread's py-spy samples of a 256 MiB put.
        self.parts: list[bytes] = []
        self.have = 0
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.window = server.services.settings.sftp.reorder_window
        self.block = server.services.objects.chunk_size
        self.send: trio.MemorySendChannel[bytes | None] | None = None
        self.future: Any = None  # asyncio future of the upload, once started
        self.queued: list[bytes] = []  # blocks not handed to the trio side yet
        self.pushing: Any = None  # asyncio future of the hand-off under way
        self.closed = False

    def _failure(self) -> asyncssh.SFTPError:
        fut = self.future
        if fut is not None and fut.done() and not fut.cancelled() and fut.exception():
            return sftp_error(fut.exception())
        return asyncssh.SFTPFailure("The upload failed")

    async def _upload_error(self) -> asyncssh.SFTPError:
        """Why the upload stopped taking blocks: a hand-off only fails once the
        upload has ended (it closes its end), so wait for its own error."""
        with contextlib.suppress(Exception):
            await self.future
        return self._failure()

    def _start(self) -> None:
        self.send, recv = trio.open_memory_channel[bytes | None](1)
        ops = self.server.ops
        self.future = self.server.bridge.call_trio_soon(ops.upload, self.bucket, self.key, recv)

    def _pump(self) -> None:
        """Hand the queued blocks to the trio side, unless a hand-off is under
        way (one at a time, so blocks arrive in order)."""
        if self.pushing is not None or not self.queued:
            return
        blocks, self.queued = self.queued, []
        self.pushing = self.server.bridge.call_trio_soon(_send_all, self.send, blocks, False)
        self.pushing.add_done_callback(self._pushed)

    def _pushed(self, fut: Any) -> None:
        """A hand-off ended: start the next one (idempotent: both the done
        callback and :meth:`_wait_push` call it)."""
        if self.pushing is fut:
            self.pushing = None
        if not fut.cancelled() and fut.exception() is None:
            self._pump()

    async def _wait_push(self) -> None:
        """Wait for the hand-off under way; raise if the upload failed."""
        fut = self.pushing
        try:
            await fut
        except Exception:
            raise await self._upload_error() from None
        # Awaiting a future that is already done does not yield, so its done
        # callback may not have run yet: without this, a loop waiting for
        # ``self.pushing`` to change would spin forever.
        self._pushed(fut)

    async def _drain(self) -> None:
        """Wait until no hand-off is under way; raise if the upload failed."""
        while self.pushing is not None:
            await self._wait_push()

    async def _push(self, block: bytes) -> None:
        if self.future is None:
            self._start()
        elif self.future.done():
            raise self._failure()
        self.queued.append(block)
        self._pump()
        while len(self.queued) >= QUEUED_BLOCKS and self.pushing is not None:
            await self._wait_push()  # back-pressure: the trio side is behind

    async def write(self, offset: int, data: bytes) -> int:
        if self.future is not None and self.future.done():
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
        self._append(bytes(data))
        while self.next in self.pending:
            piece = self.pending.pop(self.next)
            self.pending_bytes -= len(piece)
            self._append(piece)
        while self.have >= self.block:
            await self._push(self._cut(self.block))
        return len(data)

    def _append(self, piece: bytes) -> None:
        self.parts.append(piece)
        self.have += len(piece)
        self.next += len(piece)

    def _cut(self, size: int) -> bytes:
        """The first ``size`` buffered bytes (at most what is buffered), removed."""
        parts = self.parts
        taken = 0
        n = 0
        while n < len(parts) and taken + len(parts[n]) <= size:
            taken += len(parts[n])
            n += 1
        head = parts[:n]
        if taken < size and n < len(parts):
            # The block ends inside this piece: split it.
            piece = parts[n]
            head.append(piece[:size - taken])
            parts[n] = piece[size - taken:]
            taken = size
        del parts[:n]
        self.have -= taken
        return head[0] if len(head) == 1 else b"".join(head)

    def size(self) -> int:
        return self.next

    def _cancel(self) -> None:
        for fut in (self.pushing, self.future):
            if fut is not None:
                fut.cancel()
        self.queued.clear()

    async def close(self, aborted: bool) -> ObjectInfo | None:
        if self.closed:
            return None
        self.closed = True
        if aborted or self.pending:
            self._cancel()
            if self.pending and not aborted:
                raise asyncssh.SFTPFailure(
                    f"Incomplete upload: data missing at offset {self.next}; nothing was stored")
            return None
        bridge = self.server.bridge
        try:
            if self.future is None:
                # Small file: the whole upload in one call.
                return await bridge.call_trio(
                    self.server.ops.put_bytes, self.bucket, self.key, self._cut(self.have))
            await self._drain()
            rest = self._cut(self.have)
            blocks, self.queued = self.queued + ([rest] if rest else []), []
            await bridge.call_trio(_send_all, self.send, blocks, True)
            return await self.future
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise await self._upload_error() from None
        except asyncssh.SFTPError:
            raise
        except Exception as exc:
            raise sftp_error(exc) from None


async def _send_all(send: trio.MemorySendChannel[bytes | None], blocks: list[bytes],
                    close: bool) -> None:
    """Trio side of a hand-off: the blocks in order, then the end if ``close``."""
    for block in blocks:
        await send.send(block)
    if close:
        await send.aclose()
