"""Asynchronous URL imports of the v1-pro API: tasks in the shared database.

A task is a row of ``import_tasks``.  It is created ``running`` with no
lease; any node's import worker (cluster/imports.py) may *claim* a running
task whose lease has run out, by a conditional update that only one node
can win.  The claimer renews the lease while it works and records progress
with each renewal; a node that dies (kill -9) simply stops renewing, so once
the lease expires another node -- or the same one restarted -- claims the
task again and starts it over.  ``attempts`` counts the claims: a task
claimed ``max_attempts`` times without finishing is marked ``failed``
instead, so a task is never left ``running`` for good.

States: running, completed, failed, cancelled (the document's four).  A
cancel is a plain update to ``cancelled``; the worker sees it at its next
renewal and stops without storing anything.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from storage import sql
from storage.db import Database

T = TypeVar("T")

RUNNING, COMPLETED, FAILED, CANCELLED = "running", "completed", "failed", "cancelled"
STATES = (RUNNING, COMPLETED, FAILED, CANCELLED)


@dataclass(frozen=True)
class ImportTaskInfo:
    """One import as the API and the worker see it."""

    id: str
    account_id: str
    type: str
    url: str
    bucket: str
    key: str
    state: str
    bytes_done: int
    total_bytes: int | None
    error: str
    attempts: int

    def progress(self) -> str:
        """``42%`` when the size is known, else the bytes received so far."""
        if self.state == COMPLETED:
            return "100%"
        if self.total_bytes:
            return f"{min(100 * self.bytes_done // self.total_bytes, 100)}%"
        return f"{self.bytes_done} bytes"


def _task(row: dict) -> ImportTaskInfo:
    return ImportTaskInfo(
        id=row["id"], account_id=row["account_id"], type=row["type"], url=row["url"],
        bucket=row["bucket"], key=row["key"], state=row["state"],
        bytes_done=int(row["bytes_done"] or 0),
        total_bytes=None if row["total_bytes"] is None else int(row["total_bytes"]),
        error=row["error"] or "", attempts=int(row["attempts"] or 0),
    )


_COLUMNS = ("id, account_id, type, url, bucket, \"key\", state, bytes_done, total_bytes, "
            "error, attempts")


def new_task_id(kind: str) -> str:
    """``file_1782...`` / ``video_1782...``: the document's form, unique."""
    return f"{kind}_{time.time_ns() // 1_000_000}{secrets.randbelow(10**6):06d}"


def _create_steps(task_id: str, account_id: str, kind: str, url: str, bucket: str,
                  key: str) -> sql.UnitOfWork[None]:
    now = datetime.now(UTC)
    yield (sql.EXECUTE,
           'INSERT INTO import_tasks (id, account_id, type, url, bucket, "key", state, '
           "bytes_done, error, attempts, lease_owner, lease_until, created_at, updated_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', 0, '', 0, ?, ?)",
           (task_id, account_id, kind, url, bucket, key, RUNNING, now, now))


def _get_steps(account_id: str, task_id: str) -> sql.UnitOfWork[ImportTaskInfo | None]:
    rows = yield (sql.FETCH, f"SELECT {_COLUMNS} FROM import_tasks WHERE id = ? "
                  "AND account_id = ?", (task_id, account_id))
    return _task(rows[0]) if rows else None


def _cancel_steps(account_id: str, task_id: str) -> sql.UnitOfWork[ImportTaskInfo | None]:
    yield (sql.EXECUTE, "UPDATE import_tasks SET state = ?, updated_at = ? WHERE id = ? "
           "AND account_id = ? AND state = ?",
           (CANCELLED, datetime.now(UTC), task_id, account_id, RUNNING))
    return (yield from _get_steps(account_id, task_id))


