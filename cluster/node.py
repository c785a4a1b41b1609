"""One node process: the composition root.

``run_node`` opens the metadata database through the asyncio bridge, wires the
storage core, and runs every listener and worker as a child of one root
nursery, so a crash anywhere is never silent.  SIGINT/SIGTERM start a graceful
shutdown: listeners stop accepting, in-flight requests get
``cluster.shutdown_grace_seconds`` to finish, then the database is closed.  A
second signal stops at once.

With ``[node] workers`` > 1 this process is the node's *primary*: it alone
runs what must run once per node (membership heartbeat, the transport
listener for peers, maintenance, webhook, import and image-cache workers,
the admin API's state), and its supervisor (cluster/supervisor.py) runs the
*secondaries* (cluster/secondary.py), which serve the same client ports.
All of them bind the client ports with SO_REUSEPORT, so the kernel spreads
new connections over the processes with no hand-off between them; the
primary checks first that nothing else holds the ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hypercorn.trio.tcp_server
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.trio import serve
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from cluster import drive_workers, imports, membership
from cluster.control import NodeControl
from cluster.image_cache import register as register_image_cache
from cluster.services import NodeServices, build_services
from cluster.supervisor import Supervisor, make_link_dir
from cluster.worker_link import (
    INFLIGHT_TABLE,
    LINK_SOCKET,
    LOCKS_DIR,
    RATE_TABLE,
    WEB_SOCKET,
    WRITE_SOCKET,
    LinkHub,
)
from config import Settings
from protocols.admin.trace import AccountCache, wrap_apps
from protocols.http_server import ServerConfig, open_listen_sockets, serve_http
from protocols.s3.app import create_s3_app
from protocols.s3.error_page import s3_error_page
from protocols.web import strict_h11
from protocols.web.app import create_web_app
from storage import admin_queries as queries
from storage import concurrency, ratelimit
from storage.bridge import AsyncioBridge
from storage.db import Database
from storage.shared_buckets import SharedBuckets
from storage.shared_inflight import SharedInflight
from storage.write_relay import WriteRelayServer

# hypercorn's trio worker reads its sockets 64 KiB at a time (a module constant,
# not a Config field), so a request body reached the app as 64 KiB messages,
# each through h11, hypercorn's stream and the ASGI queue.  1 MiB reads cut
# that per-message work ~16x on big uploads; small requests do not notice (a
# read returns what arrived).  Memory stays bounded: max_app_queue_size
# messages per connection.
hypercorn.trio.tcp_server.MAX_RECV = 1024 * 1024
# The web port refuses the heads request smuggling relies on, as the S3 port.
strict_h11.install()


def _hypercorn_config(settings: Settings, port: int, name: str) -> HypercornConfig:
    cfg = HypercornConfig()
    cfg.bind = [f"{settings.listen.host}:{port}"]
    cfg.graceful_timeout = settings.cluster.shutdown_grace_seconds
    cfg.h11_max_incomplete_size = settings.listen.max_header_bytes
    cfg.keep_alive_timeout = 75
    cfg.keep_alive_max_requests = 1_000_000
    cfg.accesslog = None
    cfg.errorlog = "-"
    # Bodies stream through the app; a small ASGI queue is back-pressure.
    cfg.max_app_queue_size = 4
    cfg.server_names = []
    cfg.include_server_header = False
    cfg.application_path = name
    return cfg


def build_apps(services: NodeServices) -> list[tuple[str, int, Any]]:
    """The ASGI apps this node serves, with their ports, each wrapped so that
    every request becomes one event of the live trace."""
    settings = services.settings
    apps: list[tuple[str, int, Any]] = [
        ("web", settings.listen.web_port, create_web_app(services, NodeControl(services))),
        ("s3", settings.listen.s3_port, create_s3_app(services)),
    ]
    accounts = AccountCache(lambda key: queries.account_label_of_key(services.db, key))
    return wrap_apps(apps, services.trace, settings.node.id, accounts)


@dataclass(frozen=True)
class Listening:
    """How this process binds the client ports: alone, or sharing them with
    the node's other worker processes (SO_REUSEPORT), and the Unix socket on
    which a primary also serves its web app to its secondaries."""

    shared: bool = False
    web_socket: str | None = None
    sftp: bool = True  # the SFTP port too (only the primary's: cluster/secondary.py)


async def _serve_app(
    settings: Settings, name: str, port: int, app: Any, shutdown: trio.Event,
    listening: Listening, *, task_status: Any,
) -> None:
    if name == "s3":
        # The lean server (protocols/http_server.py): hypercorn alone cannot
        # carry the S3 port's small-request rates.  Heads somewhat past the S3
        # limit still reach the app, which answers S3's own XML error.
        config = ServerConfig(
            host=settings.listen.host, port=port,
            max_header_bytes=settings.listen.max_header_bytes * 4,
            max_connections=settings.listen.max_connections,
            head_timeout=settings.listen.head_timeout_seconds,
            body_timeout=settings.listen.body_timeout_seconds,
            graceful_timeout=settings.cluster.shutdown_grace_seconds,
            reuse_port=listening.shared,
        )
        await serve_http(app, config, shutdown, error_page=s3_error_page,
                         task_status=task_status)
        return
    cfg = _hypercorn_config(settings, port, name)
    if not listening.shared and listening.web_socket is None:
        await serve(app, cfg, shutdown_trigger=shutdown.wait, task_status=task_status)
        return
    # Sockets made here: hypercorn's own cannot share a port between processes.
    socks = open_listen_sockets(settings.listen.host, port, reuse_port=listening.shared)
    if name == "web" and listening.web_socket is not None:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(listening.web_socket)
        unix.listen(cfg.backlog)
        unix.setblocking(False)
        socks.append(unix)
    await worker_serve(wrap_app(app, cfg.wsgi_max_body_size, None), cfg,
                       sockets=Sockets([], socks, []), shutdown_trigger=shutdown.wait,
                       task_status=task_status)


async def start_listeners(
    nursery: trio.Nursery, services: NodeServices, shutdown: trio.Event,
    apps: list[tuple[str, int, Any]], listening: Listening,
) -> None:
    """Start the client listeners (web, S3, SFTP) of this process in ``nursery``."""
    settings = services.settings
    host = settings.listen.host
    for name, port, app in apps:
        with _naming_listener(name, host, port):
            await nursery.start(_serve_app, settings, name, port, app, shutdown, listening)
    if settings.sftp.enabled and listening.sftp:
        from protocols.sftp.listener import serve_sftp

        with _naming_listener("sftp", host, settings.listen.sftp_port):
            await nursery.start(serve_sftp, services, shutdown)


def _probe_ports(settings: Settings) -> None:
    """Fail (ListenError) if anything already listens on a client port.

    Sockets with SO_REUSEPORT of the same user would share a port silently,
    so a second node configured with the same ports would split the first
    one's traffic instead of failing; a plain bind first refuses that.
    """
    listen = settings.listen
    ports = [("web", listen.web_port), ("s3", listen.s3_port)]
    if settings.sftp.enabled:
        ports.append(("sftp", listen.sftp_port))
    for name, port in ports:
        with _naming_listener(name, listen.host, port):
            for sock in open_listen_sockets(listen.host, port, reuse_port=False, listen=False):
                sock.close()


async def watch_signals(
    shutdown: trio.Event, cancel: Callable[[], None],
    on_shutdown: Callable[[], None] | None = None,
) -> None:
    """First SIGINT/SIGTERM: set ``shutdown`` (and call ``on_shutdown``); a
    second one: ``cancel`` at once."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if shutdown.is_set():
                cancel()  # second signal: stop now
                return
            shutdown.set()
            if on_shutdown is not None:
                on_shutdown()


