"""HTTP/1.1 framing for the transport's client side: request heads out,
response heads in.  Sans-I/O; ``client.py`` does the sockets.

Why not h11: a transport exchange cost h11 about 120 µs of Python on each
side, and a replicated PUT makes two of them on the coordinator.  The
transport only ever speaks to its own server, whose messages have one shape:
a head, then a Content-Length body (or none).  So the client writes its head
with one format and reads the answer's with one split, and nothing here
knows chunked coding or close-delimited bodies: an answer framed any other
way is refused as a TransportError (the server side is protocols/http1.py).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from cluster.transport.wire import TransportError

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [^\r\n]*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"[\x21-\x7e]+")


class ResponseHead(NamedTuple):
    """What the client needs of a response head."""

    status: int
    length: int | None  # Content-Length; None when absent
    close: bool  # the server ends the connection after this response


def request_head(method: str, target: str, fields: list[tuple[str, str]]) -> bytes:
    """The head of a request (field names and values are ASCII).

    Raises ValueError for a method or target that is not a token / visible
    ASCII, or for a CR or LF in a field: a head is never split into two.
    """
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise ValueError(f"invalid request line {method!r} {target[:60]!r}")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(
        [f"{name}: {value}\r\n" for name, value in fields]) + "\r\n"
    # One C-level count instead of a check per value: only the line ends written
    # above may be there.
    if head.count("\n") != len(fields) + 2 or head.count("\r") != len(fields) + 2:
        raise ValueError("CR or LF in a request header")
    return head.encode("latin-1")


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head (status line and fields, without the final
    CRLF CRLF).  Raises TransportError for anything malformed."""
    status_line, *lines = head.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise TransportError(f"malformed status line {status_line[:80]!r}")
    length: int | None = None
    close = match[1] == b"0"  # HTTP/1.0: no keep-alive
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip(b" \t") or b"\n" in line:
            raise TransportError(f"malformed response header {line[:80]!r}")
        name = name.lower()
        if name == b"content-length":
            value = value.strip(b" \t")
            if not value.isdigit() or len(value) > 19 or (
                    length is not None and int(value) != length):
                raise TransportError(f"invalid Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            raise TransportError("a transfer-coded response (not sent by transport servers)")
        elif name == b"connection":
            close = close or b"close" in value.lower()
    return ResponseHead(int(match[2]), length, close)
