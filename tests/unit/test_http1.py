"""protocols/http1.py: the sans-I/O HTTP/1.1 server protocol, bytes in and bytes out."""

from __future__ import annotations

import pytest

from protocols.http1 import CONTINUE, ProtocolError, Request, ResponseError, ServerConnection

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"
DATE = b"Thu, 01 Jan 2026 00:00:00 GMT"


def parse(raw: bytes, limit: int = 64 * 1024) -> tuple[ServerConnection, Request]:
    conn = ServerConnection(limit)
    conn.feed(raw)
    request = conn.next_request()
    assert request is not None
    return conn, request


def refusal(raw: bytes, limit: int = 64 * 1024) -> ProtocolError:
    conn = ServerConnection(limit)
    conn.feed(raw)
    with pytest.raises(ProtocolError) as info:
        conn.next_request()
    # A refused connection stays refused.
    with pytest.raises(RuntimeError):
        conn.next_request()
    return info.value


def body_of(conn: ServerConnection) -> bytes:
    """Everything read_body gives from what is buffered (the body must end there)."""
    pieces = []
    while True:
        data, done = conn.read_body()
        pieces.append(data)
        if done:
            return b"".join(pieces)
        assert data, "the whole body was fed, yet read_body wants more"


def answered(conn: ServerConnection, status: int = 200,
             headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"") -> bytes:
    """The bytes of one complete response."""
    out = [conn.start_response(status, headers or [(b"content-length", b"%d" % len(body))],
                               date=DATE)]
    out += conn.send_body(body, end=True)
    return b"".join(out)


# -- request heads -----------------------------------------------------------------------


def test_a_simple_get() -> None:
    conn, req = parse(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example\r\nX-Two:  a  b \t\r\n"
                      b"x-two: c\r\nEmpty:\r\nObs: caf\xe9\r\nTab: a\tb\r\n\r\n")
    assert (req.method, req.target, req.http_version) == (b"GET", b"/a%20b?x=1", "1.1")
    # Names lowercased; order and duplicates kept; OWS around values gone, inside kept.
    assert req.headers == [(b"host", b"example"), (b"x-two", b"a  b"), (b"x-two", b"c"),
                           (b"empty", b""), (b"obs", b"caf\xe9"), (b"tab", b"a\tb")]
    assert all(type(n) is bytes and type(v) is bytes for n, v in req.headers)
    assert req.body_length == 0 and req.keep_alive and not req.expect_continue
    assert conn.request_done and conn.read_body() == (b"", True) and conn.buffered == 0


def test_head_split_byte_by_byte_matches_the_whole() -> None:
    raw = (b"PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nA: 1\r\n\r\n")
    _, whole = parse(raw + b"abc")
    conn = ServerConnection()
    for i in range(len(raw) - 1):
        conn.feed(raw[i:i + 1])
        assert conn.next_request() is None
    conn.feed(raw[-1:] + b"abc")
    req = conn.next_request()
    assert req is not None
    assert (req.method, req.target, req.headers, req.body_length) == (
        whole.method, whole.target, whole.headers, whole.body_length) == (
        b"PUT", b"/k", [(b"host", b"x"), (b"content-length", b"3"), (b"a", b"1")], 3)
    assert body_of(conn) == b"abc"


