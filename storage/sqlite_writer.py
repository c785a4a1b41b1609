"""SQLite write transactions, committed in groups on the trio thread.

Every PutObject ends in one small write transaction.  Through the ORM on the
asyncio bridge it cost about 0.75 ms of interpreter time (the ORM's
transaction machinery, a task, two loop wake-ups) on top of SQLite's own
work.  Even on a plain ``sqlite3`` connection in a thread of its own, every
statement hands the GIL back and forth with the busy trio thread, which cost
more than the statements themselves.  So the statements run right on the
trio thread, like :mod:`storage.sqlite_reader`'s reads:

* Units of work queued in the same scheduling round share one transaction,
  each inside its own savepoint: a unit that fails (quota exceeded, a lost
  race on the latest version) rolls back alone, the others commit together.
* The inline connection never waits for a lock (busy timeout 0).  When
  another connection holds the write lock (the ORM's, another node process
  on the same file), the group goes to a worker thread whose connection
  waits for it, so the event loop never blocks on a lock.
* The inline connection never checkpoints (checkpoints fsync); the worker
  thread runs a passive checkpoint every so many commits, and again once
  writes pause, so that reads go back to the memory-mapped database file
  (a page still only in the WAL costs a read system call).

In WAL mode with ``synchronous=NORMAL`` a commit appends a few pages to the
WAL without an fsync: tens of microseconds, a fraction of the request's cost.

Units of work are :data:`storage.sql.UnitOfWork` generators: the same code
runs through the ORM on PostgreSQL (:func:`storage.sql.drive`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import outcome
import trio

from storage.sql import FETCH, INSERT, MANY, UnitOfWork

log = logging.getLogger("cloudstorage.db")

T = TypeVar("T")
# Inline commits between two checkpoints (SQLite's own default is about
# every 1,000 WAL pages; a small commit writes a handful).
CHECKPOINT_EVERY = 200
# After this long without a commit, the rest of the WAL is checkpointed.
IDLE_CHECKPOINT_SECONDS = 0.5
_CHECKPOINT = "checkpoint"


class WriterClosed(Exception):
    """The writer is not open (not opened yet, or closed)."""


class _Job:
    __slots__ = ("done", "result", "work")

    def __init__(self, work: UnitOfWork[Any]) -> None:
        self.work = work
        self.done = trio.Event()
        self.result: outcome.Outcome | None = None


def _params(values: Sequence[Any]) -> list[Any]:
    # Datetimes in the text form the ORM stores (and the readers parse),
    # without relying on sqlite3's deprecated default adapter.
    return [str(v) if type(v) is dt.datetime else v for v in values]


# FETCH statements with a RETURNING clause that SQLite runs in another form.
# SQLite collects RETURNING rows in an ephemeral table made for each run of
# the statement: an ``UPDATE ... RETURNING`` of one row costs about 37,000
# instructions where the same UPDATE and a SELECT of the row cost 24,000
# (sqlite3 3.40, cachegrind).  PostgreSQL keeps the one statement (one round
# trip).  Under the writer's write lock the two forms see the same rows.
SqliteForm = Callable[[sqlite3.Connection, Sequence[Any]], list[dict[str, Any]]]
_FORMS: dict[str, SqliteForm] = {}


def sqlite_form(statement: str) -> Callable[[SqliteForm], SqliteForm]:
    """Register the decorated function to run FETCH ``statement`` on SQLite:
    given the connection and the step's parameters (datetimes already
    text), it returns the rows the statement would have."""

    def register(form: SqliteForm) -> SqliteForm:
        _FORMS[statement] = form
        return form

    return register


def rows_of(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A cursor's rows as dicts, as FETCH steps receive them."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def drive_sync(conn: sqlite3.Connection, work: UnitOfWork[T]) -> T:
    """Run a unit of work's steps on a ``sqlite3`` connection; its result."""
    result: Any = None
    while True:
        try:
            kind, statement, params = work.send(result)
        except StopIteration as stop:
            return stop.value
        if kind == FETCH:
            form = _FORMS.get(statement)
            if form is not None:
                result = form(conn, _params(params))
            else:
                result = rows_of(conn.execute(statement, _params(params)))
        elif kind == MANY:
            conn.executemany(statement, [_params(row) for row in params])
            result = None
        elif kind == INSERT:
            result = conn.execute(statement, _params(params)).lastrowid
        else:
            result = conn.execute(statement, _params(params)).rowcount


