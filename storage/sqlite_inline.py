"""Tortoise's SQLite backend without aiosqlite's per-statement thread hop.

aiosqlite runs every statement (and every BEGIN/COMMIT) on a worker thread of
its own and hands the result back through ``call_soon_threadsafe``: two
thread switches per statement, a dozen per small PutObject.  Here the
asyncio loop already runs on a dedicated thread (the node's
:class:`~storage.bridge.AsyncioBridge`) and SQLite is used through a single
connection that Tortoise serialises with its own lock anyway, so the sqlite3
calls simply run inline on that loop.  ``sqlite3`` releases the GIL while a
statement runs, so the trio thread keeps serving meanwhile.

The cost: while SQLite waits on another process's write lock (busy timeout),
the asyncio loop waits too.  On a single connection every other database
call would queue behind that statement regardless; only the loop's non-DB
work (SFTP sessions) is held up for the length of such a wait.

Transactions begin ``IMMEDIATE``: a deferred transaction that reads first
and then writes cannot wait for the write lock once another connection (the
node's :mod:`storage.sqlite_writer`, another node process) committed after
its read began; SQLite fails the upgrade at once with "database is locked",
whatever the busy timeout.  Taking the lock up front makes such a transaction
queue on the busy timeout like any other writer.

Selected by :func:`storage.db.tortoise_config` as the engine
``storage.sqlite_inline``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite
from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError


class InlineConnection(aiosqlite.Connection):
    """An :class:`aiosqlite.Connection` whose calls run on the calling thread."""

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        # No worker thread: connect right here.
        return self._connect().__await__()

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _connect(database: str, **kwargs: Any) -> InlineConnection:
    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, **kwargs)

    return InlineConnection(connector, 64)


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    """A transaction that takes SQLite's write lock when it begins."""

    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class InlineSqliteClient(SqliteClient):
    """Tortoise's :class:`SqliteClient` over an :class:`InlineConnection`."""

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)

    async def create_connection(self, with_db: bool) -> None:
        if not self._connection:
            self._connection = await _connect(self.filename, isolation_level=None)
            self._connection._conn.row_factory = sqlite3.Row
            for pragma, val in self.pragmas.items():
                cursor = await self._connection.execute(f"PRAGMA {pragma}={val}")
                await cursor.close()
            await self._post_connect()


client_class = InlineSqliteClient
