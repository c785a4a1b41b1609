"""Transport server: authenticates peers' requests and serves this node's local chunks."""

from __future__ import annotations

import errno
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from cluster.transport.wire import (
    CLOCK_SKEW,
    DISK_FULL,
    HEAD_RECV,
    IDLE_TIMEOUT,
    MAX_BODY,
    NonceLedger,
    TransportError,
    body_mac_ok,
    header_value,
    next_event,
    read_body,
    read_body_raw,
    sha256_async,
    sign,
    transport_key,
)
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
        """One keep-alive connection: request after request until closed."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
        self.connections += 1
        self.accepted += 1
        try:
            while True:
                with trio.move_on_after(self.idle_timeout) as idle:
                    event = await next_event(stream, conn, HEAD_RECV)
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
        """Answer one request; True if its body bypassed h11 (see read_body_raw)."""
        method = req.method.decode()
        target = req.target.decode("latin-1")
        length_h = header_value(req.headers, b"content-length")
        length = int(length_h) if length_h is not None else None
        if not self._authenticated(method, target, req.headers):
            # Nothing but 401: no body is read, the connection is closed.
            await self._send(stream, conn, Response(401, b"unauthorized\n"), close=True)
            return False
        if length is not None and length > MAX_BODY:
            await self._send(stream, conn, Response(413, b"too large\n"), close=True)
            return False
        if header_value(req.headers, b"expect") == "100-continue":
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100)))
        bypassed = False
        body: bytes | bytearray
        if length is not None:
            body, bypassed = await read_body_raw(stream, conn, length)
        else:
            body = await read_body(stream, conn, None)
        declared = header_value(req.headers, b"x-cs-sha256") or ""
        if body and not await self._body_intact(method, target, req.headers, body, declared):
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

    async def _body_intact(
        self, method: str, target: str, headers: list, body: bytes | bytearray, declared: str
    ) -> bool:
        """Whether the body arrived as sent: its signed MAC when it has one
        (GMAC, ~0.1 ms a MiB: see wire.body_mac), else its signed SHA-256."""
        mac = header_value(headers, b"x-cs-body-mac")
        if mac is None:
            return await sha256_async(body) == declared
        date = header_value(headers, b"x-cs-date") or ""
        node = header_value(headers, b"x-cs-node") or ""
        nonce = header_value(headers, b"x-cs-nonce") or ""
        return body_mac_ok(self._key, method, target, date, node, nonce, body, mac)

    def _os_error(self, exc: OSError) -> Response:
        """A local I/O failure, named so the sender can log the real cause."""
        if exc.errno in _DISK_FULL_ERRNOS:
            return Response(DISK_FULL, f"disk full on node {self.node_id}\n".encode())
        reason = exc.strerror or str(exc)
        return Response(500, f"I/O error on node {self.node_id}: {reason}\n".encode())

    def _authenticated(self, method: str, target: str, headers: list) -> bool:
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
        mac = header_value(headers, b"x-cs-body-mac") or ""
        expected = sign(self._key, method, target, date, node, body_sha, nonce, mac)
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
                # the bytes' SHA-256 (see wire.body_mac).
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
