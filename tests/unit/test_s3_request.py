"""The S3 request parser's header views."""

from __future__ import annotations

from protocols.s3.request import Request
from protocols.s3.sigv4 import header_multimap


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/b/k", "raw_path": b"/b/k",
             "query_string": b"", "headers": headers}

    async def receive() -> dict:
        return {}

    return Request(scope, receive, ("localhost",))


def test_wire_headers_are_sigv4s_multimap_of_the_same_headers() -> None:
    raw = [(b"host", b"b.localhost:9000"), (b"x-amz-meta-a", "caf\u00e9".encode()),
           (b"x-amz-meta-b", b"\xff\xfe latin"), (b"x-amz-meta-a", b"  two  words "),
           (b"Content-Type", b"text/plain")]
    req = _request(raw)
    assert req.wire_headers == header_multimap([(n.decode("latin-1"), v) for n, v in raw])
    # The handlers' view: repeats joined, text as UTF-8, else latin-1.
    assert req.headers["x-amz-meta-a"] == "caf\u00e9,  two  words "
    assert req.headers["x-amz-meta-b"] == "\xff\xfe latin"
    assert req.headers["content-type"] == "text/plain"
    assert (req.bucket, req.key) == ("b", "b/k")
