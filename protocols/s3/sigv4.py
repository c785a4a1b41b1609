"""AWS Signature Version 4 for S3, as pure functions (verification and signing).

The HTTP layer calls::

    auth = parse_request_auth(method, raw_path, raw_query, headers)   # None: anonymous
    secret = lookup_secret(auth.access_key)          # InvalidAccessKeyId if unknown
    ctx = verify(auth, secret)                       # raises S3Error on failure
    # ctx.payload_mode tells how to read the body: literal sha256 (check it with
    # check_payload_sha256), UNSIGNED-PAYLOAD, or aws-chunked (feed it to
    # protocols.s3.chunked.ChunkedDecoder(ctx)).

Header values are expected as an ASGI server hands them over: wire bytes decoded as
latin-1 (or raw ``bytes``). The canonical request is built over the wire bytes, as S3
does, so UTF-8 metadata signed by Go/JS/minio clients verifies.

S3 specifics: the canonical URI is the path URI-encoded once (not twice, no dot-segment
normalisation); the region in the credential scope is accepted whatever it is (the key
is derived with it); payload hash modes are a literal sha256, ``UNSIGNED-PAYLOAD`` and
the ``STREAMING-*`` aws-chunked variants.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import quote, unquote_to_bytes

from protocols.s3.errors import (
    S3Error,
    invalid_argument,
    request_expired,
    request_time_too_skewed,
    signature_does_not_match,
)

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
MAX_CLOCK_SKEW = 15 * 60

# Unsigned x-amz-* headers are refused (as S3 does) except these: they only describe
# the body's integrity, which is verified anyway, so an attacker gains nothing.
_UNSIGNED_AMZ_ALLOWED = frozenset(
    {
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-decoded-content-length",
        "x-amz-trailer",
        "x-amz-sdk-checksum-algorithm",
    }
)

# Headers our signer never signs (hop-by-hop or rewritten by proxies), as botocore.
_UNSIGNABLE_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)

_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")

_CREDENTIAL_FORMAT = '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"'


# ====================================================================================
# Models
# ====================================================================================


class PayloadMode(enum.Enum):
    """How the request body is covered by the signature (``x-amz-content-sha256``)."""

    SHA256 = "sha256"  # a literal hex digest of the whole body
    UNSIGNED = UNSIGNED_PAYLOAD
    STREAMING_SIGNED = STREAMING_PAYLOAD
    STREAMING_SIGNED_TRAILER = STREAMING_PAYLOAD_TRAILER
    STREAMING_UNSIGNED_TRAILER = STREAMING_UNSIGNED_PAYLOAD_TRAILER

    @property
    def is_streaming(self) -> bool:
        """The body is ``aws-chunked`` encoded."""
        return self.name.startswith("STREAMING")

    @property
    def signed_chunks(self) -> bool:
        """Every aws-chunked chunk carries a chunk-signature to verify."""
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)

    @property
    def has_trailer(self) -> bool:
        """Trailing headers (checksums) follow the last chunk."""
        return self.name.endswith("TRAILER")


# The literal modes by value (iterating an Enum costs more than the rest of
# the classification, several times per request).
_LITERAL_MODES = {m.value: m for m in PayloadMode if m is not PayloadMode.SHA256}


def payload_mode(payload_hash: str) -> PayloadMode:
    """Classify an ``x-amz-content-sha256`` value; InvalidArgument if it is none of them."""
    mode = _LITERAL_MODES.get(payload_hash)
    if mode is not None:
        return mode
    if _SHA256_RE.fullmatch(payload_hash):
        return PayloadMode.SHA256
    if payload_hash.startswith("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"):
        raise S3Error("NotImplemented", "SigV4a (AWS4-ECDSA-P256-SHA256) is not implemented")
    raise invalid_argument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
        "or a valid sha256 value.",
        "x-amz-content-sha256",
        payload_hash,
    )


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """``date/region/service/aws4_request`` of a credential."""

    date: str
    region: str
    service: str

    def __str__(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """Everything needed to check a SigV4-signed request, once the secret is known."""

    kind: Literal["header", "query"]
    access_key: str
    scope: CredentialScope
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    timestamp: dt.datetime
    payload_hash: str
    canonical_request: str
    expires: int | None = None
    security_token: str | None = None

    @property
    def payload_mode(self) -> PayloadMode:
        """The payload mode of :attr:`payload_hash`."""
        return payload_mode(self.payload_hash)

    @property
    def string_to_sign(self) -> str:
        """The SigV4 string to sign of this request."""
        return string_to_sign(self.amz_date, self.scope, self.canonical_request)


@dataclass(frozen=True, slots=True)
class SigningContext:
    """A verified request's signing state: what an aws-chunked decoder needs to check
    chunk signatures (each chunk chains from the previous signature)."""

    access_key: str
    scope: CredentialScope
    amz_date: str
    signing_key: bytes
    seed_signature: str
    payload_hash: str

    @property
    def payload_mode(self) -> PayloadMode:
        """The payload mode of :attr:`payload_hash`."""
        return payload_mode(self.payload_hash)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The result of :func:`sign_request`."""

    headers: dict[str, str | bytes]
    authorization: str
    canonical_request: str
    string_to_sign: str
    context: SigningContext


