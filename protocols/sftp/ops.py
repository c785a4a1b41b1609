"""Storage operations of one SFTP session, run on the trio side.

The SFTP handler (:mod:`protocols.sftp.server`) and the SSH exec commands
(:mod:`protocols.sftp.commands`) reach these coroutines through the node's
asyncio bridge.  Every bucket is checked against the session's account: another
account's bucket does not exist as far as this user knows.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import re
import stat as statmod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import asyncssh
import trio

from protocols.sftp.paths import Target
from storage import errors, events
from storage.authz import AccessDenied, Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.objects import ObjectInfo
from storage.path_lookup import PathInfo, lookup
from storage.teams import buckets_reachable

LIST_PAGE = 1000
P = ParamSpec("P")
T = TypeVar("T")
MAX_RENAME_OBJECTS = 10_000
DIR_MODE = statmod.S_IFDIR | 0o755
FILE_MODE = statmod.S_IFREG | 0o644
FOLDER_CONTENT_TYPE = "application/x-directory"
# Pieces hashed off the trio thread (hashlib releases the GIL on big buffers).
HASH_IN_THREAD = 64 * 1024
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


# Every field of an SFTPAttrs with its default (asyncssh's Record keeps them
# in the class's ``__slots__`` dict; its instances have a ``__dict__``).
_ATTRS_DEFAULTS = dict(asyncssh.SFTPAttrs.__slots__)


def _attrs(kind: int, size: int, mode: int, mtime: float) -> asyncssh.SFTPAttrs:
    # Record.__init__ sets each of SFTPAttrs' 24 fields with setattr, then
    # the given ones again: 26 us a reply here, against 4 us filling the
    # instance's dict in one update.  The same object either way.
    attrs = asyncssh.SFTPAttrs.__new__(asyncssh.SFTPAttrs)
    fields = attrs.__dict__
    fields.update(_ATTRS_DEFAULTS)
    fields.update(type=kind, size=size, permissions=mode, uid=0, gid=0,
                  atime=int(mtime), mtime=int(mtime))
    return attrs


def dir_attrs(mtime: float = 0) -> asyncssh.SFTPAttrs:
    """The attributes of a folder (a bucket, a key prefix or the root)."""
    return _attrs(asyncssh.FILEXFER_TYPE_DIRECTORY, 0, DIR_MODE, mtime)


def file_attrs(size: int, mtime: float) -> asyncssh.SFTPAttrs:
    """The attributes of an object."""
    return _attrs(asyncssh.FILEXFER_TYPE_REGULAR, size, FILE_MODE, mtime)


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def path_attrs(t: Target, found: PathInfo) -> asyncssh.SFTPAttrs:
    """The attributes of the path ``t`` (not the root) from its lookup."""
    assert found.bucket is not None
    if not t.key:
        return dir_attrs(found.bucket.created_at.timestamp())
    if found.obj is not None:
        return file_attrs(found.obj.size, found.obj.last_modified.timestamp())
    if found.is_folder:
        return dir_attrs()
    raise asyncssh.SFTPNoSuchFile("No such file or directory")


def check_readable(t: Target) -> None:
    """Only a key can be opened for reading."""
    if t.is_root or not t.key:
        raise asyncssh.SFTPFailure("Is a directory")


def readable(found: PathInfo) -> ObjectInfo:
    """The object to read, from the lookup of its path."""
    if found.obj is None:
        raise asyncssh.SFTPNoSuchFile("No such file or directory")
    return found.obj


def check_writable(t: Target) -> None:
    """Only a key inside a bucket can be opened for writing."""
    if t.is_root or not t.key:
        raise asyncssh.SFTPPermissionDenied("Files can only be written inside a bucket")


def writable(found: PathInfo, exclusive: bool) -> BucketInfo:
    """The bucket to write into, from the lookup of the path (looked up with
    its folder when ``exclusive``, ``O_EXCL``: the file must not exist yet)."""
    assert found.bucket is not None
    if exclusive and (found.obj is not None or found.is_folder):
        raise asyncssh.SFTPFailure("The file already exists")
    return found.bucket


class Aborted(Exception):
    """An upload was abandoned (interrupted session)."""


def _from_sftp(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Attribute the changes ``fn`` (a :class:`StorageOps` method) makes to
    SFTP and the session's client (storage.events); each call runs as its own
    trio task, so the attribution ends with it."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        ops: Any = args[0]
        with events.origin("sftp", *ops.client):
            return await fn(*args, **kwargs)

    return wrapper


class StorageOps:
    """Storage operations of one SFTP session, run on the trio side."""

    def __init__(self, services: StorageCore, account_id: str,
                 client: tuple[str, str] = ("", "")) -> None:
        self.s = services
        self.account_id = account_id
        # (peer address, SSH client version string) recorded with its changes.
        self.client = client

    async def path(
        self, t: Target, action: Action = Action.READ, want_folder: bool = False
    ) -> PathInfo:
        """The bucket of ``t`` (checked for ``action``), and with a key the
        object there and whether it is a folder: one database round trip."""
        found = await self.s.db.read(lookup, t.bucket or "", t.key, want_folder=want_folder)
        if found.bucket is None:
            raise asyncssh.SFTPNoSuchFile("No such file or directory")
        try:
            await self.s.authz.check(self.account_id, found.bucket, action)
        except AccessDenied as exc:
            if exc.has_access:
                raise asyncssh.SFTPPermissionDenied("Permission denied") from None
            # A bucket this user cannot reach does not exist, as far as they know.
            raise asyncssh.SFTPNoSuchFile("No such file or directory") from None
        return found

    async def bucket(self, name: str, action: Action = Action.READ) -> BucketInfo:
        """The bucket ``name`` if this account may do ``action`` on it."""
        found = await self.path(Target(name, ""), action)
        assert found.bucket is not None
        return found.bucket

    async def _is_dir(self, b: BucketInfo, key: str) -> bool:
        page = await self.s.objects.list_objects(b, prefix=key + "/", max_keys=1)
        return bool(page.entries or page.common_prefixes)

    async def stat(self, t: Target) -> asyncssh.SFTPAttrs:
        if t.is_root:
            return dir_attrs()
        return path_attrs(t, await self.path(t, Action.READ, True))

    async def list_buckets(self) -> list[asyncssh.SFTPName]:
        return [
            asyncssh.SFTPName(b.name.encode(), attrs=dir_attrs(b.created_at.timestamp()))
            # Owned and team buckets alike, under their own (global) names.
            for b in await buckets_reachable(self.s.db, self.account_id)
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
            names.append(asyncssh.SFTPName(p[len(prefix):-1].encode(), attrs=dir_attrs()))
        for e in page.entries:
            name = e.key[len(prefix):]
            if not name:
                continue  # the folder's own marker
            names.append(asyncssh.SFTPName(
                name.encode(), attrs=file_attrs(e.size, e.last_modified.timestamp())))
        if not exists and not marker:
            exists = await self._is_dir(b, t.key)
        return names, (page.next_marker if page.is_truncated else None), exists

    async def digest(self, t: Target, algorithm: str) -> str:
        """The hex digest (``md5`` or ``sha1``) of the object at ``t``."""
        if t.is_root:
            raise asyncssh.SFTPFailure("Is a directory")
        b = await self.bucket(t.bucket)  # type: ignore[arg-type]
        if not t.key:
            raise asyncssh.SFTPFailure("Is a directory")
        try:
            info = await self.s.objects.head_object(b, t.key)
        except errors.NoSuchKey:
            if await self._is_dir(b, t.key):
                raise asyncssh.SFTPFailure("Is a directory") from None
            raise asyncssh.SFTPNoSuchFile("No such file or directory") from None
        if algorithm == "md5" and not info.part_sizes and _MD5_HEX.fullmatch(info.etag):
            return info.etag  # a single-part object's ETag is the MD5 of its bytes
        h = hashlib.new(algorithm)
        async for piece in self.s.objects.read_object(info):
            if len(piece) >= HASH_IN_THREAD:
                await trio.to_thread.run_sync(h.update, piece)
            else:
                h.update(piece)
        return h.hexdigest()

    async def get_chunk(self, chunk_id: str) -> bytes:
        return await self.s.objects.blobs.get_chunk(chunk_id)

    @_from_sftp
    async def put_bytes(self, b: BucketInfo, key: str, data: bytes) -> ObjectInfo:
        """Store a whole small upload at once (one commit, no pipeline)."""
        async def body() -> AsyncIterator[bytes]:
            yield data

        return await self.s.objects.put_object(b, key, body(), content_type=_content_type(key))

    @_from_sftp
    async def upload(
        self, b: BucketInfo, key: str, recv: trio.MemoryReceiveChannel[bytes | None]
    ) -> ObjectInfo:
        async def body() -> AsyncIterator[bytes]:
            async for block in recv:
                if block is None:
                    raise Aborted()
                yield block

        try:
            return await self.s.objects.put_object(b, key, body(), content_type=_content_type(key))
        finally:
            recv.close()  # wakes a blocked writer with BrokenResourceError

    @_from_sftp
    async def remove(self, t: Target) -> None:
        if t.is_root or not t.key:
            raise asyncssh.SFTPFailure("Is a directory")
        b = await self.bucket(t.bucket, Action.WRITE)  # type: ignore[arg-type]
        await self.s.objects.head_object(b, t.key)  # NoSuchKey -> no such file
        await self.s.objects.delete_object(b, t.key)

    @_from_sftp
    async def mkdir(self, t: Target) -> None:
        if t.is_root:
            raise asyncssh.SFTPFailure("The root already exists")
        if not t.key:
            await self.s.buckets.create(self.account_id, t.bucket or "",
                                        self.s.settings.cluster.region)
            return
        b = await self.bucket(t.bucket, Action.WRITE)  # type: ignore[arg-type]
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

    @_from_sftp
    async def rmdir(self, t: Target) -> None:
        if t.is_root:
            raise asyncssh.SFTPPermissionDenied("The root cannot be removed")
        b = await self.bucket(
            t.bucket, Action.MANAGE if not t.key else Action.WRITE)  # type: ignore[arg-type]
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

    @_from_sftp
    async def rename(self, old: Target, new: Target, overwrite: bool) -> None:
        if old.is_root or new.is_root or not old.key or not new.key:
            raise asyncssh.SFTPPermissionDenied("Buckets cannot be renamed")
        src = await self.bucket(old.bucket, Action.WRITE)  # type: ignore[arg-type]
        dst = await self.bucket(new.bucket, Action.WRITE)  # type: ignore[arg-type]
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

