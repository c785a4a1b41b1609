"""A lean HTTP/1.1 server for one ASGI app, on trio and our own sans-I/O protocol.

Why not hypercorn for this listener: on these 2-core machines a do-nothing
ASGI app answers about 2,500 requests/s under hypercorn's trio worker (a task
and an event queue per request, several protocol layers), while one trio task
per connection driving h11 directly answers about 9,000.  The S3 port has to
serve 3,000 small GETs/s *with* real work, so it gets this server; the web
port (Quart: dashboard, REST, admin API with its event streams) stays on
hypercorn.

Why not h11 either: one small keep-alive exchange (parse a GET head, frame a
4 KiB response, reset) costs h11 about 100-140 µs of Python, a quarter of the
CPU a node may spend on a 4 KiB GET.  ``protocols/http1.py`` does the same
work, as strictly, in about 13-17 µs (measured on this machine with a
boto3-like GET head and an S3 GET response head).

Shape: one task per connection reads a request head and runs the app inline
(no task or queue per request).  Bodies stream both ways with the socket
itself as back-pressure: ``receive()`` reads from the socket only when the
app asks for more, ``send()`` returns when the kernel took the bytes.
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
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import trio

from protocols import http1

log = logging.getLogger("cloudstorage.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]
# (status, reason) -> (status, headers, body) of a response the server sends itself.
ErrorPage = Callable[[int, str], tuple[int, list[tuple[str, str]], bytes]]

HEAD_RECV = 64 * 1024
# Bodies are read in big pieces: each piece costs the app and the hashers
# one round of per-message work, whatever its size.
BODY_RECV = 1024 * 1024
# A piece this small is sent together with the response head.
COALESCE = 64 * 1024
# As trio's: the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 0xFFFF
# An unread request body is read and dropped (to keep the connection) up to
# this many bytes; past it the connection is closed instead.
DRAIN_LIMIT = 1024 * 1024


class ClientDisconnected(ConnectionError):
    """The client went away while the app was sending its response."""


@dataclass(frozen=True)
class ServerConfig:
    """Where to listen and the server's limits."""

    host: str
    port: int
    # The request line plus headers; past it the request is refused (431).
    max_header_bytes: int = 64 * 1024
    # How long a connection may sit between requests (enforced to within a
    # second, by one sweeper for all connections).
    keep_alive_timeout: float = 75.0
    # How long a request head may take once its first byte arrived: a client
    # trickling a head byte by byte (slowloris) is cut off after this.
    head_timeout: float = 10.0
    # Open connections at most.  At the cap the longest-idle connection is
    # closed to make room (its client reconnects when it needs to); when none
    # is idle the newcomer gets a 503 and is closed.
    max_connections: int = 1024
    # How long a body may stall between two reads before it counts as gone
    # (S3 gives up after about 20 s, well inside SDKs' 60 s read timeouts, so
    # the client reads the error instead of timing out itself).
    body_timeout: float = 20.0
    # On shutdown, how long in-flight requests get to finish.
    graceful_timeout: float = 10.0
    # Share the port with the node's other worker processes (SO_REUSEPORT:
    # the kernel spreads new connections across the processes listening).
    reuse_port: bool = False


