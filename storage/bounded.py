"""A memo of values already computed, bounded by emptying it when full.

Hot paths keep what the same few inputs give again and again (a client's
parsed credentials, its keyed HMAC state, an account's and a bucket's
values, a second's HTTP date).  Emptying at the limit keeps memory bounded
without the bookkeeping of an LRU on every hit, and a refill costs one miss
per live input.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict[K, V], Generic[K, V]):
    """A dict that :meth:`keep` empties once it holds ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: K, value: V) -> V:
        """Remember ``value`` for ``key`` (emptying first if full); ``value``."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
