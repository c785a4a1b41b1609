"""A file-system path's bucket, object and folder in one statement (SFTP).

An SFTP client asks about paths one request at a time (``stat`` before every
``put``, ``lstat`` + ``stat`` + ``open`` before every ``get``), so what each
request costs in database round trips is most of a small file's time.  Looked
up through the ORM, a path took three (the bucket, the object, then a
one-key listing when there was no object), each crossing the asyncio bridge
twice.  :func:`lookup` fetches all three with one raw statement through
:meth:`storage.db.Database.read`: on SQLite without leaving the trio thread.

The columns and the row-to-info conversion are the S3 hot path's
(:mod:`storage.hotpath`), so an object read either way is the same
:class:`~storage.objects.ObjectInfo`.

The SFTP server itself runs on the bridge's asyncio loop (asyncssh), so even
a read on the trio thread costs it two thread switches.  :class:`LoopReader`
answers the same lookup right on the loop, from a query-only SQLite
connection of its own (WAL readers never wait for writers and see every
committed write); on PostgreSQL, or when SQLite refuses the read, it answers
None and the caller goes through trio.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from storage.buckets import BucketInfo
from storage.db import Database, Fetch
from storage.hotpath import _BUCKET_COLUMNS, _OBJECT_COLUMNS, _dt, _numbered, _object
from storage.listing import prefix_upper_bound
from storage.objects import ObjectInfo
from storage.sqlite_reader import Busy, SqliteReader

# Always exactly one row: the LEFT JOINs leave NULLs for what does not exist.
# A folder is any latest, live version under "key/" (what a one-key listing
# with that prefix would find); its probe stops at the first index entry.
_FOLDER = (
    ", (SELECT 1 FROM object_versions d WHERE d.bucket_id = b.id"
    ' AND d."key" >= ? AND d."key" < ? AND d.is_latest = ? AND d.is_delete_marker = ?'
    " LIMIT 1) AS d_folder"
)
_FROM = " FROM (SELECT 1 AS one) AS one LEFT JOIN buckets b ON b.name = ?"
_JOIN_OBJECT = (
    ' LEFT JOIN object_versions o ON o.bucket_id = b.id AND o."key" = ? AND o.is_latest = ?'
)
_STATEMENTS = {
    "bucket": "SELECT " + _BUCKET_COLUMNS.lstrip(", ") + _FROM,
    "object": "SELECT " + _BUCKET_COLUMNS.lstrip(", ") + _OBJECT_COLUMNS + _FROM
    + _JOIN_OBJECT,
    "path": "SELECT " + _BUCKET_COLUMNS.lstrip(", ") + _OBJECT_COLUMNS + _FOLDER + _FROM
    + _JOIN_OBJECT,
}
_DIALECT_SQL = {
    "sqlite": _STATEMENTS,
    "postgres": {name: _numbered(sql) for name, sql in _STATEMENTS.items()},
}


@dataclass(frozen=True)
class PathInfo:
    """What :func:`lookup` found.

    ``bucket`` is None when there is no such bucket (then nothing else is
    set).  ``obj`` is the latest version of the key unless there is none or
    it is a delete marker.  ``is_folder``: some live object's key starts with
    ``key + "/"`` (only looked for when asked).
    """

    bucket: BucketInfo | None
    obj: ObjectInfo | None = None
    is_folder: bool = False


async def lookup(
    fetch: Fetch, dialect: str, bucket: str, key: str = "", *, want_folder: bool = False
) -> PathInfo:
    """The unit of work (run it with :meth:`storage.db.Database.read`): the
    bucket ``bucket``, the latest version of ``key`` in it if ``key`` is set,
    and with ``want_folder`` whether ``key`` is also a folder."""
    sql = _DIALECT_SQL[dialect]
    if not key:
        rows = await fetch(sql["bucket"], [bucket])
    elif not want_folder:
        rows = await fetch(sql["object"], [bucket, key, True])
    else:
        prefix = key + "/"
        # "/" is never the last code point, so the prefix always has a bound.
        upper = prefix_upper_bound(prefix)
        rows = await fetch(sql["path"], [prefix, upper, True, False, bucket, key, True])
    r = rows[0]
    if r["b_id"] is None:
        return PathInfo(None)
    info = BucketInfo(id=r["b_id"], name=r["b_name"], account_id=r["b_account"],
                      region=r["b_region"], versioning=r["b_versioning"],
                      created_at=_dt(r["b_created"]))
    if not key:
        return PathInfo(info)
    obj = None
    if r["o_version"] is not None and not r["o_marker"]:
        obj = _object(info.name, r)
    return PathInfo(info, obj, bool(want_folder and r["d_folder"]))


class LoopReader:
    """:func:`lookup` for code on the asyncio loop, without a thread switch."""

    def __init__(self, db: Database) -> None:
        self._reader: SqliteReader | None = None
        if db.dialect == "sqlite":
            # The file Database.open opened (its URL minus scheme and options).
            path = db.url.removeprefix("sqlite://").split("?", 1)[0]
            if path != ":memory:":
                self._reader = SqliteReader(path)

    def open(self) -> None:
        """Connect (the schema exists by now: the node opened its database)."""
        if self._reader is not None:
            self._reader.open()

    async def lookup(self, bucket: str, key: str = "", *,
                     want_folder: bool = False) -> PathInfo | None:
        """What :func:`lookup` finds, or None if this reader cannot tell."""
        if self._reader is None:
            return None
        try:
            return await lookup(self._reader.fetch, "sqlite", bucket, key,
                                want_folder=want_folder)
        except (Busy, sqlite3.Error):
            # Refused for now, or failing: the trio side's read retries it and
            # reports a failure in its own terms (an outage, a logged error).
            return None

    async def version(self) -> int | None:
        """SQLite's ``data_version`` as this reader sees it: another number
        once anyone has committed since (this connection never writes), so
        a lookup made after an unchanged version still finds the same.
        None if this reader cannot tell."""
        if self._reader is None:
            return None
        try:
            rows = await self._reader.fetch("PRAGMA data_version", ())
        except (Busy, sqlite3.Error):
            return None
        return int(rows[0]["data_version"])

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self._reader is not None:
            self._reader.close()
