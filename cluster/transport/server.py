"""Transport server: authenticates peers' requests and serves this node's local chunks."""

from __future__ import annotations

import contextlib
import errno
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

from cluster.transport.wire import (
    CLOCK_SKEW,
    DISK_FULL,
    HEAD_RECV,
    IDLE_TIMEOUT,
    JOIN_BODY_MAX,
    MAX_BODY,
    MAX_HEAD,
    NonceLedger,
    TransportError,
    body_mac_ok,
    header_value,
    receive_rest,
    sha256_async,
    sign,
    transport_key,
)
from protocols import http1
from storage.blobs import ChunkCorrupt, ChunkNotFound, check_chunk_id
from storage.chunkstore import LocalChunkStore

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


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
        """One keep-alive connection: request after request until closed.

        HTTP/1.1 is parsed by protocols/http1.py (about 14 µs an exchange,
        where h11 took about 120 µs); a malformed request is answered with a
        4xx and the connection closed.
        """
        proto: http1.ServerConnection | None = http1.ServerConnection(MAX_HEAD)
        self.connections += 1
        self.accepted += 1
        try:
            while proto is not None:
                req = proto.next_request()
                if req is None:
                    with trio.move_on_after(self.idle_timeout) as idle:
                        data = await stream.receive_some(HEAD_RECV)
                    if idle.cancelled_caught or not data:
                        return
                    proto.feed(data)
                    continue
                proto = await self._one_request(stream, proto, req)
        except http1.ProtocolError as exc:
            status = exc.status_hint if exc.status_hint < 500 else 400
            body = f"{exc}\n".encode()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(http1.standalone_head(status, [
                    (b"content-length", b"%d" % len(body)), (b"connection", b"close")]) + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, TransportError):
            return
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _one_request(
        self, stream: trio.SocketStream, proto: http1.ServerConnection, req: http1.Request
    ) -> http1.ServerConnection | None:
        """Answer one request; returns the parser state for the next request
        on this connection, or None when the connection must close."""
        method = req.method.decode("latin-1")
        target = req.target.decode("latin-1")
        headers = dict(req.headers)
        if not self._authenticated(method, target, headers):
            # Nothing but 401: no body is read, the connection is closed.
            await self._send(stream, proto, Response(401, b"unauthorized\n"), close=True)
            return None
        if req.body_length is not None and req.body_length > MAX_BODY:
            await self._send(stream, proto, Response(413, b"too large\n"), close=True)
            return None
        if proto.awaiting_continue:
            await stream.send_all(proto.send_continue())
        body, bypassed = await self._read_body(stream, proto, req.body_length)
        declared = header_value(headers, b"x-cs-sha256") or ""
        if body and not await self._body_intact(headers, body, declared):
            response = Response(400, b"body does not match its hash\n")
        else:
            response = await self._respond(method, target, body, declared)
        await self._send(stream, proto, response)
        if bypassed:
            # The parser never saw the body's end; nothing after it is buffered
            # (peers never pipeline), so the next request starts a fresh state.
            return http1.ServerConnection(MAX_HEAD) if proto.keep_alive else None
        if not proto.reusable:
            return None
        proto.start_next()
        return proto

    async def _respond(
        self, method: str, target: str, body: bytes | bytearray, declared: str
    ) -> Response:
        """The handler's answer, with failures turned into error responses."""
        try:
            return await self._dispatch(method, target, body, declared)
        except ValueError as exc:
            return Response(400, f"{exc}\n".encode())
        except OSError as exc:
            return self._os_error(exc)
        except Exception as exc:  # reported to the peer; the node keeps serving
            return Response(500, f"{type(exc).__name__}: {exc}\n".encode())

    @staticmethod
    async def _read_body(
        stream: trio.SocketStream, proto: http1.ServerConnection, length: int | None
    ) -> tuple[bytes | bytearray, bool]:
        """The request's body, and whether it bypassed the parser.

        A known-length body that did not arrive whole with its head is
        received straight into one preallocated buffer (``receive_rest``);
        then the parser does not know where the body ended.  A chunked body
        (never sent by the transport client) goes through the parser,
        bounded by MAX_BODY.
        """
        data, done = proto.read_body()
        if done:
            return data, False
        if length is not None:
            buf = bytearray(length)
            buf[:len(data)] = data
            await receive_rest(stream, buf, len(data))
            return buf, True
        parts, got = [data], len(data)
        while not done:
            if not data:
                more = await stream.receive_some(HEAD_RECV)
                if not more:
                    raise TransportError("connection closed inside a body")
                proto.feed(more)
            data, done = proto.read_body()
            got += len(data)
            if got > MAX_BODY:
                raise http1.ProtocolError("body too large", 413)
            parts.append(data)
        return b"".join(parts), False

    async def _body_intact(
        self, headers: dict[bytes, bytes], body: bytes | bytearray, declared: str
    ) -> bool:
        """Whether the body arrived as sent: its signed MAC when it has one
        (GMAC, ~0.1 ms a MiB: see wire.body_tag), else its signed SHA-256."""
        mac = header_value(headers, b"x-cs-body-mac")
        if mac is None:
            return await sha256_async(body) == declared
        tag_nonce = header_value(headers, b"x-cs-body-nonce") or ""
        return body_mac_ok(self._key, tag_nonce, body, mac)

    def _os_error(self, exc: OSError) -> Response:
        """A local I/O failure, named so the sender can log the real cause."""
        if exc.errno in _DISK_FULL_ERRNOS:
            return Response(DISK_FULL, f"disk full on node {self.node_id}\n".encode())
        reason = exc.strerror or str(exc)
        return Response(500, f"I/O error on node {self.node_id}: {reason}\n".encode())

    def _authenticated(self, method: str, target: str, headers: dict[bytes, bytes]) -> bool:
        date = header_value(headers, b"x-cs-date")
        node = header_value(headers, b"x-cs-node")
        body_sha = header_value(headers, b"x-cs-sha256")
        nonce = header_value(headers, b"x-cs-nonce")
        auth = header_value(headers, b"authorization") or ""
        if not (date and node and body_sha and nonce and auth.startswith("CS-HMAC ")):
            return False
        now = time.time()
        try:
            if abs(now - float(date)) > CLOCK_SKEW:
                return False
        except ValueError:
            return False
        tag_nonce = header_value(headers, b"x-cs-body-nonce") or ""
        tag_mac = header_value(headers, b"x-cs-body-mac") or ""
        expected = sign(self._key, method, target, date, node, body_sha, nonce, tag_nonce, tag_mac)
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
                # The body was checked against its signed MAC (or hashed
                # against ``body_sha``), and the sender signed that the id is
                # the bytes' SHA-256 (see wire.body_tag).
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
        self, stream: trio.SocketStream, proto: http1.ServerConnection, response: Response, *,
        close: bool = False,
    ) -> None:
        head = proto.start_response(response.status, [
            (b"content-length", b"%d" % len(response.body)),
            (b"content-type", response.content_type.encode("latin-1"))], close=close)
        # Empty for a HEAD request or a bodiless status: the parser decides.
        pieces = proto.send_body(response.body, end=True)
        if not pieces or len(response.body) <= JOIN_BODY_MAX:
            await stream.send_all(b"".join([head, *pieces]))
        else:
            await stream.send_all(head)
            for piece in pieces:
                await stream.send_all(piece)
