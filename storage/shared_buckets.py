"""Token buckets in a file mapped by every worker process of a node.

A node's worker processes (``[node] workers``) share its client ports, and
the kernel gives each new connection to any of them, so a rate limit
counted in each process's memory either divides the node's share among the
processes (a client on one keep-alive connection then gets ``1/workers`` of
its limit) or multiplies it.  The limits are per node, so their buckets live
here: one table in a file every process of the node maps
(:class:`SharedBuckets`), a token bucket per (limiter, key) slot, the whole
table guarded by ``flock``.

Layout: ``SLOTS`` slots of four little-endian 8-byte fields: the key's
64-bit hash (0 = free), tokens, last refill (``time.monotonic``, which on
Linux is CLOCK_MONOTONIC: one clock for every process of the machine) and
the moment the bucket is full again.  A key lives in one of ``PROBES``
slots after its hash; when all of them hold other keys, the one full
soonest (an idle bucket first) is taken over, which can only hand that key a
full bucket again, the same as the in-memory table's pruning.  Two keys with
the same 64-bit hash would share a bucket: with blake2b that is not a case to
plan for.

Cost, measured single-process on the 2-core machine: about 5 us per check
(two flock calls are 2 us of it), against 1.4 us for the in-memory table; a
request checks one or two limits.
"""

from __future__ import annotations

import struct
import time

from storage.mapped_table import MappedTable, slot_hash

SLOTS = 1 << 16
PROBES = 8
_SLOT = struct.Struct("<Qddd")
SIZE = SLOTS * _SLOT.size


def key_hash(limiter: str, key: str) -> int:
    """The slot hash of ``key`` in ``limiter`` (never 0, which marks a free slot)."""
    return slot_hash(limiter, key)


class SharedBuckets:
    """The node's token buckets, in the file at ``path`` (made if missing)."""

    def __init__(self, path: str) -> None:
        self._table = MappedTable(path, SIZE)
        self._map = self._table.map

    def close(self) -> None:
        """Unmap the table (other processes keep theirs)."""
        self._table.close()

    def take(self, h: int, cost: float, capacity: float, fill: float, *,
             spend: bool = True) -> float:
        """Refill and, if it holds ``cost`` tokens, spend them from the bucket
        of hash ``h`` (``capacity`` tokens, ``fill`` per second); 0 if
        admitted, else the seconds until it would be.  ``spend=False`` asks
        without spending."""
        with self._table:
            now = time.monotonic()  # under the lock: stamps only move forward
            offset, tokens, stamp = self._find(h, now, capacity)
            tokens = min(capacity, tokens + max(0.0, now - stamp) * fill)
            wait = 0.0 if tokens >= cost else (cost - tokens) / fill
            if spend and wait == 0.0:
                tokens -= cost
            full_at = now + (capacity - tokens) / fill
            _SLOT.pack_into(self._map, offset, h, tokens, now, full_at)
            return wait

    def forget(self, h: int) -> None:
        """Free the slot of hash ``h`` (the key starts again with a full bucket)."""
        with self._table:
            for offset in _probe(h):
                if _SLOT.unpack_from(self._map, offset)[0] == h:
                    _SLOT.pack_into(self._map, offset, 0, 0.0, 0.0, 0.0)

    def _find(self, h: int, now: float, capacity: float) -> tuple[int, float, float]:
        """(offset, tokens, stamp) of the slot of ``h``: its own, else a free
        or the soonest-full one, as a full bucket."""
        victim, victim_full, free = -1, float("inf"), -1
        unpack, table, start = _SLOT.unpack_from, self._map, h % SLOTS
        for i in range(PROBES):
            offset = ((start + i) % SLOTS) * _SLOT.size
            owner, tokens, stamp, full_at = unpack(table, offset)
            if owner == h:
                return offset, tokens, stamp
            # Not the first free slot at once: a forgotten key leaves a hole
            # before keys placed after it, which must still be found.
            if owner == 0:
                if free < 0:
                    free = offset
            elif full_at < victim_full:
                victim, victim_full = offset, full_at
        return (free if free >= 0 else victim), capacity, now


def _probe(h: int) -> list[int]:
    start = h % SLOTS
    return [((start + i) % SLOTS) * _SLOT.size for i in range(PROBES)]
