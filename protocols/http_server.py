"""A lean HTTP/1.1 server for one ASGI app, on trio and h11.

Why not hypercorn for this listener: on these 2-core machines a do-nothing
ASGI app answers about 2,500 requests/s under hypercorn's trio worker (a task
and an event queue per request, several protocol layers), while one trio task
per connection driving h11 directly answers about 9,000.  The S3 port has to
serve 3,000 small GETs/s *with* real work, so it gets this server; the web
port (Quart: dashboard, REST, admin API with its event streams) stays on
hypercorn.

Shape: one task per connection reads a request head with h11 and runs the
app inline (no task or queue per request).  Bodies stream both ways with the
socket itself as back-pressure: ``receive()`` reads from the socket only when
the app asks for more, ``send()`` returns when the kernel took the bytes.
Supported: keep-alive and pipelining, ``Expect: 100-continue``, chunked and
sized bodies, HEAD.  Left out on purpose: HTTP/2, websockets, TLS (put a
proxy in front) and lifespan events (the app needs none).

Requests the server answers itself (a malformed head, headers past the
limit, an app that crashed before answering) get their body from the
``error_page`` callback, so clients see the protocol's own error format.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
import trio

log = logging.getLogger("cloudstorage.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]
# (status, reason) -> (status, headers, body) of a response the server sends itself.
ErrorPage = Callable[[int, str], tuple[int, list[tuple[str, str]], bytes]]

HEAD_RECV = 64 * 1024
# Bodies are read in big pieces: each piece costs h11, the app and the
# hashers one round of per-message work, whatever its size.
BODY_RECV = 1024 * 1024
# A piece this small is sent together with the response head.
COALESCE = 64 * 1024
# An unread request body is read and dropped (to keep the connection) up to
# this many bytes; past it the connection is closed instead.
DRAIN_LIMIT = 1024 * 1024
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


class ClientDisconnected(ConnectionError):
    """The client went away while the app was sending its response."""


@dataclass(frozen=True)
class ServerConfig:
    """Where to listen and the server's limits."""

    host: str
    port: int
    # The request line plus headers; past it the request is refused (431).
    max_header_bytes: int = 64 * 1024
    # How long a connection may sit between requests, or take to send a head.
    keep_alive_timeout: float = 75.0
    # How long a body may stall between two reads before it counts as gone.
    body_timeout: float = 60.0
    # On shutdown, how long in-flight requests get to finish.
    graceful_timeout: float = 10.0


def _plain_error_page(status: int, reason: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "text/plain; charset=utf-8")], f"{reason}\n".encode()


