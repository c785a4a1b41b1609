"""Sans-I/O HTTP/1.1, server side: bytes in, requests and body pieces out; responses in,
bytes out.  No sockets here; ``protocols/http_server.py`` does the I/O.

Written for the S3 port instead of h11 because it has to be cheap per request: one
small keep-alive exchange (parse a GET head, frame a 4 KiB response, reset) took h11
100-140 µs of Python, a quarter of the CPU a 4 KiB GET may cost; it takes this module
13-17 µs.  The work per head is a few C-level passes: find its end, one regex for the
request line, one ``findall`` for all field lines, one ``translate`` to refuse control
bytes.  Only a refused head is walked line by line, to say what is wrong with it.

Strict on purpose, since a proxy in front may frame requests differently: CRLF line
endings only, no obs-fold, no whitespace before a field's colon, no control bytes,
Content-Length with Transfer-Encoding refused, only ``chunked`` as transfer coding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import NamedTuple, NoReturn

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_REQUEST_LINE = re.compile(rb"([" + _TCHAR + rb"]+) ([\x21-\x7e]+) HTTP/1\.([01])\r\n")
# One field line, from the LF ending the line before it (its value without the OWS
# around it).  A plain ``[^\r]`` scan is several times faster in ``re`` than a class
# of allowed bytes, so control bytes are refused by one ``translate`` of the whole head.
_FIELD = re.compile(rb"\n([" + _TCHAR + rb"]+):[ \t]*+([^\r]*[^\r \t]|)[ \t]*\r(?=\n)")
# What may appear in a head besides CR and LF (HTAB, visible ASCII, obs-text).
_PLAIN = bytes([0x09, *range(0x20, 0x7f), *range(0x80, 0x100)])
_TOKEN = re.compile(rb"[" + _TCHAR + rb"]+")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# No whitespace between the size and a ";": RFC 9112 allows it (BWS), but h11
# and many proxies refuse it, and a line that two parsers split differently
# is what chunk-extension smuggling is made of.
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\x00-\x08\x0a-\x1f\x7f]*+)?[ \t]*+")

MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
MAX_EMPTY_LINES = 4  # before a request line
MAX_LENGTH_DIGITS = 19  # more is no real body (and past what a 64-bit length holds)

_REQUEST_SPECIAL = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"expect", b"host"})
_HOST_ONLY = {b"host"}
_HOST_AND_LENGTH = {b"host", b"content-length"}
_RESPONSE_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection", b"date"})
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("ascii"))
                 for s in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Request body framings, and chunked-decoder states.
_NONE, _SIZED, _CHUNKED = 0, 1, 2
_SIZE_LINE, _DATA, _DATA_END, _TRAILERS = 0, 1, 2, 3
# Response framings.
_BY_LENGTH, _BY_CHUNKS, _BY_CLOSE, _NO_BODY, _DROP_BODY = 0, 1, 2, 3, 4


class ProtocolError(Exception):
    """The client broke HTTP/1.1; answer ``status_hint`` (400, 431, 501, 505) and close."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class ResponseError(RuntimeError):
    """The application asked for a response HTTP/1.1 cannot carry: the connection is lost."""


class Request(NamedTuple):
    """A parsed request head."""

    method: bytes
    target: bytes
    http_version: str  # "1.1" or "1.0"
    headers: list[tuple[bytes, bytes]]  # names lowercased; order and repeats kept
    body_length: int | None  # None: chunked
    keep_alive: bool
    expect_continue: bool


