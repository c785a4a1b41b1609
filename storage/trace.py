"""The live request trace of one node: an in-process publish/subscribe bus.

Every request a node serves (any protocol) is published here as one
:class:`TraceEvent`.  Subscribers (the admin API's server-sent-event stream)
each get a *bounded* buffer: when a subscriber is slow its buffer fills and
further events for it are dropped and counted, so a slow console can never
slow down request handling or grow memory without bound.

The bus also keeps per-second request and error counters for the last minute,
which the admin API reports as rates.

This module is protocol-agnostic: it knows nothing about HTTP.  The ASGI
middleware that produces events lives in :mod:`protocols.admin.trace`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

DEFAULT_BUFFER = 1000
_RATE_WINDOW = 60  # seconds of per-second counters kept


@dataclass(frozen=True)
class TraceEvent:
    """One served request."""

    time: float  # epoch seconds at which the request started
    node: str
    protocol: str  # "s3", "web", "sftp", ...
    operation: str  # e.g. "PutObject", "GET /api/v1/files"
    status: int
    duration_ms: float
    method: str = ""
    path: str = ""
    account: str = ""  # email when known, else the account id, else ""
    access_key: str = ""
    bucket: str = ""
    key: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    remote: str = ""
    # Which of the node's worker processes served it (0: the primary).
    worker: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the admin API's ``TraceEvent`` schema)."""
        data = asdict(self)
        data["bytes"] = self.bytes_in + self.bytes_out
        return data


@dataclass(eq=False)  # identity semantics: kept in a set
class Subscription:
    """One subscriber's bounded buffer.  Iterate it to receive events."""

    bus: TraceBus
    send: trio.MemorySendChannel[TraceEvent]
    receive: trio.MemoryReceiveChannel[TraceEvent]
    dropped: int = 0

    def take_dropped(self) -> int:
        """Events dropped since the last call (and reset the count)."""
        n, self.dropped = self.dropped, 0
        return n

    def close(self) -> None:
        """Stop receiving; idempotent."""
        self.bus._discard(self)
        self.send.close()


@dataclass
class _Second:
    second: int
    requests: int = 0
    errors: int = 0  # status >= 500
    client_errors: int = 0  # 400 <= status < 500
    by_protocol: dict[str, int] = field(default_factory=dict)


