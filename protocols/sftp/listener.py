"""The SFTP listener: asyncssh on the node's asyncio bridge, storage in trio.

asyncssh only runs on asyncio, so the listener lives on the node's one
:class:`~storage.bridge.AsyncioBridge`; :func:`serve_sftp` is the trio task that
starts and stops it.  Here are accepting connections, login checks (password or
registered public key, rate-limited per user and per address) and the idle sweep.

One host key for the whole cluster: an Ed25519 key derived from the cluster
secret, so every node shows the same fingerprint.

Sessions are :class:`protocols.sftp.session.SSHSession`: the SFTP subsystem
(:class:`protocols.sftp.server.BucketSFTPServer`), or one of the hash commands
of :mod:`protocols.sftp.commands` over exec.  A connection with no request for
``sftp.idle_timeout_seconds`` (0 = never) is disconnected by one sweeper task.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import asyncssh
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from protocols.sftp import commands, inbuf
from protocols.sftp.cork import cork
from protocols.sftp.gcm import reuse_gcm_ciphers
from protocols.sftp.keepalive import lazy_keepalive
from protocols.sftp.ops import StorageOps
from protocols.sftp.server import BucketSFTPServer
from protocols.sftp.session import Activity, SSHSession, no_ignore_padding, quiet_packet_logs
from protocols.sftp.statuses import sftp_error
from protocols.sftp.tracing import TraceBatch
from storage.core import StorageCore
from storage.crypto import derive_key
from storage.path_lookup import LoopReader
from storage.ratelimit import RateLimiter
from storage.ratelog import ThrottledLog

log = logging.getLogger("cloudstorage.sftp")


def host_key(cluster_secret: bytes) -> asyncssh.SSHKey:
    """The cluster's SSH host key (Ed25519, derived from the cluster secret)."""
    seed = derive_key(cluster_secret, "sftp-host-key-ed25519")
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
    )
    return asyncssh.import_private_key(pem)


class _Commands:
    """SSH exec requests of one connection (:mod:`protocols.sftp.commands`)."""

    def __init__(self, services: StorageCore, account_id: str, activity: Activity) -> None:
        self.bridge = services.bridge
        self.ops = StorageOps(services, account_id)
        self.activity = activity

    async def digest(self, path: str, algorithm: str) -> str:
        """The digest of the object at an SFTP path (resolved as SFTP resolves it)."""
        t = BucketSFTPServer._target(path.encode())
        self.activity.begin()
        try:
            return await self.bridge.call_trio(self.ops.digest, t, algorithm)
        except Exception as exc:
            raise sftp_error(exc) from None
        finally:
            self.activity.end()

    async def __call__(
        self, command: str, stdin: asyncssh.SSHReader[bytes],
        stdout: asyncssh.SSHWriter[bytes], stderr: asyncssh.SSHWriter[bytes],
    ) -> int:
        return await commands.run(command, stdin, stdout, stderr, self.digest)


class _SSHServer(asyncssh.SSHServer):
    """Authentication: SFTP password or a registered public key, rate-limited."""

    def __init__(self, node: _Listener) -> None:
        self.node = node
        self.conn: asyncssh.SSHServerConnection | None = None
        self.ip = "unknown"
        self.activity = Activity()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        cork(conn)  # replies written in one loop pass go out in one send
        # Parsed packets leave the input buffer without a copy; AES-GCM keys
        # keep one cipher object.
        inbuf.install(conn, reuse_gcm_ciphers)
        quiet_packet_logs(conn)  # no per-packet debug formatting
        no_ignore_padding(conn)  # no ignore packet before each reply
        lazy_keepalive(conn)  # no timer rescheduled on every read
        peer = conn.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else "unknown"
        self.node.connections[conn] = self.activity

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.node.connections.pop(self.conn, None)

    def session_requested(self) -> SSHSession:
        # Our own session rather than asyncssh's stock one: see protocols.sftp.session.
        assert self.conn is not None
        services = self.node.services
        run_command = _Commands(services, self.conn.get_extra_info("account_id"), self.activity)
        factory = functools.partial(BucketSFTPServer, services=services,
                                    loop_reads=self.node.loop_reads, traces=self.node.traces)
        return SSHSession(factory, run_command, self.activity)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def _blocked(self, username: str) -> bool:
        return (self.node.logins.blocked(username) > 0
                or self.node.ip_logins.blocked(self.ip) > 0)

    def _failed(self, username: str, cost: float = 1.0) -> None:
        self.node.logins.hit(username, cost)
        self.node.ip_logins.hit(self.ip, cost)

    def _accept(self, account_id: str) -> bool:
        assert self.conn is not None
        self.conn.set_extra_info(account_id=account_id)
        self.activity.touch()  # idle time counts from the login, not the connect
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        if self._blocked(username):
            return False
        users = self.node.services.sftp_users
        try:
            account = await self.node.bridge.call_trio(users.check_password, username, password)
        except Exception as exc:
            self.node.login_errors.log(f"password {type(exc).__name__}",
                                       f"SFTP password check failed: {exc!r}")
            return False
        if account is None:
            self._failed(username)
            return False
        return self._accept(account.id)

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._blocked(username):
            return False
        users = self.node.services.sftp_users
        fingerprint = key.get_fingerprint("sha256")
        try:
            account = await self.node.bridge.call_trio(users.check_key, username, fingerprint)
        except Exception as exc:
            self.node.login_errors.log(f"key {type(exc).__name__}",
                                       f"SFTP key check failed: {exc!r}")
            return False
        if account is None:
            # Clients offer every key they hold: count key misses lightly.
            self._failed(username, 0.2)
            return False
        return self._accept(account.id)


