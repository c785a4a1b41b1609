"""The SFTP server: asyncssh on the node's asyncio bridge, storage in trio.

asyncssh only runs on asyncio, so the server lives on the node's one
:class:`~storage.bridge.AsyncioBridge`.  Every storage operation is a trio
coroutine (the ``_Ops`` methods) reached with ``bridge.call_trio`` /
``call_trio_soon``, which the bridge serves as trio tasks without threads.

Layout: ``/`` lists the account's buckets; ``/bucket/a/b.txt`` is the key
``a/b.txt``; folders are S3-style prefixes, and ``mkdir`` writes a zero-byte
``folder/`` marker object.  ``mkdir``/``rmdir`` at the root create/delete
buckets.

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

One host key for the whole cluster: an Ed25519 key derived from the cluster
secret, so every node shows the same fingerprint.
"""

from __future__ import annotations

import bisect
import functools
import logging
import mimetypes
import stat as statmod
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from cluster.services import NodeServices
from protocols.sftp.paths import BadPath, Target, normalize, resolve, valid_bucket_name
from storage import errors
from storage.buckets import BucketInfo
from storage.crypto import derive_key
from storage.objects import ObjectInfo
from storage.ratelimit import RateLimiter
from storage.trace import TraceEvent

log = logging.getLogger("cloudstorage.sftp")

BLOCK = 1024 * 1024
LIST_PAGE = 1000
MAX_RENAME_OBJECTS = 10_000
DIR_MODE = statmod.S_IFDIR | 0o755
FILE_MODE = statmod.S_IFREG | 0o644
FOLDER_CONTENT_TYPE = "application/x-directory"


def host_key(cluster_secret: bytes) -> asyncssh.SSHKey:
    """The cluster's SSH host key (Ed25519, derived from the cluster secret)."""
    seed = derive_key(cluster_secret, "sftp-host-key-ed25519")
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
    )
    return asyncssh.import_private_key(pem)


def _dir_attrs(mtime: float = 0) -> asyncssh.SFTPAttrs:
    return asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY, size=0,
                              permissions=DIR_MODE, uid=0, gid=0,
                              atime=int(mtime), mtime=int(mtime))


def _file_attrs(size: int, mtime: float) -> asyncssh.SFTPAttrs:
    return asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, size=size,
                              permissions=FILE_MODE, uid=0, gid=0,
                              atime=int(mtime), mtime=int(mtime))


def _sftp_error(exc: BaseException) -> asyncssh.SFTPError:
    """The SFTP status for an error of the storage core."""
    if isinstance(exc, asyncssh.SFTPError):
        return exc
    if isinstance(exc, BadPath):
        return asyncssh.SFTPNoSuchFile(str(exc))
    if isinstance(exc, errors.NoSuchBucket | errors.NoSuchKey | errors.NoSuchVersion):
        return asyncssh.SFTPNoSuchFile("No such file or directory")
    if isinstance(exc, errors.QuotaExceeded):
        return asyncssh.SFTPFailure("Quota exceeded: the upload would exceed your storage quota")
    if isinstance(exc, errors.BucketNotEmpty):
        return asyncssh.SFTPFailure("Directory not empty")
    if isinstance(exc, errors.BucketAlreadyExists | errors.BucketAlreadyOwnedByYou):
        return asyncssh.SFTPFailure("A bucket with this name already exists")
    if isinstance(exc, errors.StorageError):
        return asyncssh.SFTPFailure(exc.message)
    log.error("SFTP operation failed", exc_info=exc)
    return InternalFailure("Internal error")


class InternalFailure(asyncssh.SFTPFailure):
    """An unexpected server-side error (the client sees a plain failure)."""


def trace_status(exc: asyncssh.SFTPError) -> int:
    """An HTTP-like status for the trace, so filters like ``status:4xx`` work."""
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return 404
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return 403
    if isinstance(exc, asyncssh.SFTPOpUnsupported):
        return 501
    return 500 if isinstance(exc, InternalFailure) else 400


class _Aborted(Exception):
    """An upload was abandoned (interrupted session)."""


