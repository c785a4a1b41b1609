"""Node-to-node chunk transport: HTTP/1.1 spoken with h11 over trio sockets.

Why not hypercorn: this path moves every replica of every chunk, and the
spike measured h11 itself as the limit when bodies are fed to it in small
pieces.  Both sides here therefore read bodies in large ``receive_some``
calls (``RECV_SIZE``) and hand h11 whole megabytes at a time; h11 still does
all the framing, so the wire format stays plain HTTP/1.1 with keep-alive.

Authentication: every request carries

    X-CS-Node:   the sender's node id
    X-CS-Date:   unix seconds
    X-CS-Sha256: hex SHA-256 of the body (of b"" when there is none)
    X-CS-Nonce:  random, unique per request
    Authorization: CS-HMAC <hex HMAC-SHA256(K, METHOD\\nTARGET\\nDATE\\nNODE\\nSHA256\\nNONCE)>

with ``K = HKDF(cluster secret, "transport v1")`` (storage.crypto.derive_key).  The
signature is checked (constant time, +-5 minutes of clock skew) *before* the
body is read, so an unauthenticated peer gets a bare 401 and the connection
is closed.  A DELETE's nonce is remembered for the skew window, so a captured
DELETE cannot be replayed (PUTs are content-addressed and idempotent, reads
reveal nothing a captured response did not).  The body is then hashed and
must match the signed hash; a chunk PUT must in addition hash to its own id.

Endpoints (all under ``/v1``):

    PUT    /v1/chunks/<id>          store (idempotent, touches an existing copy)
    GET    /v1/chunks/<id>          verified bytes, 404 when absent or corrupt
    HEAD   /v1/chunks/<id>          200 / 404
    DELETE /v1/chunks/<id>          204
    GET    /v1/chunks?partitions=1,2&bits=8   ids held locally, one per line
    GET    /v1/workers              background workers' state (JSON)
    POST   /v1/workers/<name>/<pause|resume|run>
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import select
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from storage.blobs import ChunkCorrupt, ChunkNotFound, check_chunk_id
from storage.chunkstore import LocalChunkStore
from storage.crypto import derive_key

RECV_SIZE = 4 * 1024 * 1024
MAX_BODY = 64 * 1024 * 1024 + 1024
CLOCK_SKEW = 300.0
# The server closes a keep-alive connection idle this long.
IDLE_TIMEOUT = 75.0
# The client never reuses a pooled connection idle longer than this: well
# under the server's IDLE_TIMEOUT, so a request never races the server's close
# (a request written into a connection the server is closing fails with
# "Broken pipe", and before the pool agreed with the server it was common).
POOL_IDLE_SECONDS = 20.0
# A full disk on the receiver: 507 Insufficient Storage (RFC 4918), so the
# sender can say "disk full" instead of a generic failure.
DISK_FULL = 507
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class TransportError(Exception):
    """A peer could not be reached or answered something unexpected."""


class PeerUnreachable(TransportError):
    """No connection to the peer could be opened (refused, no route, timed out)."""


class PeerDiskFull(TransportError):
    """The peer could not store a chunk: its disk is full."""


def transport_key(secret: bytes) -> bytes:
    """The MAC key derived from the cluster secret (never the secret itself)."""
    return derive_key(secret, "transport v1")


def sign(
    key: bytes, method: str, target: str, date: str, node: str, body_sha: str, nonce: str
) -> str:
    """The request signature (hex)."""
    msg = f"{method}\n{target}\n{date}\n{node}\n{body_sha}\n{nonce}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


class NonceLedger:
    """Nonces seen within the clock-skew window; refuses any second use."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._seen: dict[str, float] = {}

    def first_use(self, nonce: str, now: float) -> bool:
        """Record ``nonce``; False if it was already used inside the window."""
        if len(self._seen) > 1024:
            cutoff = now - 2 * self._window
            self._seen = {n: t for n, t in self._seen.items() if t >= cutoff}
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


# -- shared framing helpers -----------------------------------------------------------


