"""Reading a request's SigV4 authentication: the Authorization header or the
presigned query (``X-Amz-*`` parameters).
"""

import datetime as dt
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from protocols.s3.errors import (
    S3Error,
    invalid_argument,
)
from protocols.s3.sigv4.canonical import (
    HeaderInput,
    QueryInput,
    WireHeaders,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    format_amz_date,
    header_multimap,
    parse_amz_date,
    parse_query,
)
from protocols.s3.sigv4.model import (
    _CREDENTIAL_FORMAT,
    _UNSIGNED_AMZ_ALLOWED,
    ALGORITHM,
    EMPTY_SHA256,
    MAX_PRESIGNED_EXPIRES,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    AuthRequest,
    CredentialScope,
    payload_mode,
)
from storage.bounded import BoundedMemo

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


# Credentials and SignedHeaders already parsed (the same few values come
# with every request of a client: ~1.5 us a request).  Only values that
# parsed are kept, as the immutable results they gave; a bounded dict.
_PARSED_CREDENTIALS: BoundedMemo[tuple[str, str], tuple[str, CredentialScope]] = (
    BoundedMemo(1024))
_PARSED_SIGNED_HEADERS: BoundedMemo[str, tuple[str, ...]] = BoundedMemo(1024)


def _parse_credential(
    value: str, service: str, on_error: Callable[[str], S3Error]
) -> tuple[str, CredentialScope]:
    parsed = _PARSED_CREDENTIALS.get((value, service))
    if parsed is None:
        parsed = _parse_credential_anew(value, service, on_error)
        _PARSED_CREDENTIALS.keep((value, service), parsed)
    return parsed


def _parse_credential_anew(
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
    parsed = _PARSED_SIGNED_HEADERS.get(value)
    if parsed is None:
        parsed = _parse_signed_headers_anew(value, on_error)
        _PARSED_SIGNED_HEADERS.keep(value, parsed)
    return parsed


def _parse_signed_headers_anew(value: str,
                               on_error: Callable[[str], S3Error]) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in value.split(";"))
    if not value or any(not n for n in names):
        raise on_error("the SignedHeaders are mal-formed.")
    if "host" not in names:
        raise on_error("the SignedHeaders must include host.")
    return names


def _check_unsigned_amz_headers(headers: Mapping[str, list[str]], signed: tuple[str, ...]) -> None:
    missing = [
        name
        for name in headers
        if name.startswith("x-amz-")
        and name not in signed
        and name not in _UNSIGNED_AMZ_ALLOWED
        and not name.startswith("x-amz-checksum-")
    ]
    if missing:
        missing.sort()
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
    headers: HeaderInput | WireHeaders,
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