# ====================================================================================
# Primitives
# ====================================================================================


def sha256_hex(data: bytes | str) -> str:
    """Lower-case hex SHA-256 of ``data`` (str is UTF-8 encoded)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=1024)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key (cached: it changes once a day per key and region)."""
    k_date = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    k_region = hmac.new(k_date, region.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_region, service.encode(), hashlib.sha256).digest()
    return hmac.new(k_service, TERMINATOR.encode(), hashlib.sha256).digest()


def hmac_hex(key: bytes, message: str) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key``: the signature of a string to sign."""
    return hmac.new(key, message.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def string_to_sign(amz_date: str, scope: CredentialScope | str, canonical_request: str) -> str:
    """``AWS4-HMAC-SHA256\\n<date>\\n<scope>\\n<sha256(canonical request)>``."""
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{sha256_hex(canonical_request)}"


def parse_amz_date(value: str) -> dt.datetime:
    """Parse ``YYYYMMDDTHHMMSSZ`` into an aware UTC datetime (ValueError if invalid)."""
    if not _AMZ_DATE_RE.fullmatch(value):
        raise ValueError(f"not an ISO 8601 basic timestamp: {value!r}")
    # By hand: strptime costs more than the rest of parsing a request's auth.
    return dt.datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                       int(value[11:13]), int(value[13:15]), tzinfo=dt.UTC)


def format_amz_date(moment: dt.datetime) -> str:
    """Format a datetime (naive means UTC) as ``YYYYMMDDTHHMMSSZ``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uri_encode(value: str | bytes, *, encode_slash: bool = True) -> str:
    """AWS's UriEncode: every byte but ``A-Za-z0-9-._~`` (and ``/`` if kept) as %XY."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return quote(value, safe="" if encode_slash else "/")


# ====================================================================================
# Canonical request
# ====================================================================================


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 normalisation as the generic SigV4 suite (and botocore) apply it.
    output: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def canonical_uri(raw_path: str | bytes, *, s3: bool = True) -> str:
    """The canonical URI of a request path as received on the wire.

    S3 (``s3=True``): the path is percent-decoded and re-encoded once with AWS's
    unreserved set, slashes kept, no dot-segment processing (keys may contain ``..``).
    Other services (``s3=False``): dot segments and repeated slashes are removed and
    the path as received is encoded again (the suite's "double encoding").
    """
    raw = raw_path if isinstance(raw_path, bytes) else raw_path.encode("utf-8", "surrogateescape")
    if s3:
        return uri_encode(unquote_to_bytes(raw), encode_slash=False) or "/"
    normalized = _remove_dot_segments(raw.decode("utf-8", "surrogateescape")) or "/"
    return uri_encode(normalized, encode_slash=False)


QueryInput = str | bytes | Iterable[tuple[str, str]] | None


def _query_pairs_bytes(query: QueryInput) -> list[tuple[bytes, bytes]]:
    if query is None:
        return []
    if isinstance(query, str):
        query = query.encode("utf-8", "surrogateescape")
    if isinstance(query, bytes):
        pairs = []
        for part in query.split(b"&"):
            if not part:
                continue
            name, _, value = part.partition(b"=")
            pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
        return pairs
    return [
        (n.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for n, v in query
    ]


def parse_query(query: str | bytes) -> list[tuple[str, str]]:
    """Split a raw query string into decoded ``(name, value)`` pairs, in order.

    ``+`` stays a plus (SigV4 clients encode spaces as ``%20``); a name without ``=``
    gets an empty value.
    """
    return [
        (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
        for n, v in _query_pairs_bytes(query)
    ]


def canonical_query_string(query: QueryInput, *, exclude: Iterable[str] = ()) -> str:
    """Canonical query string: names and values URI-encoded, sorted by name then value.

    ``query`` is the raw query string (str/bytes) or decoded ``(name, value)`` pairs.
    Names listed in ``exclude`` (``X-Amz-Signature`` for presigned URLs) are dropped.
    """
    if not query:
        return ""
    excluded = {e.encode() for e in exclude}
    encoded = sorted(
        (uri_encode(n), uri_encode(v)) for n, v in _query_pairs_bytes(query) if n not in excluded
    )
    return "&".join(f"{n}={v}" for n, v in encoded)


HeaderInput = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]

_WS_RE = re.compile(r"[ \t\r\n\f\v]+")
_WS_TO_COLLAPSE = re.compile(r"  |[\t\r\n\f\v]")


def _wire_text(value: str | bytes) -> str:
    # Recover the wire bytes (latin-1 round trip) and carry them in a str that encodes
    # back to exactly those bytes (utf-8 + surrogateescape), so hashing sees the wire.
    if type(value) is bytes:
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        try:
            value = value.encode("latin-1")
        except UnicodeEncodeError:
            return value  # already real text (not from a latin-1 decoding server)
    return value.decode("utf-8", "surrogateescape")


def header_multimap(headers: HeaderInput) -> dict[str, list[str]]:
    """Lower-cased header names mapped to their values in order (repeats kept)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, list[str]] = {}
    for name, value in items:
        result.setdefault(name.strip().lower(), []).append(_wire_text(value))
    return result


