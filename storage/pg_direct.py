"""PostgreSQL's hot path: raw asyncpg connections and group commit.

Profiled with py-spy on a node at PUT 4 KiB, c=16 (2-core machine, load ~4),
the ORM path spent its time in round trips: a PutObject took about eleven
(pool acquire, BEGIN, six or eight statements, COMMIT, and the pooled
connection's ``reset`` on release: ``SELECT pg_advisory_unlock_all(); CLOSE
ALL; UNLISTEN *; RESET ALL``, alone 9 % of the node's samples), each a
``send`` to the server (28 % of the samples, in the kernel) and a wait of
~200 us for the backend to be scheduled; Tortoise's wrappers around each
statement were another ~5 %.  The node's CPU per PUT was 2.8-3.2 ms, per
GET 0.75-0.8 ms.

Here, on the bridge's asyncio loop (the one-bridge rule holds):

* reads run on a free list of connections (:class:`_Readers`, not an
  asyncpg pool: its acquire and release cost a tenth of a GET's
  interpreter time); asyncpg prepares each statement once per connection
  and reuses it;
* writes are group-committed like :mod:`storage.sqlite_writer`: the units
  of work that arrive while a group is in flight share the next
  transaction on one connection, each inside its own savepoint, so a unit
  that fails (a condition, the quota, a lost race, a deadlock) rolls back
  alone and the others commit.  At most :data:`WRITERS` groups are in
  flight, one connection each; two groups of one node may wait for each
  other's row locks (the account's, mostly), and a deadlock between them
  is retried like one between nodes.

Units of work are the same :data:`storage.sql.UnitOfWork` generators that
run on SQLite.  A PutObject was one read (the hot path's one statement)
and, inside a group, four statements and one savepoint round trip (five on
an overwrite); the node's CPU per PUT 2.1-2.3 ms, per GET 0.6-0.7 ms in the
same runs.  What is left is latency: on a loaded 2-core machine each round
trip waits for the server's process to be scheduled.  Sampled in
pg_stat_activity (PUT 4 KiB, c=16), the writer backends spent a third of
their time idle in a transaction, waiting for the node's next statement.
So, fewer round trips:

* a DEFER step (the event row) goes with the unit's next statement as a
  data-modifying CTE (:func:`drive`);
* a group of units that can be made anew (relayable ones: functions of
  their arguments, :func:`remaker`) runs without savepoints, and only if
  one of them fails is it rolled back and run again with them.  Alternated
  A/B runs: PUTs/s 112 % and 131 % of the savepoint-per-unit groups;
* a node's secondary processes relay their commits to the primary
  (:mod:`storage.write_relay`), so one writer per node takes the
  account's row lock.

A PutObject's unit is now three round trips (four on an overwrite).  And
a group of PutObjects of distinct keys runs side by side
(:mod:`storage.pg_steps`): each step of every unit in one pipelined round
trip, so a group of any size is BEGIN, three or four round trips, COMMIT.
Alternated A/B runs (PUT 4 KiB, c=16, 2 processes, load 6-8): 139 % of
the PUTs/s, node CPU per PUT 1,140 us against 1,565.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import outcome

from storage.pg_steps import drive, run_side_by_side
from storage.sql import UnitOfWork

T = TypeVar("T")

#: Connections for reads (a GET holds one for one statement).
READ_CONNECTIONS = 4
#: Write transactions in flight at once, one connection each.  Every commit
#: of an account updates the account's row, so concurrent groups of one
#: account wait for each other there; with units one after another, 1, 3
#: and 6 writers (groups of at most 1 or 8) measured the same (300-400
#: commits/s under load ~4).  Side by side, a group holds that row only for
#: its last round trip and COMMIT, and a second group's first round trips
#: overlap them: alternated A/B runs (PUT 4 KiB, c=16, load 11-17) 118 % and
#: 140 % of the PUTs/s of one writer, node CPU per PUT the same.
WRITERS = 2
#: Units of work one transaction takes at most.
MAX_GROUP = 64


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Nothing to reset: the hot path leaves no session state behind (a
    transaction still open is rolled back by asyncpg itself)."""


