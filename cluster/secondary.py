"""A secondary worker process of a node: more cores for the client ports.

Started by the node's primary (cluster/supervisor.py), it serves the same
client listeners as the primary on the same ports, S3 and web: every
process binds them with SO_REUSEPORT and the kernel spreads new connections
across them.  Not SFTP: that port is the primary's alone (below).  It runs
nothing that must run once per node: no membership
heartbeat, no transport listener for peers, no maintenance, webhook, import
or image-cache workers.  It is a client of the blob layer like the primary
(chunks to the local chunk directory, whose writes are temp file + rename
with random temp names, and to peers over the transport), keeps its own
metadata connections (its object commits go to the primary's writer:
storage/write_relay.py; its other writes have their own writer, on SQLite
queued behind the others by SQLite's lock) and refreshes its own view
of layout and membership from the database.

What belongs to the node rather than the process goes to the primary:
trace events and request counters, committed events (cluster/worker_link.py)
and admin API requests (cluster/admin_proxy.py).

Why SFTP is served by the primary only: an SSH session stays with the
process that accepted it, and OpenSSH's ``sftp`` stores one small file per
round trip, so a session on a secondary relays every file's commit to the
primary (storage/write_relay.py) one at a time, never in a group.  That
relay cost more than the rest of the commit: node CPU per 4 KiB put,
1,000 files over one session, was 1.8-2.4 ms when a secondary served the
session (the primary's part, the relayed commits alone, 0.6-0.85 ms)
against 1.2-1.6 ms on the primary, which then took 748 files/s against
470.  Which process the kernel picked was a coin toss per session.  Many
sessions at once did not win the relay's price back either: 4 concurrent
``sftp`` sessions on the 2-core machine (alternated, medians of 4) stored
492 small files/s with SFTP on the primary only against 391 on both
processes (1.41 against 1.87 ms of node CPU per file), read 722 files/s
against 582, and 2 concurrent 64 MiB puts took 103 against 91 MiB/s.
Those clients ran on the same two cores, so the second process had no
idle core to use; what this costs is SFTP beyond one process's core (its
asyncio thread bounds one big transfer) on a node with more cores and
remote clients.  S3 and web requests commit in groups the relay carries
as one, and keep every process.

It stops on SIGTERM/SIGINT (graceful, like the primary), and at once when
its stdin reaches end of file: the primary holds the other end, so that is
the primary's death, however it died.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import trio

from cluster.admin_proxy import AdminProxy
from cluster.node import (
    Listening,
    build_apps,
    share_node_state,
    start_listeners,
    watch_signals,
)
from cluster.services import NodeServices, build_services
from cluster.supervisor import ready_line
from cluster.worker_link import LINK_SOCKET, WEB_SOCKET, WRITE_SOCKET, LinkClient
from config import Settings
from storage.bridge import AsyncioBridge
from storage.db import Database
from storage.errors import ServiceUnavailable
from storage.ratelog import ThrottledLog
from storage.write_relay import WriteRelayClient

log = logging.getLogger("cloudstorage.workers")


async def _watch_parent(cancel: Callable[[], None]) -> None:
    """Stop at once when stdin (a pipe from the primary) reaches end of file.

    The node is gone with its primary, and a restarted primary must find
    its ports free: in-flight requests are cut as if the whole node had
    crashed, rather than drained for the grace period.
    """
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    try:
        while await stdin.receive_some(4096):
            pass  # the primary never writes; any bytes are ignored
    finally:
        await stdin.aclose()
    print("primary process gone: stopping", file=sys.stderr, flush=True)
    cancel()


async def _refresh_view(services: NodeServices) -> None:
    """Re-read layout and membership as the primary's layout worker does, so
    placement and the rate limits' node count follow the cluster."""
    view = services.view
    if view is None:
        return
    # The primary's workers report a database outage; other failures are
    # logged here, a line per cause every few seconds at most.
    errors = ThrottledLog(log)
    while True:
        try:
            await view.refresh()
        except ServiceUnavailable:
            pass
        except Exception as exc:
            errors.log(type(exc).__name__, f"layout refresh failed: {type(exc).__name__}: {exc}")
        await trio.sleep(services.settings.cluster.layout_refresh_seconds)


async def run_secondary(settings: Settings, index: int, link_dir: str) -> None:
    """Run secondary worker ``index`` of a node until it is told to stop."""
    bridge = AsyncioBridge(f"{settings.node.id}-w{index}-asyncio")
    bridge.start()
    db = Database(settings.metadata.url, bridge)
    try:
        await db.open()
        services = build_services(settings, bridge, db)
        share_node_state(services, settings.node.worker_count(), link_dir, index)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, shutdown, nursery.cancel_scope.cancel,
                               services.trace.close)
            nursery.start_soon(_watch_parent, nursery.cancel_scope.cancel)
            link = LinkClient(services.trace, services.events, index)
            await nursery.start(link.run, os.path.join(link_dir, LINK_SOCKET))
            relay = WriteRelayClient()
            await nursery.start(relay.run, os.path.join(link_dir, WRITE_SOCKET))
            db.relay_writes(relay)
            if services.view is not None:
                await services.view.refresh()
            nursery.start_soon(_refresh_view, services)
            apps = [(name, port, AdminProxy(app, os.path.join(link_dir, WEB_SOCKET))
                     if name == "web" else app)
                    for name, port, app in build_apps(services)]
            async with trio.open_nursery() as listeners:
                await start_listeners(listeners, services, shutdown, apps,
                                      Listening(shared=True, sftp=False))
                print(ready_line(settings.node.id, index), flush=True)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await db.close()
        bridge.stop()