def _canonical_value(value: str) -> str:
    value = value.strip(" \t\r\n\f\v")
    if _WS_TO_COLLAPSE.search(value):
        return _WS_RE.sub(" ", value)
    return value  # most values: no run of whitespace to collapse (no regex rewrite)


def canonical_header_value(values: Iterable[str]) -> str:
    """Trim each value, collapse inner whitespace runs to one space, join with commas."""
    return ",".join([_canonical_value(v) for v in values])


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, list[str]],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """Assemble the canonical request from its parts: ``uri`` and ``query`` already in
    canonical form (:func:`canonical_uri`, :func:`canonical_query_string`), ``headers``
    is a :func:`header_multimap`; ``signed_headers`` are lower-case names in
    the order the client listed them (sorted, for conforming clients).
    """
    names = list(signed_headers)
    lines = "".join(f"{n}:{canonical_header_value(headers.get(n, []))}\n" for n in names)
    return "\n".join([method.upper(), uri, query, lines, ";".join(names), payload_hash])


# ====================================================================================
# Parsing the request's authentication
# ====================================================================================


def _malformed_header(detail: str, region: str | None = None) -> S3Error:
    extra = {"Region": region} if region else None
    return S3Error(
        "AuthorizationHeaderMalformed",
        f"The authorization header is malformed; {detail}",
        extra=extra,
    )


