"""Read-only SQLite statements on the caller's own thread.

Every S3 request starts with one read of the metadata database (its key, its
bucket, the object: :mod:`storage.hotpath`).  Through the asyncio bridge that
read costs two thread switches, each waiting for the GIL behind a busy trio
thread, which made the bridge the limit on small requests.  In WAL mode a
reader never waits for writers (it reads the last committed snapshot), and
such a primary-key read takes tens of microseconds, so it runs right on the
trio thread instead.

Busy timeout 0: the rare moments a WAL reader can be refused (another
process recovering the WAL) raise :class:`Busy` at once and the caller goes
through the bridge, rather than stalling the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any


class Busy(Exception):
    """SQLite refused the read for now; retry it elsewhere."""


class SqliteReader:
    """One query-only connection to a SQLite file."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        # Column names by statement: cursor.description builds a tuple per
        # column on every call, a visible share of a one-row read.
        self._names: dict[str, list[str]] = {}

    def open(self) -> None:
        """Connect (after the schema exists: a reader creates nothing)."""
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in ("query_only=1", "busy_timeout=0", "cache_size=-16384",
                       "mmap_size=268435456"):
            conn.execute(f"PRAGMA {pragma}")
        self._conn = conn

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of one statement (async only to match the bridge's fetch)."""
        cursor, rows = self._run(sql, params)
        names = self._names.get(sql)
        if names is None or (rows and len(rows[0]) != len(names)):  # new, or `*` changed
            if len(self._names) >= 256:  # callers with ever-new statements
                self._names.clear()
            names = self._names[sql] = [d[0] for d in cursor.description]
        # Plain dicts: sqlite3.Row finds a column by name with a linear,
        # case-insensitive scan, on every access.
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def fetch_values(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one statement as tuples, in the statement's column order."""
        return self._run(sql, params)[1]

    def _run(self, sql: str, params: Sequence[Any]
             ) -> tuple[sqlite3.Cursor, list[tuple[Any, ...]]]:
        """Run one statement: its cursor and rows; Busy for a lock or a
        closed reader."""
        if self._conn is None:
            raise Busy("the reader is closed")
        try:
            cursor = self._conn.execute(sql, params)
            return cursor, cursor.fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Busy(str(exc)) from None
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