def open_listen_sockets(host: str, port: int, *, reuse_port: bool,
                        listen: bool = True) -> list[socket.socket]:
    """Bound (and, with ``listen``, listening) non-blocking TCP sockets for
    every address of ``host``, as ``trio.open_tcp_listeners`` makes them,
    plus SO_REUSEPORT when ``reuse_port``.  OSError if one cannot bind."""
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                               0, socket.AI_PASSIVE)
    seen: set[tuple[int, Any]] = set()
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            if listen:
                sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


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
        # Connections waiting for their next request (or its head): closed at
        # shutdown, and by the sweeper once they waited too long.
        self.idle: set[_Connection] = set()
        self.open_connections = 0

    def begin_shutdown(self) -> None:
        self.closing = True
        for conn in list(self.idle):
            conn.scope.cancel()

    async def sweep_idle(self) -> None:
        """Close connections idle past the keep-alive timeout (checked every second).

        One sweeper rather than a timer per request: a cancel scope with a
        deadline costs a small request more than its HTTP parsing.
        """
        keep_alive = self.config.keep_alive_timeout
        head = self.config.head_timeout
        while True:
            await trio.sleep(min(1.0, keep_alive, head))
            now = trio.current_time()
            for conn in list(self.idle):
                if conn.head_since is not None:
                    if now - conn.head_since > head:
                        conn.scope.cancel()
                elif now - conn.idle_since > keep_alive:
                    conn.scope.cancel()

    def make_room(self) -> bool:
        """At the connection cap, close the longest-idle connection; False if
        every connection is busy (then the newcomer is refused)."""
        waiting = [c for c in self.idle if not c.scope.cancel_called]
        if not waiting:
            return False
        min(waiting, key=lambda c: c.idle_since).scope.cancel()
        return True

    async def handle(self, stream: trio.SocketStream) -> None:
        # The accepted socket is driven directly from here on (see _Socket).
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        self.open_connections += 1
        try:
            conn = _Connection(self, _Socket(sock))
            if self.open_connections > self.config.max_connections and not self.make_room():
                await conn._refuse(503, "Too many open connections")
                return
            await conn.run()
        finally:
            self.open_connections -= 1
            trio.lowlevel.notify_closing(sock)
            sock.close()


class _Socket:
    """A connected non-blocking socket, read and written with trio's low-level waits.

    The same system calls as trio's SocketStream (try the call, wait for
    readiness if it would block) without its layers of wrappers, which cost
    tens of microseconds per request.  A call that completes without waiting
    is no checkpoint; the connection loop yields once per request instead.
    """

    __slots__ = ("sock", "waited")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.waited = False  # whether a call had to wait (and so yielded)

    async def receive_some(self, size: int, *, wait_first: bool = False) -> bytes:
        """Up to ``size`` bytes (b"" at the end of the stream).

        ``wait_first``: wait for readiness before the first ``recv``, for a
        read that would almost surely fail (see _Connection._wait_for_request).
        """
        if wait_first:
            self.waited = True
            await trio.lowlevel.wait_readable(self.sock)
        while True:
            try:
                return self.sock.recv(size)
            except BlockingIOError:
                self.waited = True
                await trio.lowlevel.wait_readable(self.sock)
            except OSError as exc:
                raise trio.BrokenResourceError(f"receive failed: {exc}") from exc

    async def send_all(self, *parts: bytes | bytearray | memoryview) -> None:
        """Send ``parts`` in order: gathered into one system call when the
        kernel takes them all (the usual case), waiting for room as needed."""
        sock = self.sock
        if len(parts) == 1 and len(parts[0]):
            # One piece (a small response: head and body joined), which the
            # kernel nearly always takes whole: no views to make and slice.
            data = parts[0]
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise trio.BrokenResourceError(f"send failed: {exc}") from exc
            if sent == len(data):
                return
            parts = (memoryview(data)[sent:],)
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            try:
                sent = sock.sendmsg(views) if len(views) > 1 else sock.send(views[0])
            except BlockingIOError:
                self.waited = True
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"send failed: {exc}") from exc
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if sent:
                views[0] = views[0][sent:]