def _query_error(message: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", message)


def _parse_credential(
    value: str, service: str, on_error: Callable[[str], S3Error]
) -> tuple[str, CredentialScope]:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise on_error(f"the Credential is mal-formed; expecting {_CREDENTIAL_FORMAT}.")
    access_key, date, region, svc, terminator = parts
    if not (len(date) == 8 and date.isascii() and date.isdigit()):
        raise on_error(
            f'incorrect date format "{date}". This date in the credential '
            'must be in the format "yyyyMMdd".'
        )
    if terminator != TERMINATOR:
        raise on_error(f'incorrect terminal "{terminator}". This endpoint uses "{TERMINATOR}".')
    if svc != service:
        raise on_error(f'incorrect service "{svc}". This endpoint belongs to "{service}".')
    return access_key, CredentialScope(date, region, svc)


def _parse_signed_headers(value: str, on_error: Callable[[str], S3Error]) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in value.split(";"))
    if not value or any(not n for n in names):
        raise on_error("the SignedHeaders are mal-formed.")
    if "host" not in names:
        raise on_error("the SignedHeaders must include host.")
    return names


def _check_unsigned_amz_headers(headers: Mapping[str, list[str]], signed: tuple[str, ...]) -> None:
    signed_set = set(signed)
    missing = sorted(
        name
        for name in headers
        if name.startswith("x-amz-")
        and name not in signed_set
        and name not in _UNSIGNED_AMZ_ALLOWED
        and not name.startswith("x-amz-checksum-")
    )
    if missing:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            extra={"HeadersNotSigned": ", ".join(missing)},
        )


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    if not values:
        return None
    return values[-1].strip()


def parse_request_auth(
    method: str,
    raw_path: str | bytes,
    query: QueryInput,
    headers: HeaderInput,
    *,
    service: str = "s3",
    body_sha256: str | None = None,
) -> AuthRequest | None:
    """Extract and check the SigV4 authentication of a request, without the secret.

    ``raw_path`` is the path as received (percent-encoded, without the query);
    ``query`` the raw query string (or decoded pairs). Returns None for an anonymous
    request. Raises S3Error for malformed or unsupported authentication.
    ``service`` other than ``s3`` switches to the generic SigV4 rules (double-encoded,
    normalised path; ``body_sha256`` then stands in for a missing
    ``x-amz-content-sha256``).
    """
    hdrs = header_multimap(headers)
    if not isinstance(query, str | bytes):
        query = list(query or [])  # it is read more than once
    pairs = parse_query(query) if isinstance(query, str | bytes) else query
    names = {n for n, _ in pairs}
    # A blank Authorization header authenticates nothing: anonymous, as S3 has it.
    authorization = [v for v in hdrs.get("authorization", ()) if v.strip()]
    query_auth = bool(names & {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"})
    if authorization and query_auth:
        raise invalid_argument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            "Authorization",
            authorization[0],
        )
    uri = canonical_uri(raw_path, s3=service == "s3")
    if authorization:
        if len(authorization) > 1:
            raise _malformed_header("more than one Authorization header.")
        return _parse_header_auth(method, uri, query, hdrs, authorization[0], service, body_sha256)
    if query_auth:
        return _parse_query_auth(method, uri, query, pairs, hdrs, service)
    if "AWSAccessKeyId" in names and "Signature" in names:
        raise S3Error(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256.",
        )
    return None


def _parse_header_auth(
    method: str,
    uri: str,
    query: QueryInput,
    hdrs: dict[str, list[str]],
    value: str,
    service: str,
    body_sha256: str | None,
) -> AuthRequest:
    value = value.strip()
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        if algorithm in ("AWS", "AWS4-ECDSA-P256-SHA256"):
            raise S3Error(
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. "
                "Please use AWS4-HMAC-SHA256.",
            )
        raise invalid_argument("Unsupported Authorization Type", "Authorization", value)
    fields: dict[str, str] = {}
    for component in rest.split(","):
        key, sep, val = component.strip().partition("=")
        if not sep or key not in ("Credential", "SignedHeaders", "Signature") or key in fields:
            raise _malformed_header(f'unexpected component "{component.strip()}".')
        fields[key] = val.strip()
    if len(fields) != 3:
        raise _malformed_header("Credential, SignedHeaders and Signature are all required.")

    access_key, scope = _parse_credential(fields["Credential"], service, _malformed_header)
    signed = _parse_signed_headers(fields["SignedHeaders"], _malformed_header)
    # Not checked for form: a signature that is not hex simply does not match
    # (403 SignatureDoesNotMatch, as S3 answers), it is no malformed header.
    signature = fields["Signature"].lower()

    amz_date = _single(hdrs, "x-amz-date")
    try:
        if amz_date is not None:
            timestamp = parse_amz_date(amz_date)
        else:
            date_header = _single(hdrs, "date")
            if date_header is None:
                raise ValueError("no date")
            timestamp = parsedate_to_datetime(date_header)
            if timestamp.tzinfo is None:
                timestamp = timestamp.replace(tzinfo=dt.UTC)
            amz_date = format_amz_date(timestamp)
    except (ValueError, TypeError, IndexError):
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        ) from None
    # The credential's date must be X-Amz-Date's: checked by verify(), after
    # the clock skew, as S3 orders the two (a request dated another day is
    # first of all too old or too new).

    payload_hash = _single(hdrs, "x-amz-content-sha256")
    if payload_hash is None:
        if body_sha256 is not None:
            payload_hash = body_sha256
        elif service == "s3":
            raise S3Error(
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        else:
            payload_hash = EMPTY_SHA256
    payload_mode(payload_hash)  # validates the value
    _check_unsigned_amz_headers(hdrs, signed)

    creq = canonical_request(method, uri, canonical_query_string(query), hdrs, signed, payload_hash)
    return AuthRequest(
        kind="header",
        access_key=access_key,
        scope=scope,
        signed_headers=signed,
        signature=signature,
        amz_date=amz_date,
        timestamp=timestamp,
        payload_hash=payload_hash,
        canonical_request=creq,
        security_token=_single(hdrs, "x-amz-security-token"),
    )


_QUERY_REQUIRED = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)


