"""The per-session SFTP server: one account's SFTP requests over the object store.

Every storage operation is a trio coroutine (the ``StorageOps`` methods) reached
with ``bridge.call_trio`` / ``call_trio_soon``, which the bridge serves as trio
tasks without threads.

Layout: ``/`` lists the account's buckets; ``/bucket/a/b.txt`` is the key
``a/b.txt``; folders are S3-style prefixes, and ``mkdir`` writes a zero-byte
``folder/`` marker object.  ``mkdir``/``rmdir`` at the root create/delete
buckets.  File transfers go through :mod:`protocols.sftp.handles`; the SSH
listener that starts these sessions is :mod:`protocols.sftp.listener`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncssh

from protocols.sftp.handles import ReadHandle, WriteHandle
from protocols.sftp.ops import (
    StorageOps,
    check_readable,
    check_writable,
    dir_attrs,
    file_attrs,
    path_attrs,
    readable,
    writable,
)
from protocols.sftp.paths import BadPath, Target, normalize, resolve
from protocols.sftp.statuses import sftp_error, trace_status
from protocols.sftp.tracing import TraceBatch
from storage.authz import Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.path_lookup import LoopReader, PathInfo
from storage.trace import TraceEvent

# How long a bucket this session's account owns, as a lookup found it, may
# serve a write open without another lookup.  OpenSSH's ``put`` sends STAT
# then OPEN for every file, so the OPEN finds the bucket the STAT just read:
# one database read per small file less (of the four requests each costs;
# the OPEN's median time in the server went from 228 to 143 us).
# It is as if the open had happened a moment earlier -- and the bucket a
# commit uses is already as old as the open, however long the upload: a
# bucket deleted since fails the commit (no such bucket), and quota and
# versioning are read by the commit itself.  Only the owner's buckets: the
# access of anyone else depends on roles, checked at every open.
BUCKET_FRESH_SECONDS = 1.0
_MAX_BUCKETS_KEPT = 64


class BucketSFTPServer(asyncssh.SFTPServer):
    """One SFTP session of one account over the object store."""

    def __init__(self, chan: asyncssh.SSHServerChannel, services: StorageCore,
                 loop_reads: LoopReader, traces: TraceBatch) -> None:
        super().__init__(chan)
        self.services = services
        self.bridge = services.bridge
        self.chan = chan
        peer = chan.get_extra_info("peername")
        self.ops = StorageOps(services, chan.get_extra_info("account_id"),
                              (str(peer[0]) if peer else "",
                               str(chan.get_extra_info("client_version") or "")))
        self.loop_reads = loop_reads
        self.traces = traces
        self.ending = False
        self.buckets: dict[str, tuple[float, BucketInfo]] = {}  # BUCKET_FRESH_SECONDS
        # (data_version, bucket, key, want_folder, found): see _lookup.
        self.last_lookup: tuple[int, str, str, bool, PathInfo] | None = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await self.bridge.call_trio(fn, *args)
        except Exception as exc:
            raise sftp_error(exc) from None

    def trace(
        self, operation: str, t: Target | None, started: float, status: int,
        *, bytes_in: int = 0, bytes_out: int = 0,
    ) -> None:
        """Publish one live-trace event (a file transfer or a metadata operation:
        single read/write packets would only flood the trace), in a batch of
        :mod:`protocols.sftp.tracing`."""
        self.traces.publish(TraceEvent(
            time=started, node=self.services.settings.node.id, protocol="sftp",
            operation=operation, status=status,
            duration_ms=(time.time() - started) * 1000, account=self.ops.account_id,
            bucket=(t.bucket or "") if t else "", key=t.key if t else "",
            bytes_in=bytes_in, bytes_out=bytes_out,
        ))

    async def _lookup(self, t: Target, action: Action = Action.READ,
                      want_folder: bool = False) -> PathInfo:
        """The lookup of the path ``t`` (not the root), its bucket checked for
        ``action``: on this loop when it can, else on the trio side.

        OpenSSH's ``get`` sends LSTAT, STAT and OPEN for every file, each a
        lookup of the same path.  So the session keeps its last lookup
        answered on this loop (the bucket's owner's) with SQLite's
        ``data_version`` read just before it: while that number has not
        moved, nobody has committed anything since, and a lookup of the same
        path would find exactly the same.  Reading it costs ~3 us, a lookup
        tens."""
        name = t.bucket or ""
        version = await self.loop_reads.version()
        kept = self.last_lookup
        if (kept is not None and version is not None and kept[0] == version
                and kept[1] == name and kept[2] == t.key and (kept[3] or not want_folder)):
            found: PathInfo | None = kept[4]
        else:
            found = await self.loop_reads.lookup(name, t.key, want_folder=want_folder)
            self.last_lookup = None
        # The owner may do everything (storage.authz); anyone else's access
        # depends on roles, and a missing bucket gets its error, on the trio side.
        if found is None or found.bucket is None or (
                found.bucket.account_id != self.ops.account_id):
            found = await self._call(self.ops.path, t, action, want_folder)
        elif version is not None and self.last_lookup is None:
            self.last_lookup = (version, name, t.key, want_folder, found)
        bucket = found.bucket
        if bucket is not None and bucket.account_id == self.ops.account_id:
            if len(self.buckets) >= _MAX_BUCKETS_KEPT:
                self.buckets.clear()
            self.buckets[bucket.name] = (time.monotonic(), bucket)
        return found

    def _fresh_bucket(self, name: str) -> BucketInfo | None:
        """The owned bucket ``name`` if a lookup found it just now."""
        kept = self.buckets.get(name)
        if kept is None or time.monotonic() - kept[0] > BUCKET_FRESH_SECONDS:
            return None
        return kept[1]

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

    def session_ending(self) -> None:
        """The session ends (however: EOF, a cut connection, a disconnect):
        asyncssh is about to close the handles left open.  Those belong to
        transfers the client never finished -- it closes what it completed --
        and must not commit half a file."""
        self.ending = True

    # -- paths and metadata ----------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        try:
            return normalize(path).encode()
        except BadPath as exc:
            raise asyncssh.SFTPNoSuchFile(str(exc)) from None

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        t = self._target(path)
        if t.is_root:
            return dir_attrs()
        return path_attrs(t, await self._lookup(t, Action.READ, True))

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self.stat(path)

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        handle = file_obj
        if isinstance(handle, ReadHandle):
            return file_attrs(handle.size(), handle.info.last_modified.timestamp())
        assert isinstance(handle, WriteHandle)
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
            check_writable(t)
            # At most one lookup (none right after a stat); the upload
            # itself starts with the data (small files are stored by the
            # close, in one call and one commit).
            exclusive = bool(pflags & asyncssh.FXF_EXCL)
            bucket = None if exclusive else self._fresh_bucket(t.bucket or "")
            if bucket is None:
                bucket = writable(await self._lookup(t, Action.WRITE, exclusive), exclusive)
            handle: ReadHandle | WriteHandle = WriteHandle(self, bucket, t.key)
        else:
            check_readable(t)
            handle = ReadHandle(self, readable(await self._lookup(t)))
        handle.target, handle.started = t, time.time()
        return handle

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, ReadHandle):
            raise asyncssh.SFTPPermissionDenied("The file is open for writing")
        data = await file_obj.read(offset, size)
        file_obj.transferred += len(data)
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, WriteHandle):
            raise asyncssh.SFTPPermissionDenied("The file is open for reading")
        file_obj.transferred += len(data)
        return await file_obj.write(offset, data)

    async def close(self, file_obj: object) -> None:
        if not isinstance(file_obj, ReadHandle | WriteHandle):
            return
        writing = isinstance(file_obj, WriteHandle)
        operation = "PutObject" if writing else "GetObject"
        moved = {"bytes_in" if writing else "bytes_out": file_obj.transferred}
        aborted = self.ending
        try:
            await file_obj.close(aborted)
        except asyncssh.SFTPError as exc:
            if writing and file_obj.target is not None:
                # The bucket may be gone: the next open looks it up again.
                self.buckets.pop(file_obj.target.bucket or "", None)
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
        self.buckets.pop(t.bucket or "", None)
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