class _DateCache:
    """The Date header, formatted once per second rather than per response."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode("ascii")
        return self._value


class _Server:
    def __init__(self, app: ASGIApp, config: ServerConfig, error_page: ErrorPage) -> None:
        self.app = app
        self.config = config
        self.error_page = error_page
        self.dates = _DateCache()
        self.closing = False
        # Connections waiting for their next request: cancelled at shutdown.
        self.idle: set[trio.CancelScope] = set()

    def begin_shutdown(self) -> None:
        self.closing = True
        for scope in list(self.idle):
            scope.cancel()

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            await _Connection(self, stream).run()
        finally:
            await trio.aclose_forcefully(stream)


class _Connection:
    """One client connection: request after request until either side ends it."""

    def __init__(self, server: _Server, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER,
                                  max_incomplete_event_size=server.config.max_header_bytes)
        self._pending: Any = None  # an event read ahead while looking for a body's end
        try:
            self.client = _address(stream.socket.getpeername())
            self.local = _address(stream.socket.getsockname())
        except OSError:
            self.client = self.local = None

    async def _next_event(self, recv_size: int) -> Any:
        if self._pending is not None:
            event, self._pending = self._pending, None
            return event
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.stream.receive_some(recv_size))

    async def run(self) -> None:
        server = self.server
        try:
            while not server.closing:
                with trio.move_on_after(server.config.keep_alive_timeout) as idle:
                    server.idle.add(idle)
                    try:
                        event = await self._next_event(HEAD_RECV)
                    finally:
                        server.idle.discard(idle)
                if idle.cancel_called or not isinstance(event, h11.Request):
                    return  # idle too long, shutting down, or the client closed
                if _head_size(event) > server.config.max_header_bytes:
                    # h11 bounds only heads split over several reads.
                    await self._refuse(431, "request header section too large")
                    return
                if not await _Exchange(self, event).run():
                    return
                self.h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ClientDisconnected):
            pass

    async def _refuse(self, status: int, reason: str) -> None:
        """Answer a request the app never saw, then close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status, headers, body = self.server.error_page(status, reason)
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        raw += [(b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                (b"date", self.server.dates.now())]
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(b"".join(_head_bytes(status, raw)) + body)


def _head_bytes(status: int, headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """A response head written without h11 (used once h11 is in an error state)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    lines.append(b"\r\n")
    return lines


def _address(addr: Any) -> tuple[str, int] | None:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), int(addr[1])
    return None


class _Exchange:
    """One request and its response, as seen by the ASGI app."""

    def __init__(self, conn: _Connection, request: h11.Request) -> None:
        self.conn = conn
        self.request = request
        self.is_head = request.method == b"HEAD"
        self.body_done = False
        self.body_broken = False
        self.started: Message | None = None  # the app's http.response.start
        self.head_sent = False
        self.refused_continue = False
        self.complete = False
        self.finished = trio.Event()  # the response is over (for late receive() calls)
        self.body_length = _body_length(request.headers)
        self.big_body = self.body_length > HEAD_RECV

    def scope(self) -> Scope:
        req = self.request
        target = req.target
        if not target.startswith(b"/") and target != b"*":
            # absolute-form (a proxy's request): keep only path and query.
            after_scheme = target.partition(b"://")[2]
            target = b"/" + after_scheme.partition(b"/")[2]
        raw_path, _, query = target.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": req.http_version.decode("ascii"),
            "method": req.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": list(req.headers),
            "client": self.conn.client,
            "server": self.conn.local,
            "extensions": {},
        }

    async def run(self) -> bool:
        """Serve the exchange; True if the connection can carry another one."""
        conn = self.conn
        try:
            await conn.server.app(self.scope(), self.receive, self.send)
        except (ClientDisconnected, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        except Exception:
            log.exception("%s %s failed", self.request.method.decode(), self.request.target[:200])
            if self.head_sent:
                return False  # a partial response: cutting the connection is all that is left
            await conn._refuse(500, "Internal Server Error")
            return False
        finally:
            self.finished.set()
        if not self.complete:
            if self.head_sent:
                return False
            await conn._refuse(500, "The application sent no response")
            return False
        return await self._finish_body()

    async def _finish_body(self) -> bool:
        """Read and drop what the app left of the request body, within limits."""
        h = self.conn.h11
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            return False
        if self.body_broken or self.conn.server.closing:
            return False
        if h.their_state is h11.DONE:
            return h.our_state is h11.DONE
        if self.body_length == 0:
            # A bodiless request's end is already buffered: no I/O, no timer.
            event = h.next_event()
            return isinstance(event, h11.EndOfMessage) and h.our_state is h11.DONE
        if self.refused_continue or self.body_length > DRAIN_LIMIT:
            # They will not send the body (the framing is lost), or too much
            # of it is left to be worth reading.
            return False
        dropped = 0
        with trio.move_on_after(5):
            while dropped <= DRAIN_LIMIT:
                event = await self.conn._next_event(HEAD_RECV)
                if isinstance(event, h11.Data):
                    dropped += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return h.our_state is h11.DONE
                else:
                    return False
        return False

    # -- ASGI receive / send -----------------------------------------------------------

    async def receive(self) -> Message:
        if self.body_done:
            # ASGI: once the body is read, receive() waits for the disconnect.
            await self.finished.wait()
            return {"type": "http.disconnect"}
        conn = self.conn
        h = conn.h11
        try:
            if h.they_are_waiting_for_100_continue and not self.head_sent:
                go_on = h11.InformationalResponse(status_code=100, headers=[])
                await conn.stream.send_all(h.send(go_on))
            with trio.fail_after(conn.server.config.body_timeout):
                event = await conn._next_event(BODY_RECV if self.big_body else HEAD_RECV)
        except (trio.TooSlowError, h11.RemoteProtocolError, trio.BrokenResourceError,
                trio.ClosedResourceError):
            self.body_done = self.body_broken = True
            return {"type": "http.disconnect"}
        if isinstance(event, h11.Data):
            # Peek (no I/O) for the end, so a small body is one message.
            after = h.next_event()
            if isinstance(after, h11.EndOfMessage):
                self.body_done = True
                return {"type": "http.request", "body": event.data, "more_body": False}
            if after is not h11.NEED_DATA:
                conn._pending = after
            return {"type": "http.request", "body": event.data, "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self.body_done = self.body_broken = True
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started is not None:
                raise RuntimeError("http.response.start sent twice")
            self.started = message
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if self.started is None:
            raise RuntimeError("http.response.body before http.response.start")
        if self.complete:
            raise RuntimeError("http.response.body after the response ended")
        h = self.conn.h11
        body = b"" if self.is_head else message.get("body", b"")
        more = message.get("more_body", False)
        out: list[bytes | bytearray | memoryview] = []
        if not self.head_sent:
            # Answered before the body was asked for: the client will not send it.
            self.refused_continue = h.they_are_waiting_for_100_continue
            out.append(h.send(self._response_head()))
            self.head_sent = True
        if body:
            # Passthrough: h11 frames the body without copying it.
            out.extend(h.send_with_data_passthrough(h11.Data(data=body)))
        if not more:
            out.append(h.send(h11.EndOfMessage()))
            self.complete = True
        try:
            if sum(len(p) for p in out) <= COALESCE:
                await self.conn.stream.send_all(b"".join(out))
            else:
                for piece in out:
                    await self.conn.stream.send_all(piece)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientDisconnected("the client closed the connection") from exc

    def _response_head(self) -> h11.Response:
        assert self.started is not None
        headers = list(self.started.get("headers", ()))
        if not any(name.lower() == b"date" for name, _ in headers):
            headers.append((b"date", self.conn.server.dates.now()))
        if self.conn.server.closing:
            headers.append((b"connection", b"close"))
        return h11.Response(status_code=self.started["status"], headers=headers,
                            reason=_REASONS.get(self.started["status"], b""))


def _head_size(request: h11.Request) -> int:
    size = len(request.method) + len(request.target) + 12
    for name, value in request.headers:
        size += len(name) + len(value) + 4
    return size


def _body_length(headers: Any) -> int:
    """The declared body length; chunked bodies count as unbounded."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 validated it
        if name == b"transfer-encoding":
            return 1 << 62
    return 0


async def serve_http(
    app: ASGIApp,
    config: ServerConfig,
    shutdown: trio.Event,
    *,
    error_page: ErrorPage = _plain_error_page,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``config.host:config.port`` until ``shutdown`` is set.

    Started with ``nursery.start``, reports the bound addresses as URLs.  At
    shutdown it stops accepting, closes idle connections, lets requests in
    flight finish for up to ``config.graceful_timeout`` seconds, then cancels
    the rest.
    """
    listeners = await trio.open_tcp_listeners(config.port, host=config.host)
    server = _Server(app, config, error_page)
    urls = []
    for listener in listeners:
        host, port = listener.socket.getsockname()[:2]
        urls.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
    async with trio.open_nursery() as nursery:
        accepting = trio.CancelScope()

        async def accept() -> None:
            with accepting:
                await trio.serve_listeners(server.handle, listeners, handler_nursery=nursery)

        nursery.start_soon(accept)
        task_status.started(urls)
        await shutdown.wait()
        accepting.cancel()
        server.begin_shutdown()
        nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