def _parse_query_auth(
    method: str,
    uri: str,
    query: QueryInput,
    pairs: list[tuple[str, str]],
    hdrs: dict[str, list[str]],
    service: str,
) -> AuthRequest:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("X-Amz-"):
            if name in params and name in _QUERY_REQUIRED:
                raise _query_error(f"{name} is specified more than once.")
            params[name] = value
    if any(name not in params for name in _QUERY_REQUIRED):
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
            "and X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')

    def on_error(detail: str) -> S3Error:
        return _query_error(f"Error parsing the X-Amz-Credential parameter; {detail}")

    access_key, scope = _parse_credential(params["X-Amz-Credential"], service, on_error)
    amz_date = params["X-Amz-Date"]
    try:
        timestamp = parse_amz_date(amz_date)
    except ValueError:
        raise _query_error(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        ) from None
    if scope.date != amz_date[:8]:
        raise on_error("Invalid credential date. Date is not the same as X-Amz-Date.")
    raw_expires = params["X-Amz-Expires"].strip()
    if raw_expires.startswith("-") and raw_expires[1:].isdigit():
        raise _query_error("X-Amz-Expires must be non-negative")
    if not raw_expires.isascii() or not raw_expires.isdigit():
        raise _query_error("X-Amz-Expires should be a number")
    expires = int(raw_expires)
    if expires > MAX_PRESIGNED_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds"
        )
    signed = _parse_signed_headers(
        params["X-Amz-SignedHeaders"],
        lambda d: _query_error(f"Error parsing the X-Amz-SignedHeaders parameter; {d}"),
    )
    signature = params["X-Amz-Signature"].lower()

    # Presigned URLs cannot know the body: UNSIGNED-PAYLOAD, unless the client chose
    # to sign an x-amz-content-sha256 header (botocore does when one is present).
    if "x-amz-content-sha256" in signed and _single(hdrs, "x-amz-content-sha256"):
        payload_hash = _single(hdrs, "x-amz-content-sha256") or UNSIGNED_PAYLOAD
    else:
        payload_hash = params.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    payload_mode(payload_hash)
    _check_unsigned_amz_headers(hdrs, signed)

    creq = canonical_request(
        method,
        uri,
        canonical_query_string(query, exclude=("X-Amz-Signature",)),
        hdrs,
        signed,
        payload_hash,
    )
    return AuthRequest(
        kind="query",
        access_key=access_key,
        scope=scope,
        signed_headers=signed,
        signature=signature,
        amz_date=amz_date,
        timestamp=timestamp,
        payload_hash=payload_hash,
        canonical_request=creq,
        expires=expires,
        security_token=params.get("X-Amz-Security-Token"),
    )


