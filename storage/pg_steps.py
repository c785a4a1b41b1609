"""PostgreSQL: units of work's steps as round trips, one unit at a time or
several side by side.

A unit of work (:data:`storage.sql.UnitOfWork`) yields one statement at a
time and waits for its result.  :func:`round_trips` turns its steps into
what goes to the server: a DEFER step waits and rides with the unit's next
statement as a data-modifying CTE.  :func:`drive` runs one unit's round
trips one after another; :func:`run_side_by_side` runs a group's units
(marked :func:`storage.sql.disjoint_by`, with distinct keys) in lockstep:
the units of a group mostly run the same statements in the same order, so
step *k* of every unit that is at the same statement goes in one pipelined
round trip (asyncpg's ``fetchmany``: a Bind and an Execute per unit, one
Sync), each row tagged with its unit.  A group of 16 PutObjects is then
three round trips instead of 48.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Generator, Sequence
from typing import Any, TypeVar

import asyncpg

from storage.sql import DEFER, FETCH, INSERT, MANY, UnitOfWork

T = TypeVar("T")

#: (kind, statement with ``?`` placeholders, its parameters, deferred
#: writes to run as CTEs before it: (statement, parameters) each)
Trip = tuple[str, str, Sequence[Any], list[tuple[str, Sequence[Any]]]]

_QMARK = re.compile(r"\?")
#: The column that tags a row of a side-by-side step with its unit.
_UNIT = "_lockstep_unit"


@functools.lru_cache(maxsize=2048)
def numbered(statement: str) -> str:
    """A statement written with ``?`` placeholders, in PostgreSQL's ``$n``."""
    counter = iter(range(1, 10_000))
    return _QMARK.sub(lambda _m: f"${next(counter)}", statement)


@functools.lru_cache(maxsize=256)
def _returning_id(statement: str) -> str:
    return numbered(statement + " RETURNING id")


def _rowcount(status: str) -> int:
    # "UPDATE 3", "DELETE 0", "INSERT 0 1": the count is the last word.
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


def _starts_with(statement: str, word: str) -> bool:
    return statement.lstrip()[:len(word)].upper() == word


def _foldable(deferred: list[tuple[str, Sequence[Any]]], kind: str, statement: str) -> bool:
    """Whether the deferred writes may go as CTEs of ``statement``: PostgreSQL
    refuses a data-modifying CTE inside another WITH, and into a recursive one."""
    head = statement.lstrip()
    return (kind != MANY and not any(_starts_with(d, "WITH ") for d, _ in deferred)
            and not (_starts_with(head, "WITH ")
                     and _starts_with(head[5:], "RECURSIVE ")))