class TraceBus:
    """Fan-out of :class:`TraceEvent` to subscribers, plus request-rate counters.

    ``publish`` must run in the node's trio thread; code on other threads
    (the asyncio side of the bridge) uses :meth:`publish_threadsafe`.
    """

    def __init__(self, node_id: str, *, buffer: int = DEFAULT_BUFFER) -> None:
        self.node_id = node_id
        self._buffer = buffer
        self._subscribers: set[Subscription] = set()
        self._seconds: deque[_Second] = deque(maxlen=_RATE_WINDOW + 1)
        self._total = 0
        self._total_errors = 0
        self._closed = False
        # Called with the new subscriber count whenever it changes: a node's
        # secondary worker processes forward full events only while someone
        # watches (cluster/worker_link.py).
        self._watch_hooks: list[Callable[[int], None]] = []
        try:
            self._token: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
        except RuntimeError:  # built outside trio (unit tests)
            self._token = None

    # -- producing -------------------------------------------------------

    def publish(self, event: TraceEvent, *, count: bool = True) -> None:
        """Count the event and hand it to every subscriber without blocking.

        ``count=False`` for an event another worker process of this node
        served: that process counted it and sends its counters separately
        (:meth:`merge_second`), whether or not anyone watches.
        """
        if count:
            self._count(event)
        for sub in list(self._subscribers):
            try:
                sub.send.send_nowait(event)
            except trio.WouldBlock:
                sub.dropped += 1  # slow subscriber: drop, never wait
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._discard(sub)

    def add_dropped(self, n: int) -> None:
        """Tell every subscriber that ``n`` events were dropped upstream (by
        another worker process's bounded relay buffer)."""
        for sub in self._subscribers:
            sub.dropped += n

    def publish_threadsafe(self, event: TraceEvent) -> None:
        """:meth:`publish` from another thread (e.g. the asyncio bridge)."""
        if self._token is None:
            raise RuntimeError("the trace bus was not created inside a trio run")
        self._token.run_sync_soon(self.publish, event)

    def _count(self, event: TraceEvent) -> None:
        self.count(event.protocol, event.status)

    def count(self, protocol: str, status: int) -> None:
        """Count a request in the rates without publishing an event (for a
        request nobody was watching the trace for)."""
        now = int(time.time())
        if not self._seconds or self._seconds[-1].second != now:
            self._seconds.append(_Second(now))
        slot = self._seconds[-1]
        slot.requests += 1
        slot.by_protocol[protocol] = slot.by_protocol.get(protocol, 0) + 1
        self._total += 1
        if status >= 500:
            slot.errors += 1
            self._total_errors += 1
        elif status >= 400:
            slot.client_errors += 1

    # -- consuming -------------------------------------------------------

    def subscribe(self, buffer: int | None = None) -> Subscription:
        """A new subscription with a bounded buffer (default: the bus's)."""
        send, receive = trio.open_memory_channel[TraceEvent](buffer or self._buffer)
        sub = Subscription(self, send, receive)
        if self._closed:
            send.close()
        else:
            self._subscribers.add(sub)
            self._watchers_changed()
        return sub

    def _discard(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            self._watchers_changed()

    def on_watchers(self, hook: Callable[[int], None]) -> Callable[[], None]:
        """Call ``hook(subscriber_count)`` on every change; returns the
        function that removes the hook."""
        self._watch_hooks.append(hook)
        return lambda: self._watch_hooks.remove(hook)

    def _watchers_changed(self) -> None:
        for hook in list(self._watch_hooks):
            hook(len(self._subscribers))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (the node is shutting down)."""
        return self._closed

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are attached."""
        return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (node shutdown: streams finish, so the
        server's graceful drain does not wait for them)."""
        self._closed = True
        for sub in list(self._subscribers):
            sub.close()

    # -- rates -----------------------------------------------------------

    def export_seconds(self, after: int) -> list[dict[str, Any]]:
        """The counters of every complete second later than ``after``, as
        JSON-ready dicts (what a secondary worker process sends its primary)."""
        now = int(time.time())
        return [asdict(s) for s in self._seconds if after < s.second < now]

    def merge_second(self, data: dict[str, Any]) -> None:
        """Add another worker process's counters of one second (an
        :meth:`export_seconds` item) to this bus's rates and totals."""
        second = int(data["second"])
        requests, errors = int(data["requests"]), int(data["errors"])
        self._total += requests
        self._total_errors += errors
        if second < int(time.time()) - _RATE_WINDOW:
            return  # too old for the rates: counted in the totals only
        slot = next((s for s in self._seconds if s.second == second), None)
        if slot is None:
            slot = _Second(second)
            self._seconds = deque(sorted([*self._seconds, slot], key=lambda s: s.second),
                                  maxlen=_RATE_WINDOW + 1)
        slot.requests += requests
        slot.errors += errors
        slot.client_errors += int(data["client_errors"])
        for proto, n in dict(data["by_protocol"]).items():
            slot.by_protocol[str(proto)] = slot.by_protocol.get(str(proto), 0) + int(n)

    def _window(self, seconds: int) -> Iterator[_Second]:
        # Only complete seconds: the current one is still filling up.
        now = int(time.time())
        return (s for s in self._seconds if now - seconds <= s.second < now)

    def stats(self, window: int = 10) -> dict[str, Any]:
        """Totals since start and per-second rates over the last ``window`` s."""
        window = max(1, min(window, _RATE_WINDOW))
        slots = list(self._window(window))
        by_protocol: dict[str, float] = {}
        for s in slots:
            for proto, n in s.by_protocol.items():
                by_protocol[proto] = by_protocol.get(proto, 0) + n

        def rate(n: float) -> float:
            return math.floor(n / window * 100) / 100

        return {
            "window_seconds": window,
            "requests_total": self._total,
            "errors_total": self._total_errors,
            "request_rate": rate(sum(s.requests for s in slots)),
            "error_rate": rate(sum(s.errors for s in slots)),
            "client_error_rate": rate(sum(s.client_errors for s in slots)),
            "rate_by_protocol": {k: rate(v) for k, v in sorted(by_protocol.items())},
            "subscribers": self.subscriber_count,
        }
