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

import fcntl
import hashlib
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SLOTS = 1 << 14
PROBES = 8
_SLOT = struct.Struct("<QII")
SIZE = SLOTS * _SLOT.size


def _hash(key: str, index: int) -> int:
    digest = hashlib.blake2b(f"{index}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class SharedInflight:
    """The node's in-flight counts, in the file at ``path`` (made if missing)."""

    def __init__(self, path: str, index: int, processes: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._lock = threading.Lock()
        self.index = index
        self.processes = processes

    def close(self) -> None:
        """Unmap the table."""
        self._map.close()
        os.close(self._fd)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def claim(self) -> None:
        """Clear what a previous process of this index left counted."""
        with self._locked():
            for slot in range(SLOTS):
                offset = slot * _SLOT.size
                owner, index, _ = _SLOT.unpack_from(self._map, offset)
                if owner and index == self.index:
                    _SLOT.pack_into(self._map, offset, 0, 0, 0)

    def acquire(self, key: str, allowed: int) -> bool:
        """Count one more request of ``key`` unless the node's processes
        already have ``allowed`` in flight."""
        with self._locked():
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
        with self._locked():
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
        with self._locked():
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