#: Groups that take a savepoint per unit after one that had to (a unit of
#: it failed): failures come in runs (a client retrying a refused write).
CAUTIOUS_GROUPS = 16

Remake = Callable[[], UnitOfWork[Any]]
#: What :meth:`PgDirect.write` takes: the unit, its remaker, its disjoint key.
Unit = tuple[UnitOfWork[Any], Remake | None, Hashable | None]


def remaker(fn: Callable[..., UnitOfWork[Any]], args: Sequence[Any],
            kwargs: Mapping[str, Any]) -> Remake:
    """Makes ``fn(*args, **kwargs)`` anew, its list arguments (out-parameters,
    as :mod:`storage.write_relay` has them) cut back to what they hold now.
    Only for units that are functions of their arguments: relayable ones."""
    lists = [(a, len(a)) for a in (*args, *kwargs.values()) if type(a) is list]

    def again() -> UnitOfWork[Any]:
        for a, n in lists:
            del a[n:]
        return fn(*args, **kwargs)
    return again


class _Job:
    __slots__ = ("again", "future", "key", "work")

    def __init__(self, work: UnitOfWork[Any], future: asyncio.Future[Any],
                 again: Remake | None, key: Hashable | None) -> None:
        self.work = work
        self.future = future
        self.again = again
        self.key = key


def _side_by_side(group: list[_Job]) -> bool:
    """Whether a group's units may run in lockstep: each marked
    :func:`storage.sql.disjoint_by`, no two with the same key."""
    keys = {job.key for job in group}
    return None not in keys and len(keys) == len(group)


