"""The link between a node's primary process and its secondary worker processes.

A node with ``[node] workers`` > 1 serves its client ports from several
processes (cluster/supervisor.py).  Two kinds of per-node state live only in
the primary, and this Unix-socket link carries what the secondaries produce
for them:

* **the live trace**: while someone watches the primary's trace (the admin
  API's stream; a stream request that reaches a secondary is proxied to the
  primary, cluster/admin_proxy.py), the primary tells every secondary to
  forward full trace events, which it publishes to its watchers.  Whether or
  not anyone watches, each secondary sends its per-second request counters
  once a second, so the node's request rates cover every process.
* **committed events** (storage/events.py): the in-process consumers
  (webhook delivery's "send now" trigger) run in the primary, so each
  secondary forwards its events to be republished on the primary's bus.

Wire format: one JSON object per line, both ways.  Secondary to primary:
``{"k": "trace", "e": {...}}``, ``{"k": "seconds", "s": [...]}``,
``{"k": "dropped", "n": N}``, ``{"k": "event", "e": {...}}``.  Primary to
secondary: ``{"k": "watch", "on": bool}``.  The socket lives in a directory
only the node's user can enter, so a connection needs no other proof.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import trio

from storage.events import Event, EventBus, EventType
from storage.trace import Subscription, TraceBus, TraceEvent

log = logging.getLogger("cloudstorage.workers")

# The link's sockets, in the directory the primary makes for them.
LINK_SOCKET = "link.sock"
# The node's shared rate-limit buckets (storage/shared_buckets.py).
RATE_TABLE = "ratelimit.table"
# Its requests in flight (storage/shared_inflight.py).
INFLIGHT_TABLE = "inflight.table"
# Its cross-process locks (storage/node_locks.py).
LOCKS_DIR = "locks"
WEB_SOCKET = "web.sock"  # the primary's web app (cluster/admin_proxy.py)
WRITE_SOCKET = "write.sock"  # the primary's group-commit writer (storage/write_relay.py)
# A secondary's outgoing queue (lines not yet written to the primary): past it
# trace events are dropped and counted, like a slow trace subscriber's.
OUT_QUEUE = 4096
# How many queued messages one write joins (fewer system calls under load).
WRITE_BATCH = 256
# A secondary forwards the trace through a subscription of this size.
RELAY_BUFFER = 1000
# Longest line accepted (a trace event is a few hundred bytes).
MAX_LINE = 1024 * 1024


class _Lines:
    """Newline-delimited JSON over a trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()

    async def read(self) -> dict[str, Any] | None:
        """The next message, or None at end of stream."""
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[:end + 1]
                return dict(json.loads(line))
            if len(self._buf) > MAX_LINE:
                raise ValueError("worker link: line too long")
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self._buf += data

    async def write(self, messages: list[dict[str, Any]]) -> None:
        """Send ``messages`` in one write."""
        await self.stream.send_all(
            b"".join(json.dumps(m, default=str).encode() + b"\n" for m in messages))


def _event_json(event: Event) -> dict[str, Any]:
    return {"type": str(event.type), "account_id": event.account_id, "data": dict(event.data),
            "origin": event.origin, "actor": event.actor, "at": event.at.isoformat()}


def _event_of(data: dict[str, Any]) -> Event:
    return Event(EventType(data["type"]), str(data["account_id"]), dict(data["data"]),
                 origin=str(data.get("origin", "")), actor=str(data.get("actor", "")),
                 at=datetime.fromisoformat(data["at"]))


