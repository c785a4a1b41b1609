"""The metadata database: Tortoise setup, migrations and units of work.

Tortoise runs on the asyncio side of the :class:`~storage.bridge.AsyncioBridge`.
Callers pass :meth:`Database.run` a coroutine function that does one whole unit
of work (usually one transaction); it runs there and its result comes back to
trio.  :meth:`Database.read` runs a read-only unit of work written against a
plain ``fetch(sql, params)``: on SQLite right on the calling thread
(:mod:`storage.sqlite_reader`), on PostgreSQL through the bridge on a raw
asyncpg connection (:mod:`storage.pg_direct`).  :meth:`Database.write` runs a
write transaction written as steps (:data:`storage.sql.UnitOfWork`): on
SQLite on the group-committing writer (:mod:`storage.sqlite_writer`), on
PostgreSQL group-committed through the bridge (:mod:`storage.pg_direct`).
In a node's secondary worker process on SQLite, the hot writes go to the
primary's writer instead (:mod:`storage.write_relay`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import asyncpg
import outcome
import trio
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import BaseORMException, IntegrityError
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.transactions import in_transaction

from storage import sql
from storage.bridge import AsyncioBridge
from storage.errors import ServiceUnavailable, StorageError
from storage.pg_direct import PgDirect, Unit, remaker
from storage.ratelog import ThrottledLog, ThrottleFilter
from storage.sqlite_reader import Busy, SqliteReader
from storage.sqlite_writer import SqliteWriter
from storage.write_relay import WriteRelayClient, is_relayable

P = ParamSpec("P")
T = TypeVar("T")
# fetch(sql with ? placeholders on SQLite / $n on PostgreSQL, params) -> rows
# whose columns are readable by name.
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Mapping[str, Any]]]]
ReadWork = Callable[Concatenate[Fetch, str, P], Awaitable[T]]

MODELS_MODULE = "storage.models"
MIGRATIONS_MODULE = "storage.migrations"

log = logging.getLogger("cloudstorage.db")
# Every request fails the same way while the database is away: one line per
# cause every few seconds, not one per request.
_outage_log = ThrottledLog(log)
# asyncpg's pool logs a full traceback each time it fails to reconnect.
_POOL_LOG_FILTER = ThrottleFilter()
# How long clients are told to wait before retrying while the database is away.
RETRY_AFTER_SECONDS = 5


def _asyncpg_unavailable() -> tuple[type[BaseException], ...]:
    """asyncpg's errors that mean "the server cannot be used now" (none without asyncpg)."""
    try:
        import asyncpg
    except ImportError:
        return ()
    return (
        asyncpg.PostgresConnectionError,  # SQLSTATE class 08
        asyncpg.CannotConnectNowError,  # starting up / shutting down
        asyncpg.OperatorInterventionError,  # class 57: admin shutdown, crash
        asyncpg.TooManyConnectionsError,
        asyncpg.ConnectionDoesNotExistError,  # closed in the middle of an operation
    )


_ASYNCPG_UNAVAILABLE = _asyncpg_unavailable()
# SQLite's own words for a database file it cannot use at all.
_SQLITE_UNAVAILABLE = ("unable to open database", "disk i/o error")


