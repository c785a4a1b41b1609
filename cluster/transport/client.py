"""Transport client: a small per-peer connection pool and the chunk/control requests."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import select
import time
from typing import Any

import h11
import trio

from cluster.transport.wire import (
    DISK_FULL,
    HEAD_RECV,
    POOL_IDLE_SECONDS,
    PeerDiskFull,
    PeerUnreachable,
    TransportError,
    body_mac,
    header_value,
    next_event,
    read_body,
    read_body_raw,
    sha256_async,
    sign,
    transport_key,
)
from storage.blobs import ChunkCorrupt, ChunkNotFound, check_chunk_id

_EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class _Conn:
    __slots__ = ("h11", "idle_since", "reusable", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=16384)
        # False once the peer said it closes, or a body bypassed h11.
        self.reusable = True
        self.idle_since = 0.0

    def looks_alive(self) -> bool:
        """Whether an idle connection is still open, checked without waiting.

        Between exchanges the peer has nothing to say, so a readable socket
        means it closed the connection (EOF, or a reset) or sent garbage:
        either way the connection must not carry another request.
        """
        try:
            poller = select.poll()
            poller.register(self.stream.socket.fileno(), select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):  # already closed
            return False


def _connect_failure(addr: str, exc: BaseException) -> str:
    """Why a connection could not be opened, worded for the operator."""
    if isinstance(exc, trio.TooSlowError):
        return f"node at {addr} is unreachable: connect timed out"
    # trio raises "all attempts to connect failed" with the per-address
    # errors as its cause; the first one names the reason (refused, no route).
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        exc = cause.exceptions[0]
    reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
    return f"node at {addr} is unreachable: {reason.lower()}"


def _status_failure(addr: str, what: str, status: int, body: bytes) -> TransportError:
    """The error for an unexpected answer, keeping the peer's own reason."""
    reason = body[:200].decode("utf-8", "replace").strip()
    if status == DISK_FULL:
        return PeerDiskFull(f"{addr}: {what}: {reason or 'disk full'}")
    return TransportError(f"{addr}: {what} answered {status}" + (f": {reason}" if reason else ""))


