"""Verifying a parsed SigV4 authentication: time window, signature, payload hash.
"""

import datetime as dt
import hmac
import time

from protocols.s3.errors import (
    S3Error,
    request_expired,
    request_time_too_skewed,
    signature_does_not_match,
)
from protocols.s3.sigv4.canonical import (
    _iso,
    format_amz_date,
    hmac_hex,
    signing_key,
)
from protocols.s3.sigv4.model import (
    MAX_CLOCK_SKEW,
    AuthRequest,
    PayloadMode,
    SigningContext,
    payload_mode,
)
from protocols.s3.sigv4.parse import _malformed_header

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
    if now is None:
        # Seconds since the epoch on both sides: the datetime of now is only
        # needed for an error message (~1 us a request less).
        delta = time.time() - auth.timestamp.timestamp()
        if auth.kind == "header" and abs(delta) <= max_skew:
            return
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


