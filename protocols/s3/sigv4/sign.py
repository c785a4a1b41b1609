"""Signing requests (for our own clients, tests and benchmarks).
"""

import datetime as dt
from collections.abc import Mapping

from protocols.s3.sigv4.canonical import (
    QueryInput,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    format_amz_date,
    header_multimap,
    hmac_hex,
    parse_query,
    signing_key,
    uri_encode,
)
from protocols.s3.sigv4.model import (
    _UNSIGNABLE_HEADERS,
    ALGORITHM,
    MAX_PRESIGNED_EXPIRES,
    UNSIGNED_PAYLOAD,
    CredentialScope,
    SignedRequest,
    SigningContext,
    sha256_hex,
    string_to_sign,
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