class TransportClient:
    """Talks to peers' transports, keeping a few idle connections per peer."""

    def __init__(
        self, node_id: str, secret: bytes, *, timeout: float = 30.0,
        connect_timeout: float = 5.0, max_idle: int = 8,
        pool_idle_seconds: float = POOL_IDLE_SECONDS,
    ) -> None:
        self.node_id = node_id
        self._key = transport_key(secret)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._idle: dict[str, list[_Conn]] = {}
        self._max_idle = max_idle
        self.pool_idle_seconds = pool_idle_seconds

    async def request(
        self, addr: str, method: str, target: str, body: bytes = b"", *,
        body_sha: str | None = None,
    ) -> tuple[int, bytes]:
        """Send one request to ``addr`` ("host:port"); returns (status, body).

        Pooled connections are checked before reuse (see ``_pooled``); one
        that fails anyway (the peer closed it just then) is retried once on a
        *fresh* connection -- never on another pooled one, which may have gone
        stale for the same reason.  Every request of this protocol is
        idempotent, so a retry is safe.
        """
        body_sha = body_sha or (hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA)
        for attempt in range(2):
            conn, reused = await self._checkout(addr, fresh=attempt > 0)
            try:
                with trio.fail_after(self.timeout):
                    status, data = await self._exchange(conn, addr, method, target, body,
                                                        body_sha)
            except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError,
                    TransportError, OSError) as exc:
                await trio.aclose_forcefully(conn.stream)
                if reused and attempt == 0:
                    continue
                raise TransportError(f"{addr}: {method} {target[:40]}: {exc}") from None
            except trio.TooSlowError:
                await trio.aclose_forcefully(conn.stream)
                raise TransportError(f"{addr}: {method} timed out") from None
            except BaseException:
                await trio.aclose_forcefully(conn.stream)
                raise
            self._checkin(addr, conn)
            return status, data
        raise AssertionError("unreachable")

    async def _checkout(self, addr: str, *, fresh: bool = False) -> tuple[_Conn, bool]:
        """A connection to ``addr`` and whether it was reused from the pool."""
        if not fresh and (conn := self._pooled(addr)) is not None:
            return conn, True
        host, _, port = addr.rpartition(":")
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(host, int(port))
        except (OSError, trio.TooSlowError) as exc:
            raise PeerUnreachable(_connect_failure(addr, exc)) from None
        return _Conn(stream), False

    def _pooled(self, addr: str) -> _Conn | None:
        """The most recently used idle connection that is still good, if any.

        Connections idle longer than ``pool_idle_seconds`` (the server may be
        closing them) or already closed by the peer are dropped on the way.
        """
        pool = self._idle.get(addr)
        cutoff = trio.current_time() - self.pool_idle_seconds
        while pool:
            conn = pool.pop()
            if conn.idle_since >= cutoff and conn.looks_alive():
                return conn
            conn.stream.socket.close()
        return None

    def _checkin(self, addr: str, conn: _Conn) -> None:
        c = conn.h11
        fresh = c.our_state is h11.IDLE and conn.reusable
        done = c.our_state is h11.DONE and c.their_state is h11.DONE
        if fresh or done:
            if done:
                c.start_next_cycle()
            pool = self._idle.setdefault(addr, [])
            if len(pool) < self._max_idle:
                conn.idle_since = trio.current_time()
                pool.append(conn)
                return
        conn.stream.socket.close()

    async def _exchange(
        self, conn: _Conn, addr: str, method: str, target: str, body: bytes, body_sha: str
    ) -> tuple[int, bytes]:
        date = str(int(time.time()))
        nonce = secrets.token_hex(12)
        headers = [
            ("host", addr), ("content-length", str(len(body))),
            ("x-cs-node", self.node_id), ("x-cs-date", date), ("x-cs-sha256", body_sha),
            ("x-cs-nonce", nonce),
        ]
        mac = ""
        if body:
            mac = body_mac(self._key, method, target, date, self.node_id, nonce, body)
            headers.append(("x-cs-body-mac", mac))
        headers.append(("authorization", "CS-HMAC " + sign(
            self._key, method, target, date, self.node_id, body_sha, nonce, mac)))
        c = conn.h11
        await conn.stream.send_all(c.send(h11.Request(method=method, target=target,
                                                      headers=headers)))
        if body:
            for piece in c.send_with_data_passthrough(h11.Data(data=body)):
                await conn.stream.send_all(piece)
        await conn.stream.send_all(c.send(h11.EndOfMessage()) or b"")
        while True:
            event = await next_event(conn.stream, c, HEAD_RECV)
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                break
            raise TransportError(f"unexpected {type(event).__name__}")
        length_h = header_value(event.headers, b"content-length")
        if method == "HEAD" or length_h is None:
            data = await read_body(conn.stream, c, None)
        else:
            raw, bypassed = await read_body_raw(conn.stream, c, int(length_h))
            data = bytes(raw)
            del raw
            if bypassed:
                # h11 missed the body's end; continue the socket with a new one.
                conn.reusable = c.their_state is not h11.MUST_CLOSE and \
                    header_value(event.headers, b"connection") != "close"
                conn.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=16384)
        return event.status_code, data

    async def aclose(self) -> None:
        """Close every idle connection."""
        for pool in self._idle.values():
            for conn in pool:
                await trio.aclose_forcefully(conn.stream)
        self._idle.clear()

    # -- chunk operations ----------------------------------------------------------

    async def put_chunk(self, addr: str, chunk_id: str, data: bytes) -> None:
        """Store a chunk on a peer (the chunk id is the body's signed hash)."""
        status, body = await self.request(addr, "PUT", f"/v1/chunks/{check_chunk_id(chunk_id)}",
                                          data, body_sha=chunk_id)
        if status != 204:
            raise _status_failure(addr, "PUT chunk", status, body)

    async def get_chunk(self, addr: str, chunk_id: str) -> bytes:
        """Verified bytes from a peer; ChunkNotFound / ChunkCorrupt / TransportError."""
        status, body = await self.request(addr, "GET", f"/v1/chunks/{check_chunk_id(chunk_id)}")
        if status == 404:
            raise ChunkNotFound(chunk_id, f"not on {addr}")
        if status != 200:
            raise TransportError(f"{addr}: GET chunk answered {status}")
        # Never trust the wire (or the peer's disk): the id is the checksum.
        if await sha256_async(body) != chunk_id:
            raise ChunkCorrupt(chunk_id, f"bytes from {addr} do not match")
        return body

    async def has_chunk(self, addr: str, chunk_id: str) -> bool:
        """Whether the peer holds the chunk."""
        status, _ = await self.request(addr, "HEAD", f"/v1/chunks/{check_chunk_id(chunk_id)}")
        if status not in (200, 404):
            raise TransportError(f"{addr}: HEAD chunk answered {status}")
        return status == 200

    async def delete_chunk(self, addr: str, chunk_id: str) -> None:
        """Remove the chunk from the peer."""
        status, _ = await self.request(addr, "DELETE",
                                       f"/v1/chunks/{check_chunk_id(chunk_id)}")
        if status != 204:
            raise TransportError(f"{addr}: DELETE chunk answered {status}")

    async def list_chunks(
        self, addr: str, partitions: list[int] | None = None, bits: int = 8
    ) -> list[str]:
        """Chunk ids the peer holds (optionally only of some partitions)."""
        target = "/v1/chunks"
        if partitions is not None:
            target += f"?bits={bits}&partitions=" + ",".join(str(p) for p in partitions)
        status, body = await self.request(addr, "GET", target)
        if status != 200:
            raise TransportError(f"{addr}: list answered {status}")
        return body.decode().split()

    async def control(self, addr: str, method: str, path: str) -> Any:
        """Call a control endpoint (workers) and decode its JSON answer."""
        status, body = await self.request(addr, method, path)
        if status != 200:
            raise TransportError(f"{addr}: {method} {path} answered {status}: {body[:200]!r}")
        return json.loads(body)