def folded(deferred: list[tuple[str, Sequence[Any]]], statement: str,
           params: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """``statement`` with the deferred writes before it as data-modifying
    CTEs (one statement, one round trip); :func:`_foldable` said it may."""
    if not deferred:
        return statement, params
    ctes = ", ".join(f"_deferred{i} AS ({d})" for i, (d, _) in enumerate(deferred))
    head = statement.lstrip()
    # A statement with a WITH of its own gets the CTEs spliced into it.
    joined = (f"WITH {ctes}, {head[5:]}" if _starts_with(head, "WITH ")
              else f"WITH {ctes} {head}")
    return joined, [p for _, ps in deferred for p in ps] + list(params)


def round_trips(work: UnitOfWork[T]) -> Generator[Trip, Any, T]:
    """``work``'s steps as round trips, each given its result back.

    A DEFER step waits and goes with the unit's next statement, as a
    data-modifying CTE of it (PostgreSQL runs such a CTE to completion
    whether or not the statement reads it), or alone before the unit ends:
    a PutObject's event row rides with its charge.
    """
    result: Any = None
    deferred: list[tuple[str, Sequence[Any]]] = []
    while True:
        try:
            kind, statement, params = work.send(result)
        except StopIteration as stop:
            for d, ps in deferred:
                yield ("execute", d, ps, [])
            return stop.value
        if kind == DEFER:
            deferred.append((statement, params))
            result = None
            continue
        if deferred and not _foldable(deferred, kind, statement):
            for d, ps in deferred:
                yield ("execute", d, ps, [])
            deferred = []
        result = yield (kind, statement, params, deferred)
        deferred = []


async def run_trip(conn: asyncpg.Connection, trip: Trip) -> Any:
    """One round trip; the result its unit expects (see :mod:`storage.sql`)."""
    kind, statement, params, deferred = trip
    statement, params = folded(deferred, statement, params)
    if kind == FETCH:
        return [dict(r) for r in await conn.fetch(numbered(statement), *params)]
    if kind == MANY:
        await conn.executemany(numbered(statement), [tuple(r) for r in params])
        return None
    if kind == INSERT:
        return await conn.fetchval(_returning_id(statement), *params)
    return _rowcount(await conn.execute(numbered(statement), *params))


async def drive(conn: asyncpg.Connection, work: UnitOfWork[T]) -> T:
    """Run a unit of work on an asyncpg connection, one round trip after
    another; its result."""
    trips = round_trips(work)
    result: Any = None
    while True:
        try:
            trip = trips.send(result)
        except StopIteration as stop:
            return stop.value
        result = await run_trip(conn, trip)


def _shareable(trip: Trip) -> bool:
    """Whether units at ``trip`` may share a round trip: rows come back (to
    be tagged), and the statement can be a CTE (no WITH of its own)."""
    kind, statement, _, _ = trip
    return kind in (FETCH, INSERT) and not _starts_with(statement, "WITH ")


async def run_side_by_side(conn: asyncpg.Connection, works: Sequence[UnitOfWork[Any]]
                           ) -> list[Any]:
    """Run units of work in the open transaction in lockstep; their results.

    Only for units whose statements may interleave (:func:`storage.sql.disjoint_by`
    with distinct keys).  Each round, the units at the same statement (and
    the same deferred writes) share one pipelined round trip; the others run
    alone.  The first error, the database's or a unit's, is raised as it is
    and leaves the transaction to be rolled back.
    """
    trips = [round_trips(w) for w in works]
    values: list[Any] = [None] * len(works)
    waiting: dict[int, Trip] = {}

    def advance(i: int, result: Any) -> None:
        try:
            waiting[i] = trips[i].send(result)
        except StopIteration as stop:
            values[i] = stop.value
            waiting.pop(i, None)

    for i in range(len(works)):
        advance(i, None)
    while waiting:
        rounds: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
        for i, (kind, statement, _, deferred) in waiting.items():
            rounds.setdefault((kind, statement, tuple(d for d, _ in deferred)), []).append(i)
        results: dict[int, Any] = {}
        for members in rounds.values():
            if len(members) > 1 and _shareable(waiting[members[0]]):
                shared = await _run_shared(conn, [waiting[i] for i in members])
                results.update(zip(members, shared, strict=True))
            else:
                for i in members:
                    results[i] = await run_trip(conn, waiting[i])
        for i, result in results.items():
            advance(i, result)
    return values


async def _run_shared(conn: asyncpg.Connection, trips: list[Trip]) -> list[Any]:
    """One statement for several units in one round trip: the statement as a
    CTE whose rows come back tagged with their unit's place in ``trips``."""
    kind, statement, _, _ = trips[0]
    if kind == INSERT:
        statement += " RETURNING id"
    tagged = (f"WITH _lockstep_rows AS ({statement}) "
              f"SELECT CAST(? AS integer) AS {_UNIT}, * FROM _lockstep_rows")
    args = []
    for n, (_, _, params, deferred) in enumerate(trips):
        text, all_params = folded(deferred, tagged, [*params, n])
        args.append(all_params)
    rows: list[list[dict[str, Any]]] = [[] for _ in trips]
    for record in await conn.fetchmany(numbered(text), args):
        row = dict(record)
        rows[row.pop(_UNIT)].append(row)
    if kind == INSERT:
        return [r[0]["id"] if r else None for r in rows]
    return rows
