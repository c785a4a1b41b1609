"""protocols/http_server.py on a loopback port, spoken to over raw sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from protocols.http_server import ServerConfig, serve_http


class Client:
    """A raw HTTP/1.1 connection that parses responses just enough to test."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        with trio.fail_after(10):
            data = await self.stream.receive_some(65536)
        self.buf += data
        return bool(data)

    async def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not await self._fill():
                raise ConnectionError("closed before a response")
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head or status in (100, 204, 304) else int(headers.get("content-length", 0))
        while len(self.buf) < length:
            if not await self._fill():
                raise ConnectionError("closed inside a body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    async def closed(self) -> bool:
        """True once the server has closed the connection (nothing else arrives);
        a reset counts, as a close with unread request bytes sends one."""
        try:
            return not self.buf and not await self._fill()
        except trio.BrokenResourceError:
            return True


async def echo_app(scope: dict, receive: Any, send: Any) -> None:
    """Answers with the request body, or a description of the request."""
    path = scope["path"]
    if path == "/crash":
        raise RuntimeError("boom")
    if path == "/crash-late":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        raise RuntimeError("boom after the head")
    if path == "/ignore-body":
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"no"})
        return
    body = b""
    events = []
    while True:
        message = await receive()
        events.append(message["type"])
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path.startswith("/describe"):
        body = repr((scope["method"], scope["path"], scope["raw_path"], scope["query_string"],
                     events[-1])).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()),
                            (b"x-events", str(len(events)).encode())]})
    await send({"type": "http.response.body", "body": body})


def error_page(status: int, reason: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "text/x-test")], f"refused {status}".encode()


@asynccontextmanager
async def running(app: Any = echo_app, **limits: Any) -> AsyncIterator[tuple[Any, trio.Event]]:
    shutdown = trio.Event()
    config = ServerConfig(host="127.0.0.1", port=0, **limits)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(lambda task_status: serve_http(
            app, config, shutdown, error_page=error_page, task_status=task_status))
        port = int(urls[0].rsplit(":", 1)[1])

        async def connect() -> Client:
            return Client(await trio.open_tcp_stream("127.0.0.1", port))

        try:
            yield connect, shutdown
        finally:
            shutdown.set()


@pytest.mark.trio
async def test_keep_alive_sized_and_chunked_bodies() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        status, headers, body = await c.response()
        assert (status, body) == (200, b"hello") and "date" in headers
        await c.send(b"PUT /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        status, _, body = await c.response()
        assert (status, body) == (200, b"abcde")
        # A body that fits one read arrives as one message.
        assert headers["x-events"] == "1"


@pytest.mark.trio
async def test_pipelined_requests_answer_in_order() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"".join(
            b"POST /%d HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n%d" % (i, i)
            for i in range(5)))
        assert [(await c.response())[2] for _ in range(5)] == [b"0", b"1", b"2", b"3", b"4"]