async def _next_event(stream: trio.abc.Stream, conn: h11.Connection) -> Any:
    """The next h11 event, reading from the socket in big pieces when needed."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(RECV_SIZE)
            conn.receive_data(data)  # b"" tells h11 the peer closed
            continue
        return event


async def _read_body(
    stream: trio.abc.Stream, conn: h11.Connection, length: int | None
) -> bytes:
    """The whole body of the current message (bounded by MAX_BODY)."""
    parts: list[bytes] = []
    got = 0
    while True:
        event = await _next_event(stream, conn)
        if isinstance(event, h11.Data):
            got += len(event.data)
            if got > MAX_BODY:
                raise h11.RemoteProtocolError("body too large")
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
        elif isinstance(event, h11.ConnectionClosed):
            raise TransportError("connection closed inside a body")
        else:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
    if length is not None and got != length:
        raise TransportError(f"body of {got} bytes, {length} announced")
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _read_body_raw(
    stream: trio.SocketStream, conn: h11.Connection, length: int
) -> tuple[bytearray, bool]:
    """The body of the current message, read straight off the socket.

    h11 is given whatever body bytes it already buffered with the headers;
    the rest goes from the kernel into one preallocated buffer with
    ``recv_into`` (no per-piece allocation, copy or parsing).  Returns that
    buffer (no final copy: the caller owns it) and whether h11 was bypassed:
    then ``conn`` no longer knows where the message ended and the caller must
    use a fresh h11 connection for the next exchange (peers never pipeline,
    so nothing else is buffered).
    """
    if length > MAX_BODY:
        raise h11.RemoteProtocolError("body too large")
    buf = bytearray(length)
    pos = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            break
        if isinstance(event, h11.Data):
            buf[pos:pos + len(event.data)] = event.data
            pos += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            if pos != length:
                raise TransportError(f"body of {pos} bytes, {length} announced")
            return buf, False
        elif isinstance(event, h11.ConnectionClosed):
            raise TransportError("connection closed inside a body")
        else:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
    with memoryview(buf) as view:
        while pos < length:
            n = await stream.socket.recv_into(view[pos:], min(RECV_SIZE, length - pos))
            if n == 0:
                raise TransportError("connection closed inside a body")
            pos += n
    return buf, True


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


# -- server -----------------------------------------------------------------------------


@dataclass
class Response:
    """What a handler answers."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"


ControlHandler = Callable[[str, str, dict[str, list[str]]], Awaitable[Response]]


class TransportServer:
    """Serves this node's local chunks to authenticated peers."""

    def __init__(
        self,
        node_id: str,
        secret: bytes,
        local: LocalChunkStore,
        *,
        control: ControlHandler | None = None,
        partition_of: Callable[[str, int], int] | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.node_id = node_id
        self.idle_timeout = idle_timeout
        # Connections open right now and ever accepted (for tests and stats).
        self.connections = 0
        self.accepted = 0
        self._key = transport_key(secret)
        self._delete_nonces = NonceLedger(CLOCK_SKEW)
        self.local = local
        self._control = control
        self._partition_of = partition_of

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``host:port`` until cancelled."""
        await trio.serve_tcp(self.handle_connection, port, host=host, task_status=task_status)

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        """One keep-alive connection: request after request until closed."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
        self.connections += 1
        self.accepted += 1
        try:
            while True:
                with trio.move_on_after(self.idle_timeout) as idle:
                    event = await _next_event(stream, conn)
                if idle.cancelled_caught or isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.Request):
                    return
                bypassed = await self._one_request(stream, conn, event)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                if bypassed:
                    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
                else:
                    conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError,
                TransportError):
            return
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _one_request(
        self, stream: trio.SocketStream, conn: h11.Connection, req: h11.Request
    ) -> bool:
        """Answer one request; True if its body bypassed h11 (see _read_body_raw)."""
        method = req.method.decode()
        target = req.target.decode("latin-1")
        length_h = _header(req.headers, b"content-length")
        length = int(length_h) if length_h is not None else None
        if not self._authenticated(method, target, req.headers):
            # Nothing but 401: no body is read, the connection is closed.
            await self._send(stream, conn, Response(401, b"unauthorized\n"), close=True)
            return False
        if length is not None and length > MAX_BODY:
            await self._send(stream, conn, Response(413, b"too large\n"), close=True)
            return False
        if _header(req.headers, b"expect") == "100-continue":
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100)))
        bypassed = False
        body: bytes | bytearray
        if length is not None:
            body, bypassed = await _read_body_raw(stream, conn, length)
        else:
            body = await _read_body(stream, conn, None)
        declared = _header(req.headers, b"x-cs-sha256") or ""
        if body and await _sha256_async(body) != declared:
            await self._send(stream, conn, Response(400, b"body does not match its hash\n"))
            return bypassed
        try:
            response = await self._dispatch(method, target, body, declared)
        except ValueError as exc:
            response = Response(400, f"{exc}\n".encode())
        except OSError as exc:
            response = self._os_error(exc)
        except Exception as exc:  # reported to the peer; the node keeps serving
            response = Response(500, f"{type(exc).__name__}: {exc}\n".encode())
        await self._send(stream, conn, response, head=method == "HEAD")
        return bypassed

    def _os_error(self, exc: OSError) -> Response:
        """A local I/O failure, named so the sender can log the real cause."""
        if exc.errno in _DISK_FULL_ERRNOS:
            return Response(DISK_FULL, f"disk full on node {self.node_id}\n".encode())
        reason = exc.strerror or str(exc)
        return Response(500, f"I/O error on node {self.node_id}: {reason}\n".encode())

    def _authenticated(self, method: str, target: str, headers: list) -> bool:
        date = _header(headers, b"x-cs-date")
        node = _header(headers, b"x-cs-node")
        body_sha = _header(headers, b"x-cs-sha256")
        nonce = _header(headers, b"x-cs-nonce")
        auth = _header(headers, b"authorization") or ""
        if not (date and node and body_sha and nonce and auth.startswith("CS-HMAC ")):
            return False
        now = time.time()
        try:
            if abs(now - float(date)) > CLOCK_SKEW:
                return False
        except ValueError:
            return False
        expected = sign(self._key, method, target, date, node, body_sha, nonce)
        if not hmac.compare_digest(expected, auth.removeprefix("CS-HMAC ").strip()):
            return False
        return method != "DELETE" or self._delete_nonces.first_use(nonce, now)

    async def _dispatch(
        self, method: str, target: str, body: bytes | bytearray, body_sha: str
    ) -> Response:
        url = urlsplit(target)
        path = url.path
        query = parse_qs(url.query)
        if path.startswith("/v1/chunks/"):
            cid = check_chunk_id(path.removeprefix("/v1/chunks/"))
            if method == "PUT":
                if body_sha != cid:
                    return Response(400, b"chunk bytes do not hash to the chunk id\n")
                # The body was hashed against ``body_sha`` == the id just above.
                await self.local.put_chunk(cid, body)
                return Response(204)
            if method == "GET":
                try:
                    return Response(200, await self.local.get_chunk(cid),
                                    "application/octet-stream")
                except (ChunkNotFound, ChunkCorrupt):
                    return Response(404, b"no such chunk\n")
            if method == "HEAD":
                return Response(200 if await self.local.has_chunk(cid) else 404)
            if method == "DELETE":
                await self.local.delete_chunk(cid)
                return Response(204)
            return Response(405)
        if path == "/v1/chunks" and method == "GET":
            ids = await trio.to_thread.run_sync(lambda: list(self.local.iter_chunk_ids()))
            if "partitions" in query and self._partition_of is not None:
                wanted = {int(p) for p in query["partitions"][0].split(",") if p}
                bits = int(query.get("bits", ["8"])[0])
                ids = [c for c in ids if self._partition_of(c, bits) in wanted]
            return Response(200, "".join(f"{c}\n" for c in ids).encode())
        if path.startswith("/v1/workers") and self._control is not None:
            return await self._control(method, path, query)
        return Response(404, b"not found\n")

    async def _send(
        self, stream: trio.SocketStream, conn: h11.Connection, response: Response, *,
        head: bool = False, close: bool = False,
    ) -> None:
        headers = [("content-length", str(len(response.body))),
                   ("content-type", response.content_type)]
        if close:
            headers.append(("connection", "close"))
        await stream.send_all(conn.send(h11.Response(status_code=response.status,
                                                     headers=headers)))
        if response.body and not head:
            # Passthrough: h11 frames the body without copying it.
            for piece in conn.send_with_data_passthrough(h11.Data(data=response.body)):
                await stream.send_all(piece)
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")


