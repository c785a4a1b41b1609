"""The primary's end of the worker link outlives a secondary's broken link."""

from __future__ import annotations

import socket

import pytest
import trio

from cluster.worker_link import LinkHub
from storage.events import EventBus
from storage.trace import TraceBus

pytestmark = pytest.mark.trio


async def test_a_link_that_breaks_while_the_primary_writes_ends_alone(tmp_path):
    """A secondary gone while the primary tells it about a trace watcher:
    the write fails (EPIPE), and only that link ends.  The hub's handler
    used to let the error out inside trio's exception group, which ended
    the primary process (found by bench/compare.py, whose node exited 1)."""
    trace = TraceBus("n1")
    hub = LinkHub(trace, EventBus())
    path = str(tmp_path / "link.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.serve, path)
        gone = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await gone.connect(path)
        assert b'"watch"' in await gone.recv(100)  # the hub's first line: watch off
        # This end reads no more: the hub's next write breaks (EPIPE), while
        # its reader sees no end of stream.
        gone.shutdown(socket.SHUT_RD)
        with trio.fail_after(10):
            while hub.connected != 1:
                await trio.sleep(0.01)
        watching = trace.subscribe()  # a watcher: the hub writes "watch on"
        with trio.fail_after(10):
            while hub.connected:
                await trio.sleep(0.01)
        gone.close()
        # The hub still serves the next secondary.
        other = await trio.open_unix_socket(path)
        assert b'"watch"' in await other.receive_some(100)
        await other.aclose()
        watching.close()
        nursery.cancel_scope.cancel()