# ====================================================================================
# Verification
# ====================================================================================


def _now(now: dt.datetime | float | None) -> dt.datetime:
    if now is None:
        return dt.datetime.fromtimestamp(time.time(), tz=dt.UTC)
    if isinstance(now, dt.datetime):
        return now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(now), tz=dt.UTC)


def check_time(
    auth: AuthRequest, now: dt.datetime | float | None = None, *, max_skew: int = MAX_CLOCK_SKEW
) -> None:
    """Check the request time: clock skew for header auth, expiry for presigned URLs."""
    current = _now(now)
    delta = (current - auth.timestamp).total_seconds()
    if auth.kind == "header":
        if abs(delta) > max_skew:
            raise request_time_too_skewed(auth.amz_date, format_amz_date(current), max_skew * 1000)
        return
    if -delta > max_skew:
        raise S3Error("AccessDenied", "Request is not valid yet")
    expires = auth.expires or 0
    if delta > expires:
        expires_at = auth.timestamp + dt.timedelta(seconds=expires)
        raise request_expired(_iso(expires_at), _iso(current), expires)


def verify(
    auth: AuthRequest,
    secret_key: str,
    now: dt.datetime | float | None = None,
    *,
    max_skew: int = MAX_CLOCK_SKEW,
) -> SigningContext:
    """Verify ``auth``'s signature with the access key's secret and its timing.

    Raises RequestTimeTooSkewed / AccessDenied (expired presigned URL) /
    SignatureDoesNotMatch; on success returns the :class:`SigningContext` the body
    reader needs.
    """
    check_time(auth, now, max_skew=max_skew)
    if auth.scope.date != auth.amz_date[:8]:
        raise _malformed_header(
            "Invalid credential date. Date is not the same as X-Amz-Date.", auth.scope.region
        )
    key = signing_key(secret_key, auth.scope.date, auth.scope.region, auth.scope.service)
    sts = auth.string_to_sign
    expected = hmac_hex(key, sts)
    # Bytes: compare_digest refuses str that is not ASCII.
    if not hmac.compare_digest(expected.encode(),
                               auth.signature.encode("utf-8", "surrogateescape")):
        raise signature_does_not_match(auth.access_key, sts, auth.canonical_request, auth.signature)
    return SigningContext(
        access_key=auth.access_key,
        scope=auth.scope,
        amz_date=auth.amz_date,
        signing_key=key,
        seed_signature=auth.signature,
        payload_hash=auth.payload_hash,
    )


def check_payload_sha256(payload_hash: str, computed_hex: str) -> None:
    """After reading a body sent with a literal ``x-amz-content-sha256``, compare it with
    the digest computed; XAmzContentSHA256Mismatch if they differ. No-op for the
    unsigned and streaming modes (chunk signatures / checksums cover those)."""
    if payload_mode(payload_hash) is not PayloadMode.SHA256:
        return
    if not hmac.compare_digest(payload_hash, computed_hex.lower()):
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            extra={
                "ClientComputedContentSHA256": payload_hash,
                "S3ComputedContentSHA256": computed_hex.lower(),
            },
        )


# ====================================================================================
# Signing (for our own clients, tests and benchmarks)
# ====================================================================================


