"""The SFTP server: asyncssh on the node's asyncio bridge, storage in trio.

asyncssh only runs on asyncio, so the server lives on the node's one
:class:`~storage.bridge.AsyncioBridge`.  Every storage operation is a trio
coroutine (the ``StorageOps`` methods) reached with ``bridge.call_trio`` /
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

Sessions are :class:`protocols.sftp.session.SSHSession`: the SFTP subsystem,
or one of the hash commands of :mod:`protocols.sftp.commands` over exec.  A
connection with no request for ``sftp.idle_timeout_seconds`` (0 = never) is
disconnected by one sweeper task.
"""

from __future__ import annotations

import bisect
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from protocols.sftp import commands
from protocols.sftp.ops import StorageOps, dir_attrs, file_attrs
from protocols.sftp.paths import BadPath, Target, normalize, resolve
from protocols.sftp.session import Activity, SSHSession
from storage import errors
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.crypto import derive_key
from storage.objects import ObjectInfo
from storage.ratelimit import RateLimiter
from storage.ratelog import ThrottledLog
from storage.trace import TraceEvent

log = logging.getLogger("cloudstorage.sftp")

BLOCK = 1024 * 1024


def host_key(cluster_secret: bytes) -> asyncssh.SSHKey:
    """The cluster's SSH host key (Ed25519, derived from the cluster secret)."""
    seed = derive_key(cluster_secret, "sftp-host-key-ed25519")
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
    )
    return asyncssh.import_private_key(pem)


# SFTP has few statuses: what has none of its own is a failure with the message.
_KIND_ERRORS: dict[errors.Kind, type[asyncssh.SFTPError]] = {
    errors.Kind.FORBIDDEN: asyncssh.SFTPPermissionDenied,
    errors.Kind.INVALID: asyncssh.SFTPInvalidParameter,
}


def _sftp_error(exc: BaseException) -> asyncssh.SFTPError:
    """The SFTP status for an error of the storage core."""
    if isinstance(exc, asyncssh.SFTPError):
        return exc
    if isinstance(exc, BadPath):
        return asyncssh.SFTPNoSuchFile(str(exc))
    if isinstance(exc, errors.StorageError) and exc.kind is errors.Kind.NOT_FOUND:
        return asyncssh.SFTPNoSuchFile("No such file or directory")
    if isinstance(exc, errors.QuotaExceeded):
        return asyncssh.SFTPFailure("Quota exceeded: the upload would exceed your storage quota")
    if isinstance(exc, errors.BucketNotEmpty):
        return asyncssh.SFTPFailure("Directory not empty")
    if isinstance(exc, errors.BucketAlreadyExists | errors.BucketAlreadyOwnedByYou):
        return asyncssh.SFTPFailure("A bucket with this name already exists")
    if isinstance(exc, errors.StorageError) and exc.kind is not errors.Kind.INTERNAL:
        return _KIND_ERRORS.get(exc.kind, asyncssh.SFTPFailure)(exc.message)
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

    def __init__(self, chan: asyncssh.SSHServerChannel, services: StorageCore) -> None:
        super().__init__(chan)
        self.services = services
        self.bridge = services.bridge
        self.chan = chan
        self.ops = StorageOps(services, chan.get_extra_info("account_id"))

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
            return file_attrs(handle.size(), handle.info.last_modified.timestamp())
        assert isinstance(handle, _WriteHandle)
        return file_attrs(handle.size(), 0)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        # Objects have no mode/owner/times to set; accepting keeps `put -p`
        # working -- for something that exists (chmod of nothing is ENOENT).
        await self.stat(path)

    async def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self.stat(path)

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        return None

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        t = self._target(path)
        yield asyncssh.SFTPName(b".", attrs=dir_attrs())
        yield asyncssh.SFTPName(b"..", attrs=dir_attrs())
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

    # -- what objects do not have --------------------------------------------------
    # asyncssh's defaults for these act on the node's own filesystem (a client
    # could create symlinks anywhere or read link targets): never inherit them.

    def open56(self, path: bytes, desired_access: int, flags: int,
               attrs: asyncssh.SFTPAttrs) -> object:
        raise asyncssh.SFTPOpUnsupported("Only SFTP version 3 is supported")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPOpUnsupported("Symbolic links are not supported")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("Symbolic links are not supported")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("Hard links are not supported")

    def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    def fstatvfs(self, file_obj: object) -> asyncssh.SFTPVFSAttrs:
        raise asyncssh.SFTPOpUnsupported("fstatvfs is not supported")

    def fsync(self, file_obj: object) -> None:
        raise asyncssh.SFTPOpUnsupported(
            "fsync is not supported: an upload is stored when its file is closed")