class LinkHub:
    """The primary's end: accepts its secondaries and merges what they send."""

    def __init__(self, trace: TraceBus, events: EventBus) -> None:
        self.trace = trace
        self.events = events
        self.connected = 0

    async def serve(self, path: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the Unix socket ``path`` until cancelled."""
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(16)
        listener = trio.SocketListener(sock)
        task_status.started()
        await trio.serve_listeners(self._handle, [listener])

    async def _handle(self, stream: trio.SocketStream) -> None:
        lines = _Lines(stream)
        self.connected += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_watch, lines)
                await self._receive(lines)
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, ValueError) as group:
            # except*: trio wraps a nursery's errors in a group.  One
            # secondary's broken link (it died while the primary wrote to
            # it) must end that link only, never the primary.
            log.warning("worker link closed: %s", group.exceptions[0])
        finally:
            self.connected -= 1
            await trio.aclose_forcefully(stream)

    async def _send_watch(self, lines: _Lines) -> None:
        changed = trio.Event()

        def hook(_count: int) -> None:
            changed.set()

        remove = self.trace.on_watchers(hook)
        try:
            sent: bool | None = None
            while True:
                on = self.trace.subscriber_count > 0
                if on != sent:
                    await lines.write([{"k": "watch", "on": on}])
                    sent = on
                await changed.wait()
                changed = trio.Event()
        finally:
            remove()

    async def _receive(self, lines: _Lines) -> None:
        while (message := await lines.read()) is not None:
            kind = message.get("k")
            if kind == "trace":
                self.trace.publish(TraceEvent(**message["e"]), count=False)
            elif kind == "seconds":
                for second in message["s"]:
                    self.trace.merge_second(second)
            elif kind == "dropped":
                self.trace.add_dropped(int(message["n"]))
            elif kind == "event":
                self.events.publish([_event_of(message["e"])])


class LinkClient:
    """A secondary's end: forwards its trace and events to the primary."""

    def __init__(self, trace: TraceBus, events: EventBus, worker: int) -> None:
        self.trace = trace
        self.events = events
        self.worker = worker
        self._out_send, self._out_receive = trio.open_memory_channel[dict[str, Any]](OUT_QUEUE)
        self._dropped = 0
        self._watch = False
        self._watch_changed = trio.Event()

    def _queue(self, message: dict[str, Any]) -> bool:
        try:
            self._out_send.send_nowait(message)
            return True
        except trio.WouldBlock:
            return False

    def _on_event(self, event: Event) -> None:
        # Committed events are rare next to requests; one lost to a full
        # queue only delays a webhook to the delivery worker's next poll.
        self._queue({"k": "event", "e": _event_json(event)})

    async def run(self, path: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Connect to the primary at ``path`` and relay until cancelled."""
        stream = await trio.open_unix_socket(path)
        lines = _Lines(stream)
        unsubscribe = self.events.subscribe(self._on_event)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, lines)
                nursery.start_soon(self._send_seconds)
                nursery.start_soon(self._relay_trace)
                task_status.started()
                await self._receive(lines)
                # The primary closed the link: it is stopping or gone, which
                # the process learns from its signal or its stdin.
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError) as group:
            log.warning("worker link to the primary lost: %s", group.exceptions[0])
        finally:
            unsubscribe()
            await trio.aclose_forcefully(stream)

    async def _receive(self, lines: _Lines) -> None:
        while (message := await lines.read()) is not None:
            if message.get("k") == "watch":
                self._watch = bool(message["on"])
                self._watch_changed.set()
                self._watch_changed = trio.Event()

    async def _write(self, lines: _Lines) -> None:
        while True:
            batch = [await self._out_receive.receive()]
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self._out_receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await lines.write(batch)

    async def _send_seconds(self) -> None:
        last = 0
        while True:
            await trio.sleep(1.0)
            seconds = self.trace.export_seconds(last)
            if seconds:
                last = max(s["second"] for s in seconds)
                await self._out_send.send({"k": "seconds", "s": seconds})

    async def _relay_trace(self) -> None:
        """While the primary has watchers, hold a subscription on this
        process's trace (so its middleware builds full events) and forward."""
        while True:
            while not self._watch:
                await self._watch_changed.wait()
            sub = self.trace.subscribe(RELAY_BUFFER)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._unwatch, self._watch_changed, nursery.cancel_scope)
                    await self._forward(sub)
                    nursery.cancel_scope.cancel()
            finally:
                sub.close()
            if self.trace.closed:
                return  # shutting down: no more events to forward

    @staticmethod
    async def _unwatch(changed: trio.Event, scope: trio.CancelScope) -> None:
        await changed.wait()  # the primary's watchers are gone
        scope.cancel()

    async def _forward(self, sub: Subscription) -> None:
        async for event in sub.receive:
            dropped = sub.take_dropped() + self._take_dropped()
            if dropped:
                await self._out_send.send({"k": "dropped", "n": dropped})
            if not self._queue({"k": "trace", "e": _trace_json(event, self.worker)}):
                self._dropped += 1

    def _take_dropped(self) -> int:
        n, self._dropped = self._dropped, 0
        return n


def _trace_json(event: TraceEvent, worker: int) -> dict[str, Any]:
    data = event.to_json()
    data.pop("bytes", None)  # derived; TraceEvent(**data) must accept the rest
    data["worker"] = worker
    return data