async def _start_blob_layer(nursery: trio.Nursery, services: NodeServices) -> None:
    """Node-to-node transport listener and the blob layer's background workers.

    Both live in the outer nursery: they keep serving peers while the client
    listeners drain, and are cancelled with it.
    """
    settings = services.settings
    if services.transport is not None:
        await nursery.start(services.transport.serve, settings.listen.host,
                            settings.listen.transport_port)
    if services.maintenance is not None:
        nursery.start_soon(services.maintenance.run)


class ListenError(Exception):
    """A listener could not bind its address (one line for the operator)."""


@contextlib.contextmanager
def _naming_listener(name: str, host: str, port: int) -> Iterator[None]:
    """Turn a bind failure, however deeply wrapped, into a ListenError."""
    try:
        yield
    except BaseException as exc:
        os_error = find_exception(exc, OSError)
        if not isinstance(os_error, OSError):
            raise
        raise ListenError(
            f"listen.{name}_port: cannot listen on {host}:{port}: "
            f"{os.strerror(os_error.errno) if os_error.errno else os_error}"
        ) from None


def find_exception(exc: BaseException, kinds: type | tuple[type, ...]) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``, looking inside the
    exception groups trio wraps the errors of concurrent tasks in."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := find_exception(inner, kinds)) is not None:
                return found
    return None


