"""Locks held across the worker processes of a node (``[node] workers``).

Some work should run once per node however many processes serve it: an
image transform that concurrent requests all miss in the cache is the case
today (protocols/img/endpoint.py).  Inside one process a single-flight
does it; across processes, the one computing holds a lock the others of
the node wait on, then find its result in the cache.

A lock is one of :data:`STRIPES` files in the node's private link directory,
picked by the name's hash, taken with ``flock`` in a worker thread (names
that share a stripe only wait for each other a little longer).  One trio
task per process waits on a stripe at a time, as threads of one process
would not exclude each other on the same descriptor.  Unattached (a node
of one process), :meth:`NodeLocks.hold` does nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

STRIPES = 64


class NodeLocks:
    """The node's cross-process locks (``StorageCore.node_locks``), once the
    composition root attaches them."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._local: list[trio.Lock] = []

    def attach(self, directory: str) -> None:
        """Lock on stripe files in ``directory`` (made if missing)."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._fds = [os.open(os.path.join(directory, f"lock-{i}"), os.O_RDWR | os.O_CREAT, 0o600)
                     for i in range(STRIPES)]
        self._local = [trio.Lock() for _ in range(STRIPES)]

    def detach(self) -> None:
        """Close the stripe files; :meth:`hold` does nothing again."""
        fds, self._fds, self._local = self._fds, [], []
        for fd in fds:
            os.close(fd)

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the node-wide lock of ``name`` for the block."""
        if not self._fds:
            yield
            return
        stripe = hashlib.blake2b(name.encode(), digest_size=4).digest()[0] % STRIPES
        fd = self._fds[stripe]
        async with self._local[stripe]:
            # Not abandoned on cancel: a lock taken after its waiter left
            # would never be released; the wait is bounded by the holder's work.
            await trio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