class _Connection:
    """One client connection: request after request until either side ends it."""

    def __init__(self, server: _Server, stream: _Socket) -> None:
        self.server = server
        self.stream = stream
        self.proto = http1.ServerConnection(server.config.max_header_bytes)
        # Cancelled to close the connection while it is idle (see _Server.idle).
        self.scope = trio.CancelScope()
        self.idle_since = 0.0
        # When the first byte of the head being waited for arrived (None: none yet).
        self.head_since: float | None = None
        # Whether a request was answered on this connection (see _wait_for_request).
        self.served = False
        try:
            self.client = _address(stream.sock.getpeername())
            self.local = _address(stream.sock.getsockname())
        except OSError:
            self.client = self.local = None

    async def receive_into_proto(self, size: int, *, wait_first: bool = False) -> bool:
        """Read once and hand the bytes to the protocol; False if the client closed."""
        data = await self.stream.receive_some(size, wait_first=wait_first)
        if not data:
            return False
        self.proto.feed(data)
        return True

    async def run(self) -> None:
        server = self.server
        proto = self.proto
        try:
            with self.scope:
                await self._serve_requests(server, proto)
        except http1.ProtocolError as exc:
            await self._refuse(exc.status_hint, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ClientDisconnected):
            pass

    async def _serve_requests(self, server: _Server, proto: http1.ServerConnection) -> None:
        while not server.closing:
            # A pipelined request may be buffered already: then no timer at all.
            request = proto.next_request() or await self._wait_for_request()
            if request is None:
                return  # the client closed
            if not await _Exchange(self, request).run():
                return
            proto.start_next()
            self.served = True
            if not self.stream.waited:
                # Served without waiting once: yield, so that a client
                # pipelining requests cannot starve the other connections.
                await trio.lowlevel.checkpoint()
            self.stream.waited = False

    async def _wait_for_request(self) -> http1.Request | None:
        """The next request's head; None if the client closed.  While waiting the
        connection is idle: the sweeper or shutdown may cancel :attr:`scope`."""
        idle = self.server.idle
        self.idle_since = trio.current_time()
        self.head_since = self.idle_since if self.proto.buffered else None
        idle.add(self)
        # Right after a response the client has rarely sent its next request
        # yet: a recv would fail with EAGAIN (a system call and an exception,
        # ~2 us a request), so wait for readiness first.  A new connection's
        # first read tries at once (the head often came with the connect).
        wait_first = self.served
        try:
            while await self.receive_into_proto(HEAD_RECV, wait_first=wait_first):
                wait_first = False
                request = self.proto.next_request()
                if request is not None:
                    return request
                if self.head_since is None:
                    self.head_since = trio.current_time()
            if self.proto.buffered:
                raise http1.ProtocolError("the connection ended inside a request head")
            return None
        finally:
            idle.discard(self)
            self.head_since = None

    async def _refuse(self, status: int, reason: str) -> None:
        """Answer a request the app never saw (or crashed on), then close."""
        status, headers, body = self.server.error_page(status, reason)
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        raw += [(b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                (b"date", self.server.dates.now())]
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(http1.standalone_head(status, raw) + body)


def _address(addr: Any) -> tuple[str, int] | None:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), int(addr[1])
    return None


def _drop_buffered(proto: http1.ServerConnection) -> bool:
    """Discard the buffered part of the request body; True if that was its end."""
    while True:
        data, done = proto.read_body()
        if done or not data:
            return done


