"""Rate limiting (token buckets), shared by the protocol adapters.

The documented limits are for the whole cluster, but counting every request
in the shared database would put a round trip on each one.  So each node
enforces its share: ``limit / N``, N being the number of nodes it sees up
(:data:`NODES`, which the composition root points at its membership view;
1 until then).  The share is recomputed on every hit, so it re-balances as
nodes come and go.  Error bound: with requests spread over the nodes, the
cluster admits at most the limit per window plus one burst of the limit, as
one node did before; a client that uses fewer than N nodes gets
proportionally less; while a joining node is not yet seen by the others (up
to ``cluster.heartbeat_seconds`` + ``layout_refresh_seconds``) they still
divide by N-1.  Failed logins, which must be exact, are counted in the
database instead (:class:`storage.sessions.LoginAttempts`).

A node with several worker processes (``[node] workers``) keeps its buckets
in one table all of them map (:data:`SHARED`, storage/shared_buckets.py), so
the node's share holds however its connections landed: dividing it among
the processes instead gave a client on one keep-alive connection
``1/workers`` of its limit.  A single process keeps them in memory, bounded:
idle buckets (full again) are dropped first when it grows past ``max_keys``.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage import errors
from storage.mapped_table import Attachment
from storage.shared_buckets import SharedBuckets, key_hash


class NodeCount:
    """How many nodes share the cluster-wide limits right now (at least 1)."""

    def __init__(self) -> None:
        self._count: Callable[[], int] = lambda: 1

    def use(self, count: Callable[[], int]) -> None:
        """Take the count from ``count`` (cheap and synchronous: called per hit)."""
        self._count = count

    def __call__(self) -> int:
        try:
            return max(1, int(self._count()))
        except Exception:  # a view being rebuilt must not fail requests
            return 1


# The process's count of nodes up; ``cluster/node.py`` points it at its
# membership view.
NODES = NodeCount()


# Where this process keeps its buckets: in memory, or in the node's shared
# table once the composition root attaches one.
SHARED: Attachment[SharedBuckets] = Attachment()


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``rate`` events per ``per`` seconds per key across the cluster, with
    bursts up to ``rate``: this node admits its share, ``rate / nodes()``
    (at least one event per window), see the module docstring.

    Thread-safe, because SFTP logins are checked on the asyncio thread while
    HTTP requests are checked on the trio thread.
    """

    def __init__(self, rate: int, per: float, *, name: str = "", max_keys: int = 100_000,
                 nodes: Callable[[], int] = NODES,
                 shared: Attachment[SharedBuckets] = SHARED) -> None:
        self.rate = max(rate, 1)
        self.per = per
        # The limiter's part of a shared slot's hash: the same in every process
        # of a node, which builds its limiters from the same code.
        if not name:
            caller = sys._getframe(1)
            name = f"{caller.f_code.co_filename}:{caller.f_lineno}"
        self.name = name
        self._shared = shared
        self._nodes = nodes
        self._buckets: dict[str, _Bucket] = {}
        self._hashes: dict[str, int] = {}  # key -> its shared slot hash
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._share = float(self.rate)  # this node's capacity, set per hit
        self._fill = self._share / per  # tokens per second

    def _hash(self, key: str) -> int:
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()  # refills from the busy keys at once
            h = self._hashes[key] = key_hash(self.name, key)
        return h

    def _rebalance(self) -> None:
        share = max(self.rate / self._nodes(), 1.0)
        if share != self._share:
            self._share, self._fill = share, share / self.per

    def _bucket(self, key: str, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self._max_keys:
                self._prune(now)
            b = self._buckets[key] = _Bucket(self._share, now)
        else:
            b.tokens = min(self._share, b.tokens + (now - b.stamp) * self._fill)
            b.stamp = now
        return b

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.stamp) * self._fill >= self._share]
        for k in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[k]

    def hit(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; returns 0 if allowed, else the seconds to wait."""
        table = self._shared.table
        if table is not None:
            self._rebalance()
            return table.take(self._hash(key), cost, self._share, self._fill)
        now = time.monotonic()
        with self._lock:
            self._rebalance()
            b = self._bucket(key, now)
            if b.tokens >= cost:
                b.tokens -= cost
                return 0.0
            return (cost - b.tokens) / self._fill

    def check(self, key: str, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens or raise :class:`RateLimited` (the one way every
        protocol refuses a request over its limit; each maps it to its own 429)."""
        wait = self.hit(key, cost)
        if wait > 0:
            raise RateLimited(retry_after=retry_after(wait))

    def blocked(self, key: str) -> float:
        """Seconds until one token is available (0 if one is), without spending."""
        table = self._shared.table
        if table is not None:
            self._rebalance()
            return table.take(self._hash(key), 1.0, self._share, self._fill,
                              spend=False)
        now = time.monotonic()
        with self._lock:
            self._rebalance()
            b = self._bucket(key, now)
            return 0.0 if b.tokens >= 1 else (1 - b.tokens) / self._fill

    def reset(self, key: str) -> None:
        """Forget a key (e.g. after a successful login)."""
        table = self._shared.table
        if table is not None:
            table.forget(self._hash(key))
        with self._lock:
            self._buckets.pop(key, None)


class RateLimited(errors.StorageError):
    """Rate limit exceeded. Retry after the duration in the Retry-After header."""

    code = "TooManyRequests"
    kind = errors.Kind.RATE

    def __init__(self, message: str = "", *, retry_after: int = 1) -> None:
        super().__init__(message)
        # Whole seconds until a request would be admitted (Retry-After).
        self.retry_after = retry_after


def retry_after(seconds: float) -> int:
    """A Retry-After header value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))
