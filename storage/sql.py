"""Small raw-SQL helpers for statements Tortoise's query builder cannot say
(conditional increments, upserts).  Runs on the asyncio side of the bridge."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

_QMARK = re.compile(r"\?")


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
