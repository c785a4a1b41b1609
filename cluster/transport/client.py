"""Transport client: a small per-peer connection pool and the chunk/control requests."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import select
import time
from typing import Any

import trio

from cluster.transport.framing import ResponseHead, parse_response_head, request_head
from cluster.transport.wire import (
    DISK_FULL,
    HEAD_RECV,
    JOIN_BODY_MAX,
    MAX_HEAD,
    POOL_IDLE_SECONDS,
    BodyTag,
    PeerDiskFull,
    PeerUnreachable,
    TransportError,
    body_tag,
    receive_rest,
    send_message,
    sha256_async,
    sign,
    transport_key,
)
from storage.blobs import ChunkCorrupt, ChunkNotFound, check_chunk_id

_EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class _Conn:
    __slots__ = ("idle_since", "reusable", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        # False until an exchange ended cleanly with the peer keeping the
        # connection open (and nothing unexpected left on it).
        self.reusable = False
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

    def body_tag(self, body: bytes) -> BodyTag:
        """The tag authenticating ``body`` in transit (see wire.body_tag): made
        once, it serves every request that sends this same ``body`` object."""
        return body_tag(self._key, body)

    async def request(
        self, addr: str, method: str, target: str, body: bytes = b"", *,
        body_sha: str | None = None, tag: BodyTag | None = None,
    ) -> tuple[int, bytes]:
        """Send one request to ``addr`` ("host:port"); returns (status, body).

        ``tag``: the body's :meth:`body_tag`, when the caller sends the same
        body to several peers (made here otherwise).

        Pooled connections are checked before reuse (see ``_pooled``); one
        that fails anyway (the peer closed it just then) is retried once on a
        *fresh* connection -- never on another pooled one, which may have gone
        stale for the same reason.  Every request of this protocol is
        idempotent, so a retry is safe.
        """
        body_sha = body_sha or (hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA)
        if body and tag is None:
            tag = body_tag(self._key, body)
        elif tag is not None and tag.body is not body:
            # One tag key must never cover two different messages.
            raise ValueError("a body tag made for another body")
        for attempt in range(2):
            conn, reused = await self._checkout(addr, fresh=attempt > 0)
            try:
                with trio.fail_after(self.timeout):
                    status, data = await self._exchange(conn, addr, method, target, body,
                                                        body_sha, tag)
            except (trio.BrokenResourceError, trio.ClosedResourceError, TransportError,
                    OSError) as exc:
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
        if conn.reusable:
            pool = self._idle.setdefault(addr, [])
            if len(pool) < self._max_idle:
                conn.idle_since = trio.current_time()
                pool.append(conn)
                return
        conn.stream.socket.close()

    async def _exchange(
        self, conn: _Conn, addr: str, method: str, target: str, body: bytes, body_sha: str,
        tag: BodyTag | None,
    ) -> tuple[int, bytes]:
        conn.reusable = False  # until this exchange ends cleanly
        date = str(int(time.time()))
        nonce = secrets.token_hex(12)
        fields = [
            ("host", addr), ("content-length", str(len(body))),
            ("x-cs-node", self.node_id), ("x-cs-date", date), ("x-cs-sha256", body_sha),
            ("x-cs-nonce", nonce),
        ]
        tag_nonce = tag_mac = ""
        if tag is not None:
            tag_nonce, tag_mac = tag.nonce, tag.mac
            fields += [("x-cs-body-nonce", tag_nonce), ("x-cs-body-mac", tag_mac)]
        fields.append(("authorization", "CS-HMAC " + sign(
            self._key, method, target, date, self.node_id, body_sha, nonce, tag_nonce, tag_mac)))
        try:
            head = request_head(method, target, fields)
        except ValueError as exc:
            raise TransportError(str(exc)) from None
        if len(body) <= JOIN_BODY_MAX:
            await conn.stream.send_all(head + body)
        else:
            await send_message(conn.stream, head, body)
        response, rest = await self._response_head(conn.stream)
        length = response.length
        if method == "HEAD" or response.status in (204, 304):
            length = 0  # no body, whatever the Content-Length says
        elif length is None:
            raise TransportError(f"a {response.status} response without Content-Length")
        if len(rest) >= length:
            data = rest[:length] if len(rest) > length else rest
            # Bytes after the response: the peer broke the protocol.
            conn.reusable = not response.close and len(rest) == length
            return response.status, data
        buf = bytearray(length)
        got = len(rest)
        buf[:got] = rest
        del rest
        await receive_rest(conn.stream, buf, got)
        conn.reusable = not response.close
        return response.status, bytes(buf)

    @staticmethod
    async def _response_head(stream: trio.SocketStream) -> tuple[ResponseHead, bytes]:
        """The final response's head (interim 1xx ones are skipped) and the
        bytes received after it."""
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                response = parse_response_head(buf[:end])
                buf = buf[end + 4:]
                if 100 <= response.status < 200:
                    continue  # 100 Continue: the real answer follows
                return response, buf
            if len(buf) > MAX_HEAD:
                raise TransportError("response head too large")
            data = await stream.receive_some(HEAD_RECV)
            if not data:
                raise TransportError("connection closed before the response")
            buf = buf + data if buf else data

    async def aclose(self) -> None:
        """Close every idle connection."""
        for pool in self._idle.values():
            for conn in pool:
                await trio.aclose_forcefully(conn.stream)
        self._idle.clear()

    # -- chunk operations ----------------------------------------------------------

    async def put_chunk(
        self, addr: str, chunk_id: str, data: bytes, tag: BodyTag | None = None
    ) -> None:
        """Store a chunk on a peer (the chunk id is the body's signed hash);
        ``tag``: ``data``'s :meth:`body_tag` when it goes to several peers."""
        status, body = await self.request(addr, "PUT", f"/v1/chunks/{check_chunk_id(chunk_id)}",
                                          data, body_sha=chunk_id, tag=tag)
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
