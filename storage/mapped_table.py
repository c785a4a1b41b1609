"""A fixed-size table in a file that every worker process of a node maps,
changed only under an exclusive ``flock`` (storage/shared_buckets.py,
storage/shared_inflight.py)."""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import threading
from typing import Generic, Protocol, TypeVar


def slot_hash(*parts: str) -> int:
    """A 64-bit slot hash of ``parts`` (never 0, which marks a free slot)."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class Attachment(Generic[C]):
    """Where a limiter of this process counts: in memory (``table`` None) or
    in one of its node's shared tables, which the composition root attaches
    (storage/ratelimit.py, storage/concurrency.py)."""

    def __init__(self) -> None:
        self.table: C | None = None

    def attach(self, table: C) -> None:
        """Count in ``table`` from now on."""
        self.detach()
        self.table = table

    def detach(self) -> None:
        """Back to counting in memory (the table is closed)."""
        table, self.table = self.table, None
        if table is not None:
            table.close()


class MappedTable:
    """``size`` bytes of the file at ``path`` (made, zero-filled, if missing);
    ``with table:`` holds it against every other thread and process."""

    def __init__(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # zero-filled: every slot free
            self.map = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        # flock excludes other processes; threads of this one share the fd.
        self._lock = threading.Lock()

    # A context manager itself, not a @contextmanager generator: a check
    # costs ~5 us, and the generator's machinery added 2 us of it.
    def __enter__(self) -> MappedTable:
        """Hold the table against every other thread and process."""
        self._lock.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Unmap the table (other processes keep theirs)."""
        self.map.close()
        os.close(self._fd)