class ServerConnection:
    """One connection's HTTP/1.1 state: request after request, each answered in turn.

    ``feed`` received bytes, take a head from ``next_request`` (None: more bytes
    needed) and the body from ``read_body``; frame the answer with ``start_response``
    and ``send_body``; then ``start_next`` if ``reusable``, else close.
    """

    def __init__(self, max_head_bytes: int = 64 * 1024) -> None:
        self.max_head_bytes = max_head_bytes
        # Usually the bytes of one read, used in place; a bytearray only while
        # something incomplete waits for more.  _pos is where unread bytes start.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._scan = 0  # where to resume looking for the end of a head or trailers
        self._broken = False
        self.request: Request | None = None
        self.awaiting_continue = False  # the client waits for 100 before sending its body
        self._framing = _NONE
        self._remaining = 0  # sized body: bytes left; chunked: bytes left of this chunk
        self._chunk_state = _SIZE_LINE
        self.request_done = False
        self._writing = -1  # the response's framing; -1 while it has not started
        self._to_send = 0  # bytes still owed under a Content-Length
        self.response_done = False
        self.keep_alive = True

    # -- receiving ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Add bytes read from the client (after the first body byte, 100 is moot)."""
        if not data:
            return
        self.awaiting_continue = False
        if self._pos == len(self._buf):
            self._buf = bytes(data)  # a no-op for bytes: the common case copies nothing
            self._pos = self._scan = 0
            return
        buf = self._buf
        if self._pos or type(buf) is not bytearray:
            buf = bytearray(memoryview(buf)[self._pos:])
            self._scan = max(0, self._scan - self._pos)
            self._pos = 0
        buf += data
        self._buf = buf

    @property
    def buffered(self) -> int:
        """How many received bytes are not consumed yet."""
        return len(self._buf) - self._pos

    def next_request(self) -> Request | None:
        """The next request's head, or None until more bytes arrive."""
        if self.request is not None or self._broken:
            raise RuntimeError("next_request() while a request is in progress")
        buf, pos = self._buf, self._pos
        # RFC 9112 §2.2: a few empty lines before a request line are ignored
        # (more are refused below as a malformed request line, not looped over).
        for _ in range(MAX_EMPTY_LINES):
            if not buf.startswith(b"\r\n", pos):
                break
            pos += 2
        self._pos = pos
        end = buf.find(b"\r\n\r\n", max(pos, self._scan))
        if end < 0:
            if len(buf) - pos > self.max_head_bytes:
                self._fail("request head too large", 431)
            if buf.find(b"\n\n", max(pos, self._scan)) >= 0:
                self._fail("request head with bare LF line endings")
            self._scan = max(pos, len(buf) - 3)
            return None
        stop = end + 4
        if stop - pos > self.max_head_bytes:
            self._fail("request head too large", 431)
        head = buf[pos:stop]  # the same object when the read held just this head
        line = _REQUEST_LINE.match(head)
        fields = _fields(head, line.end() - 1) if line else None
        if line is None or fields is None:
            self._broken = True
            raise _diagnose(bytes(head[:-2]))
        request = self._make_request(line, fields)
        self._pos = self._scan = stop
        self.request = request
        self.awaiting_continue = request.expect_continue and stop == len(buf)
        return request

    def _make_request(self, line: re.Match[bytes], fields: list[tuple[bytes, bytes]]) -> Request:
        headers = [(name.lower(), value) for name, value in fields]
        version = "1.1" if line[3] == b"1" else "1.0"
        named = dict(headers)
        special = named.keys() & _REQUEST_SPECIAL
        if version == "1.1" and len(named) == len(headers) and (
                special == _HOST_ONLY
                or (special == _HOST_AND_LENGTH and named[b"content-length"] == b"0")):
            # The usual bodiless request, also as clients that always send a
            # Content-Length send it (C-level set and dict work only): no more to check.
            self._framing, self.request_done = _NONE, True
            return Request(line[1], line[2], version, headers, 0, True, False)
        length, keep_alive, expect = self._framing_fields(headers, version)
        if length == 0:
            self._framing, self.request_done = _NONE, True
        elif length is None:
            self._framing, self._chunk_state, self._remaining = _CHUNKED, _SIZE_LINE, 0
        else:
            self._framing, self._remaining = _SIZED, length
        return Request(line[1], line[2], version, headers, length, keep_alive, expect)

    def _framing_fields(self, headers: list[tuple[bytes, bytes]],
                        version: str) -> tuple[int | None, bool, bool]:
        """Body length (None: chunked), keep-alive and 100-continue, per RFC 9112 §6."""
        lengths, codings, hosts = [], [], 0
        keep_alive = version == "1.1"  # HTTP/1.0 keep-alive is not worth supporting
        expect = False
        for name, value in headers:
            if name not in _REQUEST_SPECIAL:
                continue
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings.append(value)
            elif name == b"host":
                hosts += 1
            elif version == "1.0":
                continue  # no keep-alive, no 100-continue
            elif name == b"connection":
                keep_alive = keep_alive and b"close" not in _tokens(value)
            elif value.lower() == b"100-continue":
                expect = True
        if version == "1.1" and hosts != 1:
            self._fail("an HTTP/1.1 request needs exactly one Host header")
        length: int | None = 0
        if codings:
            # Both framings at once is how requests are smuggled past a proxy.
            if lengths:
                self._fail("both Content-Length and Transfer-Encoding")
            if version == "1.0":
                self._fail("Transfer-Encoding in an HTTP/1.0 request")
            if len(codings) != 1 or codings[0].lower() != b"chunked":
                self._fail("unsupported Transfer-Encoding", 501)
            length = None
        elif lengths:
            # A list ("5, 5") or repeated fields pass only if every value is the same.
            seen = {v.strip(b" \t") for value in lengths for v in value.split(b",")}
            if len(seen) != 1:
                self._fail("conflicting Content-Length values")
            (value,) = seen
            if not value.isdigit() or len(value) > MAX_LENGTH_DIGITS:
                self._fail("invalid Content-Length")
            length = int(value)
            if len(lengths) > 1 or b"," in lengths[0]:
                # The app sees it once, as h11 showed it.
                at = next(i for i, (name, _) in enumerate(headers) if name == b"content-length")
                headers[:] = [f for f in headers if f[0] != b"content-length"]
                headers.insert(at, (b"content-length", value))
        return length, keep_alive, expect and length != 0

    def _fail(self, message: str, status: int = 400) -> NoReturn:
        self._broken = True
        raise ProtocolError(message, status)

    @property
    def body_remaining(self) -> int | None:
        """Request body bytes still to come (None: chunked, unknown)."""
        if self.request_done:
            return 0
        return None if self._framing == _CHUNKED else self._remaining

    def read_body(self) -> tuple[bytes, bool]:
        """The request body bytes buffered so far, and whether that is its end.

        ``(b"", False)`` means more bytes are needed.  Never reads past the body, so
        a pipelined request behind it stays buffered.
        """
        if self.request_done:
            return b"", True
        if self._broken or self.request is None:
            raise RuntimeError("no request body to read")
        if self._framing == _CHUNKED:
            return self._read_chunked()
        count = min(self._remaining, len(self._buf) - self._pos)
        data = _slice(self._buf, self._pos, count)
        self._consumed(self._pos + count)
        self._remaining -= count
        self.request_done = not self._remaining
        return data, self.request_done

    def _consumed(self, pos: int) -> None:
        if pos == len(self._buf):
            self._buf, self._pos, self._scan = b"", 0, 0  # free the read's memory at once
        else:
            self._pos = pos

    def _read_chunked(self) -> tuple[bytes, bool]:
        buf, pos, size = self._buf, self._pos, len(self._buf)
        pieces = []
        state = self._chunk_state
        try:
            while True:
                if state == _DATA:
                    count = min(self._remaining, size - pos)
                    if count:
                        pieces.append((pos, count))
                        pos += count
                        self._remaining -= count
                    if self._remaining:
                        break
                    state = _DATA_END
                if state == _DATA_END:
                    if size - pos < 2:
                        break
                    if not buf.startswith(b"\r\n", pos):
                        self._fail("chunk data not followed by CRLF")
                    pos += 2
                    state = _SIZE_LINE
                if state == _SIZE_LINE:
                    end = buf.find(b"\r\n", pos, pos + MAX_CHUNK_LINE)
                    if end < 0:
                        if size - pos >= MAX_CHUNK_LINE:
                            self._fail("chunk size line too long")
                        break
                    match = _CHUNK_LINE.fullmatch(buf, pos, end)
                    if match is None:
                        self._fail("invalid chunk size line")
                    pos = end + 2
                    self._remaining = int(match[1], 16)
                    state = _DATA if self._remaining else _TRAILERS
                    continue
                if state == _TRAILERS:
                    if not self._skip_trailers(buf, pos):
                        break
                    pos = self._pos
                    self.request_done = True
                    break
        except ProtocolError:
            if not pieces:
                raise
            # Hand over the data before the error; the next call meets it again.
            self._broken = False
        finally:
            self._chunk_state = state
            if not self.request_done:
                self._consumed(pos)
        if len(pieces) == 1:
            return _slice(buf, *pieces[0]), self.request_done
        # Chunks that came together go to the app as one piece, copied once.
        view = memoryview(buf)
        return b"".join([view[start:start + count] for start, count in pieces]), \
            self.request_done

    def _skip_trailers(self, buf: bytes | bytearray, pos: int) -> bool:
        """Consume the trailer section if all of it is here (its fields are ignored)."""
        if buf.startswith(b"\r\n", pos):
            end = pos - 2
        else:
            end = buf.find(b"\r\n\r\n", max(pos, self._scan))
            if end < 0:
                if len(buf) - pos > self.max_head_bytes:
                    self._fail("trailer section too large")
                self._scan = max(pos, len(buf) - 3)
                return False
            if end + 4 - pos > self.max_head_bytes:
                self._fail("trailer section too large")
            if _fields(b"\r\n" + bytes(buf[pos:end + 4]), 1) is None:
                self._fail("malformed trailer field")
        self._consumed(end + 4)
        return True

    # -- sending -----------------------------------------------------------------------

    def send_continue(self) -> bytes:
        """The interim 100 response (call only while ``awaiting_continue``)."""
        self.awaiting_continue = False
        return CONTINUE

    def start_response(self, status: int, headers: Iterable[tuple[bytes, bytes]], *,
                       date: bytes | None = None, close: bool = False) -> bytes:
        """The response head.  The app's framing headers decide the body's framing:
        its Content-Length if given, else chunked (close-delimited for HTTP/1.0).
        ``date`` is added unless the app gave one; ``close`` ends the connection after
        this response.  Raises ResponseError for a CR or LF in a header."""
        request = self.request
        if request is None or self._writing != -1:
            raise ResponseError("no request to answer, or already answered")
        status_line = _STATUS_LINES.get(status)
        if status_line is None:
            if type(status) is not int or not 100 <= status <= 999:
                raise ResponseError(f"invalid status {status!r}")
            status_line = b"HTTP/1.1 %d \r\n" % status
        parts = [status_line]
        length = None
        said_close = False
        for name, value in headers:
            lname = name.lower()
            if lname in _RESPONSE_SPECIAL:
                if lname == b"content-length":
                    if not value.isdigit() or (length is not None and int(value) != length):
                        raise ResponseError(f"invalid response Content-Length {value!r}")
                    if length is not None:
                        continue
                    length = int(value)
                elif lname == b"transfer-encoding":
                    continue  # the framing is ours to choose
                elif lname == b"connection":
                    said_close = said_close or b"close" in _tokens(value)
                else:
                    date = None
            parts += (name, b": ", value, b"\r\n")
        lines = 2 + (len(parts) - 1) // 4  # the status line, the fields and the blank line
        if request.method == b"HEAD":
            framing = _DROP_BODY  # its Content-Length, if any, is the GET's: keep it
        elif status < 200 or status in (204, 304):
            framing = _NO_BODY
        elif length is not None:
            framing = _BY_LENGTH
        elif request.http_version == "1.1":
            framing = _BY_CHUNKS
            parts.append(b"transfer-encoding: chunked\r\n")
            lines += 1
        else:
            framing, close = _BY_CLOSE, True  # an HTTP/1.0 client knows no chunks
        if date is not None:
            parts += (b"date: ", date, b"\r\n")
            lines += 1
        if said_close:
            self.keep_alive = False
        elif close or not request.keep_alive:
            self.keep_alive = False
            parts.append(b"connection: close\r\n")
            lines += 1
        parts.append(b"\r\n")
        head = b"".join(parts)
        # Splitting guard: CR and LF may appear only as the line ends this code wrote.
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            self._writing = _NO_BODY
            self.keep_alive = False
            raise ResponseError("CR or LF in a response header")
        self._writing = framing
        self._to_send = length or 0
        self.awaiting_continue = False
        return head

    def send_body(self, data: bytes, end: bool = False) -> list[bytes]:
        """What to send for one piece of the response body (``end``: the last piece)."""
        framing = self._writing
        if framing == -1 or self.response_done:
            raise ResponseError("body outside a response")
        out = []
        if data:
            if framing == _BY_LENGTH:
                if len(data) > self._to_send:
                    self.keep_alive = False
                    raise ResponseError("response body longer than its Content-Length")
                self._to_send -= len(data)
                out.append(data)
            elif framing == _BY_CHUNKS:
                out += (b"%x\r\n" % len(data), data, b"\r\n")
            elif framing == _BY_CLOSE:
                out.append(data)
            elif framing == _NO_BODY:
                self.keep_alive = False
                raise ResponseError("body for a response that cannot have one")
        if end:
            self.response_done = True
            if framing == _BY_CHUNKS:
                out.append(b"0\r\n\r\n")
            elif framing == _BY_LENGTH and self._to_send:
                self.keep_alive = False  # short: the client must see the connection end
        return out

    @property
    def reusable(self) -> bool:
        """Whether this exchange is over and the connection may carry another."""
        return self.keep_alive and self.request_done and self.response_done

    def start_next(self) -> None:
        """Get ready for the next request on this connection."""
        if not self.reusable:
            raise RuntimeError("the connection cannot carry another request")
        self.request = None
        self._framing = _NONE
        self.request_done = self.response_done = False
        self._writing = -1


