"""Requests in flight per key, counted in a file every worker process of a
node maps, so a node's concurrency limit holds across its processes.

Each process counts in slots of its own (the slot's hash covers the key and
the process's index) and a check sums the slots of every index, all under
``flock``.  A process that dies leaves its counts behind; the one that
takes its index clears them when it attaches (:meth:`SharedInflight.claim`),
so a crash cannot hold a key's slots for good.

Layout: ``SLOTS`` slots of (hash u64, process index u32, count u32); a slot
lives in one of ``PROBES`` places after its hash and is freed when its
count drops to 0.  With every place of a run taken, a request is admitted
uncounted rather than refused: the table can only err towards the limit
the node had before it was shared.
"""

from __future__ import annotations

import struct

from storage.mapped_table import MappedTable, slot_hash

SLOTS = 1 << 14
PROBES = 8
_SLOT = struct.Struct("<QII")
SIZE = SLOTS * _SLOT.size


def _hash(key: str, index: int) -> int:
    return slot_hash(str(index), key)


class SharedInflight:
    """The node's in-flight counts, in the file at ``path`` (made if missing)."""

    def __init__(self, path: str, index: int, processes: int) -> None:
        self._table = MappedTable(path, SIZE)
        self._map = self._table.map
        self.index = index
        self.processes = processes

    def close(self) -> None:
        """Unmap the table."""
        self._table.close()

    def claim(self) -> None:
        """Clear what a previous process of this index left counted."""
        with self._table:
            for slot in range(SLOTS):
                offset = slot * _SLOT.size
                owner, index, _ = _SLOT.unpack_from(self._map, offset)
                if owner and index == self.index:
                    _SLOT.pack_into(self._map, offset, 0, 0, 0)

    def acquire(self, key: str, allowed: int) -> bool:
        """Count one more request of ``key`` unless the node's processes
        already have ``allowed`` in flight."""
        with self._table:
            total = sum(self._find(_hash(key, i))[1] for i in range(self.processes))
            if total >= allowed:
                return False
            h = _hash(key, self.index)
            offset, count = self._find(h)
            if offset >= 0:
                _SLOT.pack_into(self._map, offset, h, self.index, count + 1)
            return True

    def release(self, key: str) -> None:
        """Count one request of ``key`` less (of this process)."""
        with self._table:
            h = _hash(key, self.index)
            offset, count = self._find(h)
            if offset < 0 or count == 0:
                return
            if count == 1:
                _SLOT.pack_into(self._map, offset, 0, 0, 0)
            else:
                _SLOT.pack_into(self._map, offset, h, self.index, count - 1)

    def in_flight(self, key: str) -> int:
        """Requests of ``key`` in flight on the node."""
        with self._table:
            return sum(self._find(_hash(key, i))[1] for i in range(self.processes))

    def _find(self, h: int) -> tuple[int, int]:
        """(offset, count) of the slot of ``h``, else a free one with count 0,
        else (-1, 0)."""
        free, start = -1, h % SLOTS
        for i in range(PROBES):
            offset = ((start + i) % SLOTS) * _SLOT.size
            owner, _, count = _SLOT.unpack_from(self._map, offset)
            if owner == h:
                return offset, count
            if owner == 0 and free < 0:
                free = offset  # keep looking: a freed slot can sit before ours
        return free, 0