class _Ops:
    """Storage operations of one SFTP session, run on the trio side."""

    def __init__(self, services: NodeServices, account_id: str) -> None:
        self.s = services
        self.account_id = account_id

    async def bucket(self, name: str) -> BucketInfo:
        try:
            b = await self.s.buckets.get(name)
        except errors.NoSuchBucket:
            raise asyncssh.SFTPNoSuchFile("No such file or directory") from None
        if b.account_id != self.account_id:
            # Another account's bucket does not exist, as far as this user knows.
            raise asyncssh.SFTPNoSuchFile("No such file or directory")
        return b

    async def _is_dir(self, b: BucketInfo, key: str) -> bool:
        page = await self.s.objects.list_objects(b, prefix=key + "/", max_keys=1)
        return bool(page.entries or page.common_prefixes)

    async def stat(self, t: Target) -> asyncssh.SFTPAttrs:
        if t.is_root:
            return _dir_attrs()
        b = await self.bucket(t.bucket)  # type: ignore[arg-type]
        if not t.key:
            return _dir_attrs(b.created_at.timestamp())
        try:
            info = await self.s.objects.head_object(b, t.key)
            return _file_attrs(info.size, info.last_modified.timestamp())
        except errors.NoSuchKey:
            pass
        if await self._is_dir(b, t.key):
            return _dir_attrs()
        raise asyncssh.SFTPNoSuchFile("No such file or directory")

    async def list_buckets(self) -> list[asyncssh.SFTPName]:
        return [
            asyncssh.SFTPName(b.name.encode(), attrs=_dir_attrs(b.created_at.timestamp()))
            for b in await self.s.buckets.list_for(self.account_id)
        ]

    async def list_page(
        self, t: Target, marker: str
    ) -> tuple[list[asyncssh.SFTPName], str | None, bool]:
        """One page of a folder: names, the next marker, whether the folder exists."""
        b = await self.bucket(t.bucket)  # type: ignore[arg-type]
        prefix = t.key + "/" if t.key else ""
        page = await self.s.objects.list_objects(
            b, prefix=prefix, delimiter="/", marker=marker, max_keys=LIST_PAGE
        )
        names: list[asyncssh.SFTPName] = []
        exists = not t.key or bool(page.entries or page.common_prefixes)
        for p in page.common_prefixes:
            names.append(asyncssh.SFTPName(p[len(prefix):-1].encode(), attrs=_dir_attrs()))
        for e in page.entries:
            name = e.key[len(prefix):]
            if not name:
                continue  # the folder's own marker
            names.append(asyncssh.SFTPName(
                name.encode(), attrs=_file_attrs(e.size, e.last_modified.timestamp())))
        if not exists and not marker:
            exists = await self._is_dir(b, t.key)
        return names, (page.next_marker if page.is_truncated else None), exists

    async def open_read(self, t: Target) -> ObjectInfo:
        if t.is_root or not t.key:
            raise asyncssh.SFTPFailure("Is a directory")
        b = await self.bucket(t.bucket)  # type: ignore[arg-type]
        return await self.s.objects.head_object(b, t.key)

    async def get_chunk(self, chunk_id: str) -> bytes:
        return await self.s.objects.blobs.get_chunk(chunk_id)

    async def check_writable(self, t: Target) -> BucketInfo:
        if t.is_root or not t.key:
            raise asyncssh.SFTPPermissionDenied("Files can only be written inside a bucket")
        return await self.bucket(t.bucket)  # type: ignore[arg-type]

    async def upload(
        self, b: BucketInfo, key: str, recv: trio.MemoryReceiveChannel[bytes | None]
    ) -> ObjectInfo:
        async def body() -> AsyncIterator[bytes]:
            async for block in recv:
                if block is None:
                    raise _Aborted()
                yield block

        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        try:
            return await self.s.objects.put_object(b, key, body(), content_type=content_type)
        finally:
            recv.close()  # wakes a blocked writer with BrokenResourceError

    async def remove(self, t: Target) -> None:
        if t.is_root or not t.key:
            raise asyncssh.SFTPFailure("Is a directory")
        b = await self.bucket(t.bucket)  # type: ignore[arg-type]
        await self.s.objects.head_object(b, t.key)  # NoSuchKey -> no such file
        await self.s.objects.delete_object(b, t.key)

    async def mkdir(self, t: Target) -> None:
        if t.is_root:
            raise asyncssh.SFTPFailure("The root already exists")
        if not t.key:
            if not valid_bucket_name(t.bucket or ""):
                raise asyncssh.SFTPFailure(
                    "Invalid bucket name: use 3-63 lowercase letters, digits, '-' or '.'")
            await self.s.buckets.create(self.account_id, t.bucket or "",
                                        self.s.settings.cluster.region)
            return
        b = await self.bucket(t.bucket)  # type: ignore[arg-type]
        try:
            await self.s.objects.head_object(b, t.key)
            raise asyncssh.SFTPFailure("A file with this name exists")
        except errors.NoSuchKey:
            pass
        if await self._is_dir(b, t.key):
            raise asyncssh.SFTPFailure("The directory already exists")

        async def empty() -> AsyncIterator[bytes]:
            return
            yield b""  # pragma: no cover - makes this an async generator

        await self.s.objects.put_object(b, t.key + "/", empty(),
                                        content_type=FOLDER_CONTENT_TYPE)

    async def rmdir(self, t: Target) -> None:
        if t.is_root:
            raise asyncssh.SFTPPermissionDenied("The root cannot be removed")
        b = await self.bucket(t.bucket)  # type: ignore[arg-type]
        if not t.key:
            await self.s.buckets.delete(b)
            return
        page = await self.s.objects.list_objects(b, prefix=t.key + "/", max_keys=2)
        others = [e for e in page.entries if e.key != t.key + "/"] + page.common_prefixes
        if others:
            raise asyncssh.SFTPFailure("Directory not empty")
        if not page.entries:
            raise asyncssh.SFTPNoSuchFile("No such file or directory")
        await self.s.objects.delete_object(b, t.key + "/")

    async def rename(self, old: Target, new: Target, overwrite: bool) -> None:
        if old.is_root or new.is_root or not old.key or not new.key:
            raise asyncssh.SFTPPermissionDenied("Buckets cannot be renamed")
        src = await self.bucket(old.bucket)  # type: ignore[arg-type]
        dst = await self.bucket(new.bucket)  # type: ignore[arg-type]
        objects = self.s.objects
        try:
            await objects.head_object(src, old.key)
            is_file = True
        except errors.NoSuchKey:
            is_file = False
        if not overwrite:
            try:
                await objects.head_object(dst, new.key)
                raise asyncssh.SFTPFailure("The target already exists")
            except errors.NoSuchKey:
                pass
        if is_file:
            # Server-side: the copy shares chunks by reference, no bytes move.
            await objects.copy_object(src, old.key, dst, new.key)
            await objects.delete_object(src, old.key)
            return
        # A folder: move every key under it.
        prefix, target = old.key + "/", new.key + "/"
        if target.startswith(prefix) and src.id == dst.id:
            raise asyncssh.SFTPFailure("Cannot move a directory into itself")
        keys: list[str] = []
        marker = ""
        while True:
            page = await objects.list_objects(src, prefix=prefix, marker=marker, max_keys=1000)
            keys += [e.key for e in page.entries]
            if len(keys) > MAX_RENAME_OBJECTS:
                raise asyncssh.SFTPFailure(
                    f"Directories with more than {MAX_RENAME_OBJECTS} files cannot be renamed")
            if not page.is_truncated or not page.next_marker:
                break
            marker = page.next_marker
        if not keys:
            raise asyncssh.SFTPNoSuchFile("No such file or directory")
        for key in keys:
            await objects.copy_object(src, key, dst, target + key[len(prefix):])
            await objects.delete_object(src, key)