@pytest.mark.trio
async def test_scope_path_query_and_head() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"GET /describe/a%20b?x=1&y HTTP/1.1\r\nhost: x\r\n\r\n")
        _, _, body = await c.response()
        assert body == repr(("GET", "/describe/a b", b"/describe/a%20b", b"x=1&y",
                             "http.request")).encode()
        await c.send(b"HEAD /describe HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, body = await c.response(head=True)
        assert status == 200 and int(headers["content-length"]) > 0 and body == b""
        # Nothing but the next response follows the HEAD response's head.
        await c.send(b"GET /describe HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await c.response())[2].startswith(b"('GET'")


@pytest.mark.trio
async def test_expect_100_continue_only_when_the_body_is_wanted() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n"
                     b"expect: 100-continue\r\n\r\n")
        assert (await c.response())[0] == 100
        await c.send(b"body")
        assert (await c.response())[2] == b"body"
        # Refused without reading: no 100, and the connection cannot be reused.
        await c.send(b"PUT /ignore-body HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n"
                     b"expect: 100-continue\r\n\r\n")
        assert (await c.response())[0] == 403
        assert await c.closed()


@pytest.mark.trio
async def test_unread_body_is_dropped_when_small_and_cuts_the_connection_when_large() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"PUT /ignore-body HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
        assert (await c.response())[0] == 403
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok")
        assert (await c.response())[2] == b"ok"
        c = await connect()
        await c.send(b"PUT /ignore-body HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000000"
                     b"\r\n\r\n" + b"x" * 1000)
        assert (await c.response())[0] == 403
        assert await c.closed()


@pytest.mark.trio
async def test_malformed_and_oversized_heads_get_the_error_page() -> None:
    async with running(max_header_bytes=4096) as (connect, _):
        c = await connect()
        await c.send(b"NOT A REQUEST\r\n\r\n")
        status, headers, body = await c.response()
        assert status == 400 and body == b"refused 400"
        assert headers["connection"] == "close" and await c.closed()
        c = await connect()
        await c.send(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 8192 + b"\r\n\r\n")
        status, _, body = await c.response()
        assert status == 431 and body == b"refused 431"


@pytest.mark.trio
async def test_app_errors_are_500_before_the_head_and_a_cut_after() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"GET /crash HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _, body = await c.response()
        assert status == 500 and body == b"refused 500" and await c.closed()
        c = await connect()
        await c.send(b"GET /crash-late HTTP/1.1\r\nhost: x\r\n\r\n")
        with pytest.raises(ConnectionError, match="inside a body"):
            await c.response()


@pytest.mark.trio
async def test_client_gone_mid_body_is_a_disconnect() -> None:
    seen: list[dict] = []
    done = trio.Event()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        done.set()

    async with running(app) as (connect, _):
        c = await connect()
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\npartial")
        await c.stream.aclose()
        with trio.fail_after(10):
            await done.wait()
    assert seen[-1]["type"] == "http.disconnect"
    assert b"".join(m.get("body", b"") for m in seen) == b"partial"


@pytest.mark.trio
async def test_graceful_shutdown_finishes_requests_in_flight() -> None:
    entered, release = trio.Event(), trio.Event()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            entered.set()
            await release.wait()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async with running(app) as (connect, shutdown):
        idle = await connect()
        await idle.send(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        await idle.response()
        busy = await connect()
        await busy.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        await entered.wait()
        shutdown.set()
        assert await idle.closed()
        release.set()
        status, headers, body = await busy.response()
        assert (status, body) == (200, b"ok") and headers["connection"] == "close"
        assert await busy.closed()


def recording_app(seen: list[str]) -> Any:
    """echo_app, noting every request path it is given."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await echo_app(scope, receive, send)

    return app


@pytest.mark.trio
@pytest.mark.parametrize(("framing", "status"), [
    (b"content-length: 4\r\ntransfer-encoding: chunked\r\n", 400),
    (b"transfer-encoding: chunked\r\ncontent-length: 4\r\n", 400),
    (b"content-length: 4\r\ncontent-length: 50\r\n", 400),
    (b"content-length: 4, 50\r\n", 400),
    (b"transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n", 501),
    (b"transfer-encoding: xchunked\r\n", 501),
    (b"x-a: 1\r\n transfer-encoding: chunked\r\n", 400),
    (b"transfer-encoding : chunked\r\n", 400),
    (b"x-a: 1\ntransfer-encoding: chunked\r\n", 400),
])
async def test_request_smuggling_is_refused_and_the_connection_closed(
        framing: bytes, status: int) -> None:
    seen: list[str] = []
    async with running(recording_app(seen)) as (connect, _):
        c = await connect()
        smuggled = b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"
        await c.send(b"POST /front HTTP/1.1\r\nhost: x\r\n" + framing + b"\r\n"
                     b"0\r\n\r\n" + smuggled)
        got, headers, body = await c.response()
        assert (got, body) == (status, b"refused %d" % status)
        assert headers["connection"] == "close" and await c.closed()
    assert seen == []


@pytest.mark.trio
async def test_two_pipelined_requests_in_one_send_with_a_chunked_one() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"4\r\nfirs\r\n1\r\nt\r\n0\r\n\r\n"
                     b"GET /describe?n=2 HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, body = await c.response()
        # Chunks that arrived together reach the app as one message.
        assert (status, body, headers["x-events"]) == (200, b"first", "1")
        status, _, body = await c.response()
        assert status == 200 and body.startswith(b"('GET', '/describe', b'/describe', b'n=2'")


@pytest.mark.trio
async def test_chunked_upload_streams_piece_by_piece() -> None:
    pieces_in, pieces_out = trio.open_memory_channel[dict](10)

    async def app(scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            await pieces_in.send(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async with running(app) as (connect, _):
        c = await connect()
        await c.send(b"PUT /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"5;ext=1\r\nhello\r\n", b"1", b"\r\n \r", b"\n6\r\nworld!\r\n"):
            await c.send(piece)
        # Each piece is passed on as it completes, not when the body ends.
        got = b""
        while got != b"hello world!":
            message = await pieces_out.receive()
            assert message["type"] == "http.request" and message["more_body"]
            got += message["body"]
        await c.send(b"0\r\nx-checksum: abc\r\n\r\n")
        message = await pieces_out.receive()
        assert message == {"type": "http.request", "body": b"", "more_body": False}
        status, _, body = await c.response()
        assert (status, body) == (200, b"hello world!")
        # Trailers are read to the end: the connection carries on.
        await c.send(b"GET /x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok")
        assert (await c.response())[2] == b"ok"


@pytest.mark.trio
async def test_expect_100_continue_with_a_chunked_body_and_with_an_eager_client() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
                     b"expect: 100-continue\r\n\r\n")
        assert (await c.response())[0] == 100
        await c.send(b"3\r\nabc\r\n0\r\n\r\n")
        assert (await c.response())[:3:2] == (200, b"abc")
        # A client that sends the body without waiting gets no 100 at all.
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
                     b"expect: 100-continue\r\n\r\nxyz")
        assert (await c.response())[:3:2] == (200, b"xyz")
        assert c.buf == b""


@pytest.mark.trio
async def test_head_sent_one_byte_at_a_time() -> None:
    async with running() as (connect, _):
        c = await connect()
        for byte in b"PUT /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi":
            await c.send(bytes([byte]))
        assert (await c.response())[:3:2] == (200, b"hi")


@pytest.mark.trio
async def test_http10_client_gets_its_answer_and_a_close() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"PUT /a HTTP/1.0\r\ncontent-length: 2\r\n\r\nhi")
        status, headers, body = await c.response()
        assert (status, body, headers["connection"]) == (200, b"hi", "close")
        assert await c.closed()


@pytest.mark.trio
async def test_a_bad_chunk_is_a_disconnect_for_the_app_and_ends_the_connection() -> None:
    async with running() as (connect, _):
        c = await connect()
        await c.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"2\r\nok\r\nzz\r\n")
        status, _, body = await c.response()
        assert (status, body) == (200, b"ok")  # echo_app answers what it got
        assert await c.closed()


@pytest.mark.trio
async def test_streamed_response_without_length_is_chunked() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["path"] == "/liar":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"too long"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"defg", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with running(app) as (connect, _):
        c = await connect()
        await c.send(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        while not c.buf.endswith(b"0\r\n\r\n"):
            assert await c._fill()
        head, _, chunks = c.buf.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        assert chunks == b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        c.buf = b""
        # More body than the declared length never reaches the client.
        await c.send(b"GET /liar HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _, body = await c.response()
        assert (status, body) == (500, b"refused 500") and await c.closed()


@pytest.mark.trio
async def test_idle_and_stalled_connections_are_closed_after_the_keep_alive_timeout() -> None:
    async with running(keep_alive_timeout=0.2, head_timeout=0.2) as (connect, _):
        served = await connect()
        await served.send(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await served.response())[0] == 200
        silent = await connect()
        stalled = await connect()
        await stalled.send(b"GET /slowloris HTTP/1.1\r\nhost: x\r\n")  # never finished
        with trio.fail_after(5):
            # Idle after a response, idle from the start, stuck inside a head: all closed.
            assert await served.closed()
            assert await silent.closed()
            assert await stalled.closed()
        # A connection that keeps sending requests is not idle while it does.
        busy = await connect()
        for _ in range(3):
            await busy.send(b"GET /b HTTP/1.1\r\nhost: x\r\n\r\n")
            assert (await busy.response())[0] == 200


@pytest.mark.trio
async def test_a_trickled_head_is_cut_off_long_before_the_keep_alive_timeout() -> None:
    async with running(keep_alive_timeout=60, head_timeout=0.3) as (connect, _):
        silent = await connect()
        trickler = await connect()
        await trickler.send(b"GET /slowloris HTTP/1.1\r\n")
        with trio.fail_after(5):
            # One more header line every 0.1 s: each arrives within the keep-alive
            # timeout, but the head as a whole takes too long.
            with pytest.raises(trio.BrokenResourceError):
                for i in range(100):
                    await trickler.send(b"x-%d: y\r\n" % i)
                    await trio.sleep(0.1)
        # The silent one has sent nothing and is within the keep-alive timeout.
        await silent.send(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await silent.response())[0] == 200


@pytest.mark.trio
async def test_at_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    async with running(max_connections=2) as (connect, _):
        oldest = await connect()
        await oldest.send(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await oldest.response())[0] == 200
        newer = await connect()
        await newer.send(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await newer.response())[0] == 200
        third = await connect()
        await third.send(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await third.response())[0] == 200
        with trio.fail_after(5):
            assert await oldest.closed()
        await newer.send(b"GET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await newer.response())[0] == 200


@pytest.mark.trio
async def test_at_the_connection_cap_with_every_connection_busy_a_newcomer_gets_503() -> None:
    entered = trio.Event()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        entered.set()
        await echo_app(scope, receive, send)

    async with running(app, max_connections=1) as (connect, _):
        busy = await connect()
        # Inside its body: the app is waiting for the rest, so it is not idle.
        await busy.send(b"PUT /a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhello")
        with trio.fail_after(5):
            await entered.wait()
        refused = await connect()
        status, _, body = await refused.response()
        assert (status, body) == (503, b"refused 503") and await refused.closed()
        await busy.send(b"world")
        assert (await busy.response())[:3:2] == (200, b"helloworld")


@pytest.mark.trio
async def test_a_big_piece_goes_out_whole_and_in_order_through_partial_sends() -> None:
    body = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than the socket buffers hold

    async def big(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body) + 3).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"end", "more_body": True})
        await send({"type": "http.response.body", "body": b""})  # nothing left to send

    async with running(big) as (connect, _):
        c = await connect()
        for _ in range(2):  # and the connection stays usable
            await c.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
            status, _, received = await c.response()
            assert status == 200 and received == body + b"end"
