"""Live-trace events of SFTP sessions, handed to the trio side in batches.

Every file transfer and metadata operation is one trace event
(:class:`storage.trace.TraceEvent`), produced on the asyncio loop where
asyncssh runs while the trace bus lives in trio.  Handed over one by one
(``publish_threadsafe``), each event woke the trio thread: for a small
get, the only work of that thread, and one more hand-off of the GIL per
file between two threads that are otherwise taking turns anyway.
:class:`TraceBatch` collects a node's SFTP events for at most
:data:`BATCH_SECONDS` and publishes them with one call: the live trace
shows them that much later, with their own times and durations.  Measured
against per-event hand-offs (same run, 1,000 x 4 KiB files, medians of 5):
9 % less node CPU for the puts, 5 to 14 % less for the gets; the files/s
moved less than this machine's noise.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from storage.bridge import AsyncioBridge
from storage.trace import TraceBus, TraceEvent

log = logging.getLogger("cloudstorage.sftp")

# Longest an event waits before it is published (at most 20 wake-ups of the
# trio thread a second, however many requests).
BATCH_SECONDS = 0.05


async def _publish_all(bus: TraceBus, events: list[TraceEvent]) -> None:
    """Trio side: publish ``events`` in order."""
    for event in events:
        bus.publish(event)


class TraceBatch:
    """Trace events of one node's SFTP sessions.  :meth:`publish` and
    :meth:`flush` run on the asyncio loop; the timer is a trio task."""

    def __init__(self, bus: TraceBus, bridge: AsyncioBridge) -> None:
        self._bus = bus
        self._bridge = bridge
        self._pending: list[TraceEvent] = []
        self._scheduled = False

    def publish(self, event: TraceEvent) -> None:
        """Queue ``event``; it is published within :data:`BATCH_SECONDS`."""
        self._pending.append(event)
        if not self._scheduled:
            self._scheduled = True
            fut = self._bridge.call_trio_soon(self._publish_later)
            fut.add_done_callback(self._ended)

    def _ended(self, fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            # Not published (the node is stopping): the trace is best effort,
            # but nothing may pile up waiting for a batch that never comes.
            self._scheduled = False
            self._pending.clear()
            _report(fut)

    async def _publish_later(self) -> None:
        await trio.sleep(BATCH_SECONDS)
        # Cleared before the swap: an event queued from now on schedules
        # another batch rather than wait in a list nobody will publish.
        self._scheduled = False
        events, self._pending = self._pending, []
        await _publish_all(self._bus, events)

    async def flush(self) -> None:
        """Publish what is queued now (the listener stops)."""
        events, self._pending = self._pending, []
        if events:
            try:
                await self._bridge.call_trio(_publish_all, self._bus, events)
            except Exception as exc:
                log.debug("SFTP trace events not published: %r", exc)


def _report(fut: Any) -> None:
    # A trace that could not be published (the node is stopping) is no
    # failure of any request: say so, quietly.
    if not fut.cancelled() and fut.exception() is not None:
        log.debug("SFTP trace events not published: %r", fut.exception())
