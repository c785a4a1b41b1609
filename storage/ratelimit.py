"""In-process rate limiting (token buckets), shared by the protocol adapters.

Limits are per node: a client spread over N nodes by a load balancer gets up
to N times the limit, which is the usual trade-off for not putting a
database round trip on every request.  The table of buckets is bounded: idle
buckets (full again) are dropped first when it grows past ``max_keys``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``rate`` events per ``per`` seconds per key, with bursts up to ``rate``.

    Thread-safe, because SFTP logins are checked on the asyncio thread while
    HTTP requests are checked on the trio thread.
    """

    def __init__(self, rate: int, per: float, *, max_keys: int = 100_000) -> None:
        self.rate = max(rate, 1)
        self.per = per
        self._fill = self.rate / per  # tokens per second
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def _bucket(self, key: str, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self._max_keys:
                self._prune(now)
            b = self._buckets[key] = _Bucket(float(self.rate), now)
        else:
            b.tokens = min(float(self.rate), b.tokens + (now - b.stamp) * self._fill)
            b.stamp = now
        return b

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.stamp) * self._fill >= self.rate]
        for k in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[k]

    def hit(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; returns 0 if allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            b = self._bucket(key, now)
            if b.tokens >= cost:
                b.tokens -= cost
                return 0.0
            return (cost - b.tokens) / self._fill

    def blocked(self, key: str) -> float:
        """Seconds until one token is available (0 if one is), without spending."""
        now = time.monotonic()
        with self._lock:
            b = self._bucket(key, now)
            return 0.0 if b.tokens >= 1 else (1 - b.tokens) / self._fill

    def reset(self, key: str) -> None:
        """Forget a key (e.g. after a successful login)."""
        with self._lock:
            self._buckets.pop(key, None)


def retry_after(seconds: float) -> int:
    """A Retry-After header value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))
