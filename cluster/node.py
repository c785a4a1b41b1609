"""One node process: the composition root.

``run_node`` opens the metadata database through the asyncio bridge, wires the
storage core, and runs every listener and worker as a child of one root
nursery, so a crash anywhere is never silent.  SIGINT/SIGTERM start a graceful
shutdown: listeners stop accepting, in-flight requests get
``cluster.shutdown_grace_seconds`` to finish, then the database is closed.  A
second signal stops at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import hypercorn.trio.tcp_server
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from cluster import drive_workers, imports, membership
from cluster.control import NodeControl
from cluster.image_cache import register as register_image_cache
from cluster.services import NodeServices, build_services
from config import Settings
from protocols.admin.trace import AccountCache, wrap_apps
from protocols.http_server import ServerConfig, serve_http
from protocols.s3.app import create_s3_app
from protocols.s3.error_page import s3_error_page
from protocols.web import strict_h11
from protocols.web.app import create_web_app
from storage import admin_queries as queries
from storage import ratelimit
from storage.bridge import AsyncioBridge
from storage.db import Database

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


async def _serve_app(
    settings: Settings, name: str, port: int, app: Any, shutdown: trio.Event, *,
    task_status: Any,
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
        )
        await serve_http(app, config, shutdown, error_page=s3_error_page,
                         task_status=task_status)
        return
    cfg = _hypercorn_config(settings, port, name)
    await serve(app, cfg, shutdown_trigger=shutdown.wait, task_status=task_status)


async def _watch_signals(
    shutdown: trio.Event, cancel: Callable[[], None],
    on_shutdown: Callable[[], None] | None = None,
) -> None:
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


def _share_rate_limits(services: NodeServices) -> None:
    """Let the rate limiters divide the cluster-wide limits among the nodes
    this node's membership view sees up (storage/ratelimit.py)."""
    view = services.view
    if view is not None:
        ratelimit.NODES.use(lambda: sum(1 for alive in view.up.values() if alive))


async def run_node(
    settings: Settings,
    *,
    on_ready: Callable[[NodeServices], Awaitable[None] | None] | None = None,
    task_status: trio.TaskStatus[NodeServices] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a node until SIGINT/SIGTERM (or cancellation)."""
    settings.cluster_secret()  # fail fast, before touching the database
    bridge = AsyncioBridge(f"{settings.node.id}-asyncio")
    bridge.start()
    db = Database(settings.metadata.url, bridge)
    try:
        await db.open()
        services = build_services(settings, bridge, db)
        _share_rate_limits(services)
        register_image_cache(services)  # the image-transform cache's collector
        imports.register(services)  # v1-pro URL imports, claimed from the database
        drive_workers.register(services)  # v2-drive: trash purge, search indexing
        await membership.register(db, settings)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            # Closing the trace ends the admin API's endless trace streams, so
            # the graceful drain does not wait for them.
            nursery.start_soon(_watch_signals, shutdown, nursery.cancel_scope.cancel,
                               services.trace.close)
            async with trio.open_nursery() as listeners:
                for name, port, app in build_apps(services):
                    with _naming_listener(name, settings.listen.host, port):
                        await listeners.start(_serve_app, settings, name, port, app, shutdown)
                if settings.sftp.enabled:
                    from protocols.sftp.listener import serve_sftp

                    with _naming_listener("sftp", settings.listen.host, settings.listen.sftp_port):
                        await listeners.start(serve_sftp, services, shutdown)
                nursery.start_soon(membership.heartbeat, db, settings)
                await _start_blob_layer(nursery, services)
                print(f"[{settings.node.id}] ready", flush=True)
                task_status.started(services)
                if on_ready is not None:
                    result = on_ready(services)
                    if result is not None:
                        await result
            # Every listener drained: stop the workers too.
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await db.close()
        bridge.stop()
