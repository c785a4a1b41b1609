"""One S3 request and its response, as the handlers see them.

:class:`Request` parses the ASGI scope once: headers, query, and the bucket
and key of the address (path style or virtual-host style, see
:func:`protocols.s3.router.split_address`); the body arrives through
:meth:`Request.receive_body`.  A handler answers a :class:`Response`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from email.header import decode_header, make_header
from typing import Any
from urllib.parse import unquote_to_bytes

import trio

from protocols.s3.errors import S3Error, invalid_argument
from protocols.s3.names import refuse_nul
from protocols.s3.router import Op, split_address
from protocols.s3.sigv4.canonical import WireHeaders

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: After an error, an unread request body up to this size is drained so the
#: client sees the error instead of a reset connection; larger ones are not
#: read and the connection is closed.
DRAIN_LIMIT = 8 * 1024 * 1024

DRAIN_SECONDS = 5.0

_CONTROL_ESCAPES = {c: f"%{c:02X}" for c in [*range(0x20), 0x7F]}


class Response:
    """What a handler answers: status, headers and a body (bytes or a stream)."""

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        stream: AsyncGenerator[bytes, None] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.stream = stream


def xml_response(
    body: bytes, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    """An XML document answer."""
    return Response(status, [("content-type", "application/xml"), *(headers or [])], body)


def mail_safe(value: str) -> str:
    """A metadata value as S3 returns it: RFC 2047 encoded when not ASCII."""
    if value.isascii():
        return value
    return f"=?UTF-8?B?{base64.b64encode(value.encode('utf-8', 'surrogateescape')).decode()}?="


def from_mail_safe(value: str) -> str:
    """A metadata value as S3 stores it: RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):  # not really encoded words
        return value


class Request:
    """One S3 request: addressing, headers, query and the body's receive channel."""

    def __init__(self, scope: Scope, receive: Receive, vhost_domains: tuple[str, ...]) -> None:
        self.method: str = scope["method"]
        self.scheme: str = scope.get("scheme", "http")
        self.raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        self.query_string: bytes = scope.get("query_string", b"")
        self.raw_headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        self.receive = receive
        headers: dict[str, str] = {}
        # SigV4's view of the same headers (every value, as wire text), made
        # in this pass rather than in a second one over the raw headers.
        wire = WireHeaders()
        # Header bytes are UTF-8 when a client sends non-ASCII metadata; anything
        # else is kept byte for byte through latin-1.
        for name, value in self.raw_headers:
            n = name.decode("latin-1").lower()
            try:
                v = w = value.decode("utf-8")
            except UnicodeDecodeError:
                v, w = value.decode("latin-1"), value.decode("utf-8", "surrogateescape")
            if n in headers:
                headers[n] = f"{headers[n]},{v}"
                wire[n].append(w)
            else:
                headers[n] = v
                wire[n] = [w]
        self.headers = headers
        self.wire_headers = wire
        self.query: dict[str, str] = {}
        try:
            # A name or parameter S3 cannot read as UTF-8 is an unparseable URI,
            # refused before it reaches the database or an XML document.
            for part in self.query_string.split(b"&"):
                if part:
                    n, _, v = part.partition(b"=")
                    self.query.setdefault(unquote_to_bytes(n).decode("utf-8"),
                                          unquote_to_bytes(v).decode("utf-8"))
            path = unquote_to_bytes(self.raw_path.split(b"?", 1)[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise S3Error("InvalidURI") from None
        self.bucket, self.key = split_address(headers.get("host", ""), path, vhost_domains)
        self.body_started = False
        self.body_done = False
        # The trace middleware's notes (the operation and account it reports).
        self.trace_notes: dict[str, Any] | None = scope.get("cloudstorage.trace")
        #: The operation, once the router resolved it.
        self.op: Op | None = None

    @property
    def resource(self) -> str:
        """The path an error refers to (``/bucket/key``).

        Control characters are percent-encoded: XML 1.0 cannot carry them at
        all, and a client that cannot parse the error sees no error code.
        """
        if not self.bucket:
            return "/"
        path = f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"
        return path.translate(_CONTROL_ESCAPES)

    def refuse_nul(self) -> None:
        """400 for a NUL in the bucket, the key or any query parameter.

        Checked before authentication: the authentication round trip already
        looks the key, bucket and object up, and PostgreSQL refuses NUL in
        text (a 500 otherwise).  A raw NUL never passes the HTTP layer, so only
        ``%00`` needs looking for, and requests without one pay one scan.
        """
        if b"%00" not in self.raw_path and b"%00" not in self.query_string:
            return
        if "\x00" in self.bucket:
            raise S3Error("InvalidBucketName", detail="NUL in the bucket name")
        refuse_nul(self.key, "key")
        for name, value in self.query.items():
            clean = name.translate(_CONTROL_ESCAPES)
            refuse_nul(name, clean)
            refuse_nul(value, clean)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower-case), or None."""
        return self.headers.get(name)

    def has_framed_body(self) -> bool:
        """Whether the head frames a body (Content-Length or chunked); HTTP
        says a request with neither has none, S3 refuses uploads without one."""
        return ("content-length" in self.headers
                or "chunked" in self.headers.get("transfer-encoding", "").lower())

    def content_length(self) -> int | None:
        """The declared Content-Length (InvalidArgument if malformed)."""
        raw = self.headers.get("content-length")
        if raw is None:
            return None
        raw = raw.strip()
        if not raw.isdigit():
            raise invalid_argument(
                "Content-Length must be a non-negative integer", "Content-Length"
            )
        return int(raw)

    async def receive_body(self) -> AsyncIterator[bytes]:
        """The raw body as it arrives; IncompleteBody if the client goes away."""
        if self.body_done:
            return
        self.body_started = True
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.body_done = True
                if message.get("timed_out"):
                    raise S3Error("RequestTimeout", detail="the body stalled")
                raise S3Error("IncompleteBody", detail="client disconnected during the body")
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if not more:
                self.body_done = True
            if data:
                yield data
            if not more:
                return

    async def drain(self) -> bool:
        """Discard what is left of the body (bounded); True if it was all read."""
        if self.body_done:
            return True
        if not self.body_started and "100-continue" in self.headers.get("expect", "").lower():
            # Asking for the body would send the 100 Continue the client
            # waits for: an error answered on the head alone must not.
            return False
        declared = self.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > DRAIN_LIMIT:
            return False
        seen = 0
        with trio.move_on_after(DRAIN_SECONDS):
            try:
                async for piece in self.receive_body():
                    seen += len(piece)
                    if seen > DRAIN_LIMIT:
                        return False
            except S3Error:
                return False
            return True
        return False