class _ReadHandle:
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
                raise _sftp_error(exc) from None
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


class _WriteHandle:
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
            return _sftp_error(self.future.exception())
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
            raise _sftp_error(exc) from None


class BucketSFTPServer(asyncssh.SFTPServer):
    """One SFTP session of one account over the object store."""

    def __init__(self, chan: asyncssh.SSHServerChannel, services: NodeServices) -> None:
        super().__init__(chan)
        self.services = services
        self.bridge = services.bridge
        self.chan = chan
        self.ops = _Ops(services, chan.get_extra_info("account_id"))

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await self.bridge.call_trio(fn, *args)
        except Exception as exc:
            raise _sftp_error(exc) from None

    def trace(
        self, operation: str, t: Target | None, started: float, status: int,
        *, bytes_in: int = 0, bytes_out: int = 0,
    ) -> None:
        """Publish one live-trace event (a file transfer or a metadata operation:
        single read/write packets would only flood the trace)."""
        self.services.trace.publish_threadsafe(TraceEvent(
            time=started, node=self.services.settings.node.id, protocol="sftp",
            operation=operation, status=status,
            duration_ms=(time.time() - started) * 1000, account=self.ops.account_id,
            bucket=(t.bucket or "") if t else "", key=t.key if t else "",
            bytes_in=bytes_in, bytes_out=bytes_out,
        ))

    async def _traced(self, operation: str, t: Target, fn: Any, *args: Any) -> Any:
        started = time.time()
        try:
            result = await self._call(fn, *args)
        except asyncssh.SFTPError as exc:
            self.trace(operation, t, started, trace_status(exc))
            raise
        self.trace(operation, t, started, 200)
        return result

    @staticmethod
    def _target(path: bytes) -> Target:
        try:
            return resolve(path)
        except BadPath as exc:
            raise asyncssh.SFTPNoSuchFile(str(exc)) from None

    def _aborting(self) -> bool:
        # asyncssh closes handles left open when the session ends; by then the
        # client's EOF or close has been received.  Such a handle belongs to an
        # interrupted transfer and must not commit half a file.
        return getattr(self.chan, "_recv_state", "open") != "open"

    # -- paths and metadata ----------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        try:
            return normalize(path).encode()
        except BadPath as exc:
            raise asyncssh.SFTPNoSuchFile(str(exc)) from None

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self._call(self.ops.stat, self._target(path))

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self.stat(path)

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        handle = file_obj
        if isinstance(handle, _ReadHandle):
            return _file_attrs(handle.size(), handle.info.last_modified.timestamp())
        assert isinstance(handle, _WriteHandle)
        return _file_attrs(handle.size(), 0)

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        # Objects have no mode/owner/times to set; accepting keeps `put -p` working.
        return None

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        return None

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        return None

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        t = self._target(path)
        yield asyncssh.SFTPName(b".", attrs=_dir_attrs())
        yield asyncssh.SFTPName(b"..", attrs=_dir_attrs())
        if t.is_root:
            for name in await self._call(self.ops.list_buckets):
                yield name
            return
        marker = ""
        while True:
            names, nxt, exists = await self._call(self.ops.list_page, t, marker)
            if not exists:
                # A file, or nothing at all, is not a folder.
                await self._call(self.ops.stat, t)
                raise asyncssh.SFTPNoSuchFile("Not a directory")
            for name in names:
                yield name
            if nxt is None:
                return
            marker = nxt

    # -- files -------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        t = self._target(path)
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND))
        if writing:
            if pflags & asyncssh.FXF_READ:
                raise asyncssh.SFTPOpUnsupported("Files cannot be opened for reading and writing")
            if pflags & asyncssh.FXF_APPEND:
                raise asyncssh.SFTPOpUnsupported("Appending to objects is not supported")
            bucket = await self._call(self.ops.check_writable, t)
            if pflags & asyncssh.FXF_EXCL:
                try:
                    await self._call(self.ops.stat, t)
                except asyncssh.SFTPNoSuchFile:
                    pass
                else:
                    raise asyncssh.SFTPFailure("The file already exists")
            handle: _ReadHandle | _WriteHandle = _WriteHandle(self, bucket, t.key)
        else:
            handle = _ReadHandle(self, await self._call(self.ops.open_read, t))
        handle.target, handle.started = t, time.time()
        return handle

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, _ReadHandle):
            raise asyncssh.SFTPPermissionDenied("The file is open for writing")
        data = await file_obj.read(offset, size)
        file_obj.transferred += len(data)
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, _WriteHandle):
            raise asyncssh.SFTPPermissionDenied("The file is open for reading")
        file_obj.transferred += len(data)
        return await file_obj.write(offset, data)

    async def close(self, file_obj: object) -> None:
        if not isinstance(file_obj, _ReadHandle | _WriteHandle):
            return
        writing = isinstance(file_obj, _WriteHandle)
        operation = "PutObject" if writing else "GetObject"
        moved = {"bytes_in" if writing else "bytes_out": file_obj.transferred}
        aborted = self._aborting()
        try:
            await file_obj.close(aborted)
        except asyncssh.SFTPError as exc:
            self.trace(operation, file_obj.target, file_obj.started, trace_status(exc), **moved)
            raise
        # An abandoned upload stores nothing: say so with 499 (client went away).
        status = 499 if aborted and writing else 200
        self.trace(operation, file_obj.target, file_obj.started, status, **moved)

    async def remove(self, path: bytes) -> None:
        t = self._target(path)
        await self._traced("Remove", t, self.ops.remove, t)

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        t = self._target(path)
        await self._traced("Mkdir", t, self.ops.mkdir, t)

    async def rmdir(self, path: bytes) -> None:
        t = self._target(path)
        await self._traced("Rmdir", t, self.ops.rmdir, t)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old = self._target(oldpath)
        await self._traced("Rename", old, self.ops.rename, old, self._target(newpath), False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        old = self._target(oldpath)
        await self._traced("Rename", old, self.ops.rename, old, self._target(newpath), True)


class _SSHServer(asyncssh.SSHServer):
    """Authentication: SFTP password or a registered public key, rate-limited."""

    def __init__(self, node: _Listener) -> None:
        self.node = node
        self.conn: asyncssh.SSHServerConnection | None = None
        self.ip = "unknown"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else "unknown"
        self.node.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.node.connections.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def _blocked(self, username: str) -> bool:
        return (self.node.logins.blocked(username) > 0
                or self.node.ip_logins.blocked(self.ip) > 0)

    def _failed(self, username: str, cost: float = 1.0) -> None:
        self.node.logins.hit(username, cost)
        self.node.ip_logins.hit(self.ip, cost)

    def _accept(self, account_id: str) -> bool:
        assert self.conn is not None
        self.conn.set_extra_info(account_id=account_id)
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        if self._blocked(username):
            return False
        users = self.node.services.sftp_users
        try:
            account = await self.node.bridge.call_trio(users.check_password, username, password)
        except Exception:
            log.exception("SFTP password check failed")
            return False
        if account is None:
            self._failed(username)
            return False
        return self._accept(account.id)

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._blocked(username):
            return False
        users = self.node.services.sftp_users
        fingerprint = key.get_fingerprint("sha256")
        try:
            account = await self.node.bridge.call_trio(users.check_key, username, fingerprint)
        except Exception:
            log.exception("SFTP key check failed")
            return False
        if account is None:
            # Clients offer every key they hold: count key misses lightly.
            self._failed(username, 0.2)
            return False
        return self._accept(account.id)


class _Listener:
    """State shared by the connections of one node's SFTP listener."""

    def __init__(self, services: NodeServices) -> None:
        self.services = services
        self.bridge = services.bridge
        per_minute = services.settings.sftp.login_attempts_per_minute
        # Per username, and (looser, since many users may share a NAT) per address.
        self.logins = RateLimiter(per_minute, 60.0)
        self.ip_logins = RateLimiter(per_minute * 10, 60.0)
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.acceptor: Any = None

    async def start(self, host: str, port: int) -> None:
        """Runs on the asyncio loop: start listening."""
        settings = self.services.settings
        self.acceptor = await asyncssh.create_server(
            functools.partial(_SSHServer, self), host, port,
            server_host_keys=[host_key(settings.cluster_secret())],
            sftp_factory=functools.partial(BucketSFTPServer, services=self.services),
            allow_scp=False, login_timeout=60, keepalive_interval=30,
            window=8 * 1024 * 1024, server_version="CloudStorage",
        )

    async def stop(self) -> None:
        """Runs on the asyncio loop: stop listening and end every session."""
        if self.acceptor is not None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
        for conn in list(self.connections):
            conn.close()
        for conn in list(self.connections):
            await conn.wait_closed()


async def serve_sftp(
    services: NodeServices, shutdown: trio.Event,
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the node's SFTP listener until ``shutdown`` is set (a trio task)."""
    settings = services.settings
    listener = _Listener(services)
    bridge = services.bridge
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.serve_trio_calls)
        await bridge.run(listener.start, settings.listen.host, settings.listen.sftp_port)
        task_status.started()
        try:
            await shutdown.wait()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + settings.cluster.shutdown_grace_seconds
                await bridge.run(listener.stop)
            nursery.cancel_scope.cancel()