def sign_request(
    method: str,
    path: str,
    query: QueryInput,
    headers: Mapping[str, str | bytes],
    *,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
    service: str = "s3",
    payload_hash: str | None = None,
    body: bytes | None = None,
    timestamp: dt.datetime | None = None,
    security_token: str | None = None,
) -> SignedRequest:
    """Sign a request with the Authorization header.

    ``path`` is the wire path (percent-encoded) and ``headers`` must include ``host``.
    All headers are signed except hop-by-hop ones. For S3 the ``x-amz-content-sha256``
    header is set to ``payload_hash`` (default: SHA-256 of ``body``). Returns the full
    header set to send plus the signing context (for aws-chunked encoders).
    """
    moment = timestamp or dt.datetime.now(dt.UTC)
    amz_date = format_amz_date(moment)
    out: dict[str, str | bytes] = {
        k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-amz-date")
    }
    if not any(k.lower() == "host" for k in out):
        raise ValueError("headers must include host")
    if payload_hash is None:
        payload_hash = sha256_hex(body or b"")
    out["x-amz-date"] = amz_date
    if service == "s3":
        out = {k: v for k, v in out.items() if k.lower() != "x-amz-content-sha256"}
        out["x-amz-content-sha256"] = payload_hash
    if security_token is not None:
        out["x-amz-security-token"] = security_token
    hdrs = header_multimap(out)
    signed = tuple(sorted(n for n in hdrs if n not in _UNSIGNABLE_HEADERS))
    scope = CredentialScope(amz_date[:8], region, service)
    creq = canonical_request(
        method,
        canonical_uri(path, s3=service == "s3"),
        canonical_query_string(query),
        hdrs,
        signed,
        payload_hash,
    )
    sts = string_to_sign(amz_date, scope, creq)
    key = signing_key(secret_key, scope.date, region, service)
    signature = hmac_hex(key, sts)
    authorization = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    out["Authorization"] = authorization
    ctx = SigningContext(access_key, scope, amz_date, key, signature, payload_hash)
    return SignedRequest(out, authorization, creq, sts, ctx)


def presign_query(
    method: str,
    path: str,
    query: QueryInput,
    headers: Mapping[str, str | bytes],
    *,
    access_key: str,
    secret_key: str,
    expires: int,
    region: str = "us-east-1",
    service: str = "s3",
    timestamp: dt.datetime | None = None,
    security_token: str | None = None,
) -> str:
    """Presign a request: return the full query string (the request's own parameters
    followed by the ``X-Amz-*`` ones and ``X-Amz-Signature``) to put after ``?``.

    ``headers`` lists the headers to sign (at least ``host``); the payload is
    ``UNSIGNED-PAYLOAD`` as S3 presigned URLs use.
    """
    if not 0 <= expires <= MAX_PRESIGNED_EXPIRES:
        raise ValueError("expires must be within 0..604800 seconds")
    moment = timestamp or dt.datetime.now(dt.UTC)
    amz_date = format_amz_date(moment)
    scope = CredentialScope(amz_date[:8], region, service)
    hdrs = header_multimap(headers)
    if "host" not in hdrs:
        raise ValueError("headers must include host")
    signed = tuple(sorted(n for n in hdrs if n not in _UNSIGNABLE_HEADERS))
    pairs = parse_query(query) if isinstance(query, str | bytes) else list(query or [])
    auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", ";".join(signed)),
    ]
    if security_token is not None:
        auth_params.append(("X-Amz-Security-Token", security_token))
    all_pairs = pairs + auth_params
    creq = canonical_request(
        method,
        canonical_uri(path, s3=service == "s3"),
        canonical_query_string(all_pairs),
        hdrs,
        signed,
        UNSIGNED_PAYLOAD,
    )
    key = signing_key(secret_key, scope.date, region, service)
    signature = hmac_hex(key, string_to_sign(amz_date, scope, creq))
    encoded = "&".join(f"{uri_encode(n)}={uri_encode(v)}" for n, v in all_pairs)
    return f"{encoded}&X-Amz-Signature={signature}"
