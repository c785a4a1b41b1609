"""The S3 request parser's header views, and the request ids the app hands out."""

from __future__ import annotations

import re

from protocols.s3.app import _RequestIds
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


def test_request_ids_are_16_hex_digits_and_do_not_repeat() -> None:
    ids = _RequestIds()
    made = [ids.next() for _ in range(3 * _RequestIds._BATCH + 5)]
    assert all(re.fullmatch(r"[0-9A-F]{16}", i) for i in made)
    assert len(set(made)) == len(made)