class _Exchange:
    """One request and its response, as seen by the ASGI app."""

    def __init__(self, conn: _Connection, request: http1.Request) -> None:
        self.conn = conn
        self.request = request
        self.body_done = False
        self.body_broken = False
        self.started: Message | None = None  # the app's http.response.start
        self.head_sent = False
        self.refused_continue = False
        self.complete = False
        # Whether the app returned, and the event late receive() calls wait
        # on until then (made only for them: most exchanges never need it).
        self.over = False
        self.finished: trio.Event | None = None
        length = request.body_length
        self.recv_size = BODY_RECV if length is None or length > HEAD_RECV else HEAD_RECV

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
            "http_version": req.http_version,
            "method": req.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": req.headers,  # a fresh list per request: the app may keep it
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
            self.over = True
            if self.finished is not None:
                self.finished.set()
        if not self.complete:
            if self.head_sent:
                return False
            await conn._refuse(500, "The application sent no response")
            return False
        return await self._finish_body()

    async def _finish_body(self) -> bool:
        """Read and drop what the app left of the request body, within limits."""
        conn = self.conn
        proto = conn.proto
        if not proto.keep_alive or self.body_broken or conn.server.closing:
            return False
        if not proto.request_done:
            remaining = proto.body_remaining
            if self.refused_continue or remaining is None or remaining > DRAIN_LIMIT:
                # They will not send the body (the framing is lost), or too much
                # of it may be left to be worth reading.
                return False
            try:
                # What already arrived needs no I/O and no timer.
                if not _drop_buffered(proto):
                    with trio.move_on_after(5):
                        while await conn.receive_into_proto(HEAD_RECV):
                            if _drop_buffered(proto):
                                break
            except http1.ProtocolError:
                return False
        return proto.reusable

    # -- ASGI receive / send -----------------------------------------------------------

    async def receive(self) -> Message:
        if self.body_done:
            # ASGI: once the body is read, receive() waits for the disconnect.
            if self.over:
                await trio.lowlevel.checkpoint()
            else:
                if self.finished is None:
                    self.finished = trio.Event()
                await self.finished.wait()
            return {"type": "http.disconnect"}
        conn = self.conn
        proto = conn.proto
        try:
            data, done = proto.read_body()  # a body that came with the head: no I/O
            if not data and not done:
                if proto.awaiting_continue and not self.head_sent:
                    await conn.stream.send_all(proto.send_continue())
                with trio.fail_after(conn.server.config.body_timeout):
                    while not data and not done:
                        if not await conn.receive_into_proto(self.recv_size):
                            raise trio.BrokenResourceError("the body ended early")
                        data, done = proto.read_body()
        except trio.TooSlowError:
            self.body_done = self.body_broken = True
            # Not in ASGI: the client is still there, and the app may tell it
            # why its request ends (S3's RequestTimeout).
            return {"type": "http.disconnect", "timed_out": True}
        except (http1.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            self.body_done = self.body_broken = True
            return {"type": "http.disconnect"}
        self.body_done = done
        return {"type": "http.request", "body": data, "more_body": not done}

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
        more = message.get("more_body", False)
        # Both raise ResponseError (to the app) before anything is sent.
        head = None if self.head_sent else self._response_head()
        out = self.conn.proto.send_body(message.get("body", b""), not more)
        if head is not None:
            out.insert(0, head)
            self.head_sent = True
        self.complete = not more
        try:
            if len(out) > 1 and sum(map(len, out)) <= COALESCE:
                await self.conn.stream.send_all(b"".join(out))
            else:  # one piece, or a head with a big piece (gathered, not copied)
                await self.conn.stream.send_all(*out)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientDisconnected("the client closed the connection") from exc

    def _response_head(self) -> bytes:
        assert self.started is not None
        conn = self.conn
        proto = conn.proto
        # Answered before the body was asked for: the client will not send it.
        self.refused_continue = proto.awaiting_continue
        remaining = proto.body_remaining
        # Tell the client now if the connection will not be reused (see _finish_body).
        close = (conn.server.closing or self.refused_continue or remaining is None
                 or remaining > DRAIN_LIMIT)
        return proto.start_response(self.started["status"], self.started.get("headers", ()),
                                    date=conn.server.dates.now(), close=close)


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
    listeners: list[trio.SocketListener]
    if config.reuse_port:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                     for sock in open_listen_sockets(config.host, config.port, reuse_port=True)]
    else:
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

        sweeping = trio.CancelScope()  # at shutdown every idle connection closes anyway

        async def sweep() -> None:
            with sweeping:
                await server.sweep_idle()

        nursery.start_soon(accept)
        nursery.start_soon(sweep)
        task_status.started(urls)
        await shutdown.wait()
        accepting.cancel()
        sweeping.cancel()
        server.begin_shutdown()
        nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