class _Commands:
    """SSH exec requests of one connection (:mod:`protocols.sftp.commands`)."""

    def __init__(self, services: StorageCore, account_id: str, activity: Activity) -> None:
        self.bridge = services.bridge
        self.ops = StorageOps(services, account_id)
        self.activity = activity

    async def digest(self, path: str, algorithm: str) -> str:
        """The digest of the object at an SFTP path (resolved as SFTP resolves it)."""
        t = BucketSFTPServer._target(path.encode())
        self.activity.begin()
        try:
            return await self.bridge.call_trio(self.ops.digest, t, algorithm)
        except Exception as exc:
            raise _sftp_error(exc) from None
        finally:
            self.activity.end()

    async def __call__(
        self, command: str, stdin: asyncssh.SSHReader[bytes],
        stdout: asyncssh.SSHWriter[bytes], stderr: asyncssh.SSHWriter[bytes],
    ) -> int:
        return await commands.run(command, stdin, stdout, stderr, self.digest)


class _SSHServer(asyncssh.SSHServer):
    """Authentication: SFTP password or a registered public key, rate-limited."""

    def __init__(self, node: _Listener) -> None:
        self.node = node
        self.conn: asyncssh.SSHServerConnection | None = None
        self.ip = "unknown"
        self.activity = Activity()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else "unknown"
        self.node.connections[conn] = self.activity

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.node.connections.pop(self.conn, None)

    def session_requested(self) -> SSHSession:
        # Our own session rather than asyncssh's stock one: see protocols.sftp.session.
        assert self.conn is not None
        services = self.node.services
        run_command = _Commands(services, self.conn.get_extra_info("account_id"), self.activity)
        return SSHSession(functools.partial(BucketSFTPServer, services=services),
                          run_command, self.activity)

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
        self.activity.touch()  # idle time counts from the login, not the connect
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        if self._blocked(username):
            return False
        users = self.node.services.sftp_users
        try:
            account = await self.node.bridge.call_trio(users.check_password, username, password)
        except Exception as exc:
            self.node.login_errors.log(f"password {type(exc).__name__}",
                                       f"SFTP password check failed: {exc!r}")
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
        except Exception as exc:
            self.node.login_errors.log(f"key {type(exc).__name__}",
                                       f"SFTP key check failed: {exc!r}")
            return False
        if account is None:
            # Clients offer every key they hold: count key misses lightly.
            self._failed(username, 0.2)
            return False
        return self._accept(account.id)


class _Listener:
    """State shared by the connections of one node's SFTP listener."""

    def __init__(self, services: StorageCore) -> None:
        self.services = services
        self.bridge = services.bridge
        per_minute = services.settings.sftp.login_attempts_per_minute
        # Per username, and (looser, since many users may share a NAT) per address.
        self.logins = RateLimiter(per_minute, 60.0)
        self.ip_logins = RateLimiter(per_minute * 10, 60.0)
        self.connections: dict[asyncssh.SSHServerConnection, Activity] = {}
        self.acceptor: Any = None
        # A database outage fails every login the same way: one line per
        # cause every few seconds, not a traceback per attempt.
        self.login_errors = ThrottledLog(log)

    async def start(self, host: str, port: int) -> None:
        """Runs on the asyncio loop: start listening."""
        settings = self.services.settings
        self.acceptor = await asyncssh.create_server(
            functools.partial(_SSHServer, self), host, port,
            server_host_keys=[host_key(settings.cluster_secret())],
            login_timeout=60, keepalive_interval=30,
            window=8 * 1024 * 1024, server_version="CloudStorage",
        )

    async def close_idle(self, timeout: float) -> None:
        """Runs on the asyncio loop: disconnect connections idle for ``timeout``
        seconds (no SFTP request or command running or finished since)."""
        now = time.monotonic()
        for conn, activity in list(self.connections.items()):
            idle = activity.idle_for(now)
            if idle >= timeout:
                log.info("closing SFTP connection of %s: idle for %.0f s",
                         conn.get_extra_info("account_id") or "(not logged in)", idle)
                conn.disconnect(asyncssh.DISC_BY_APPLICATION,
                                f"Idle for more than {timeout:g} seconds")

    async def stop(self) -> None:
        """Runs on the asyncio loop: stop listening and end every session."""
        if self.acceptor is not None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
        for conn in list(self.connections):
            conn.close()
        for conn in list(self.connections):
            await conn.wait_closed()


async def _close_idle_connections(listener: _Listener, timeout: float) -> None:
    """One sweeper for all connections (not a timer per request): a connection
    is closed between ``timeout`` and ``timeout * 1.25`` seconds of idleness."""
    period = min(max(timeout / 4, 0.05), 60.0)
    while True:
        await trio.sleep(period)
        await listener.bridge.run(listener.close_idle, timeout)


async def serve_sftp(
    services: StorageCore, shutdown: trio.Event,
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the node's SFTP listener until ``shutdown`` is set (a trio task)."""
    settings = services.settings
    listener = _Listener(services)
    bridge = services.bridge
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.serve_trio_calls)
        await bridge.run(listener.start, settings.listen.host, settings.listen.sftp_port)
        if settings.sftp.idle_timeout_seconds > 0:
            nursery.start_soon(_close_idle_connections, listener,
                               float(settings.sftp.idle_timeout_seconds))
        task_status.started()
        try:
            await shutdown.wait()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + settings.cluster.shutdown_grace_seconds
                await bridge.run(listener.stop)
            nursery.cancel_scope.cancel()