class _Listener:
    """State shared by the connections of one node's SFTP listener."""

    def __init__(self, services: StorageCore) -> None:
        self.services = services
        self.bridge = services.bridge
        per_minute = services.settings.sftp.login_attempts_per_minute
        # Per username, and (looser, since many users may share a NAT) per address.
        self.logins = RateLimiter(per_minute, 60.0)
        self.ip_logins = RateLimiter(per_minute * 10, 60.0)
        self.connections: dict[asyncssh.SSHServerConnection, Activity] = {}
        self.acceptor: Any = None
        self.traces = TraceBatch(services.trace, services.bridge)
        # Path lookups of every session, right on the asyncio loop.
        self.loop_reads = LoopReader(services.db)
        # A database outage fails every login the same way: one line per
        # cause every few seconds, not a traceback per attempt.
        self.login_errors = ThrottledLog(log)

    async def start(self, host: str, port: int) -> None:
        """Runs on the asyncio loop: start listening."""
        settings = self.services.settings
        self.loop_reads.open()
        self.acceptor = await asyncssh.create_server(
            functools.partial(_SSHServer, self), host, port,
            server_host_keys=[host_key(settings.cluster_secret())],
            login_timeout=60, keepalive_interval=30,
            window=8 * 1024 * 1024, server_version="CloudStorage",
            # Not shared: only a node's primary process serves SFTP
            # (cluster/secondary.py says why).
        )

    async def close_idle(self, timeout: float) -> None:
        """Runs on the asyncio loop: disconnect connections idle for ``timeout``
        seconds (no SFTP request or command running or finished since)."""
        now = time.monotonic()
        for conn, activity in list(self.connections.items()):
            idle = activity.idle_for(now)
            if idle >= timeout:
                log.info("closing SFTP connection of %s: idle for %.0f s",
                         conn.get_extra_info("account_id") or "(not logged in)", idle)
                conn.disconnect(asyncssh.DISC_BY_APPLICATION,
                                f"Idle for more than {timeout:g} seconds")

    async def stop(self) -> None:
        """Runs on the asyncio loop: stop listening and end every session."""
        if self.acceptor is not None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
        for conn in list(self.connections):
            conn.close()
        for conn in list(self.connections):
            await conn.wait_closed()
        await self.traces.flush()  # the last sessions' events
        self.loop_reads.close()


async def _close_idle_connections(listener: _Listener, timeout: float) -> None:
    """One sweeper for all connections (not a timer per request): a connection
    is closed between ``timeout`` and ``timeout * 1.25`` seconds of idleness."""
    period = min(max(timeout / 4, 0.05), 60.0)
    while True:
        await trio.sleep(period)
        await listener.bridge.run(listener.close_idle, timeout)


async def serve_sftp(
    services: StorageCore, shutdown: trio.Event,
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the node's SFTP listener until ``shutdown`` is set (a trio task)."""
    settings = services.settings
    listener = _Listener(services)
    bridge = services.bridge
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.serve_trio_calls)
        await bridge.run(listener.start, settings.listen.host, settings.listen.sftp_port)
        if settings.sftp.idle_timeout_seconds > 0:
            nursery.start_soon(_close_idle_connections, listener,
                               float(settings.sftp.idle_timeout_seconds))
        task_status.started()
        try:
            await shutdown.wait()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + settings.cluster.shutdown_grace_seconds
                await bridge.run(listener.stop)
            nursery.cancel_scope.cancel()