class PgDirect:
    """A node's raw PostgreSQL connections.  Every method runs on the bridge loop."""

    def __init__(self, credentials: Mapping[str, Any]) -> None:
        self._credentials = {k: credentials[k] for k in
                             ("host", "port", "user", "password", "database")
                             if credentials.get(k) is not None}
        self._pool: asyncpg.Pool | None = None
        self._readers = _Readers(self._credentials)
        self._queue: list[_Job] = []
        self._writers = 0  # write loops running
        self._tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps weak refs
        #: Group transactions run, and the units they held (for tests and tuning).
        self.groups = 0
        self.units = 0
        #: Groups run again with savepoints after a unit failed without.
        self.fallbacks = 0
        #: Groups whose units ran side by side (storage.pg_steps).
        self.side_by_side = 0
        self._cautious = 0  # groups left to run with savepoints straight away

    @property
    def waiting(self) -> int:
        """Units queued for the next group."""
        return len(self._queue)

    async def open(self) -> None:
        """Create the pool (one connection now, so a bad address fails here)."""
        self._pool = await asyncpg.create_pool(
            **self._credentials, min_size=1, max_size=WRITERS, reset=_no_reset)

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        await self._readers.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 10)

    def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConnectionError("the PostgreSQL connections are closed")
        return self._pool

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``fn(fetch, "postgres", *args)`` on one reader connection."""
        self._open_pool()  # closed: refuse as the writes do
        conn = await self._readers.acquire()
        healthy = False
        try:
            async def fetch(statement: str, params: Sequence[Any]) -> list[dict[str, Any]]:
                # Dicts, as the ORM's fetch gave: callers may compare or
                # serialise rows (an asyncpg Record is no Mapping).
                return [dict(r) for r in await conn.fetch(statement, *params)]
            value = await fn(fetch, "postgres", *args, **kwargs)
            healthy = True
            return value
        except asyncpg.PostgresError:
            healthy = True  # the server refused a statement: the connection is fine
            raise
        except asyncpg.InterfaceError as exc:
            if conn.is_closed():  # lost under the read: the database is away
                raise ConnectionResetError("the PostgreSQL connection was closed") from exc
            raise
        finally:
            self._readers.release(conn, healthy)

    async def write(self, work: UnitOfWork[T], again: Remake | None = None,
                    key: Hashable | None = None) -> T:
        """Run ``work`` in the next group transaction; its result or its error.

        ``again`` makes the unit anew (see :func:`remaker`): a group of such
        units runs without savepoints and, if one fails, again with them.
        Units of such a group that all have a ``key`` (:func:`storage.sql.disjoint_key`),
        each a different one, run side by side (:mod:`storage.pg_steps`).
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(work, future, again, key))
        if self._writers < WRITERS:
            self._writers += 1
            task = asyncio.get_running_loop().create_task(self._write_loop())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # The group commits or rolls back as a whole whatever happens to this
        # caller: its outcome must reach the caller, not be cancelled away.
        return await asyncio.shield(future)

    async def write_many(self, works: list[Unit]) -> list[outcome.Outcome[Any]]:
        """:meth:`write` for each ``(work, again, key)`` of ``works`` at once
        (they may share a group); their outcomes, in order."""
        async def one(work: UnitOfWork[Any], again: Remake | None,
                      key: Hashable | None) -> outcome.Outcome[Any]:
            try:
                return outcome.Value(await self.write(work, again, key))
            except Exception as exc:
                return outcome.Error(exc)
        return list(await asyncio.gather(*(one(*unit) for unit in works)))

    def _take_group(self) -> list[_Job]:
        """The next group: the first unit queued and those after it (up to
        MAX_GROUP) that, like it, can or cannot be made anew.

        One unit that cannot (a background worker's: the search index's
        cursor, a webhook claim) would make every unit of its group take a
        savepoint and none run side by side; it goes in a group of its own.
        A bench run of PUT 4 KiB had 65 such groups.
        """
        remakeable = self._queue[0].again is not None
        group: list[_Job] = []
        rest: list[_Job] = []
        for job in self._queue:
            if len(group) < MAX_GROUP and (job.again is not None) == remakeable:
                group.append(job)
            else:
                rest.append(job)
        self._queue = rest
        return group

    async def _write_loop(self) -> None:
        try:
            # One loop iteration lets the writes submitted alongside join.
            await asyncio.sleep(0)
            while self._queue:
                await self._commit_group(self._take_group())
        finally:
            self._writers -= 1
            if not self._writers:  # only left over if the loop is stopping
                for job in self._queue:
                    _settle(job, outcome.Error(ConnectionError("the writer stopped")))
                self._queue.clear()

    async def _run_optimistic(self, conn: asyncpg.Connection, group: list[_Job]
                              ) -> list[outcome.Outcome[Any]] | None:
        side_by_side = _side_by_side(group)
        self.side_by_side += side_by_side
        return await _run_optimistic(conn, group, side_by_side)

    async def _commit_group(self, group: list[_Job]) -> None:
        self.groups += 1
        self.units += len(group)
        results: list[outcome.Outcome[Any]] = []
        try:
            async with self._open_pool().acquire() as conn:
                if len(group) == 1:
                    results = [await _run_alone(conn, group[0].work)]
                elif self._cautious or any(job.again is None for job in group):
                    self._cautious = max(0, self._cautious - 1)
                    results = await _run_grouped(conn, group)
                elif (optimistic := await self._run_optimistic(conn, group)) is not None:
                    results = optimistic
                else:
                    # A unit failed and the group rolled back: once more,
                    # each unit in a savepoint, so that one fails alone.
                    self.fallbacks += 1
                    self._cautious = CAUTIOUS_GROUPS
                    for job in group:
                        job.work.close()
                        assert job.again is not None
                        job.work = job.again()
                    results = await _run_grouped(conn, group)
        except Exception as exc:
            # The transaction as a whole failed (connection lost, COMMIT
            # refused): nothing of the group is committed.
            results = [outcome.Error(exc)] * len(group)
            for job in group:
                job.work.close()
        for job, result in zip(group, results, strict=True):
            _settle(job, result)


async def _run_alone(conn: asyncpg.Connection, work: UnitOfWork[Any]) -> outcome.Outcome[Any]:
    """One unit in a transaction of its own (no savepoint round trips)."""
    await conn.execute("BEGIN")
    try:
        value = await drive(conn, work)
    except Exception as exc:
        await conn.execute("ROLLBACK")
        return outcome.Error(exc)
    await conn.execute("COMMIT")
    return outcome.Value(value)