def standalone_head(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A response head outside any exchange's state (a refusal just before the
    connection closes): status line, ``headers`` as given, blank line."""
    status_line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status
    return (status_line + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            + b"\r\n")


def _fields(head: bytes | bytearray, start: int) -> list[tuple[bytes, bytes]] | None:
    """The field lines of a head that ends in CRLF CRLF, from the LF at ``start``; None
    if any line is malformed.

    The bytes outside _PLAIN must be CR LF pairs, in order; a field match runs from one
    LF to a CR right before the next LF; so if every LF but the last two starts a match,
    every line is a whole, valid field line, with no bare CR or LF anywhere.
    """
    breaks = head.translate(None, _PLAIN)
    fields = _FIELD.findall(head, start)
    if breaks != b"\r\n" * (len(breaks) >> 1) or len(fields) != (len(breaks) >> 1) - 2:
        return None
    return fields


def _slice(buf: bytes | bytearray, start: int, count: int) -> bytes:
    if count == len(buf) and type(buf) is bytes:
        return buf  # the whole read is body: no copy
    return bytes(memoryview(buf)[start:start + count])


def _tokens(value: bytes) -> list[bytes]:
    return [t.strip(b" \t").lower() for t in value.split(b",")]


def _diagnose(head: bytes) -> ProtocolError:
    """Why a head failed the fast checks: the error a client can act on."""
    request_line, *fields = head.split(b"\r\n")[:-1]
    parts = request_line.split(b" ")
    if len(parts) != 3:
        return ProtocolError("malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        return ProtocolError("invalid method")
    if not re.fullmatch(rb"[\x21-\x7e]+", target):
        return ProtocolError("invalid request target")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if _VERSION.fullmatch(version):
            return ProtocolError("unsupported HTTP version", 505)
        return ProtocolError("malformed HTTP version")
    for line in fields:
        if line[:1] in (b" ", b"\t"):
            return ProtocolError("obsolete line folding in a header")
        name, colon, value = line.partition(b":")
        if not colon:
            return ProtocolError("header line without a colon")
        if name != name.rstrip(b" \t"):
            return ProtocolError("whitespace before a header's colon")
        if not _TOKEN.fullmatch(name):
            return ProtocolError("invalid header name")
        if _CONTROL.search(value):
            return ProtocolError("control character in a header value")
    return ProtocolError("malformed request head")