def unavailable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` means the database cannot be reached, or None for any other error.

    Follows explicit causes (``raise ... from``) and, for Tortoise's wrappers,
    which raise without ``from``, the implicit context too.  Errors of the
    storage core itself are never reinterpreted.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and not isinstance(
            current, StorageError):
        seen.add(id(current))
        if isinstance(current, (OSError, *_ASYNCPG_UNAVAILABLE)):
            # Refused, reset, timed out: the server (or the path to it) is away.
            if isinstance(current, OSError) and current.errno:
                return os.strerror(current.errno).lower()
            return str(current) or type(current).__name__
        if isinstance(current, sqlite3.OperationalError | BaseORMException) and any(
                words in str(current).lower() for words in _SQLITE_UNAVAILABLE):
            return str(current)
        following = current.__cause__
        if following is None and isinstance(current, BaseORMException):
            following = current.__context__
        current = following
    return None


def _pg_unit(fn: Callable[..., sql.UnitOfWork[Any]], args: Sequence[Any],
             kwargs: dict[str, Any]) -> Unit:
    """``fn(*args, **kwargs)`` for PostgreSQL's group commit, with the means to
    make it anew when ``fn`` is relayable (a function of its arguments: see
    :func:`storage.pg_direct.remaker`), so its group may skip savepoints,
    and its :func:`storage.sql.disjoint_key`, so it may run side by side."""
    if not is_relayable(fn):
        return fn(*args, **kwargs), None, None
    return fn(*args, **kwargs), remaker(fn, args, kwargs), sql.disjoint_key(fn, args, kwargs)


class DatabaseUnavailable(Exception):
    """The metadata database cannot be reached or opened (one-line message)."""


def tortoise_config(url: str) -> dict[str, Any]:
    """The Tortoise configuration for a ``sqlite://`` or ``postgres://`` URL."""
    return {
        "connections": {"default": _connection_url(url)},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection_url(url: str) -> str | dict[str, Any]:
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").split("?", 1)[0]
        # Several node processes share one SQLite file: WAL (Tortoise's default)
        # plus a generous busy timeout so writers queue instead of failing.
        # The statements run inline on the bridge's loop (storage.sqlite_inline)
        # rather than one aiosqlite thread hop each.
        info = expand_db_url(f"sqlite://{path}?busy_timeout=15000&synchronous=NORMAL")
        info["engine"] = "storage.sqlite_inline"
        # Hot pages stay in this connection's cache; reads map the file.
        info["credentials"].update(cache_size=-65536, mmap_size=268435456, temp_store="MEMORY")
        return info
    if url.startswith(("postgresql://", "psql://")):
        return "postgres://" + url.split("://", 1)[1]
    return url


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


class Database:
    """One node's handle on the metadata database."""

    def __init__(self, url: str, bridge: AsyncioBridge) -> None:
        self.url = url
        self.bridge = bridge
        self.dialect = "sqlite" if url.startswith("sqlite://") else "postgres"
        self._reader: SqliteReader | None = None
        self._writer: SqliteWriter | None = None
        self._relay: WriteRelayClient | None = None
        self._pg: PgDirect | None = None
        if self.dialect == "postgres":
            logging.getLogger("asyncpg.pool").addFilter(_POOL_LOG_FILTER)

    async def open(self, *, migrate: bool = True) -> None:
        """Connect (and by default bring the schema up to date)."""
        if self.dialect == "sqlite":
            path = Path(self.url.removeprefix("sqlite://").split("?", 1)[0])
            if str(path) != ":memory:":
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise DatabaseUnavailable(
                        f"metadata database {path}: cannot create its folder: {exc.strerror}"
                    ) from None
        try:
            await self.bridge.publish_context(self._open_async, migrate)
        except DatabaseUnavailable:
            raise
        except (OSError, ConnectionError) as exc:
            raise DatabaseUnavailable(
                f"metadata database {describe(self.url)} is unreachable: "
                f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
            ) from None
        except Exception as exc:
            raise DatabaseUnavailable(
                f"metadata database {describe(self.url)}: {type(exc).__name__}: {exc}"
            ) from None
        if self.dialect == "sqlite" and str(path) != ":memory:":
            self._reader = SqliteReader(str(path))
            self._reader.open()
            self._writer = SqliteWriter(str(path))
            self._writer.open()
        elif self.dialect == "postgres":
            url = _connection_url(self.url)
            assert isinstance(url, str)
            pg = PgDirect(expand_db_url(url)["credentials"])
            try:
                await self.bridge.run(pg.open)
            except Exception as exc:
                raise DatabaseUnavailable(
                    f"metadata database {describe(self.url)}: {type(exc).__name__}: {exc}"
                ) from None
            self._pg = pg

    async def _open_async(self, migrate: bool) -> None:
        config = tortoise_config(self.url)
        # Tortoise caches compiled statements by connection *name*; a process
        # that opens SQLite and then PostgreSQL (the test suite) must not reuse
        # SQLite's placeholders.
        EXECUTOR_CACHE.clear()
        if migrate:
            await tortoise_migrate(config=config)
        # The migration API initialises apps without query support: a normal
        # init afterwards builds the models' querysets and connections.
        await Tortoise.init(config=config)
        # Touch the connection now so an unreachable server fails here, once.
        await connections.get("default").execute_query("SELECT 1")

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._writer is not None:
            # Lets the group in progress finish: a few milliseconds.
            self._writer.close()
            self._writer = None
        if self._pg is not None:
            pg, self._pg = self._pg, None
            with contextlib.suppress(Exception):
                await self.bridge.publish_context(pg.close)
        # Closing must never mask the error that made us close.
        with contextlib.suppress(Exception):
            await self.bridge.publish_context(Tortoise.close_connections)

    async def ping(self) -> None:
        """One trivial query: raises if the database does not answer."""
        await self.run(_ping)

    async def run(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run one unit of work (a coroutine function using Tortoise) and return its result.

        Raises :class:`~storage.errors.ServiceUnavailable` when the database
        cannot be reached (as do :meth:`read` and :meth:`write`).
        """
        try:
            return await self.bridge.run(fn, *args, **kwargs)
        except Exception as exc:
            if (away := self._unavailable(exc)) is None:
                raise
            raise away from exc

    async def read(self, fn: ReadWork[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(fetch, dialect, *args)``: a read-only unit of work in raw SQL.

        It must only read: on SQLite it runs on the calling thread against a
        query-only connection, outside any transaction of the ORM's.
        """
        try:
            if self._reader is not None:
                try:
                    # A unit of work that reads rows by position (its
                    # ``positional`` attribute) is spared the rows' dicts.
                    fetch = (self._reader.fetch_values if getattr(fn, "positional", False)
                             else self._reader.fetch)
                    return await fn(fetch, "sqlite", *args, **kwargs)  # type: ignore[arg-type]
                except Busy:
                    pass
            if self._pg is not None:
                return await self.bridge.run(
                    self._pg.read, fn, *args, **kwargs)  # type: ignore[arg-type]
            # (mypy cannot follow a ParamSpec through a second wrapper)
            return await self.bridge.run(
                _read_with_orm_connection, fn, *args, **kwargs)  # type: ignore[arg-type]
        except Exception as exc:
            if (away := self._unavailable(exc)) is None:
                raise
            raise away from exc

    async def write(self, fn: Callable[P, sql.UnitOfWork[T]], /, *args: P.args,
                    **kwargs: P.kwargs) -> T:
        """Run the unit of work ``fn(*args)`` in a transaction of its own.

        On SQLite it may share a group commit with concurrent units, each in
        its own savepoint, so a unit that raises rolls back alone.  A
        constraint violation raises Tortoise's IntegrityError on both
        databases.
        """
        try:
            if self._relay is not None and self._relay.connected and is_relayable(fn):
                return await self._relay.write(fn, *args, **kwargs)
            if self._writer is not None:
                try:
                    return await self._writer.run(fn(*args, **kwargs))
                except sqlite3.IntegrityError as exc:
                    raise IntegrityError(str(exc)) from exc
            if self._pg is not None:
                # Shielded like the SQLite writer: the caller must learn
                # whether its write committed.
                with trio.CancelScope(shield=True):
                    try:
                        work, again, key = _pg_unit(fn, args, kwargs)
                        return await self.bridge.run(self._pg.write, work, again, key)
                    except asyncpg.IntegrityConstraintViolationError as exc:
                        raise IntegrityError(str(exc)) from exc
            return await self.bridge.run(
                _write_with_orm_connection, fn, *args, **kwargs)  # type: ignore[arg-type]
        except Exception as exc:
            if (away := self._unavailable(exc)) is None:
                raise
            raise away from exc

    async def write_many(
        self, calls: list[tuple[Callable[..., sql.UnitOfWork[Any]], tuple[Any, ...],
                                dict[str, Any]]]
    ) -> list[outcome.Outcome]:
        """Run each ``fn(*args, **kwargs)`` of ``calls`` as :meth:`write`
        would, committed together at once (on PostgreSQL queued for the next
        group together, in one bridge crossing); their outcomes, in order."""
        if self._pg is not None:
            works = [_pg_unit(fn, args, kwargs) for fn, args, kwargs in calls]
            with trio.CancelScope(shield=True):
                try:
                    pg_results = await self.bridge.run(self._pg.write_many, works)
                except Exception as exc:
                    away = self._unavailable(exc)
                    return [outcome.Error(away or exc)] * len(calls)
            return [self._mapped(r) for r in pg_results]
        if self._writer is None:
            return [await outcome.acapture(self.write, fn, *args, **kwargs)
                    for fn, args, kwargs in calls]
        try:
            results = await self._writer.run_many(
                [fn(*args, **kwargs) for fn, args, kwargs in calls])
        except Exception as exc:
            away = self._unavailable(exc)
            return [outcome.Error(away or exc)] * len(calls)
        return [self._mapped(result) for result in results]

    def _mapped(self, result: outcome.Outcome) -> outcome.Outcome:
        """A SQLite unit's outcome with its error as :meth:`write` raises it."""
        if not isinstance(result, outcome.Error):
            return result
        exc = result.error
        if isinstance(exc, sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
            return outcome.Error(IntegrityError(str(exc)))
        away = self._unavailable(exc) if isinstance(exc, Exception) else None
        return result if away is None else outcome.Error(away)

    def relay_writes(self, relay: WriteRelayClient) -> None:
        """Have another process (this node's primary) run the relayable
        writes (:mod:`storage.write_relay`) while ``relay`` is connected."""
        self._relay = relay

    def _unavailable(self, exc: Exception) -> ServiceUnavailable | None:
        """A ServiceUnavailable if ``exc`` means the database is away (logged
        once per few seconds, not once per request), else None."""
        reason = unavailable_reason(exc)
        if reason is None:
            return None
        detail = f"metadata database {describe(self.url)} is unreachable: {reason}"
        _outage_log.log("database", detail)
        return ServiceUnavailable(
            "The metadata database is unreachable; please retry later.",
            cause="database", retry_after=RETRY_AFTER_SECONDS, detail=detail,
        )


async def _read_with_orm_connection(fn: Callable[..., Awaitable[T]], *args: Any,
                                    **kwargs: Any) -> T:
    conn = connections.get("default")
    return await fn(conn.execute_query_dict, conn.capabilities.dialect, *args, **kwargs)


async def _write_with_orm_connection(fn: Callable[..., sql.UnitOfWork[T]], *args: Any,
                                     **kwargs: Any) -> T:
    async with in_transaction() as conn:
        return await sql.drive(conn, fn(*args, **kwargs))


async def _ping() -> None:
    await connections.get("default").execute_query("SELECT 1")


# Used by ``tortoise -c storage.db.TORTOISE_ORM makemigrations`` (the `make
# migrations` target); the URL only matters for introspection.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")