def _connect(path: str, *pragmas: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # As the ORM's connection: the same file, the same guarantees.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", *pragmas):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _commit_group(conn: sqlite3.Connection, group: list[_Job]) -> bool:
    """Run ``group`` in one transaction, filling in each job's result.

    False (and nothing run) if the write lock is taken by someone else and
    the connection's busy timeout ran out.
    """
    try:
        # IMMEDIATE: take the write lock now rather than fail to upgrade a
        # read snapshot halfway through.
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return False
        raise
    try:
        if len(group) == 1:
            # Alone, a unit needs no savepoint: two statements fewer, and a
            # failure rolls the transaction back instead.
            try:
                group[0].result = outcome.Value(drive_sync(conn, group[0].work))
            except Exception as exc:
                conn.execute("ROLLBACK")
                group[0].result = outcome.Error(exc)
                return True
        for job in group if len(group) > 1 else ():
            conn.execute("SAVEPOINT unit")
            try:
                job.result = outcome.Value(drive_sync(conn, job.work))
            except Exception as exc:
                conn.execute("ROLLBACK TO unit")
                job.result = outcome.Error(exc)
            conn.execute("RELEASE unit")
        conn.execute("COMMIT")
    except Exception as exc:
        # The group as a whole failed (disk full, I/O error): nothing of it
        # is committed, so every unit reports the failure.
        log.error("SQLite group commit failed: %s", exc)
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        for job in group:
            job.result = outcome.Error(exc)
    return True


class SqliteWriter:
    """Write transactions on one SQLite file: inline, grouped, never blocking on locks."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 15000) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._inline: sqlite3.Connection | None = None
        self._pending: list[_Job] = []
        self._commits = 0  # inline commits so far (read by the worker thread)
        # Groups (with their trio token) the inline connection could not
        # run, and checkpoint requests, for the worker thread.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Connect (after the schema exists) and start the worker thread."""
        self._inline = _connect(self._path, "busy_timeout=0", "wal_autocheckpoint=0")
        waiting = _connect(self._path, f"busy_timeout={self._busy_timeout_ms}")
        self._thread = threading.Thread(target=self._serve, args=(waiting,),
                                        name="sqlite-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Let the worker finish its queue, then close both connections (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    async def run(self, work: UnitOfWork[T]) -> T:
        """Run ``work`` in a transaction (shared with the units queued alongside).

        Waits, shielded from cancellation, until the transaction has ended:
        the caller must learn whether its write committed.
        """
        if self._inline is None:
            work.close()
            raise WriterClosed("the SQLite writer is not open")
        job = _Job(work)
        self._pending.append(job)
        with trio.CancelScope(shield=True):
            if len(self._pending) == 1:
                # The first unit of a group leads it: one scheduling round
                # lets the other tasks queue theirs, then it commits them all.
                await trio.lowlevel.checkpoint()
                group, self._pending = self._pending, []
                await self._commit(group)
            else:
                await job.done.wait()
        assert job.result is not None
        return job.result.unwrap()

    async def run_many(self, works: list[UnitOfWork[Any]]) -> list[outcome.Outcome]:
        """Run ``works`` now, each in its own savepoint of one transaction
        (with the units already queued); their outcomes, in order.

        Unlike :meth:`run`, the caller does not wait a scheduling round for
        others to join: ``works`` is already a group (storage/write_relay.py).
        """
        if self._inline is None:
            for work in works:
                work.close()
            raise WriterClosed("the SQLite writer is not open")
        jobs = [_Job(work) for work in works]
        leading = not self._pending
        self._pending.extend(jobs)
        with trio.CancelScope(shield=True):
            if leading:
                group, self._pending = self._pending, []
                await self._commit(group)
            else:  # the queued units' leader commits these with them
                for job in jobs:
                    await job.done.wait()
        return [job.result for job in jobs if job.result is not None]

    async def _commit(self, group: list[_Job]) -> None:
        try:
            try:
                committed = self._inline is not None and _commit_group(self._inline, group)
            except Exception as exc:  # could not even begin (I/O error)
                for job in group:
                    job.work.close()
                    job.result = outcome.Error(exc)
                return
            if not committed:
                await self._commit_in_thread(group)
                return
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0 and self._thread is not None:
                self._queue.put(_CHECKPOINT)
        finally:
            for job in group:
                job.done.set()

    async def _commit_in_thread(self, group: list[_Job]) -> None:
        if self._thread is None:
            for job in group:
                job.work.close()
                job.result = outcome.Error(WriterClosed("the SQLite writer is closed"))
            return
        done = trio.Event()
        self._queue.put((group, trio.lowlevel.current_trio_token(), done))
        await done.wait()

    # -- the worker thread ---------------------------------------------------------

    def _serve(self, conn: sqlite3.Connection) -> None:
        checkpointed_at = 0  # self._commits when the WAL was last fully checkpointed
        try:
            while True:
                try:
                    item = self._queue.get(timeout=IDLE_CHECKPOINT_SECONDS)
                except queue.Empty:
                    commits = self._commits
                    if commits != checkpointed_at and _checkpoint(conn):
                        checkpointed_at = commits
                    continue
                if item is None:
                    break
                if item == _CHECKPOINT:
                    _checkpoint(conn)
                    continue
                group, token, done = item
                try:
                    if not _commit_group(conn, group):
                        raise sqlite3.OperationalError("database is locked")
                except Exception as exc:
                    for job in group:
                        job.result = outcome.Error(exc)
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(done.set)
        finally:
            conn.close()


def _checkpoint(conn: sqlite3.Connection) -> bool:
    """A passive checkpoint (it waits for no one); True if it got the whole WAL."""
    try:
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:
        log.warning("SQLite checkpoint failed: %s", exc)
        return False
    return not busy and frames == done
