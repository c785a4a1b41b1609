"""Folder paths of the v1-pro API over a flat key space.

A v1-pro path is a folder of the account's default bucket: ``/Films/`` is
the key prefix ``Films/``, ``/`` the whole bucket.  Folders are the key
prefixes up to a ``/``; a key ending in ``/`` (a folder marker, as SFTP's
``mkdir`` and S3 consoles leave) shows as a folder, never as a file.
"""

from __future__ import annotations

from typing import Any

from protocols.rest.v1pro.errors import invalid
from storage import errors, names
from storage.buckets import BucketInfo
from storage.objects import ListEntry, ObjectService

PAGE = 50
# Keys read per listing call while walking a folder or the tree.
_BATCH = 1000


def folder_of(raw: str | None) -> str:
    """``/a/b/`` from ``a/b``, ``/a/b``, ``/a/b/`` (``/`` for nothing); 400 if invalid."""
    raw = (raw or "/").strip()
    parts = [p for p in raw.split("/") if p]
    if any(p in (".", "..") for p in parts) or "\\" in raw:
        raise invalid("path must be a folder such as /Films/, without '.' or '..'.")
    return "/" + "".join(f"{p}/" for p in parts)


def key_in(folder: str, filename: str) -> str:
    """The object key of ``filename`` in ``folder``; 400 for a bad name."""
    if not filename or "/" in filename or filename in (".", ".."):
        raise invalid("filename must be a file name, without '/'.")
    key = folder.lstrip("/") + filename
    try:
        return names.check_key(key)
    except errors.StorageError as exc:
        raise invalid(exc.message) from None


async def page(objects: ObjectService, bucket: BucketInfo, folder: str,
               offset: int) -> tuple[list[str], list[ListEntry], bool]:
    """Subfolders (all of them, first page only), up to :data:`PAGE` files
    after ``offset``, and whether more files may follow."""
    prefix = folder.lstrip("/")
    subfolders: list[str] = []
    files: list[ListEntry] = []
    skipped = 0
    marker = ""
    while True:
        batch = await objects.list_objects(bucket, prefix=prefix, delimiter="/", marker=marker,
                                           max_keys=_BATCH)
        subfolders += [p[len(prefix):].rstrip("/") for p in batch.common_prefixes]
        for entry in batch.entries:
            if entry.key.endswith("/"):
                continue  # the folder's own marker
            if skipped < offset:
                skipped += 1
            elif len(files) <= PAGE:
                files.append(entry)
        if not batch.is_truncated or not batch.next_marker or len(files) > PAGE:
            break
        marker = batch.next_marker
    return (subfolders if offset == 0 else []), files[:PAGE], len(files) > PAGE


async def tree(objects: ObjectService, bucket: BucketInfo) -> dict[str, Any]:
    """The whole folder tree of the bucket (structure only)."""
    root: dict[str, Any] = {"name": "", "path": "/", "folders": []}
    index: dict[str, dict[str, Any]] = {"": root}
    marker = ""
    while True:
        batch = await objects.list_objects(bucket, marker=marker, max_keys=_BATCH)
        for entry in batch.entries:
            parts = entry.key.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                path = "/".join(parts[:depth])
                if path not in index and all(parts[:depth]):
                    node = {"name": parts[depth - 1], "path": f"/{path}/", "folders": []}
                    index["/".join(parts[:depth - 1])]["folders"].append(node)
                    index[path] = node
        if not batch.is_truncated or not batch.next_marker:
            return root
        marker = batch.next_marker
