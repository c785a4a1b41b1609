"""The S3 endpoint: a plain ASGI application over the storage core.

A plain ASGI callable rather than a Quart app, because the S3 port is the hot
path (thousands of small GETs and PUTs per second) and every layer of
framework costs there.  hypercorn's trio worker serves it.

One request goes: parse the address (path-style or virtual-host style) ->
SigV4 (header or presigned query) -> per-key rate limit -> tenancy check on
the bucket -> the operation.  Request bodies stream through
:class:`BodyReader`, which decodes aws-chunked framing, checks chunk
signatures, the signed SHA-256 and every ``x-amz-checksum-*`` / trailer
checksum while the bytes flow, and raises at the end of the body -- before
the object service commits -- so a bad upload never becomes visible.

Every failure is answered with S3's XML error document and an
``x-amz-request-id``; unexpected exceptions are logged, never shown.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote_plus, unquote_to_bytes, urlencode

import trio

from protocols.s3 import checksums as cks
from protocols.s3 import xml as s3xml
from protocols.s3.chunked import ChunkedDecoder
from protocols.s3.errors import (
    S3Error,
    access_denied,
    entity_too_large,
    invalid_argument,
    method_not_allowed,
    not_implemented,
    too_many_requests,
)
from protocols.s3.form_data import boundary_of
from protocols.s3.form_upload import FormUpload
from protocols.s3.names import (
    refuse_nul,
    validate_bucket_name,
    validate_key_prefix,
    validate_object_key,
)
from protocols.s3.post_policy import (
    check_policy,
    form_credentials,
    missing_field,
    parse_policy,
)
from protocols.s3.post_policy import verify_signature as verify_form_signature
from protocols.s3.sigv4 import (
    PayloadMode,
    SigningContext,
    check_payload_sha256,
    parse_request_auth,
    verify,
)
from protocols.s3.storage_errors import from_storage_error
from storage import errors as serr
from storage.accounts import AccountInfo
from storage.blobs import ChunkError
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.hotpath import KeyRecord, Loaded, load
from storage.multipart import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    CompletionPlan,
    MultipartService,
)
from storage.objects import ObjectInfo, WriteCondition
from storage.ratelimit import RateLimiter, retry_after

log = logging.getLogger("cloudstorage.s3")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Requests per second per access key and operation class (0 disables a class).
#: Node settings may override them (``accounts.s3_writes_per_second`` ...).
DEFAULT_RATE_LIMITS: dict[str, float] = {"write": 100.0, "read": 300.0, "list": 50.0}
#: S3's limit on the user metadata of one object (names + values, UTF-8).
MAX_METADATA_BYTES = 2048
#: ListBuckets' largest page (S3's max-buckets bound).
MAX_LIST_BUCKETS = 10_000
#: Largest single PUT (S3's own limit; bigger objects go multipart).
MAX_PUT_SIZE = 5 * 1024**3
#: How long a bucket's metadata is trusted without asking the database again,
#: for buckets a request names besides its own (a copy source).  The access
#: key and the request's own bucket are read fresh on every request, in the
#: same round trip (storage/hotpath.py), so revoking a key, suspending an
#: account or deleting a bucket takes effect at once on every node.
BUCKET_CACHE_SECONDS = 1.0
#: After an error, an unread request body up to this size is drained so the
#: client sees the error instead of a reset connection; larger ones are not
#: read and the connection is closed.
DRAIN_LIMIT = 8 * 1024 * 1024
#: Body pieces at least this large are hashed in a worker thread (a thread
#: hop costs more than hashing anything smaller).
OFFLOAD_HASH_BYTES = 128 * 1024
DRAIN_SECONDS = 5.0

# Object headers S3 stores with the object and returns on GET/HEAD.
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "x-amz-website-redirect-location",
)
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
# Subresources S3 has that this endpoint does not implement: answered with
# NotImplemented rather than silently treated as a plain GET/PUT.
UNSUPPORTED_SUBRESOURCES = frozenset({
    "accelerate", "analytics", "attributes", "encryption",
    "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging", "metadataTable",
    "metrics", "notification", "object-lock", "ownershipControls", "policy", "policyStatus",
    "publicAccessBlock", "replication", "requestPayment", "restore", "retention", "select",
    "torrent", "website", "renameObject", "session",
})
# Write headers asking for features this endpoint does not have: refused, since
# storing the object anyway would leave the client believing it encrypted
# (with S3's, KMS's or its own key) or locked.
_UNSUPPORTED_WRITE_HEADERS = (
    "x-amz-server-side-encryption", "x-amz-copy-source-server-side-encryption",
    "x-amz-object-lock-", "x-amz-bucket-object-lock-",
)


def _copy_source_text(encoded: str, header: str) -> str:
    """A percent-decoded part of ``x-amz-copy-source``; InvalidArgument if it is not
    UTF-8 or holds a NUL (which no bucket, key or version id can contain)."""
    try:
        text = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_argument("Copy Source must be URL-encoded UTF-8", "x-amz-copy-source",
                               header) from None
    refuse_nul(text, "x-amz-copy-source")
    return text


def _encode_token(after: str) -> str:
    """A continuation token: the opaque form of the name a page ended at."""
    return base64.urlsafe_b64encode(after.encode("utf-8")).decode("ascii")


def _decode_token(token: str | None, name: str) -> str | None:
    """The name :func:`_encode_token` made ``token`` of (None without a token);
    InvalidArgument naming parameter ``name`` for a token no node issued."""
    if token is None:
        return None
    try:
        after = base64.b64decode(token.encode("ascii"), altchars=b"-_",
                                 validate=True).decode("utf-8")
        validate_key_prefix(after, name)
    except (binascii.Error, UnicodeError, ValueError, S3Error):
        raise invalid_argument("The continuation token provided is incorrect", name,
                               token) from None
    return after


async def _summed(stream: AsyncIterator[bytes], algorithm: str,
                  out: dict[str, str]) -> AsyncIterator[bytes]:
    """``stream`` passed through; its ``algorithm`` checksum lands in ``out`` at the end."""
    summer = cks.make_checksummer(algorithm)
    async for piece in stream:
        if len(piece) >= OFFLOAD_HASH_BYTES:
            await trio.to_thread.run_sync(summer.update, piece)  # as BodyReader does
        else:
            summer.update(piece)
        yield piece
    out[algorithm] = summer.b64digest()


def refuse_unsupported_headers(headers: Mapping[str, str]) -> None:
    """NotImplemented for a write header of :data:`_UNSUPPORTED_WRITE_HEADERS`.

    ``headers`` are a request's headers or a POST form's fields.  An explicit
    "no" (object lock disabled) is no request for the feature and passes.
    """
    for name, value in headers.items():
        if name.startswith(_UNSUPPORTED_WRITE_HEADERS) and value.strip().lower() != "false":
            raise not_implemented(
                "Object lock" if "object-lock" in name else "Server-side encryption")


# Query parameters that make a GET/HEAD of a key something other than reading it.
_NOT_PLAIN_OBJECT_READ = UNSUPPORTED_SUBRESOURCES | {"uploadId"}
# Bucket configuration subresources served here (reads are "read", not "list").
BUCKET_CONFIG_SUBRESOURCES = ("location", "versioning", "tagging", "acl", "cors")
#: Canned ACLs S3 knows; only those that give no one but the owner any access
#: are honoured (every bucket and object here is private to its account).
CANNED_ACLS = frozenset({
    "private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
    "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write",
})
# The bucket owner is always the object owner, so these mean "private" too.
PRIVATE_CANNED_ACLS = frozenset({"private", "bucket-owner-read", "bucket-owner-full-control"})
GRANT_HEADERS = ("x-amz-grant-full-control", "x-amz-grant-read", "x-amz-grant-read-acp",
                 "x-amz-grant-write", "x-amz-grant-write-acp")
ONLY_PRIVATE = ("Only private access is supported: every bucket and object belongs to its "
                "account alone")
BUCKET_LIST_PARAMS = ("versions", "uploads")



_CONTROL_ESCAPES = {c: f"%{c:02X}" for c in [*range(0x20), 0x7F]}


def _now() -> float:
    return time.monotonic()


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(moment: dt.datetime) -> str:
    """RFC 7231 date (``Wed, 21 Oct 2015 07:28:00 GMT``) of an aware datetime."""
    # By hand: email.utils' formatter costs several times this, on every GET.
    t = moment if moment.tzinfo is dt.UTC else moment.astimezone(dt.UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")


def _parse_http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # S3 ignores a condition whose date it cannot read
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*" or s3xml.unquote_etag(c.removeprefix("W/")) == etag:
            return True
    return False


def evaluate_conditions(
    info: ObjectInfo,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
    *,
    read: bool = True,
) -> None:
    """Apply S3's conditional-request rules; raise PreconditionFailed/NotModified.

    Precedence as S3 documents it: If-Match decides alone when present (an
    If-Unmodified-Since that would fail is then ignored), likewise
    If-None-Match over If-Modified-Since.  ``read`` is False for the
    copy-source conditions, where every failure is 412.
    """
    modified = info.last_modified.replace(microsecond=0)
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
    else:
        since = _parse_http_date(if_unmodified_since)
        if since is not None and modified > since:
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Unmodified-Since"})
    if if_none_match is not None:
        if _etag_matches(if_none_match, info.etag):
            if read:
                raise S3Error("NotModified", headers={"ETag": s3xml.quote_etag(info.etag)})
            raise S3Error("PreconditionFailed", extra={"Condition": "If-None-Match"})
    else:
        since = _parse_http_date(if_modified_since)
        if since is not None and modified <= since:
            if read:
                raise S3Error("NotModified", headers={"ETag": s3xml.quote_etag(info.etag)})
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Modified-Since"})


def write_condition(headers: Mapping[str, str]) -> WriteCondition | None:
    """The If-Match / If-None-Match of a conditional write (PUT, copy, complete).

    S3 writes take only ``If-None-Match: *`` ("create, never overwrite");
    any other value is a feature S3 does not have, so 501 rather than a
    silently unconditional write.
    """
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    if if_match is None and if_none_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise not_implemented("If-None-Match with a value other than *")
    etags = None
    if if_match is not None:
        etags = frozenset(
            c if c == "*" else s3xml.unquote_etag(c.removeprefix("W/"))
            for c in (part.strip() for part in if_match.split(",")) if c
        )
    return WriteCondition(if_match=etags, if_none_match=if_none_match is not None)


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` / ``a-`` / ``-n`` -> ``(start, stop)`` (stop exclusive).

    A header S3 would ignore (not bytes, several ranges, unparsable, last < first)
    gives None (the whole object); an unsatisfiable one raises InvalidRange.
    """
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not sep or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise _invalid_range(value, size)
        return max(0, size - n), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _invalid_range(value, size)
    stop = min(int(last) + 1, size) if last else size
    return start, stop


