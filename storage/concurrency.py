"""Concurrent-request limits: at most N requests of one key in flight.

Seed 004's rate-limit table has a "Concurrent" column (Free 5, Pro 20,
Business 50).  Counting requests in flight cluster-wide would put two
round trips to the shared database on every request (one to enter, one to
leave) and leak a slot for good whenever a node dies mid-request.  So, as
:mod:`storage.ratelimit` does for request rates, each node enforces its
share of the limit: ``ceil(limit / N)``, N being the number of nodes it
sees up, :data:`storage.ratelimit.NODES`, read on every
acquire so the share follows the cluster as it changes.  Error bound: the
cluster admits at most ``N * ceil(limit / N)`` (the limit, plus at most N-1)
requests of a key at once when they are spread over the nodes; a client that
reaches one node gets that node's share (never less than 1).

A slot is held until its :class:`Slot` is released -- for a streamed
response, when the last byte was sent or the client went away -- and a slot
dropped without being released is released when it is garbage collected,
so a lost response cannot keep a key's slot forever.

A node with several worker processes counts in one table they all map
(:data:`SHARED`, storage/shared_inflight.py), so each node's share holds
whichever process a request lands on; a single process counts in memory.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable

from storage.mapped_table import Attachment
from storage.ratelimit import NODES
from storage.shared_inflight import SharedInflight

# Where this process counts: in memory, or in the node's shared table once
# the composition root attaches one.
SHARED: Attachment[SharedInflight] = Attachment()


class Slot:
    """One admitted request of a key; :meth:`release` it once, when done."""

    def __init__(self, limiter: ConcurrencyLimiter, key: str,
                 table: SharedInflight | None = None) -> None:
        leave = limiter._leave if table is None else table.release
        self._release = weakref.finalize(self, leave, key)

    def release(self) -> None:
        """Give the slot back (later calls do nothing)."""
        self._release()


class ConcurrencyLimiter:
    """Requests in flight per key, each key limited to this node's share."""

    def __init__(self, nodes: Callable[[], int] = NODES,
                 shared: Attachment[SharedInflight] = SHARED) -> None:
        self._nodes = nodes
        self._shared = shared
        self._lock = threading.Lock()  # cheap; the limiter may be shared across threads
        self._in_flight: dict[str, int] = {}

    def share(self, limit: int) -> int:
        """This node's part of a cluster-wide ``limit`` (at least 1)."""
        return max(1, math.ceil(limit / max(1, self._nodes())))

    def acquire(self, key: str, limit: int) -> Slot | None:
        """A slot of ``key`` if fewer than this node's share of ``limit`` are
        in flight; None when the key is at its limit (nothing is counted)."""
        allowed = self.share(limit)
        table = self._shared.table
        if table is not None:
            return Slot(self, key, table) if table.acquire(key, allowed) else None
        with self._lock:
            now = self._in_flight.get(key, 0)
            if now >= allowed:
                return None
            self._in_flight[key] = now + 1
        return Slot(self, key)

    def in_flight(self, key: str) -> int:
        """Requests of ``key`` in flight on this node."""
        table = self._shared.table
        if table is not None:
            return table.in_flight(key)
        with self._lock:
            return self._in_flight.get(key, 0)

    def _leave(self, key: str) -> None:
        with self._lock:
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)  # idle keys take no room