def _claim_steps(node: str, now: float, lease: float,
                 max_attempts: int) -> sql.UnitOfWork[ImportTaskInfo | None]:
    """Claim the oldest running task whose lease ran out (None if none)."""
    rows = yield (sql.FETCH, f"SELECT {_COLUMNS} FROM import_tasks WHERE state = ? "
                  "AND lease_until < ? ORDER BY created_at LIMIT 1", (RUNNING, now))
    if not rows:
        return None
    task = _task(rows[0])
    stamp = datetime.now(UTC)
    if task.attempts >= max_attempts:
        # Interrupted every time it ran (its node died): give up visibly.
        yield (sql.EXECUTE, "UPDATE import_tasks SET state = ?, error = ?, updated_at = ? "
               "WHERE id = ? AND state = ? AND lease_until < ?",
               (FAILED, f"the import was interrupted {task.attempts} times", stamp, task.id,
                RUNNING, now))
        return None
    won = yield (sql.EXECUTE,
                 "UPDATE import_tasks SET lease_owner = ?, lease_until = ?, "
                 "attempts = attempts + 1, bytes_done = 0, updated_at = ? "
                 "WHERE id = ? AND state = ? AND lease_until < ?",
                 (node, now + lease, stamp, task.id, RUNNING, now))
    if not won:  # another node was quicker
        return None
    return ImportTaskInfo(**{**task.__dict__, "attempts": task.attempts + 1, "bytes_done": 0})


def _renew_steps(task_id: str, node: str, until: float, bytes_done: int,
                 total: int | None) -> sql.UnitOfWork[bool]:
    changed = yield (sql.EXECUTE,
                     "UPDATE import_tasks SET lease_until = ?, bytes_done = ?, total_bytes = ?, "
                     "updated_at = ? WHERE id = ? AND lease_owner = ? AND state = ?",
                     (until, bytes_done, total, datetime.now(UTC), task_id, node, RUNNING))
    return bool(changed)


def _finish_steps(task_id: str, node: str, state: str, error: str,
                  bytes_done: int) -> sql.UnitOfWork[bool]:
    changed = yield (sql.EXECUTE,
                     "UPDATE import_tasks SET state = ?, error = ?, bytes_done = ?, "
                     "lease_until = 0, updated_at = ? WHERE id = ? AND lease_owner = ? "
                     "AND state = ?",
                     (state, error[:2000], bytes_done, datetime.now(UTC), task_id, node,
                      RUNNING))
    return bool(changed)


class ImportTasks:
    """The import task table, for the API (create, status, cancel) and the
    worker (claim, renew, finish)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _write(self, fn: Callable[..., sql.UnitOfWork[T]], *args: Any) -> T:
        # One transaction, retried when PostgreSQL aborts it for a concurrent one.
        return await sql.retry(lambda: self._db.write(fn, *args))

    async def create(self, account_id: str, kind: str, url: str, bucket: str,
                     key: str) -> str:
        """A new running task; its id."""
        task_id = new_task_id(kind)
        await self._write(_create_steps, task_id, account_id, kind, url, bucket, key)
        return task_id

    async def get(self, account_id: str, task_id: str) -> ImportTaskInfo | None:
        """The account's task ``task_id`` (None: unknown to this account)."""
        return await self._write(_get_steps, account_id, task_id)

    async def cancel(self, account_id: str, task_id: str) -> ImportTaskInfo | None:
        """Cancel a running task (a finished one is left as it is); None if unknown."""
        return await self._write(_cancel_steps, account_id, task_id)

    async def claim(self, node: str, lease: float, max_attempts: int) -> ImportTaskInfo | None:
        """Claim one task for ``node`` for ``lease`` seconds (None: nothing to do)."""
        return await self._write(_claim_steps, node, time.time(), lease, max_attempts)

    async def renew(self, task_id: str, node: str, lease: float, bytes_done: int,
                    total: int | None) -> bool:
        """Extend the lease and record progress; False when the task is no
        longer this node's running task (cancelled, or claimed elsewhere)."""
        return await self._write(_renew_steps, task_id, node, time.time() + lease, bytes_done,
                                 total)

    async def finish(self, task_id: str, node: str, state: str, error: str = "",
                     bytes_done: int = 0) -> bool:
        """Record the outcome; False if the task was no longer ours to finish."""
        return await self._write(_finish_steps, task_id, node, state, error, bytes_done)