def test_pipelined_requests_in_one_buffer() -> None:
    conn = ServerConnection()
    conn.feed(b"PUT /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
              b"POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"1\r\nc\r\n0\r\n\r\n"
              b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\nGET /4 HTT")
    seen = []
    for _ in range(3):
        req = conn.next_request()
        assert req is not None
        seen.append((req.target, body_of(conn)))
        answered(conn)
        assert conn.reusable
        conn.start_next()
    assert seen == [(b"/1", b"ab"), (b"/2", b"c"), (b"/3", b"")]
    # The incomplete fourth head stays buffered until the rest arrives.
    assert conn.next_request() is None and conn.buffered == len(b"GET /4 HTT")
    conn.feed(b"P/1.1\r\nHost: x\r\n\r\n")
    req = conn.next_request()
    assert req is not None and req.target == b"/4"


def test_empty_lines_before_a_request_are_ignored() -> None:
    conn = ServerConnection()
    conn.feed(b"\r\n\r\n")
    assert conn.next_request() is None and conn.buffered == 0
    conn.feed(b"\r\n" + GET)
    req = conn.next_request()
    assert req is not None and req.target == b"/a?b=1"


def test_a_flood_of_empty_lines_is_refused_not_looped_over() -> None:
    conn = ServerConnection()
    conn.feed(b"\r\n" * 10_000 + GET)
    with pytest.raises(ProtocolError) as info:
        conn.next_request()
    assert info.value.status_hint == 400


def test_keep_alive_rules() -> None:
    assert parse(GET)[1].keep_alive
    assert not parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n")[1] \
        .keep_alive
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")[1].keep_alive
    # HTTP/1.0: closed after the response, keep-alive asked or not (and no Host needed).
    _, old = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert old.http_version == "1.0" and not old.keep_alive


def test_expect_100_continue() -> None:
    raw = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-Continue\r\n\r\n"
    conn, req = parse(raw)
    assert req.expect_continue and conn.awaiting_continue
    assert conn.read_body() == (b"", False)
    assert conn.send_continue() == CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.awaiting_continue
    # The body already started arriving: the client is not waiting.
    conn, req = parse(raw + b"a")
    assert req.expect_continue and not conn.awaiting_continue
    conn, _ = parse(raw)
    conn.feed(b"a")
    assert not conn.awaiting_continue
    # Only HTTP/1.1 has it; a bodiless request has nothing to wait for.
    assert not parse(b"PUT / HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")[1] \
        .expect_continue
    assert not parse(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")[1] \
        .expect_continue


def test_content_length_lists_and_repeats_of_one_value_pass() -> None:
    for fields, shown in ((b"Content-Length: 3, 3\r\n", b"3"),
                          (b"Content-Length: 3\r\nContent-Length: 3\r\n", b"3"),
                          (b"Content-Length: 003\r\n", b"003")):
        conn, req = parse(b"PUT / HTTP/1.1\r\nHost: x\r\n" + fields + b"X-A: 1\r\n\r\nabc")
        assert req.body_length == 3 and body_of(conn) == b"abc"
        # The app sees the length once.
        assert req.headers == [(b"host", b"x"), (b"content-length", shown), (b"x-a", b"1")]


def test_chunked_is_case_insensitive() -> None:
    conn, req = parse(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
                      b"2\r\nhi\r\n0\r\n\r\n")
    assert req.body_length is None and body_of(conn) == b"hi"


@pytest.mark.parametrize(("raw", "status"), [
    # Request smuggling: two framings, or one that a proxy may read another way.
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
     400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
     400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4,\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4 4\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x4\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12345678901234567890\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    # Malformed field lines.
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nX-B: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\nX-C: c\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 needs a Host
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    # Malformed request lines.
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTPS/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1\r\nHost: x\r\n\r\n", 400),
    (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET  HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    (b"NOT A REQUEST\r\n\r\n", 400),
    # Bare LF line endings.
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400),
])
def test_refused_heads(raw: bytes, status: int) -> None:
    error = refusal(raw)
    assert error.status_hint == status and str(error)


def test_refusals_say_why() -> None:
    assert "Transfer-Encoding" in str(refusal(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
    assert "folding" in str(refusal(b"GET / HTTP/1.1\r\nHost: x\r\n x\r\n\r\n"))
    assert "before" in str(refusal(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"))
    assert "control" in str(refusal(b"GET / HTTP/1.1\r\nHost: \x01\r\n\r\n"))
    assert "version" in str(refusal(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"))


def test_head_size_limit() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100 + b"\r\n\r\n"
    # Exactly at the limit passes; one byte over does not, complete or not.
    assert parse(head, limit=len(head))[1].target == b"/"
    assert refusal(head, limit=len(head) - 1).status_hint == 431
    conn = ServerConnection(1000)
    conn.feed(b"GET / HTTP/1.1\r\nX-Pad: ")
    assert conn.next_request() is None
    conn.feed(b"a" * 1000)
    with pytest.raises(ProtocolError) as info:
        conn.next_request()
    assert info.value.status_hint == 431


# -- request bodies ----------------------------------------------------------------------


def test_sized_body_split_at_every_byte_keeps_the_next_request() -> None:
    raw = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789" + GET
    head_end = raw.index(b"\r\n\r\n") + 4
    for cut in range(head_end, len(raw) + 1):
        conn = ServerConnection()
        conn.feed(raw[:cut])
        assert conn.next_request() is not None
        first, done = conn.read_body()
        assert conn.body_remaining == 10 - len(first)
        assert first == raw[head_end:cut][:10]
        conn.feed(raw[cut:])
        if not done:
            assert body_of(conn) == b"0123456789"[len(first):]
        answered(conn)
        conn.start_next()
        req = conn.next_request()
        assert req is not None and req.target == b"/a?b=1"


def test_a_body_that_is_the_whole_read_is_not_copied() -> None:
    conn, _ = parse(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
    data = b"abcdefgh"
    conn.feed(data)
    assert conn.read_body()[0] is data


CHUNKED = (b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n"
           b"1;ext=1;name=\"quoted value\"\r\n,\r\n"
           b"A \r\n world!!!!\r\n"
           b"000\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n") + GET
CHUNKED_BODY = b"hello, world!!!!"


def test_chunked_body_split_at_every_byte() -> None:
    head_end = CHUNKED.index(b"\r\n\r\n") + 4
    for cut in range(head_end, len(CHUNKED) + 1):
        conn = ServerConnection()
        conn.feed(CHUNKED[:cut])
        assert conn.next_request() is not None
        pieces = []
        data, done = conn.read_body()
        pieces.append(data)
        conn.feed(CHUNKED[cut:])
        if not done:
            pieces.append(body_of(conn))
        assert b"".join(pieces) == CHUNKED_BODY
        answered(conn)
        conn.start_next()
        req = conn.next_request()
        assert req is not None and req.target == b"/a?b=1", cut


def test_chunked_body_fed_byte_by_byte() -> None:
    conn = ServerConnection()
    conn.feed(CHUNKED[:CHUNKED.index(b"\r\n\r\n") + 4])
    assert conn.next_request() is not None
    body, done = b"", False
    rest = CHUNKED[CHUNKED.index(b"\r\n\r\n") + 4:]
    for i in range(len(rest)):
        conn.feed(rest[i:i + 1])
        if not done:
            data, done = conn.read_body()
            body += data
    assert done and body == CHUNKED_BODY
    answered(conn)
    conn.start_next()
    assert conn.next_request() is not None


def test_chunks_buffered_together_come_as_one_piece() -> None:
    conn, _ = parse(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert conn.read_body() == (b"abcde", True)


@pytest.mark.parametrize("chunks", [
    b"zz\r\nab\r\n0\r\n\r\n",  # not hex
    b"\r\nab\r\n0\r\n\r\n",  # no size
    b"-2\r\nab\r\n0\r\n\r\n",
    b"0x2\r\nab\r\n0\r\n\r\n",
    b" 2\r\nab\r\n0\r\n\r\n",
    b"2\x00\r\nab\r\n0\r\n\r\n",
    b"2;a\nb\r\nab\r\n0\r\n\r\n",  # a bare LF in an extension
    b"10000000000000002\r\nab\r\n0\r\n\r\n",  # 17 hex digits
    b"2\r\nabc\r\n0\r\n\r\n",  # data longer than its size: no CRLF after it
    b"2\r\nab0\r\n\r\n",
    b"0\r\nX-T: a\x01\r\n\r\n",  # a malformed trailer
    b"0\r\n folded\r\n\r\n",
    b"2;" + b"e" * 5000 + b"\r\nab\r\n0\r\n\r\n",  # extensions without end
])
def test_refused_chunked_bodies(chunks: bytes) -> None:
    conn, _ = parse(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    with pytest.raises(ProtocolError) as info:
        body_of(conn)
    assert info.value.status_hint == 400


def test_trailers_are_bounded() -> None:
    head = b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn, _ = parse(head + b"0\r\nX-T: " + b"a" * 200, limit=200)
    with pytest.raises(ProtocolError, match="trailer"):
        body_of(conn)
    conn, _ = parse(head + b"0\r\nX-T: " + b"a" * 200 + b"\r\n\r\n", limit=200)
    with pytest.raises(ProtocolError, match="trailer"):
        body_of(conn)
    conn, _ = parse(head + b"0\r\nX-T: " + b"a" * 100 + b"\r\n\r\n", limit=200)
    assert body_of(conn) == b"" and conn.request_done


# -- responses ---------------------------------------------------------------------------


def test_sized_response() -> None:
    conn, _ = parse(GET)
    head = conn.start_response(201, [(b"Content-Length", b"5"), (b"x-a", b"1")], date=DATE)
    assert head == (b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nx-a: 1\r\n"
                    b"date: " + DATE + b"\r\n\r\n")
    assert conn.send_body(b"hel") == [b"hel"]
    assert not conn.reusable
    assert conn.send_body(b"lo", end=True) == [b"lo"]
    assert conn.reusable
    conn.start_next()
    assert conn.next_request() is None


def test_the_apps_date_wins_and_unknown_statuses_pass() -> None:
    conn, _ = parse(GET)
    head = conn.start_response(599, [(b"Date", b"then"), (b"content-length", b"0")], date=DATE)
    assert head == b"HTTP/1.1 599 \r\nDate: then\r\ncontent-length: 0\r\n\r\n"
    conn, _ = parse(GET)
    with pytest.raises(ResponseError):
        conn.start_response(42, [])


def test_chunked_response() -> None:
    conn, _ = parse(GET)
    # An app's own Transfer-Encoding is replaced: framing is the protocol's job.
    head = conn.start_response(200, [(b"transfer-encoding", b"gzip")], date=DATE)
    assert head == (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: " + DATE +
                    b"\r\n\r\n")
    assert b"".join(conn.send_body(b"a" * 26)) == b"1a\r\n" + b"a" * 26 + b"\r\n"
    assert conn.send_body(b"") == []
    assert b"".join(conn.send_body(b"bc", end=True)) == b"2\r\nbc\r\n0\r\n\r\n"
    assert conn.reusable


def test_head_response_keeps_its_length_and_drops_the_body() -> None:
    conn, _ = parse(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = conn.start_response(200, [(b"content-length", b"1000")], date=DATE)
    assert b"content-length: 1000\r\n" in head and b"transfer-encoding" not in head
    assert conn.send_body(b"x" * 1000, end=True) == []
    assert conn.reusable
    conn, _ = parse(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = conn.start_response(200, [], date=DATE)
    assert b"transfer-encoding" not in head and b"content-length" not in head
    assert conn.send_body(b"xyz", end=True) == [] and conn.reusable


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(status: int) -> None:
    conn, _ = parse(GET)
    head = conn.start_response(status, [(b"etag", b'"1"')], date=DATE)
    assert b"transfer-encoding" not in head and b"content-length" not in head
    assert conn.send_body(b"", end=True) == [] and conn.reusable
    # A 304's Content-Length describes the representation: kept as it is.
    conn, _ = parse(GET)
    assert b"content-length: 7\r\n" in conn.start_response(status, [(b"content-length", b"7")])
    with pytest.raises(ResponseError):
        conn.send_body(b"body", end=True)
    assert not conn.keep_alive


def test_http10_gets_a_close_delimited_body() -> None:
    conn, _ = parse(b"GET / HTTP/1.0\r\n\r\n")
    head = conn.start_response(200, [], date=DATE)
    assert b"transfer-encoding" not in head and head.endswith(b"connection: close\r\n\r\n")
    assert conn.send_body(b"raw", end=True) == [b"raw"]
    assert not conn.reusable
    with pytest.raises(RuntimeError):
        conn.start_next()


def test_connection_close_from_either_side() -> None:
    conn, _ = parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"connection: close\r\n" in answered(conn) and not conn.reusable
    conn, _ = parse(GET)
    head = conn.start_response(200, [(b"content-length", b"0")], close=True)
    assert head.endswith(b"connection: close\r\n\r\n")
    conn.send_body(b"", end=True)
    assert not conn.reusable
    conn, _ = parse(GET)
    raw = answered(conn, headers=[(b"connection", b"close"), (b"content-length", b"0")])
    assert raw.count(b"onnection") == 1 and not conn.reusable


@pytest.mark.parametrize("header", [
    (b"x-a", b"1\r\nx-injected: 1"),
    (b"x-a", b"1\nx-injected: 1"),
    (b"x-a", b"1\r"),
    (b"x-a\r\nx-b", b"1"),
    (b"x-a\n", b"1"),
])
def test_response_splitting_guard(header: tuple[bytes, bytes]) -> None:
    conn, _ = parse(GET)
    with pytest.raises(ResponseError, match="CR or LF"):
        conn.start_response(200, [header, (b"content-length", b"0")], date=DATE)
    assert not conn.keep_alive


def test_body_longer_or_shorter_than_its_content_length() -> None:
    conn, _ = parse(GET)
    conn.start_response(200, [(b"content-length", b"3")])
    with pytest.raises(ResponseError, match="longer"):
        conn.send_body(b"abcd")
    assert not conn.keep_alive
    conn, _ = parse(GET)
    conn.start_response(200, [(b"content-length", b"3")])
    assert conn.send_body(b"ab", end=True) == [b"ab"]
    # Short: the client can only tell from the connection closing.
    assert conn.response_done and not conn.reusable


def test_response_misuse() -> None:
    conn = ServerConnection()
    with pytest.raises(ResponseError):
        conn.start_response(200, [])
    conn, _ = parse(GET)
    with pytest.raises(ResponseError):
        conn.send_body(b"x")
    with pytest.raises(ResponseError, match="Content-Length"):
        conn.start_response(200, [(b"content-length", b"-1")])
    conn, _ = parse(GET)
    with pytest.raises(ResponseError, match="Content-Length"):
        conn.start_response(200, [(b"content-length", b"1"), (b"content-length", b"2")])
    conn, _ = parse(GET)
    answered(conn)
    with pytest.raises(ResponseError):
        conn.start_response(200, [])
    with pytest.raises(ResponseError):
        conn.send_body(b"", end=True)


def test_unread_body_blocks_reuse() -> None:
    conn, _ = parse(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    answered(conn)
    assert not conn.reusable and conn.body_remaining == 4
    assert conn.read_body() == (b"ab", False)
    conn.feed(b"cd")
    assert conn.read_body() == (b"cd", True)
    assert conn.reusable


def test_chunk_data_before_a_framing_error_is_handed_over_first() -> None:
    conn, _ = parse(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"2\r\nok\r\nzz\r\n")
    assert conn.read_body() == (b"ok", False)
    with pytest.raises(ProtocolError, match="chunk size"):
        conn.read_body()
