"""Sliding-window request limits counted in the shared metadata database.

A limit such as "60 requests per minute per key" must hold for the whole
cluster, however a client spreads its requests over the nodes, so the count
lives in the ``rate_windows`` table, not in a node's memory: one row per
(subject, time slot) with the number of requests admitted in that slot.
A request is admitted when the slots of the last ``window`` seconds hold
fewer than ``limit`` requests; the window slides slot by slot (one second
for a per-minute limit), so the count is exact to the slot's width.

The request's own slot is incremented *first* (an upsert), then the window
is summed: on PostgreSQL the upsert locks the slot's row until the commit,
so concurrent requests of one subject are counted one after the other and
cannot all slip past the limit together (only two requests straddling a
slot boundary can, by one).  A refused request is taken back in the same
transaction, so refusals do not extend the wait.  SQLite has one writer,
which makes the count exact.

Rows expire with their window and are deleted as the subject's next request
arrives; rows of subjects that went quiet are swept now and then by any
request.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from storage import sql
from storage.db import Database

# One request in this many also sweeps every expired row of every subject.
_SWEEP_ONE_IN = 200

_UPSERT = ('INSERT INTO rate_windows (subject, slot, "count", expires) VALUES (?, ?, 1, ?) '
           'ON CONFLICT (subject, slot) DO UPDATE SET "count" = rate_windows."count" + 1')


@dataclass(frozen=True)
class Limit:
    """``limit`` requests in any ``window`` seconds, counted in ``slot``-second slots."""

    limit: int
    window: int
    slot: int = 1


@dataclass(frozen=True)
class WindowState:
    """Where a subject stands in one window after a request."""

    limit: int
    remaining: int
    # Unix epoch second when the oldest counted request leaves the window
    # (a slot frees); now when the window is empty.
    reset: int
    window: int

    def retry_after(self, now: float | None = None) -> int:
        """Whole seconds until a slot frees (at least 1)."""
        return max(1, math.ceil(self.reset - (time.time() if now is None else now)))


@dataclass(frozen=True)
class Decision:
    """Whether a request was admitted, and every window's state."""

    allowed: bool
    states: tuple[WindowState, ...]

    @property
    def refused_by(self) -> WindowState | None:
        """The first window that is full (None when admitted)."""
        if self.allowed:
            return None
        return next((s for s in self.states if s.remaining <= 0), self.states[0])


def _subject_key(subject: str, window: int) -> str:
    # Fixed width whatever the subject; the table holds no key material.
    return hashlib.sha256(f"{subject}|{window}".encode()).hexdigest()


def _hit_steps(subject: str, limits: Sequence[Limit], now: float,
               count: bool, sweep: bool) -> sql.UnitOfWork[Decision]:
    """Count a request of ``subject`` against ``limits`` (when ``count``) and
    return the decision; a refused request leaves no trace."""
    if sweep:
        yield (sql.EXECUTE, "DELETE FROM rate_windows WHERE expires <= ?", (int(now),))
    taken: list[tuple[str, int]] = []
    counted: list[tuple[Limit, int, int]] = []  # (limit, requests in window, reset)
    allowed = True
    for lim in limits:
        key = _subject_key(subject, lim.window)
        slot = int(now // lim.slot)
        yield (sql.EXECUTE, "DELETE FROM rate_windows WHERE subject = ? AND expires <= ?",
               (key, int(now)))
        if count:
            yield (sql.EXECUTE, _UPSERT, (key, slot, slot * lim.slot + lim.window))
            taken.append((key, slot))
        rows = yield (sql.FETCH,
                      'SELECT slot, "count" FROM rate_windows WHERE subject = ? AND expires > ? '
                      "ORDER BY slot", (key, now))
        used = sum(int(r["count"]) for r in rows)
        oldest = min((int(r["slot"]) for r in rows if int(r["count"]) > 0), default=None)
        reset = math.ceil(now) if oldest is None else oldest * lim.slot + lim.window
        if used > lim.limit or (not count and used >= lim.limit):
            allowed = False
        counted.append((lim, used, reset))
    if not allowed and taken:
        for key, slot in taken:  # refused: not a request that counts
            yield (sql.EXECUTE, 'UPDATE rate_windows SET "count" = "count" - 1 '
                   "WHERE subject = ? AND slot = ?", (key, slot))
        counted = [(lim, used - 1, reset) for lim, used, reset in counted]
    states = [WindowState(lim.limit, max(lim.limit - used, 0), reset, lim.window)
              for lim, used, reset in counted]
    return Decision(allowed, tuple(states))


class RateWindows:
    """Cluster-wide sliding windows over the metadata database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def hit(self, subject: str, limits: Sequence[Limit]) -> Decision:
        """Count one request of ``subject``; refused (and not counted) when any
        of ``limits`` is already full."""
        return await self._run(subject, limits, count=True)

    async def peek(self, subject: str, limits: Sequence[Limit]) -> Decision:
        """The windows' state without counting a request."""
        return await self._run(subject, limits, count=False)

    async def _run(self, subject: str, limits: Sequence[Limit], *, count: bool) -> Decision:
        sweep = secrets.randbelow(_SWEEP_ONE_IN) == 0
        now = time.time()
        return await sql.retry(
            lambda: self._db.write(_hit_steps, subject, limits, now, count, sweep))