def share_node_state(services: NodeServices, workers: int, link_dir: str = "",
                      index: int = 0) -> None:
    """Let the rate and concurrency limiters divide the cluster-wide limits
    among the nodes this node's membership view sees up
    (storage/ratelimit.py), and, with several worker processes, count in the
    node's tables in ``link_dir`` (this process being worker ``index``) so
    that the node's share holds across its processes, and lock on its
    node-wide locks there."""
    view = services.view
    if view is not None:
        ratelimit.NODES.use(lambda: sum(1 for alive in view.up.values() if alive))
    if workers > 1 and link_dir:
        ratelimit.SHARED.attach(SharedBuckets(os.path.join(link_dir, RATE_TABLE)))
        inflight = SharedInflight(os.path.join(link_dir, INFLIGHT_TABLE), index, workers)
        inflight.claim()  # what a crashed process of this index left counted
        concurrency.SHARED.attach(inflight)
        services.node_locks.attach(os.path.join(link_dir, LOCKS_DIR))


def _secondary_argv(config_path: str | None, link_dir: str) -> Callable[[int], list[str]]:
    def argv(index: int) -> list[str]:
        config = ["--config", config_path] if config_path else []
        return [sys.executable, "-m", "cluster.cli", "serve", *config,
                "--worker-index", str(index), "--worker-link", link_dir]
    return argv


async def run_node(
    settings: Settings,
    *,
    config_path: str | None = None,
    on_ready: Callable[[NodeServices], Awaitable[None] | None] | None = None,
    task_status: trio.TaskStatus[NodeServices] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a node until SIGINT/SIGTERM (or cancellation).

    This process is the node's primary: it runs everything that must run
    once per node, and with ``node.workers`` > 1 starts the secondary worker
    processes (cluster/supervisor.py) that share its client ports.
    ``config_path`` is the settings file they are started with.
    """
    settings.cluster_secret()  # fail fast, before touching the database
    workers = settings.node.worker_count()
    if workers > 1:
        _probe_ports(settings)
    bridge = AsyncioBridge(f"{settings.node.id}-asyncio")
    bridge.start()
    db = Database(settings.metadata.url, bridge)
    # The Unix sockets of the link to the secondaries.
    link_dir = make_link_dir(settings.node.id) if workers > 1 else ""
    try:
        await db.open()
        services = build_services(settings, bridge, db)
        share_node_state(services, workers, link_dir)
        register_image_cache(services)  # the image-transform cache's collector
        imports.register(services)  # v1-pro URL imports, claimed from the database
        drive_workers.register(services)  # v2-drive: trash purge, search indexing
        await membership.register(db, settings)
        shutdown = trio.Event()
        supervisor = Supervisor(settings.node.id, workers,
                                _secondary_argv(config_path, link_dir),
                                grace=settings.cluster.shutdown_grace_seconds)

        def on_signal() -> None:
            # Closing the trace ends the admin API's endless trace streams, so
            # the graceful drain does not wait for them.
            services.trace.close()
            supervisor.begin_stop()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, shutdown, nursery.cancel_scope.cancel, on_signal)
            listening = Listening()
            if workers > 1:
                hub = LinkHub(services.trace, services.events)
                await nursery.start(hub.serve, os.path.join(link_dir, LINK_SOCKET))
                # The secondaries' hot writes (SQLite and PostgreSQL alike).
                relay = WriteRelayServer(db.write_many)
                await nursery.start(relay.serve, os.path.join(link_dir, WRITE_SOCKET))
                listening = Listening(shared=True, web_socket=os.path.join(link_dir, WEB_SOCKET))
            async with trio.open_nursery() as listeners:
                await start_listeners(listeners, services, shutdown, build_apps(services),
                                      listening)
                nursery.start_soon(membership.heartbeat, db, settings)
                await _start_blob_layer(nursery, services)
                if workers > 1:
                    await nursery.start(supervisor.run)
                if not shutdown.is_set():  # not if stopped while the workers started
                    print(f"[{settings.node.id}] ready", flush=True)
                task_status.started(services)
                if on_ready is not None:
                    result = on_ready(services)
                    if result is not None:
                        await result
            # Every listener drained: so have the secondaries; then the workers.
            await supervisor.stop()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await db.close()
        bridge.stop()
        if link_dir:
            ratelimit.SHARED.detach()
            concurrency.SHARED.detach()
            shutil.rmtree(link_dir, ignore_errors=True)