# -- client -----------------------------------------------------------------------------


def _sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


# Below this, hashing in the event loop is cheaper than a hop to a worker thread.
_THREAD_HASH_MIN = 128 * 1024


async def _sha256_async(data: bytes | bytearray) -> str:
    """The hex SHA-256, computed off the event loop for big buffers (the
    hash releases the GIL, so other requests keep being served meanwhile)."""
    if len(data) < _THREAD_HASH_MIN:
        return _sha256(data)
    return await trio.to_thread.run_sync(_sha256, data)


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
            ("authorization", "CS-HMAC " + sign(self._key, method, target, date,
                                                self.node_id, body_sha, nonce)),
        ]
        c = conn.h11
        await conn.stream.send_all(c.send(h11.Request(method=method, target=target,
                                                      headers=headers)))
        if body:
            for piece in c.send_with_data_passthrough(h11.Data(data=body)):
                await conn.stream.send_all(piece)
        await conn.stream.send_all(c.send(h11.EndOfMessage()) or b"")
        while True:
            event = await _next_event(conn.stream, c)
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                break
            raise TransportError(f"unexpected {type(event).__name__}")
        length_h = _header(event.headers, b"content-length")
        if method == "HEAD" or length_h is None:
            data = await _read_body(conn.stream, c, None)
        else:
            raw, bypassed = await _read_body_raw(conn.stream, c, int(length_h))
            data = bytes(raw)
            del raw
            if bypassed:
                # h11 missed the body's end; continue the socket with a new one.
                conn.reusable = c.their_state is not h11.MUST_CLOSE and \
                    _header(event.headers, b"connection") != "close"
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
        if await _sha256_async(body) != chunk_id:
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