async def _run_optimistic(conn: asyncpg.Connection, group: list[_Job], side_by_side: bool
                          ) -> list[outcome.Outcome[Any]] | None:
    """Several units in one transaction without savepoints, a round trip
    less per unit, one after another or ``side_by_side``
    (:func:`storage.pg_steps.run_side_by_side`); None, with everything
    rolled back, if one failed."""
    values: list[outcome.Outcome[Any]] = []
    await conn.execute("BEGIN")
    try:
        try:
            if side_by_side:
                values = [outcome.Value(v) for v in
                          await run_side_by_side(conn, [job.work for job in group])]
            else:
                for job in group:
                    values.append(outcome.Value(await drive(conn, job.work)))
        except Exception:
            await conn.execute("ROLLBACK")
            return None
        await conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.execute("ROLLBACK")
        for job in group:
            job.work.close()
        raise
    return values


async def _run_grouped(conn: asyncpg.Connection, group: list[_Job]) -> list[outcome.Outcome[Any]]:
    """Several units in one transaction, each in a savepoint.  The control
    statements of a unit boundary go in one simple query (one round trip)."""
    results: list[outcome.Outcome[Any]] = []
    await conn.execute("BEGIN; SAVEPOINT unit")
    try:
        for i, job in enumerate(group):
            try:
                value = await drive(conn, job.work)
            except Exception as exc:
                # The savepoint stays in place after ROLLBACK TO: the next
                # unit starts from here.
                await conn.execute("ROLLBACK TO SAVEPOINT unit")
                results.append(outcome.Error(exc))
                continue
            results.append(outcome.Value(value))
            if i < len(group) - 1:
                # A new savepoint: what this unit did stays whatever follows.
                await conn.execute("RELEASE SAVEPOINT unit; SAVEPOINT unit")
        await conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.execute("ROLLBACK")
        for job in group[len(results):]:
            job.work.close()
        raise
    return results


class _Readers:
    """The connections reads take, one read at a time each.

    A free list rather than an asyncpg pool: the pool's acquire and release
    (timeouts, shielded futures, its reset hook) cost a PostgreSQL GET about
    a tenth of its interpreter time.  A connection that a read left in an
    unknown state (an error that is not the server refusing a statement, a
    cancellation) is closed instead of reused.
    """

    def __init__(self, credentials: Mapping[str, Any]) -> None:
        self._credentials = credentials
        self._idle: list[asyncpg.Connection] = []
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection]] = (
            collections.deque())
        self._open = 0  # connections made and not closed
        self._closed = False

    async def acquire(self) -> asyncpg.Connection:
        """An idle connection, a new one (up to READ_CONNECTIONS), or the
        next one released."""
        if self._closed:
            raise ConnectionError("the PostgreSQL connections are closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._open -= 1  # the server closed it while it was idle
        if self._open < READ_CONNECTIONS:
            self._open += 1
            try:
                return await asyncpg.connect(**self._credentials)
            except BaseException:
                self._open -= 1
                raise
        waiter: asyncio.Future[asyncpg.Connection] = (
            asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result(), True)  # handed over as we were cancelled
            raise

    def release(self, conn: asyncpg.Connection, healthy: bool) -> None:
        """Give ``conn`` back (to the next waiter first); close it if not
        ``healthy`` or still inside a transaction."""
        if not healthy or self._closed or conn.is_closed() or conn.is_in_transaction():
            self._open -= 1
            conn.terminate()
            if self._waiters and not self._closed:
                # The waiter makes a connection of its own instead.
                self._wake_to_connect()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _wake_to_connect(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                task = asyncio.get_running_loop().create_task(self._connect_for(waiter))
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)
                return

    async def _connect_for(self, waiter: asyncio.Future[asyncpg.Connection]) -> None:
        self._open += 1
        try:
            conn = await asyncpg.connect(**self._credentials)
        except Exception as exc:
            self._open -= 1
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if waiter.done():
            self.release(conn, True)
        else:
            waiter.set_result(conn)

    async def close(self) -> None:
        """Close the idle connections now and the others as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the PostgreSQL connections are closed"))
        self._waiters.clear()


# Tasks the loop would otherwise only hold weakly.
_BACKGROUND: set[asyncio.Task[None]] = set()


def _settle(job: _Job, result: outcome.Outcome[Any]) -> None:
    if job.future.done():
        return
    if isinstance(result, outcome.Error):
        job.future.set_exception(result.error)
    elif isinstance(result, outcome.Value):
        job.future.set_result(result.value)