def _invalid_range(value: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        extra={"RangeRequested": value, "ActualObjectSize": size},
        headers={"Content-Range": f"bytes */{size}"},
    )


class _BodyFailedFirst(Exception):
    """A response body's first piece failed before anything was sent."""


# ====================================================================================
# Requests and responses
# ====================================================================================


class Response:
    """What a handler answers: status, headers and a body (bytes or a stream)."""

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        stream: AsyncIterator[bytes] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.stream = stream


def _xml(body: bytes, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
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


def _decode_header(value: bytes) -> str:
    # Header bytes are UTF-8 when a client sends non-ASCII metadata; anything
    # else is kept byte for byte through latin-1.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


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
        for name, value in self.raw_headers:
            n = name.decode("latin-1").lower()
            v = _decode_header(value)
            headers[n] = f"{headers[n]},{v}" if n in headers else v
        self.headers = headers
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
        host = headers.get("host", "").strip().lower()
        if host.startswith("["):
            hostname = host.partition("]")[0] + "]"
        else:
            hostname = host.rsplit(":", 1)[0] if ":" in host else host
        bucket = ""
        for domain in vhost_domains:
            if hostname.endswith("." + domain) and len(hostname) > len(domain) + 1:
                bucket = hostname[: -len(domain) - 1]
                break
        if bucket:
            self.bucket = bucket
            self.key = path[1:] if path.startswith("/") else path
        else:
            rest = path[1:] if path.startswith("/") else path
            self.bucket, _, self.key = rest.partition("/")
        self.body_started = False
        self.body_done = False
        # The trace middleware's notes (the account it should report).
        self.trace_notes: dict[str, Any] | None = scope.get("cloudstorage.trace")

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


@dataclasses.dataclass
class Caller:
    """An authenticated requester."""

    access_key: str
    account: AccountInfo
    # None for a POST form: its policy is signed, its body is not.
    signing: SigningContext | None
    # What the authentication round trip also fetched: the request's bucket
    # (None if it does not exist) and, for GET/HEAD of an object, the version
    # or the error looking it up raises.
    loaded: Loaded | None = None
    bucket_name: str = ""


class BodyReader:
    """Stream a request body's payload, verifying it as it goes.

    Iterating yields payload bytes; the iterator raises at the end (before it
    finishes) if the signed SHA-256, a chunk or trailer signature, an
    ``x-amz-checksum-*`` header or trailer, or the declared length does not
    hold.  :attr:`checksums` then maps each verified algorithm to its base64
    value (what S3 stores and echoes).  A PUT or POST must frame its body
    (MissingContentLength) unless ``require_length`` is False.

    ``checksum_headers`` False: the request's ``x-amz-checksum-*`` headers are
    not about this body (CompleteMultipartUpload's name the object).
    ``compute``: an algorithm whose checksum :attr:`checksums` gets even when
    the client sent none (a part of an upload that has one).
    """

    def __init__(self, req: Request, signing: SigningContext | None, *,
                 require_length: bool = True, checksum_headers: bool = True,
                 compute: str | None = None) -> None:
        self.req = req
        self.mode = signing.payload_mode if signing is not None else PayloadMode.UNSIGNED
        self.declared = req.content_length()
        self.decoder: ChunkedDecoder | None = None
        self.size: int | None = self.declared
        if self.mode.is_streaming:
            raw = req.header("x-amz-decoded-content-length")
            decoded: int | None = None
            if raw is not None:
                if not raw.strip().isdigit():
                    raise invalid_argument(
                        "x-amz-decoded-content-length must be an integer",
                        "x-amz-decoded-content-length",
                    )
                decoded = int(raw.strip())
            elif self.declared is None:
                # Neither length: the upload's size is unknown until its end.
                raise S3Error("MissingContentLength")
            trailer_names = [
                t.strip().lower() for t in req.headers.get("x-amz-trailer", "").split(",")
                if t.strip()
            ]
            self.decoder = ChunkedDecoder(
                signing, decoded_length=decoded,
                expected_trailers=trailer_names if self.mode.has_trailer else None,
            )
            self.size = decoded
        elif require_length and self.declared is None and req.method in ("PUT", "POST"):
            if req.has_framed_body():
                # HTTP chunked framing without aws-chunked's declared length:
                # AWS answers 501 naming the header (observed for SigV2, SigV4
                # and presigned PUTs alike), where other servers answer 411.
                raise S3Error("NotImplemented", extra={"Header": "Transfer-Encoding"})
            raise S3Error("MissingContentLength")
        self._sha = None
        if self.mode is PayloadMode.SHA256:
            self._sha = hashlib.sha256()
        self.payload_hash = signing.payload_hash if signing is not None else ""
        # algorithm -> (checksummer, expected base64 or None when it comes as a trailer)
        self._summers: dict[str, tuple[cks.Checksummer, str | None]] = {}
        for name, value in req.headers.items() if checksum_headers else ():
            alg = cks.algorithm_from_header(name)
            if alg is not None:
                cks.decode_checksum(alg, value)  # InvalidRequest for a malformed value
                self._summers[alg] = (cks.make_checksummer(alg), value.strip())
        if self.decoder is not None and self.mode.has_trailer:
            for name in req.headers.get("x-amz-trailer", "").split(","):
                alg = cks.algorithm_from_header(name.strip())
                if alg is not None and alg not in self._summers:
                    self._summers[alg] = (cks.make_checksummer(alg), None)
        # Computed, checked against nothing: the client did not send it.
        self._computed: dict[str, cks.Checksummer] = {}
        if compute and compute not in self._summers:
            self._computed[compute] = cks.make_checksummer(compute)
        self.checksums: dict[str, str] = {}
        self.received = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        sha = self._sha
        summers = [s for s, _ in self._summers.values()] + list(self._computed.values())
        decoder = self.decoder
        raw_total = 0

        def digest(piece: bytes) -> None:
            if sha is not None:
                sha.update(piece)
            for summer in summers:
                summer.update(piece)

        hashing = sha is not None or bool(summers)
        async for data in self.req.receive_body():
            raw_total += len(data)
            if self.declared is not None and raw_total > self.declared:
                raise S3Error("IncompleteBody", detail="body longer than Content-Length")
            pieces = decoder.feed(data) if decoder is not None else (data,)
            for piece in pieces:
                if hashing and len(piece) >= OFFLOAD_HASH_BYTES:
                    # Hashing a large piece on the trio thread would stall
                    # every other request of this node meanwhile.
                    await trio.to_thread.run_sync(digest, piece)
                elif hashing:
                    digest(piece)
                self.received += len(piece)
                yield piece
        if self.declared is not None and raw_total != self.declared:
            raise S3Error(
                "IncompleteBody",
                detail=f"received {raw_total} of the declared {self.declared} bytes",
            )
        trailers: Mapping[str, str] = {}
        if decoder is not None:
            decoder.finish()
            trailers = decoder.trailers
        if sha is not None:
            check_payload_sha256(self.payload_hash, sha.hexdigest())
        for alg, (summer, expected) in self._summers.items():
            value = expected if expected is not None else trailers.get(f"x-amz-checksum-{alg}")
            if value is None:
                raise S3Error("MalformedTrailerError", detail=f"no trailer for {alg}")
            cks.verify_checksum(alg, value, summer)
            self.checksums[alg] = summer.b64digest()
        for alg, summer in self._computed.items():
            self.checksums[alg] = summer.b64digest()

    async def read_all(self, limit: int) -> bytes:
        """The whole (small) body; MaxMessageLengthExceeded beyond ``limit``."""
        if self.size is not None and self.size > limit:
            raise S3Error("MaxMessageLengthExceeded", detail=f"body over {limit} bytes")
        out = bytearray()
        async for piece in self:
            out += piece
            if len(out) > limit:
                raise S3Error("MaxMessageLengthExceeded", detail=f"body over {limit} bytes")
        return bytes(out)


class RateLimits:
    """Per-access-key token buckets for each operation class (one second of burst)."""

    def __init__(self, rates: Mapping[str, float]) -> None:
        self.rates = dict(rates)
        self._limiters = {
            op_class: RateLimiter(max(1, round(rate)), 1.0)
            for op_class, rate in rates.items() if rate > 0
        }

    def check(self, access_key: str, op_class: str) -> None:
        """Take a token or raise TooManyRequests with a Retry-After."""
        limiter = self._limiters.get(op_class)
        if limiter is None:
            return
        wait = limiter.hit(access_key)
        if wait > 0:
            raise too_many_requests(retry_after(wait))


def _rate_limits_from(services: StorageCore) -> dict[str, float]:
    # accounts.s3_{writes,reads,lists}_per_second, named like the REST API's
    # limits; absent settings keep the documented defaults.
    limits = dict(DEFAULT_RATE_LIMITS)
    section = services.settings.accounts
    for op_class in limits:
        value = getattr(section, f"s3_{op_class}s_per_second", None)
        if value is not None:
            limits[op_class] = float(value)
    return limits


def _vhost_domains(services: StorageCore) -> tuple[str, ...]:
    domains = ["localhost"]
    public = services.settings.listen.public_host.strip().lower()
    if public and not public.replace(".", "").isdigit() and public not in domains:
        domains.insert(0, public)
    return tuple(domains)


def _op_class(req: Request) -> str:
    if req.method in ("GET", "HEAD"):
        if not req.bucket:
            return "list"
        if not req.key and not any(
            q in req.query for q in (*BUCKET_CONFIG_SUBRESOURCES, *UNSUPPORTED_SUBRESOURCES)
        ):
            return "list"
        if req.key and "uploadId" in req.query:
            return "list"
        return "read"
    return "write"


def _wildcard_match(pattern: str, value: str) -> bool:
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return (len(value) >= len(head) + len(tail) and value.startswith(head)
            and value.endswith(tail))


def match_cors_rule(
    rules: list[s3xml.CORSRule], origin: str, method: str, headers: list[str] | None = None
) -> s3xml.CORSRule | None:
    """The first rule allowing ``origin``, ``method`` and every (lower-case) header."""
    for rule in rules:
        if method not in rule.methods:
            continue
        if not any(_wildcard_match(o, origin) for o in rule.origins):
            continue
        allowed = [h.lower() for h in rule.headers]
        if all(any(_wildcard_match(a, h) for a in allowed) for h in headers or ()):
            return rule
    return None


def cors_response_headers(
    rule: s3xml.CORSRule, origin: str, requested_headers: list[str] | None = None
) -> dict[str, str]:
    """The Access-Control-* headers S3 sends for a request a rule allows."""
    out = {"vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"}
    if "*" in rule.origins:
        out["access-control-allow-origin"] = "*"
    else:
        out["access-control-allow-origin"] = origin
        out["access-control-allow-credentials"] = "true"
    out["access-control-allow-methods"] = ", ".join(rule.methods)
    if requested_headers:
        out["access-control-allow-headers"] = ", ".join(requested_headers)
    if rule.expose_headers:
        out["access-control-expose-headers"] = ", ".join(rule.expose_headers)
    if rule.max_age is not None:
        out["access-control-max-age"] = str(rule.max_age)
    return out


# ====================================================================================
# The application
# ====================================================================================


class S3App:
    """The S3 ASGI application of one node."""

    def __init__(
        self, services: StorageCore, *, rate_limits: Mapping[str, float] | None = None
    ) -> None:
        self.services = services
        self.objects = services.objects
        self.buckets = services.buckets
        self.multipart = MultipartService(services.db, services.objects)
        self.region = services.settings.cluster.region
        self.max_header_bytes = services.settings.listen.max_header_bytes
        self.limiter = RateLimits(
            rate_limits if rate_limits is not None else _rate_limits_from(services)
        )
        self.vhost_domains = _vhost_domains(services)
        self._buckets: dict[str, tuple[float, BucketInfo]] = {}
        # bucket id -> (expiry, CORS rules): cached like the bucket cache.
        self._cors: dict[int, tuple[float, list[s3xml.CORSRule]]] = {}

    # -- ASGI ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = secrets.token_hex(8).upper()
        req: Request | None = None
        try:
            req = Request(scope, receive, self.vhost_domains)
            response = await self._handle(req)
        except Exception as exc:
            response = await self._error_response(exc, req, request_id, scope)
        response.headers.append(("x-amz-request-id", request_id))
        try:
            await self._send(response, send, head=scope["method"] == "HEAD")
        except _BodyFailedFirst as failed:
            # Nothing was sent yet: the client still gets a proper S3 error
            # (503 when the nodes holding the data are unreachable).
            assert isinstance(failed.__cause__, Exception)
            response = await self._error_response(failed.__cause__, req, request_id, scope)
            response.headers.append(("x-amz-request-id", request_id))
            await self._send(response, send, head=scope["method"] == "HEAD")

    async def _error_response(
        self, exc: Exception, req: Request | None, request_id: str, scope: Scope
    ) -> Response:
        if isinstance(exc, S3Error):
            err = exc
        elif isinstance(exc, serr.StorageError):
            err = from_storage_error(exc)
        elif isinstance(exc, ChunkError):
            log.error("S3 %s %s: %s", scope.get("method"), scope.get("path"), exc)
            err = S3Error("InternalError", detail=str(exc))
        else:
            log.exception("S3 %s %s failed", scope.get("method"), scope.get("path"))
            err = S3Error("InternalError", detail=repr(exc))
        if err.resource is None and req is not None:
            err.resource = req.resource
        headers = list(err.headers.items())
        if req is not None and not await req.drain():
            headers.append(("connection", "close"))
        if err.status == 304:
            return Response(304, headers)
        return _xml(s3xml.render_error(err, request_id), err.status, headers)

    async def _send(self, response: Response, send: Send, *, head: bool) -> None:
        headers = [(n.encode("latin-1"), v.encode("utf-8")) for n, v in response.headers]
        if response.stream is None:
            if not any(n == b"content-length" for n, _ in headers) and response.status != 304:
                headers.append((b"content-length", str(len(response.body)).encode()))
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head else response.body})
            return
        stream = response.stream
        # Fetch the first piece before committing to a status, so a missing
        # chunk is still a proper 500 rather than a cut connection.
        try:
            first = await anext(stream, b"")
        except Exception as exc:
            await stream.aclose()
            raise _BodyFailedFirst() from exc
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            async for piece in stream:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except ConnectionError:
            raise  # the client left: nothing to report
        except Exception:
            # Headers are gone: all we can do is cut the connection (by raising)
            # so the client sees a short body instead of a silently wrong one.
            log.exception("S3 GET body failed mid-stream")
            raise
        finally:
            await stream.aclose()
        await send({"type": "http.response.body", "body": b""})

    # -- authentication, caches ------------------------------------------------------

    async def _authenticate(self, req: Request) -> Caller:
        header_pairs = [(n.decode("latin-1"), v) for n, v in req.raw_headers]
        auth = parse_request_auth(req.method, req.raw_path, req.query_string, header_pairs)
        if auth is None:
            raise access_denied("Anonymous access is not allowed; sign your requests (SigV4).")
        # One round trip: the key and its account, the request's bucket and,
        # for a plain GET/HEAD of an object, the object itself.
        want_object = bool(req.key) and req.method in ("GET", "HEAD") and (
            _NOT_PLAIN_OBJECT_READ.isdisjoint(req.query))
        record, loaded, secret = await self._load_key(req, auth.access_key,
                                                      want_object=want_object)
        signing = verify(auth, secret)
        return Caller(auth.access_key, record.account, signing, loaded, req.bucket)

    async def _load_key(
        self, req: Request, access_key: str, *, want_object: bool = False
    ) -> tuple[KeyRecord, Loaded, str]:
        """The key record, what :func:`load` finds for ``req``, and the key's secret.

        InvalidAccessKeyId for an unknown key or an account that is not active.
        """
        loaded = await self.services.db.read(
            load, access_key, req.bucket, req.key, req.query.get("versionId") or None,
            want_object=want_object,
        )
        record = loaded.key
        if record is None or record.account.status != "active":
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
        secret = self.services.accounts.open_secret(access_key, record.sealed_secret)
        if req.trace_notes is not None:
            req.trace_notes["account"] = record.account.email
        if loaded.bucket is not None:
            self._remember_bucket(loaded.bucket)
        elif loaded.bucket_missing:
            self._forget_bucket(req.bucket)
        return record, loaded, secret

    async def _bucket(self, caller: Caller, name: str, *, fresh: bool = False) -> BucketInfo:
        """The bucket ``name`` if the caller's account owns it."""
        loaded = caller.loaded
        if loaded is not None and name == caller.bucket_name and (
            loaded.bucket is not None or loaded.bucket_missing
        ):
            # Read in this request's authentication round trip.
            if loaded.bucket is None:
                raise serr.NoSuchBucket()
            info = loaded.bucket
        else:
            info = await self._cached_bucket(name, fresh=fresh)
        if info.account_id != caller.account.id:
            raise access_denied()
        return info

    async def _cached_bucket(self, name: str, *, fresh: bool = False) -> BucketInfo:
        """The bucket ``name``, whoever owns it (NoSuchBucket if absent)."""
        hit = self._buckets.get(name)
        if hit is not None and hit[0] > _now() and not fresh:
            return hit[1]
        info = await self.buckets.get(name)
        self._remember_bucket(info)
        return info

    def _remember_bucket(self, info: BucketInfo) -> None:
        if len(self._buckets) > 10_000:
            self._buckets.clear()
        self._buckets[info.name] = (_now() + BUCKET_CACHE_SECONDS, info)

    def _forget_bucket(self, name: str) -> None:
        self._buckets.pop(name, None)

    # -- routing ----------------------------------------------------------------------

    async def _handle(self, req: Request) -> Response:
        size = sum(len(n) + len(v) + 4 for n, v in req.raw_headers)
        if size > self.max_header_bytes:
            raise S3Error("RequestHeaderSectionTooLarge",
                          extra={"MaxSizeAllowed": self.max_header_bytes})
        req.refuse_nul()
        if req.method == "OPTIONS":
            # A browser's CORS preflight is never signed.
            return await self.cors_preflight(req)
        caller: Caller | None = None
        if req.method == "POST" and req.bucket and not req.key and "delete" not in req.query:
            # A browser form upload: its credentials are form fields, not headers.
            route = self.post_object(req)
        else:
            caller = await self._authenticate(req)
            self.limiter.check(caller.access_key, _op_class(req))
            route = self._route(req, caller)
        origin = req.headers.get("origin")
        if not origin or not req.bucket:
            return await route
        # Browsers only let a page read an error that carries CORS headers too.
        try:
            response = await route
        except S3Error as exc:
            exc.headers.update(await self._cors_headers(req, caller, origin))
            raise
        except serr.StorageError as exc:
            err = from_storage_error(exc)
            err.headers.update(await self._cors_headers(req, caller, origin))
            raise err from exc
        response.headers += (await self._cors_headers(req, caller, origin)).items()
        return response

    async def _route(self, req: Request, caller: Caller) -> Response:
        for name in req.query:
            if name in UNSUPPORTED_SUBRESOURCES:
                raise not_implemented(f"The ?{name} subresource")
        method = req.method
        if method in ("PUT", "POST"):
            refuse_unsupported_headers(req.headers)
        if not req.bucket:
            if method in ("GET", "HEAD"):
                return await self.list_buckets(req, caller)
            raise method_not_allowed(method, "SERVICE")
        if not req.key:
            return await self._bucket_op(req, caller, method)
        validate_object_key(req.key)
        return await self._object_op(req, caller, method)

    async def _bucket_op(self, req: Request, caller: Caller, method: str) -> Response:
        q = req.query
        if method == "PUT":
            if "versioning" in q:
                return await self.put_bucket_versioning(req, caller)
            if "tagging" in q:
                return await self.put_bucket_tagging(req, caller)
            if "acl" in q:
                return await self.put_bucket_acl(req, caller)
            if "cors" in q:
                return await self.put_bucket_cors(req, caller)
            return await self.create_bucket(req, caller)
        if method == "GET":
            if "tagging" in q:
                return await self.get_bucket_tagging(req, caller)
            if "acl" in q:
                return await self.get_bucket_acl(req, caller)
            if "cors" in q:
                return await self.get_bucket_cors(req, caller)
            if "location" in q:
                return await self.get_bucket_location(req, caller)
            if "versioning" in q:
                return await self.get_bucket_versioning(req, caller)
            if "versions" in q:
                return await self.list_object_versions(req, caller)
            if "uploads" in q:
                return await self.list_multipart_uploads(req, caller)
            if q.get("list-type") == "2":
                return await self.list_objects(req, caller, v2=True)
            return await self.list_objects(req, caller, v2=False)
        if method == "HEAD":
            return await self.head_bucket(req, caller)
        if method == "DELETE":
            if "tagging" in q:
                return await self.delete_bucket_tagging(req, caller)
            if "cors" in q:
                return await self.delete_bucket_cors(req, caller)
            return await self.delete_bucket(req, caller)
        if method == "POST" and "delete" in q:
            return await self.delete_objects(req, caller)
        raise method_not_allowed(method, "BUCKET")

    async def _object_op(self, req: Request, caller: Caller, method: str) -> Response:
        q = req.query
        if "tagging" in q or "acl" in q:
            return await self._object_config_op(req, caller, method)
        if method == "PUT":
            if "uploadId" in q or "partNumber" in q:
                if "x-amz-copy-source" in req.headers:
                    return await self.upload_part_copy(req, caller)
                return await self.upload_part(req, caller)
            if "x-amz-copy-source" in req.headers:
                return await self.copy_object(req, caller)
            return await self.put_object(req, caller)
        if method == "GET":
            if "uploadId" in q:
                return await self.list_parts(req, caller)
            return await self.get_object(req, caller, head=False)
        if method == "HEAD":
            return await self.get_object(req, caller, head=True)
        if method == "DELETE":
            if "uploadId" in q:
                return await self.abort_multipart_upload(req, caller)
            return await self.delete_object(req, caller)
        if method == "POST":
            if "uploads" in q:
                return await self.create_multipart_upload(req, caller)
            if "uploadId" in q:
                return await self.complete_multipart_upload(req, caller)
        raise method_not_allowed(method, "OBJECT")

    async def _object_config_op(self, req: Request, caller: Caller, method: str) -> Response:
        if "tagging" in req.query:
            if method == "GET":
                return await self.get_object_tagging(req, caller)
            if method == "PUT":
                return await self.put_object_tagging(req, caller)
            if method == "DELETE":
                return await self.delete_object_tagging(req, caller)
        elif method == "GET":
            return await self.get_object_acl(req, caller)
        elif method == "PUT":
            return await self.put_object_acl(req, caller)
        raise method_not_allowed(method, "OBJECT")

    # -- helpers ----------------------------------------------------------------------

    def _owner(self, caller: Caller) -> s3xml.Owner:
        return s3xml.Owner(caller.account.id, caller.account.email.split("@", 1)[0])

    @staticmethod
    def _int_param(req: Request, name: str, default: int, low: int, high: int) -> int:
        raw = req.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.strip().lstrip("-").isdigit():
            raise invalid_argument(f"Provided {name} not an integer or within integer range",
                                   name, raw)
        value = int(raw)
        if value < low:
            raise invalid_argument(f"Argument {name} must be an integer between {low} and "
                                   f"{high}", name, raw)
        return min(value, high)

    @staticmethod
    def _object_fields(
        headers: Mapping[str, str]
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """Content-Type, user metadata and stored headers of a PUT/POST/COPY.

        ``headers`` are a request's headers, or the fields of a POST form.
        """
        content_type = headers.get("content-type") or "binary/octet-stream"
        # A request head cannot carry a NUL, but a POST form field or an
        # RFC 2047 encoded word can, and the database cannot store one.
        refuse_nul(content_type, "Content-Type")
        meta: dict[str, str] = {}
        total = 0
        for name, value in headers.items():
            if name.startswith("x-amz-meta-"):
                short = name[len("x-amz-meta-"):]
                value = from_mail_safe(value)
                refuse_nul(short + value, name)
                meta[short] = value
                total += len(short.encode()) + len(value.encode())
        if total > MAX_METADATA_BYTES:
            raise S3Error("MetadataTooLarge", extra={"MaxSizeAllowed": MAX_METADATA_BYTES,
                                                     "Size": total})
        stored: dict[str, str] = {}
        for name in STORED_HEADERS:
            value = headers.get(name)
            if value is None:
                continue
            if name == "content-encoding" and "aws-chunked" in value.lower():
                # aws-chunked is transfer framing, not the object's encoding;
                # any other value is stored exactly as sent.
                value = ",".join(
                    e.strip() for e in value.split(",")
                    if e.strip() and e.strip().lower() != "aws-chunked"
                )
                if not value:
                    continue
            refuse_nul(value, name)
            stored[name] = value
        return content_type, meta, stored

    async def _check_room(self, caller: Caller, size: int | None) -> None:
        """Refuse before reading a body that cannot fit in the quota.

        The commit enforces the quota exactly; this only saves reading and
        storing bytes that would be thrown away.  A stale cached account is
        re-read before refusing.
        """
        if size is None:
            return
        account = caller.account
        if account.used_bytes + size <= account.quota_bytes:
            return
        account = await self.services.accounts.get(account.id)
        if account.used_bytes + size > account.quota_bytes:
            raise S3Error("QuotaExceeded")

    async def _precheck(self, bucket: BucketInfo, key: str,
                        condition: WriteCondition | None) -> None:
        """Refuse a conditional write before its body is read.

        The commit checks the condition again, atomically; this only saves
        receiving and storing bytes that could not become the object.
        """
        if condition is None:
            return
        try:
            info = await self.objects.head_object(bucket, key)
        except serr.NoSuchKey:
            condition.check(None)
        else:
            condition.check({"etag": info.etag, "is_delete_marker": info.is_delete_marker})

    def _version_headers(self, bucket: BucketInfo, info: ObjectInfo) -> list[tuple[str, str]]:
        """x-amz-version-id of an existing version (read, tagged, ...)."""
        if bucket.versioning or info.version_id != "null":
            return [("x-amz-version-id", info.version_id)]
        return []

    @staticmethod
    def _written_version_headers(info: ObjectInfo) -> list[tuple[str, str]]:
        """x-amz-version-id of a version just written: S3 names only real ids,
        none for the null version a suspended bucket overwrites."""
        if info.version_id != "null":
            return [("x-amz-version-id", info.version_id)]
        return []

    @staticmethod
    def _content_md5(req: Request) -> bytes | None:
        value = req.header("content-md5")
        return cks.parse_content_md5(value) if value is not None else None

    async def _config_body(
        self, req: Request, caller: Caller, limit: int = s3xml.MAX_XML_BODY_SIZE
    ) -> bytes:
        """A small configuration document (tags, ACL, CORS), Content-MD5 checked."""
        body = await BodyReader(req, caller.signing).read_all(limit)
        md5 = self._content_md5(req)
        if md5 is not None and hashlib.md5(body).digest() != md5:
            raise S3Error("BadDigest")
        return body

    @staticmethod
    def _tagging_header(headers: Mapping[str, str]) -> dict[str, str] | None:
        """The tags of ``x-amz-tagging`` (URL query form), None when absent."""
        raw = headers.get("x-amz-tagging")
        if raw is None:
            return None
        malformed = invalid_argument(
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
            "parameters without tag name duplicates.", "x-amz-tagging", raw)
        pairs: list[tuple[str, str]] = []
        try:
            for part in raw.strip().split("&"):
                if part:
                    name, _, value = part.partition("=")
                    pairs.append((unquote_plus(name, errors="strict"),
                                  unquote_plus(value, errors="strict")))
        except UnicodeDecodeError:
            raise malformed from None
        if len({k for k, _ in pairs}) != len(pairs):
            raise malformed
        return s3xml.validate_tags(pairs, max_tags=s3xml.MAX_OBJECT_TAGS)

    @staticmethod
    def _is_owner(kind: str, grantee: str, caller: Caller) -> bool:
        account = caller.account
        if kind.lower() == "id":
            return grantee == account.id
        return kind.lower() == "emailaddress" and grantee.lower() == account.email.lower()

    def _check_acl_headers(self, headers: Mapping[str, str], caller: Caller) -> None:
        """Accept ``x-amz-acl`` / ``x-amz-grant-*`` only when they keep things private.

        Anything that would give someone else access (or the owner less than
        FULL_CONTROL) is 501 NotImplemented: never silently ignored.
        """
        canned = headers.get("x-amz-acl")
        grants = [(h, headers[h]) for h in GRANT_HEADERS if h in headers]
        if canned is not None and grants:
            raise S3Error("InvalidRequest",
                          "Specifying both Canned ACLs and Header Grants is not allowed")
        if canned is not None:
            value = canned.strip()
            if value not in CANNED_ACLS:
                raise invalid_argument(f"Invalid canned ACL: {value}", "x-amz-acl", value)
            if value not in PRIVATE_CANNED_ACLS:
                raise S3Error("NotImplemented",
                              f"The canned ACL {value} is not implemented. {ONLY_PRIVATE}.")
        for header, value in grants:
            for grantee in value.split(","):
                kind, _, who = grantee.strip().partition("=")
                who = who.strip().strip('"')
                if header != "x-amz-grant-full-control" or not self._is_owner(
                        kind.strip(), who, caller):
                    raise S3Error("NotImplemented",
                                  f"{header}: {grantee.strip()} is not implemented. "
                                  f"{ONLY_PRIVATE}.")

    def _check_acl_policy(self, policy: s3xml.AccessControlPolicy, caller: Caller) -> None:
        """Accept an AccessControlPolicy only if it is "the owner has FULL_CONTROL"."""
        if policy.owner_id and policy.owner_id != caller.account.id:
            raise access_denied("The owner of a bucket or object cannot be changed.")
        if not policy.grants or not all(
            g.permission == "FULL_CONTROL" and self._is_owner(g.grantee_kind, g.grantee, caller)
            for g in policy.grants
        ):
            raise S3Error("NotImplemented",
                          "An access control list other than the owner's FULL_CONTROL is not "
                          f"implemented. {ONLY_PRIVATE}.")

    async def _put_acl(self, req: Request, caller: Caller) -> None:
        """Check a PutBucketAcl / PutObjectAcl request (headers or body, not both)."""
        body = await self._config_body(req, caller)
        has_headers = "x-amz-acl" in req.headers or any(h in req.headers for h in GRANT_HEADERS)
        if body.strip():
            if has_headers:
                raise S3Error("UnexpectedContent")
            self._check_acl_policy(s3xml.parse_access_control_policy(body), caller)
        elif has_headers:
            self._check_acl_headers(req.headers, caller)
        else:
            raise S3Error("MissingRequestBodyError")

    # -- service / bucket operations ----------------------------------------------------

    async def list_buckets(self, req: Request, caller: Caller) -> Response:
        """ListBuckets: the caller's buckets, by name, filtered by ``prefix`` and
        ``bucket-region``, in pages of ``max-buckets`` (AWS's 2024 parameters).

        The response's ContinuationToken, present only when more buckets
        follow, is what the next request passes as ``continuation-token``.
        """
        prefix = req.query.get("prefix")
        region = req.query.get("bucket-region")
        max_buckets = self._int_param(req, "max-buckets", MAX_LIST_BUCKETS, 1, MAX_LIST_BUCKETS)
        after = _decode_token(req.query.get("continuation-token"), "continuation-token")
        items = [
            s3xml.BucketInfo(b.name, b.created_at, b.region or self.region)
            for b in await self.buckets.list_for(caller.account.id)
            if (not prefix or b.name.startswith(prefix)) and (after is None or b.name > after)
            and (not region or (b.region or self.region) == region)
        ]
        token = None
        if len(items) > max_buckets:
            items = items[:max_buckets]
            token = _encode_token(items[-1].name)
        return _xml(s3xml.render_list_buckets(items, self._owner(caller), prefix=prefix,
                                              continuation_token=token))

    async def create_bucket(self, req: Request, caller: Caller) -> Response:
        """CreateBucket (LocationConstraint must be this cluster's region if given)."""
        validate_bucket_name(req.bucket)
        self._check_acl_headers(req.headers, caller)
        # `curl -X PUT` and some SDKs send no Content-Length for the empty body.
        reader = BodyReader(req, caller.signing, require_length=False)
        body = await reader.read_all(s3xml.MAX_XML_BODY_SIZE)
        config = s3xml.parse_create_bucket(body)
        constraint = config.location_constraint
        # Tools send their own defaults ("US", "us-east-1"): accepted as "here".
        if constraint not in (None, "", self.region, "US", "us-east-1", "EU"):
            raise S3Error("InvalidLocationConstraint",
                          extra={"LocationConstraint": constraint})
        try:
            await self.buckets.create(caller.account.id, req.bucket, self.region)
        except serr.BucketAlreadyOwnedByYou:
            if not await self._legacy_recreate(req.bucket):
                raise
        self._forget_bucket(req.bucket)
        return Response(200, [("location", f"/{req.bucket}")])

    async def _legacy_recreate(self, name: str) -> bool:
        """Whether re-creating a bucket the caller owns answers 200, not 409.

        AWS answers 409 BucketAlreadyOwnedByYou in every Region but US East
        (N. Virginia), where for legacy compatibility it answers 200 OK.  On
        AWS the endpoint's Region and the signing Region agree (it refuses a
        mismatch); here the endpoint is this node, whose Region is
        cluster.region, and scope Regions are accepted whatever they are --
        so the node's Region decides, and the bucket must be one of us-east-1.
        """
        if self.region != "us-east-1":
            return False
        bucket = await self.buckets.get(name)
        return (bucket.region or self.region) == "us-east-1"

    async def head_bucket(self, req: Request, caller: Caller) -> Response:
        """HeadBucket."""
        bucket = await self._bucket(caller, req.bucket)
        return Response(200, [("x-amz-bucket-region", bucket.region or self.region)])

    async def get_bucket_location(self, req: Request, caller: Caller) -> Response:
        """GetBucketLocation."""
        bucket = await self._bucket(caller, req.bucket)
        return _xml(s3xml.render_location_constraint(bucket.region or self.region))

    async def delete_bucket(self, req: Request, caller: Caller) -> Response:
        """DeleteBucket (BucketNotEmpty while versions or uploads remain)."""
        bucket = await self._bucket(caller, req.bucket, fresh=True)
        await self.buckets.delete(bucket)
        self._forget_bucket(req.bucket)
        return Response(204)

    async def put_bucket_versioning(self, req: Request, caller: Caller) -> Response:
        """PutBucketVersioning (Enabled / Suspended)."""
        bucket = await self._bucket(caller, req.bucket, fresh=True)
        body = await BodyReader(req, caller.signing).read_all(s3xml.MAX_XML_BODY_SIZE)
        config = s3xml.parse_versioning_configuration(body)
        if config.mfa_delete == "Enabled":
            raise not_implemented("MFA delete")
        if config.status is not None:
            await self.buckets.set_versioning(bucket, config.status)
        self._forget_bucket(req.bucket)
        return Response(200)

    async def get_bucket_versioning(self, req: Request, caller: Caller) -> Response:
        """GetBucketVersioning."""
        bucket = await self._bucket(caller, req.bucket, fresh=True)
        return _xml(s3xml.render_versioning_configuration(bucket.versioning or None))

    async def put_bucket_tagging(self, req: Request, caller: Caller) -> Response:
        """PutBucketTagging (up to 50 tags) replaces the bucket's tag set."""
        bucket = await self._bucket(caller, req.bucket)
        body = await self._config_body(req, caller)
        tags = s3xml.parse_tagging(body, max_tags=s3xml.MAX_BUCKET_TAGS)
        await self.buckets.set_tags(bucket, tags)
        return Response(204)

    async def get_bucket_tagging(self, req: Request, caller: Caller) -> Response:
        """GetBucketTagging; 404 NoSuchTagSet for a bucket without tags."""
        bucket = await self._bucket(caller, req.bucket)
        tags = await self.buckets.get_tags(bucket)
        if not tags:
            raise S3Error("NoSuchTagSet", extra={"BucketName": bucket.name})
        return _xml(s3xml.render_tagging(tags))

    async def delete_bucket_tagging(self, req: Request, caller: Caller) -> Response:
        """DeleteBucketTagging."""
        bucket = await self._bucket(caller, req.bucket)
        await self.buckets.set_tags(bucket, None)
        return Response(204)

    async def get_bucket_acl(self, req: Request, caller: Caller) -> Response:
        """GetBucketAcl: the owner with FULL_CONTROL (the only ACL there is here)."""
        await self._bucket(caller, req.bucket)
        return _xml(s3xml.render_owner_only_acl(self._owner(caller)))

    async def put_bucket_acl(self, req: Request, caller: Caller) -> Response:
        """PutBucketAcl: accepted when private, 501 when it would share the bucket."""
        await self._bucket(caller, req.bucket)
        await self._put_acl(req, caller)
        return Response(200)

    async def put_bucket_cors(self, req: Request, caller: Caller) -> Response:
        """PutBucketCors replaces the bucket's CORS rules."""
        bucket = await self._bucket(caller, req.bucket)
        body = await self._config_body(req, caller, s3xml.MAX_CORS_BODY_SIZE)
        rules = s3xml.parse_cors_configuration(body)
        await self.buckets.set_cors(bucket, [r.as_dict() for r in rules])
        self._cors.pop(bucket.id, None)
        return Response(200)

    async def get_bucket_cors(self, req: Request, caller: Caller) -> Response:
        """GetBucketCors; 404 NoSuchCORSConfiguration when there is none."""
        bucket = await self._bucket(caller, req.bucket)
        stored = await self.buckets.get_cors(bucket)
        if not stored:
            raise S3Error("NoSuchCORSConfiguration", extra={"BucketName": bucket.name})
        return _xml(s3xml.render_cors_configuration(
            [s3xml.CORSRule.from_dict(r) for r in stored]))

    async def delete_bucket_cors(self, req: Request, caller: Caller) -> Response:
        """DeleteBucketCors."""
        bucket = await self._bucket(caller, req.bucket)
        await self.buckets.set_cors(bucket, None)
        self._cors.pop(bucket.id, None)
        return Response(204)

    # -- CORS ---------------------------------------------------------------------------

    async def _cors_rules(self, bucket: BucketInfo) -> list[s3xml.CORSRule]:
        now = _now()
        hit = self._cors.get(bucket.id)
        if hit is not None and hit[0] > now:
            return hit[1]
        rules = [s3xml.CORSRule.from_dict(r) for r in await self.buckets.get_cors(bucket) or ()]
        if len(self._cors) > 10_000:
            self._cors.clear()
        self._cors[bucket.id] = (now + BUCKET_CACHE_SECONDS, rules)
        return rules

    async def _cors_headers(
        self, req: Request, caller: Caller | None, origin: str
    ) -> dict[str, str]:
        """Access-Control-* headers for a request from ``origin``, if a rule allows it.

        Without a caller (a POST form that failed before its signature was
        checked) the rules apply as to an unsigned preflight.
        """
        try:
            if caller is None:
                bucket = await self._cached_bucket(req.bucket)
            else:
                bucket = await self._bucket(caller, req.bucket)
            rules = await self._cors_rules(bucket)
        except (S3Error, serr.StorageError):
            return {}  # no bucket of the caller's (any more): no CORS to apply
        rule = match_cors_rule(rules, origin, req.method)
        return cors_response_headers(rule, origin) if rule is not None else {}

    async def cors_preflight(self, req: Request) -> Response:
        """A CORS preflight (unsigned OPTIONS), answered from the bucket's CORS rules."""
        origin = req.headers.get("origin")
        if not origin:
            raise S3Error("BadRequest", "Insufficient information. Origin request header "
                          "needed.")
        method = req.headers.get("access-control-request-method")
        if method not in s3xml.CORS_METHODS:
            raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {method}")
        bucket: BucketInfo | None = None
        if req.bucket:
            with contextlib.suppress(serr.NoSuchBucket):
                bucket = await self._cached_bucket(req.bucket)
        if bucket is None:
            # Unsigned: say no more than "not allowed" about other tenants' names.
            raise S3Error("CORSResponse")
        rules = await self._cors_rules(bucket)
        if not rules:
            raise S3Error("CORSResponse", "CORSResponse: CORS is not enabled for this bucket.")
        requested = [h.strip().lower() for h in
                     req.headers.get("access-control-request-headers", "").split(",")
                     if h.strip()]
        rule = match_cors_rule(rules, origin, method, requested)
        if rule is None:
            raise S3Error("CORSResponse")
        return Response(200, list(cors_response_headers(rule, origin, requested).items()))

    async def list_objects(self, req: Request, caller: Caller, *, v2: bool) -> Response:
        """ListObjects (v1) and ListObjectsV2."""
        bucket = await self._bucket(caller, req.bucket)
        q = req.query
        url = s3xml.parse_encoding_type(q.get("encoding-type"))
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        max_keys = self._int_param(req, "max-keys", 1000, 0, 1000)
        validate_key_prefix(prefix)
        token = q.get("continuation-token")
        start_after = q.get("start-after", "")
        if v2:
            marker_name = "start-after"
            if token is not None:
                marker_name = "continuation-token"
                marker = _decode_token(token, marker_name) or ""
            else:
                marker = start_after
        else:
            marker_name, marker = "marker", q.get("marker", "")
        validate_key_prefix(marker, marker_name)
        page = await self.objects.list_objects(
            bucket, prefix=prefix, delimiter=delimiter, marker=marker, max_keys=max_keys
        )
        owner = self._owner(caller)
        contents = [
            s3xml.ObjectInfo(e.key, e.last_modified, e.etag, e.size, owner=owner)
            for e in page.entries
        ]
        if v2:
            nxt = None
            if page.is_truncated and page.next_marker is not None:
                nxt = _encode_token(page.next_marker)
            body = s3xml.render_list_objects_v2(
                bucket.name, contents=contents, common_prefixes=page.common_prefixes,
                prefix=prefix, delimiter=delimiter or None, max_keys=max_keys,
                is_truncated=page.is_truncated, continuation_token=token,
                next_continuation_token=nxt, start_after=start_after or None,
                fetch_owner=q.get("fetch-owner", "").lower() == "true", encoding_type_url=url,
            )
        else:
            body = s3xml.render_list_objects_v1(
                bucket.name, contents=contents, common_prefixes=page.common_prefixes,
                prefix=prefix, marker=marker, delimiter=delimiter or None,
                next_marker=page.next_marker if page.is_truncated else None,
                max_keys=max_keys, is_truncated=page.is_truncated, encoding_type_url=url,
            )
        return _xml(body)

    async def list_object_versions(self, req: Request, caller: Caller) -> Response:
        """ListObjectVersions."""
        bucket = await self._bucket(caller, req.bucket)
        q = req.query
        url = s3xml.parse_encoding_type(q.get("encoding-type"))
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        key_marker = q.get("key-marker", "")
        version_marker = q.get("version-id-marker", "")
        if version_marker and not key_marker:
            raise invalid_argument("A version-id marker cannot be specified without a key "
                                   "marker.", "version-id-marker", version_marker)
        validate_key_prefix(prefix)
        validate_key_prefix(key_marker, "key-marker")
        max_keys = self._int_param(req, "max-keys", 1000, 0, 1000)
        page = await self.objects.list_versions(
            bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
            version_id_marker=version_marker, max_keys=max_keys,
        )
        owner = self._owner(caller)
        versions = [
            s3xml.VersionInfo(
                key=e.key, version_id=e.version_id, is_latest=e.is_latest,
                last_modified=e.last_modified, etag=e.etag, size=e.size,
                is_delete_marker=e.is_delete_marker, owner=owner,
            )
            for e in page.entries
        ]
        body = s3xml.render_list_object_versions(
            bucket.name, versions=versions, common_prefixes=page.common_prefixes,
            prefix=prefix, key_marker=key_marker, version_id_marker=version_marker,
            next_key_marker=page.next_key_marker if page.is_truncated else None,
            next_version_id_marker=page.next_version_id_marker if page.is_truncated else None,
            delimiter=delimiter or None, max_keys=max_keys, is_truncated=page.is_truncated,
            encoding_type_url=url,
        )
        return _xml(body)

    async def delete_objects(self, req: Request, caller: Caller) -> Response:
        """DeleteObjects: up to 1000 keys, each reported as Deleted or Error."""
        bucket = await self._bucket(caller, req.bucket)
        reader = BodyReader(req, caller.signing)
        body = await reader.read_all(s3xml.MAX_DELETE_BODY_SIZE)
        md5 = self._content_md5(req)
        if md5 is not None and hashlib.md5(body).digest() != md5:
            raise S3Error("BadDigest")
        parsed = s3xml.parse_delete_objects(body)
        deleted: list[s3xml.DeletedObject] = []
        failed: list[s3xml.DeleteError] = []
        for obj in parsed.objects:
            try:
                validate_object_key(obj.key)
                result = await self.objects.delete_object(bucket, obj.key, obj.version_id)
            except (S3Error, serr.StorageError) as exc:
                err = exc if isinstance(exc, S3Error) else from_storage_error(exc)
                failed.append(s3xml.DeleteError(obj.key, err.code, err.message, obj.version_id))
                continue
            if obj.version_id is not None:
                deleted.append(s3xml.DeletedObject(
                    obj.key, obj.version_id, result.delete_marker,
                    obj.version_id if result.delete_marker else None,
                ))
            else:
                deleted.append(s3xml.DeletedObject(
                    obj.key, None, result.delete_marker,
                    result.version_id if result.delete_marker else None,
                ))
        return _xml(s3xml.render_delete_result(deleted, failed, quiet=parsed.quiet))

    # -- objects ------------------------------------------------------------------------

    async def put_object(self, req: Request, caller: Caller) -> Response:
        """PutObject, streamed and verified before it becomes visible."""
        bucket = await self._bucket(caller, req.bucket)
        content_type, meta, stored = self._object_fields(req.headers)
        self._check_acl_headers(req.headers, caller)
        tags = self._tagging_header(req.headers)
        reader = BodyReader(req, caller.signing)
        if reader.size is not None and reader.size > MAX_PUT_SIZE:
            raise entity_too_large(reader.size, MAX_PUT_SIZE)
        await self._check_room(caller, reader.size)
        condition = write_condition(req.headers)
        await self._precheck(bucket, req.key, condition)
        md5 = self._content_md5(req)
        info = await self.objects.put_object(
            bucket, req.key, reader, content_type=content_type, user_metadata=meta,
            headers=stored, checksums=reader.checksums, content_md5=md5,
            expected_size=reader.size, tags=tags, condition=condition,
        )
        headers = [("etag", s3xml.quote_etag(info.etag)), *self._written_version_headers(info)]
        headers += [(f"x-amz-checksum-{alg}", v) for alg, v in reader.checksums.items()]
        return Response(200, headers)

    async def post_object(self, req: Request) -> Response:
        """PostObject: a browser form upload, authorized by its signed policy."""
        boundary = boundary_of(req.headers.get("content-type", ""))
        if boundary is None:
            condition = "Bucket POST must be of the enclosure-type multipart/form-data"
            raise S3Error("PreconditionFailed", condition, extra={"Condition": condition})
        if not req.has_framed_body():
            raise S3Error("MissingContentLength")
        form = FormUpload(req.receive_body(), boundary)
        fields = await form.read_fields()
        creds = form_credentials(fields)
        if creds is None:
            raise access_denied("Anonymous access is not allowed; sign the form's policy.")
        record, _, secret = await self._load_key(req, creds.access_key)
        verify_form_signature(creds, fields["policy"], secret)
        caller = Caller(creds.access_key, record.account, None, None, req.bucket)
        self.limiter.check(caller.access_key, "write")
        policy = parse_policy(fields["policy"])
        if "key" not in fields:
            raise missing_field("key")
        fields["key"] = key = fields["key"].replace("${filename}", form.filename)
        validate_object_key(key)
        check_policy(policy, fields, req.bucket, dt.datetime.now(dt.UTC))
        bucket = await self._bucket(caller, req.bucket)
        refuse_unsupported_headers(fields)
        # The form's object fields are named as PutObject's headers, but the ACL.
        headers = {**fields, "x-amz-acl": fields["acl"]} if "acl" in fields else fields
        content_type, meta, stored = self._object_fields(headers)
        self._check_acl_headers(headers, caller)
        tags = s3xml.parse_tagging(fields["tagging"].encode()) if "tagging" in fields else None
        low, high = policy.length_range or (0, MAX_PUT_SIZE)
        info = await self.objects.put_object(
            bucket, key, form.file(low, min(high, MAX_PUT_SIZE)), content_type=content_type,
            user_metadata=meta, headers=stored, tags=tags,
        )
        etag = s3xml.quote_etag(info.etag)
        redirect = fields.get("success_action_redirect") or fields.get("redirect")
        if redirect and redirect.startswith(("http://", "https://")):
            query = urlencode({"bucket": req.bucket, "key": key, "etag": etag})
            joiner = "&" if "?" in redirect else "?"
            return Response(303, [("location", f"{redirect}{joiner}{query}"), ("etag", etag)])
        host = req.headers.get("host", "")
        location = f"{req.scheme}://{host}/{quote(req.bucket)}/{quote(key)}"
        out = [("etag", etag), ("location", location), *self._written_version_headers(info)]
        status = fields.get("success_action_status")
        if status == "201":
            return _xml(s3xml.render_post_response(location, req.bucket, key, etag), 201, out)
        return Response(200 if status == "200" else 204, out)

    def _object_headers(
        self, req: Request, bucket: BucketInfo, info: ObjectInfo
    ) -> list[tuple[str, str]]:
        headers: dict[str, str] = {
            "content-type": info.content_type or "binary/octet-stream",
            "etag": s3xml.quote_etag(info.etag),
            "last-modified": http_date(info.last_modified),
            "accept-ranges": "bytes",
        }
        headers.update(info.headers)
        for name, header in RESPONSE_OVERRIDES.items():
            if name in req.query:
                headers[header] = req.query[name]
        out = list(headers.items())
        out += [(f"x-amz-meta-{k}", mail_safe(v)) for k, v in info.user_metadata.items()]
        out += self._version_headers(bucket, info)
        if info.tags:
            out.append(("x-amz-tagging-count", str(len(info.tags))))
        return out

    @staticmethod
    def _part_range(info: ObjectInfo, number: int) -> tuple[int, int, int | None]:
        """``(start, stop, parts count)`` of part ``number`` (GetObject ?partNumber=).

        An object stored in one piece is its own part 1 (count None: S3 sends
        no x-amz-mp-parts-count then); beyond the count is 416 InvalidPartNumber.
        """
        sizes = info.part_sizes
        if not sizes and "-" in info.etag:
            # Completed before part sizes were recorded: the boundaries are unknown.
            raise not_implemented("GetObject by partNumber of a multipart object completed "
                                  "before part boundaries were recorded")
        count = len(sizes) if sizes else None
        if number > (count or 1):
            raise S3Error("InvalidPartNumber", extra={
                "PartNumberRequested": number, "ActualPartCount": count or 1})
        if not sizes:
            return 0, info.size, None
        start = sum(sizes[: number - 1])
        return start, start + sizes[number - 1], count

    async def _addressed_object(
        self, req: Request, caller: Caller, bucket: BucketInfo
    ) -> ObjectInfo:
        """The version a request names (the latest, or ``?versionId=``).

        NoSuchKey / NoSuchVersion if absent; a delete marker named by its
        version id is 405 MethodNotAllowed, as S3 answers.
        """
        loaded = caller.loaded
        if loaded is not None and loaded.obj is not None and caller.bucket_name == req.bucket:
            # Fetched in the authentication round trip.
            if isinstance(loaded.obj, serr.StorageError):
                raise loaded.obj
            info = loaded.obj
        else:
            info = await self.objects.head_object(
                bucket, req.key, req.query.get("versionId") or None)
        if info.is_delete_marker:
            raise S3Error("MethodNotAllowed", headers={
                "x-amz-delete-marker": "true", "x-amz-version-id": info.version_id,
                "Last-Modified": http_date(info.last_modified),
            }, extra={"Method": req.method, "ResourceType": "DeleteMarker"})
        return info

    async def get_object(self, req: Request, caller: Caller, *, head: bool) -> Response:
        """GetObject / HeadObject: versions, conditions, ranges, overrides."""
        bucket = await self._bucket(caller, req.bucket)
        part_number: int | None = None
        if "partNumber" in req.query:
            part_number = self._part_number(req)
            if req.headers.get("range") is not None:
                raise S3Error("InvalidRequest", "Cannot specify both Range header and "
                              "partNumber query parameter")
        info = await self._addressed_object(req, caller, bucket)
        h = req.headers
        evaluate_conditions(info, h.get("if-match"), h.get("if-none-match"),
                            h.get("if-modified-since"), h.get("if-unmodified-since"))
        headers = self._object_headers(req, bucket, info)
        if part_number is not None:
            first, last, count = self._part_range(info, part_number)
            # S3 answers a part as a range (206 + Content-Range) unless the
            # object is empty, where no range exists.
            rng = (first, last) if info.size else None
            if count is not None:
                headers.append(("x-amz-mp-parts-count", str(count)))
        else:
            rng = parse_range(h.get("range"), info.size)
        if rng is None and h.get("x-amz-checksum-mode", "").upper() == "ENABLED":
            headers += [(f"x-amz-checksum-{alg}", v) for alg, v in info.checksums.items()]
            if info.checksums:
                kind = "COMPOSITE" if any("-" in v for v in info.checksums.values()) else (
                    "FULL_OBJECT")
                headers.append(("x-amz-checksum-type", kind))
        start, stop = rng if rng is not None else (0, info.size)
        status = 206 if rng is not None else 200
        if rng is not None:
            headers.append(("content-range", f"bytes {start}-{stop - 1}/{info.size}"))
        headers.append(("content-length", str(stop - start)))
        if head:
            return Response(status, headers)
        if info.inline_data is not None:
            return Response(status, headers, info.inline_data[start:stop])
        return Response(status, headers, stream=self.objects.read_object(info, start, stop))

    async def get_object_tagging(self, req: Request, caller: Caller) -> Response:
        """GetObjectTagging (of the latest version or ``?versionId=``)."""
        bucket = await self._bucket(caller, req.bucket)
        info = await self._addressed_object(req, caller, bucket)
        return _xml(s3xml.render_tagging(info.tags), 200, self._version_headers(bucket, info))

    async def put_object_tagging(self, req: Request, caller: Caller) -> Response:
        """PutObjectTagging replaces a version's tags (up to 10)."""
        bucket = await self._bucket(caller, req.bucket)
        body = await self._config_body(req, caller)
        tags = s3xml.parse_tagging(body, max_tags=s3xml.MAX_OBJECT_TAGS)
        info = await self._addressed_object(req, caller, bucket)
        await self.objects.set_tags(bucket, req.key, info.version_id, tags)
        return Response(200, self._version_headers(bucket, info))

    async def delete_object_tagging(self, req: Request, caller: Caller) -> Response:
        """DeleteObjectTagging removes a version's tags."""
        bucket = await self._bucket(caller, req.bucket)
        info = await self._addressed_object(req, caller, bucket)
        await self.objects.set_tags(bucket, req.key, info.version_id, {})
        return Response(204, self._version_headers(bucket, info))

    async def get_object_acl(self, req: Request, caller: Caller) -> Response:
        """GetObjectAcl: the owner with FULL_CONTROL."""
        bucket = await self._bucket(caller, req.bucket)
        info = await self._addressed_object(req, caller, bucket)
        return _xml(s3xml.render_owner_only_acl(self._owner(caller)), 200,
                    self._version_headers(bucket, info))

    async def put_object_acl(self, req: Request, caller: Caller) -> Response:
        """PutObjectAcl: accepted when private, 501 when it would share the object."""
        bucket = await self._bucket(caller, req.bucket)
        await self._put_acl(req, caller)
        info = await self._addressed_object(req, caller, bucket)
        return Response(200, self._version_headers(bucket, info))

    async def delete_object(self, req: Request, caller: Caller) -> Response:
        """DeleteObject: a version, the null version, or a new delete marker."""
        bucket = await self._bucket(caller, req.bucket)
        version_id = req.query.get("versionId") or None
        result = await self.objects.delete_object(bucket, req.key, version_id)
        headers: list[tuple[str, str]] = []
        if result.delete_marker:
            headers.append(("x-amz-delete-marker", "true"))
        if result.version_id is not None:
            headers.append(("x-amz-version-id", result.version_id))
        return Response(204, headers)

    def _copy_source(self, req: Request) -> tuple[str, str, str | None]:
        raw = req.headers["x-amz-copy-source"].strip()
        path, _, query = raw.partition("?")
        version_id = None
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name == "versionId":
                version_id = _copy_source_text(value, raw) or None
            elif name:
                raise invalid_argument("Unsupported copy source parameter", "x-amz-copy-source",
                                       raw)
        path = _copy_source_text(path, raw).lstrip("/")
        bucket, _, key = path.partition("/")
        if not bucket or not key:
            raise invalid_argument("Copy Source must mention the source bucket and key: "
                                   "sourcebucket/sourcekey", "x-amz-copy-source", raw)
        validate_object_key(key)
        return bucket, key, version_id

    async def _copy_source_info(
        self, req: Request, caller: Caller
    ) -> tuple[BucketInfo, ObjectInfo]:
        src_bucket_name, src_key, src_version = self._copy_source(req)
        src_bucket = await self._bucket(caller, src_bucket_name)
        src = await self.objects.head_object(src_bucket, src_key, src_version)
        if src.is_delete_marker:
            raise S3Error("InvalidRequest", "The source of a copy request may not specifically "
                          "refer to a delete marker by version id.")
        h = req.headers
        evaluate_conditions(
            src, h.get("x-amz-copy-source-if-match"), h.get("x-amz-copy-source-if-none-match"),
            h.get("x-amz-copy-source-if-modified-since"),
            h.get("x-amz-copy-source-if-unmodified-since"), read=False,
        )
        return src_bucket, src

    async def copy_object(self, req: Request, caller: Caller) -> Response:
        """CopyObject (metadata directive COPY or REPLACE), chunks shared by reference."""
        bucket = await self._bucket(caller, req.bucket)
        src_bucket, src = await self._copy_source_info(req, caller)
        directive = req.headers.get("x-amz-metadata-directive", "COPY").strip().upper()
        if directive not in ("COPY", "REPLACE"):
            raise invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive",
                                   directive)
        tagging = req.headers.get("x-amz-tagging-directive", "COPY").strip().upper()
        if tagging not in ("COPY", "REPLACE"):
            raise invalid_argument("Unknown tagging directive.", "x-amz-tagging-directive",
                                   tagging)
        self._check_acl_headers(req.headers, caller)
        # REPLACE takes x-amz-tagging (no header: no tags); COPY keeps the source's.
        tags = (self._tagging_header(req.headers) or {}) if tagging == "REPLACE" else None
        _, _, explicit_version = self._copy_source(req)
        same = src_bucket.id == bucket.id and src.key == req.key and (
            explicit_version is None or src.is_latest)
        if same and directive == "COPY":
            raise S3Error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata, storage class, website redirect "
                "location or encryption attributes.",
            )
        condition = write_condition(req.headers)
        if directive == "REPLACE":
            content_type, meta, stored = self._object_fields(req.headers)
            info = await self.objects.copy_object(
                src_bucket, src.key, bucket, req.key, version_id=src.version_id,
                content_type=content_type, user_metadata=meta, headers=stored, tags=tags,
                condition=condition,
            )
        else:
            info = await self.objects.copy_object(
                src_bucket, src.key, bucket, req.key, version_id=src.version_id, tags=tags,
                condition=condition,
            )
        headers = self._written_version_headers(info)
        if src_bucket.versioning:
            headers.append(("x-amz-copy-source-version-id", src.version_id))
        return _xml(s3xml.render_copy_object_result(info.etag, info.last_modified), 200, headers)

    # -- multipart ---------------------------------------------------------------------

    async def create_multipart_upload(self, req: Request, caller: Caller) -> Response:
        """CreateMultipartUpload (metadata fixed now; optional checksum algorithm/type)."""
        bucket = await self._bucket(caller, req.bucket)
        content_type, meta, stored = self._object_fields(req.headers)
        self._check_acl_headers(req.headers, caller)
        tags = self._tagging_header(req.headers)
        alg, kind = cks.multipart_checksum_type(req.headers.get("x-amz-checksum-algorithm", ""),
                                                req.headers.get("x-amz-checksum-type", ""))
        upload = await self.multipart.create(
            bucket, req.key, content_type=content_type, user_metadata=meta, headers=stored,
            checksum_algorithm=alg, checksum_type=kind, tags=tags,
        )
        headers: list[tuple[str, str]] = []
        if alg:
            headers += [("x-amz-checksum-algorithm", alg.upper()), ("x-amz-checksum-type", kind)]
        return _xml(s3xml.render_initiate_multipart_upload(bucket.name, req.key,
                                                           upload.upload_id), 200, headers)

    def _part_number(self, req: Request) -> int:
        raw = req.query.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_NUMBER:
            raise invalid_argument("Part number must be an integer between 1 and 10000, "
                                   "inclusive", "partNumber", raw)
        return int(raw)

    async def upload_part(self, req: Request, caller: Caller) -> Response:
        """UploadPart, streamed and verified like PutObject."""
        bucket = await self._bucket(caller, req.bucket)
        number = self._part_number(req)
        upload_id = req.query.get("uploadId", "")
        # The upload's algorithm is computed for every part, sent or not, as
        # S3 does: its object checksum needs every part's.
        upload = await self.multipart.get_upload(bucket, upload_id)
        reader = BodyReader(req, caller.signing, compute=upload.checksum_algorithm or None)
        if reader.size is not None and reader.size > MAX_PART_SIZE:
            raise entity_too_large(reader.size, MAX_PART_SIZE)
        await self._check_room(caller, reader.size)
        part = await self.multipart.upload_part(
            bucket, upload_id, number, reader, content_md5=self._content_md5(req),
            expected_size=reader.size, checksums=reader.checksums,
        )
        headers = [("etag", s3xml.quote_etag(part.etag))]
        headers += [(f"x-amz-checksum-{alg}", v) for alg, v in reader.checksums.items()]
        return Response(200, headers)

    async def upload_part_copy(self, req: Request, caller: Caller) -> Response:
        """UploadPartCopy: a part from (a byte range of) an existing object."""
        bucket = await self._bucket(caller, req.bucket)
        number = self._part_number(req)
        upload_id = req.query.get("uploadId", "")
        _, src = await self._copy_source_info(req, caller)
        start, stop = 0, src.size
        raw_range = req.headers.get("x-amz-copy-source-range")
        if raw_range is not None:
            unit, _, spec = raw_range.strip().partition("=")
            first, _, last = spec.partition("-")
            if unit != "bytes" or not first.isdigit() or not last.isdigit():
                raise invalid_argument("The x-amz-copy-source-range value must be of the form "
                                       "bytes=first-last", "x-amz-copy-source-range", raw_range)
            start, stop = int(first), int(last) + 1
            if start >= stop or stop > src.size:
                raise invalid_argument(f"Range specified is not valid for source object of size: "
                                       f"{src.size}", "x-amz-copy-source-range", raw_range)
        if stop - start > MAX_PART_SIZE:
            raise entity_too_large(stop - start, MAX_PART_SIZE)
        upload = await self.multipart.get_upload(bucket, upload_id)
        checksums: dict[str, str] = {}
        data = self.objects.read_object(src, start, stop)
        if upload.checksum_algorithm:
            # Like an uploaded part, a copied one gets the upload's checksum.
            data = _summed(data, upload.checksum_algorithm, checksums)
        part = await self.multipart.upload_part(bucket, upload_id, number, data,
                                                checksums=checksums)
        headers: list[tuple[str, str]] = []
        if src.version_id != "null":
            headers.append(("x-amz-copy-source-version-id", src.version_id))
        return _xml(s3xml.render_copy_part_result(part.etag, part.last_modified, checksums),
                    200, headers)

    async def complete_multipart_upload(self, req: Request, caller: Caller) -> Response:
        """CompleteMultipartUpload: validate the part list and commit atomically."""
        bucket = await self._bucket(caller, req.bucket)
        upload_id = req.query.get("uploadId", "")
        condition = write_condition(req.headers)
        body = await BodyReader(req, caller.signing, checksum_headers=False).read_all(
            s3xml.MAX_COMPLETE_BODY_SIZE)
        requested = s3xml.parse_complete_multipart(body)
        listed = [(p.part_number, p.etag) for p in requested]
        try:
            plan = await self.multipart.plan_completion(bucket, upload_id, listed)
        except serr.NoSuchUpload:
            # A retry of a completion that succeeded (its answer was lost):
            # S3 answers it as it answered the first.
            done = await self.multipart.completed(bucket, req.key, upload_id, listed)
            if done is None:
                raise
            return self._completed_response(req, bucket, done, done.checksums, None)
        upload = plan.upload
        checksums = self._completion_checksums(req, requested, plan)
        info = await self.multipart.complete(bucket, plan, checksums=checksums,
                                             condition=condition)
        return self._completed_response(req, bucket, info, checksums,
                                        upload.checksum_type or None)

    @staticmethod
    def _completion_checksums(req: Request, requested: list[s3xml.CompletedPart],
                              plan: CompletionPlan) -> dict[str, str]:
        """The object checksum of a completion (``{alg: value}``, empty without one).

        Each listed part checksum must be the stored one (InvalidPart); the
        object's is combined from the parts' -- the CRC of the whole object
        (FULL_OBJECT) or the checksum of the part checksums with a ``-<parts>``
        suffix (COMPOSITE) -- and checked against the client's
        ``x-amz-checksum-<alg>`` / ``x-amz-checksum-type`` when sent.
        """
        upload = plan.upload
        alg = upload.checksum_algorithm
        if not alg:
            # No algorithm was chosen, so no part checksum can be relied on:
            # there is nothing to compare a client's object checksum with.
            return {}
        cks.check_completion_type(req.headers.get("x-amz-checksum-type"), upload.checksum_type)
        for name in req.headers:
            other = cks.algorithm_from_header(name)
            if other is not None and other != alg:
                raise S3Error("InvalidRequest", f"The upload was created using the {alg} "
                              f"checksum algorithm, not {other}.")
        claimed = req.headers.get(f"x-amz-checksum-{alg}")
        parsed = cks.parse_object_checksum(alg, claimed) if claimed is not None else None
        for asked, part in zip(requested, plan.parts, strict=True):
            sent = asked.checksums.get(alg)
            if sent is not None and sent != part.checksums.get(alg):
                raise S3Error("InvalidPart", detail=f"checksum of part {part.part_number}")
        if not all(alg in p.checksums for p in plan.parts):
            return {}  # a part stored before its upload recorded checksums
        digests = [base64.b64decode(p.checksums[alg]) for p in plan.parts]
        if upload.checksum_type == "FULL_OBJECT":
            value = cks.full_object_crc(
                alg, [(d, p.size) for d, p in zip(digests, plan.parts, strict=True)])
            count = None
        else:
            value = cks.composite_checksum(alg, digests)
            count = len(digests)
        if parsed is not None and (
                parsed[0] != base64.b64decode(value.partition("-")[0])
                or parsed[1] not in (None, count)):
            raise S3Error("BadDigest", f"The {alg.upper()} you specified did not match the "
                          "calculated checksum.")
        return {alg: value}

    def _completed_response(self, req: Request, bucket: BucketInfo, info: ObjectInfo,
                            checksums: Mapping[str, str],
                            checksum_type: str | None) -> Response:
        location = f"/{bucket.name}/{req.key}"
        xml_body = s3xml.render_complete_multipart_upload(
            location, bucket.name, req.key, info.etag, checksums=checksums,
            checksum_type=checksum_type,
        )
        return _xml(xml_body, 200, self._written_version_headers(info))

    async def abort_multipart_upload(self, req: Request, caller: Caller) -> Response:
        """AbortMultipartUpload: the parts' chunks are released."""
        bucket = await self._bucket(caller, req.bucket)
        await self.multipart.abort(bucket, req.query.get("uploadId", ""))
        return Response(204)

    async def list_parts(self, req: Request, caller: Caller) -> Response:
        """ListParts."""
        bucket = await self._bucket(caller, req.bucket)
        upload_id = req.query.get("uploadId", "")
        marker = self._int_param(req, "part-number-marker", 0, 0, MAX_PART_NUMBER)
        max_parts = self._int_param(req, "max-parts", 1000, 0, 1000)
        upload, page = await self.multipart.list_parts(
            bucket, upload_id, marker=marker, max_parts=max_parts
        )
        owner = self._owner(caller)
        parts = [
            s3xml.PartInfo(p.part_number, p.last_modified, p.etag, p.size,
                           {a.upper(): v for a, v in p.checksums.items()})
            for p in page.parts
        ]
        body = s3xml.render_list_parts(
            bucket.name, upload.key, upload_id, parts=parts, part_number_marker=marker,
            next_part_number_marker=page.next_part_number_marker, max_parts=max_parts,
            is_truncated=page.is_truncated, owner=owner,
            checksum_algorithm=upload.checksum_algorithm.upper() or None,
            checksum_type=upload.checksum_type or None,
        )
        return _xml(body)

    async def list_multipart_uploads(self, req: Request, caller: Caller) -> Response:
        """ListMultipartUploads."""
        bucket = await self._bucket(caller, req.bucket)
        q = req.query
        url = s3xml.parse_encoding_type(q.get("encoding-type"))
        prefix = q.get("prefix", "")
        validate_key_prefix(prefix)
        delimiter = q.get("delimiter", "")
        key_marker = q.get("key-marker", "")
        id_marker = q.get("upload-id-marker", "")
        max_uploads = self._int_param(req, "max-uploads", 1000, 0, 1000)
        page = await self.multipart.list_uploads(
            bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
            upload_id_marker=id_marker, max_uploads=max_uploads,
        )
        owner = self._owner(caller)
        uploads = [
            s3xml.UploadInfo(u.key, u.upload_id, u.initiated, owner=owner,
                             checksum_algorithm=u.checksum_algorithm.upper() or None)
            for u in page.uploads
        ]
        body = s3xml.render_list_multipart_uploads(
            bucket.name, uploads=uploads, common_prefixes=page.common_prefixes,
            prefix=prefix or None, delimiter=delimiter or None, key_marker=key_marker,
            upload_id_marker=id_marker, next_key_marker=page.next_key_marker,
            next_upload_id_marker=page.next_upload_id_marker, max_uploads=max_uploads,
            is_truncated=page.is_truncated, encoding_type_url=url,
        )
        return _xml(body)


def create_s3_app(
    services: StorageCore, *, rate_limits: Mapping[str, float] | None = None
) -> S3App:
    """Build the S3 ASGI application over a node's services.

    ``rate_limits`` overrides the per-key requests per second of the
    ``write``/``read``/``list`` classes (0 disables one); by default they come
    from the node settings, else :data:`DEFAULT_RATE_LIMITS`.
    """
    return S3App(services, rate_limits=rate_limits)
