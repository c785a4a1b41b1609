"""SigV4 constants and models: payload modes, credential scopes, parsed
authentication and the signing context a verified request carries.
"""

import datetime as dt
import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from protocols.s3.errors import (
    S3Error,
    invalid_argument,
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
_HEX_DIGITS = "0123456789abcdef"

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
    # [0-9a-f]{64}, by C string methods: the regex cost ~3,000 instructions.
    if len(payload_hash) == 64 and not payload_hash.strip(_HEX_DIGITS):
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


def sha256_hex(data: bytes | str) -> str:
    """Lower-case hex SHA-256 of ``data`` (str is UTF-8 encoded)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()


def string_to_sign(amz_date: str, scope: CredentialScope | str, canonical_request: str) -> str:
    """``AWS4-HMAC-SHA256\\n<date>\\n<scope>\\n<sha256(canonical request)>``."""
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{sha256_hex(canonical_request)}"


