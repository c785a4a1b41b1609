"""Small raw-SQL helpers for statements Tortoise's query builder cannot say
(conditional increments, upserts), and units of work written as steps.

A *unit of work* is a generator that yields :data:`Step` tuples (a statement
and its parameters) and receives each statement's result back, returning its
own result at the end.  It does no I/O itself, so the same unit runs on a
Tortoise connection (:func:`drive`, on the asyncio side of the bridge) or on
a plain ``sqlite3`` connection (:mod:`storage.sqlite_writer`).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Generator, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import trio
from tortoise.backends.base.client import BaseDBAsyncClient

_QMARK = re.compile(r"\?")

T = TypeVar("T")

#: Step kinds.  EXECUTE receives the number of rows changed, FETCH the rows
#: as dicts, MANY (one statement per parameter row) receives None, INSERT
#: (one row into a table whose key is ``id``) receives the new row's id:
#: SQLite's ``lastrowid`` rather than a ``RETURNING`` clause, which costs
#: SQLite about 6 us more per statement (measured on sqlite3 3.40).
EXECUTE, FETCH, MANY, INSERT = "execute", "fetch", "many", "insert"
#: DEFER is an EXECUTE whose result the unit ignores and whose rows the
#: unit's *next* statement neither reads nor writes: PostgreSQL may run it as
#: part of that statement (:mod:`storage.pg_direct`), one round trip less;
#: SQLite runs it at once, as an EXECUTE.  Its errors may surface at the next
#: step; either way the unit fails as a whole.
DEFER = "defer"
#: (kind, SQL with ``?`` placeholders, parameters; for MANY a list of rows)
Step = tuple[str, str, Sequence[Any]]
UnitOfWork = Generator[Step, Any, T]


F = TypeVar("F", bound=Callable[..., Any])
_DISJOINT = "_unit_disjoint_key"


def disjoint_by(key: Callable[..., Hashable]) -> Callable[[F], F]:
    """Mark a unit-of-work function whose units, for different values of
    ``key(*args, **kwargs)``, touch different rows but for commutative
    increments (usage, reference counts), appended rows (events) and rows
    they release only as their own ``DELETE ... RETURNING`` got them
    (:mod:`storage.refs`).  PostgreSQL may then run a group of such units
    with distinct keys step by step side by side (:mod:`storage.pg_steps`):
    any interleaving of their statements ends as one after the other would.
    """
    def mark(fn: F) -> F:
        setattr(fn, _DISJOINT, key)
        return fn
    return mark


def disjoint_key(fn: Callable[..., Any], args: Sequence[Any],
                 kwargs: Mapping[str, Any]) -> Hashable | None:
    """The :func:`disjoint_by` key of ``fn(*args, **kwargs)``; None if unmarked."""
    key = getattr(fn, _DISJOINT, None)
    return None if key is None else key(*args, **kwargs)


def dialect(conn: BaseDBAsyncClient) -> str:
    """``"sqlite"`` or ``"postgres"``."""
    return conn.capabilities.dialect


def _placeholders(conn: BaseDBAsyncClient, sql: str) -> str:
    if dialect(conn) == "postgres":
        counter = itertools.count(1)
        return _QMARK.sub(lambda _m: f"${next(counter)}", sql)
    return sql


async def execute(conn: BaseDBAsyncClient, sql: str, params: Sequence[Any] = ()) -> int:
    """Run one statement written with ``?`` placeholders; returns rows affected."""
    rowcount, _rows = await conn.execute_query(_placeholders(conn, sql), list(params))
    return rowcount


async def execute_many(conn: BaseDBAsyncClient, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run one statement for each parameter row."""
    if rows:
        await conn.execute_many(_placeholders(conn, sql), [list(r) for r in rows])


async def insert(conn: BaseDBAsyncClient, sql: str, params: Sequence[Any] = ()) -> int:
    """Run one INSERT (``?`` placeholders) of a row keyed by ``id``; the new id."""
    if dialect(conn) == "postgres":
        rows = await fetch(conn, sql + " RETURNING id", params)
        return int(rows[0]["id"])
    return int(await conn.execute_insert(sql, list(params)))


async def fetch(conn: BaseDBAsyncClient, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    """Run a query written with ``?`` placeholders; rows as dicts."""
    return await conn.execute_query_dict(_placeholders(conn, sql), list(params))


_EMPTY_JSON = frozenset({"{}", "[]", b"{}", b"[]"})


def json_column(value: Any, default: Any) -> Any:
    """A JSON column of a raw row: text on SQLite and asyncpg, parsed here.

    ``default`` stands for NULL, and its type for the empty documents most
    rows hold, which skip the parser.
    """
    if value is None:
        return default
    if isinstance(value, str | bytes):
        if value in _EMPTY_JSON:
            return type(default)()
        return json.loads(value)
    return value


async def drive(conn: BaseDBAsyncClient, work: UnitOfWork[T]) -> T:
    """Run a unit of work's steps on a Tortoise connection; its result."""
    result: Any = None
    while True:
        try:
            kind, statement, params = work.send(result)
        except StopIteration as stop:
            return stop.value
        if kind == FETCH:
            result = await fetch(conn, statement, params)
        elif kind == MANY:
            await execute_many(conn, statement, params)
            result = None
        elif kind == INSERT:
            result = await insert(conn, statement, params)
        else:
            result = await execute(conn, statement, params)


#: Attempts of a transaction that keeps losing to concurrent ones.
RETRIES = 8


def is_retryable(exc: BaseException | None) -> bool:
    """A transaction the database aborted only because of a concurrent one
    (PostgreSQL deadlock 40P01 or serialization failure 40001)."""
    while exc is not None:
        if getattr(exc, "sqlstate", None) in ("40001", "40P01"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    also: Callable[[Exception], bool] | None = None,
    attempts: int = RETRIES,
) -> T:
    """Run ``call`` (one whole transaction) again while the database aborts it
    for a concurrent one, or while ``also`` says its error is such a conflict.

    Safe only for calls that are one transaction: an aborted attempt left
    nothing behind.  Backs off 1, 2, 4, ... ms (with jitter) between attempts.
    """
    for attempt in range(attempts):
        try:
            return await call()
        except Exception as exc:
            if attempt == attempts - 1 or not (is_retryable(exc) or (also and also(exc))):
                raise
        await trio.sleep(0.001 * 2**attempt * (1 + secrets.randbelow(100) / 100))
    raise AssertionError("unreachable")
