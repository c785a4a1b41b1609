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

The package is split along its seams: :mod:`.model` (constants, payload
modes, parsed authentication), :mod:`.canonical` (primitives and the
canonical request), :mod:`.parse` (header and presigned-query
authentication), :mod:`.verify` (time window, signature, payload hash) and
:mod:`.sign` (signing, for our own clients); everything is re-exported here.
"""

from __future__ import annotations

from protocols.s3.sigv4.canonical import (
    HeaderInput,
    QueryInput,
    WireHeaders,
    canonical_header_value,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    format_amz_date,
    header_multimap,
    hmac_hex,
    parse_amz_date,
    parse_query,
    signing_key,
    uri_encode,
)
from protocols.s3.sigv4.model import (
    ALGORITHM,
    EMPTY_SHA256,
    MAX_CLOCK_SKEW,
    MAX_PRESIGNED_EXPIRES,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    AuthRequest,
    CredentialScope,
    PayloadMode,
    SignedRequest,
    SigningContext,
    payload_mode,
    sha256_hex,
    string_to_sign,
)
from protocols.s3.sigv4.parse import (
    parse_request_auth,
)
from protocols.s3.sigv4.sign import (
    presign_query,
    sign_request,
)
from protocols.s3.sigv4.verify import (
    check_payload_sha256,
    check_time,
    verify,
)

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_CLOCK_SKEW",
    "MAX_PRESIGNED_EXPIRES",
    "STREAMING_PAYLOAD",
    "STREAMING_PAYLOAD_TRAILER",
    "STREAMING_UNSIGNED_PAYLOAD_TRAILER",
    "TERMINATOR",
    "UNSIGNED_PAYLOAD",
    "AuthRequest",
    "CredentialScope",
    "HeaderInput",
    "PayloadMode",
    "QueryInput",
    "SignedRequest",
    "SigningContext",
    "WireHeaders",
    "canonical_header_value",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "check_payload_sha256",
    "check_time",
    "format_amz_date",
    "header_multimap",
    "hmac_hex",
    "parse_amz_date",
    "parse_query",
    "parse_request_auth",
    "payload_mode",
    "presign_query",
    "sha256_hex",
    "sign_request",
    "signing_key",
    "string_to_sign",
    "uri_encode",
    "verify",
]
