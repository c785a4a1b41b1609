"""S3 error codes and the exception the S3 layer raises.

One exception class, driven by a table of ``code -> (HTTP status, default message)``
so that adding a code is one line. The HTTP layer renders an :class:`S3Error` with
:func:`protocols.s3.xml.render_error` and copies :attr:`S3Error.headers` into the
response.
"""

from __future__ import annotations

from collections.abc import Mapping

# code -> (HTTP status, default message). Messages follow AWS's wording where AWS
# has one, because some clients and test suites match on them.
ERROR_TABLE: dict[str, tuple[int, str]] = {
    # --- authentication / authorization -------------------------------------------
    "AccessDenied": (403, "Access Denied"),
    # A CORS preflight no rule allows (AWS's wording, typo included).
    "CORSResponse": (
        403,
        "CORSResponse: This CORS request is not allowed. This is usually because the "
        "evalution of Origin, request method / Access-Control-Request-Method or "
        "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
    ),
    "InvalidAccessKeyId": (
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (
        400,
        "Error parsing the query-string authentication parameters.",
    ),
    "ExpiredToken": (400, "The provided token has expired."),
    "InvalidToken": (400, "The provided token is malformed or otherwise invalid."),
    "MissingSecurityHeader": (400, "Your request is missing a required header."),
    "QuotaExceeded": (
        403,
        "Upload would exceed your plan's storage quota. Upgrade your plan or delete existing data.",
    ),
    # --- buckets ------------------------------------------------------------------
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "BucketAlreadyExists": (
        409,
        "The requested bucket name is not available. The bucket namespace is shared by "
        "all users of the system. Please select a different name and try again.",
    ),
    "BucketAlreadyOwnedByYou": (
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "TooManyBuckets": (400, "You have attempted to create more buckets than allowed"),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "IllegalLocationConstraintException": (
        400,
        "The location constraint you specified is not allowed for this endpoint.",
    ),
    "IllegalVersioningConfigurationException": (
        400,
        "The versioning configuration specified in the request is invalid.",
    ),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist"),
    "NoSuchCORSConfiguration": (404, "The CORS configuration does not exist"),
    "NoSuchLifecycleConfiguration": (404, "The lifecycle configuration does not exist"),
    "NoSuchTagSet": (404, "The TagSet does not exist"),
    "NoSuchWebsiteConfiguration": (
        404,
        "The specified bucket does not have a website configuration",
    ),
    "ServerSideEncryptionConfigurationNotFoundError": (
        404,
        "The server side encryption configuration was not found",
    ),
    "ObjectLockConfigurationNotFoundError": (
        404,
        "Object Lock configuration does not exist for this bucket",
    ),
    # --- objects and uploads ------------------------------------------------------
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (
        404,
        "The specified multipart upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
    ),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found. The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
    ),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. The parts list must be specified "
        "in order by part number.",
    ),
    "EntityTooSmall": (
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    "EntityTooLarge": (
        400,
        "Your proposed upload exceeds the maximum allowed object size.",
    ),
    "KeyTooLongError": (400, "Your key is too long"),
    "MetadataTooLarge": (
        400,
        "Your metadata headers exceed the maximum allowed metadata size.",
    ),
    "InvalidObjectState": (
        403,
        "The operation is not valid for the current state of the object.",
    ),
    "InvalidStorageClass": (400, "The storage class you specified is not valid"),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    # --- request shape ------------------------------------------------------------
    "InvalidArgument": (400, "Invalid Argument"),
    "BadRequest": (400, "Bad Request"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold"),
    "NotModified": (304, "Not Modified"),
    "MalformedACLError": (
        400,
        "The XML you provided was not well-formed or did not validate against our published "
        "schema.",
    ),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema",
    ),
    "MissingRequestBodyError": (400, "Request Body is empty"),
    "UnexpectedContent": (400, "This request does not support content"),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
    ),
    "InvalidChunkSizeError": (
        400,
        "Only the last chunk is allowed to have a size less than 8192 bytes",
    ),
    "MalformedTrailerError": (
        400,
        "The request contained trailing data that was not well-formed or did not conform "
        "to our published schema.",
    ),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    # --- browser-based uploads (POST Object) -----------------------------------------
    "InvalidPolicyDocument": (
        400,
        "The content of the form does not meet the conditions specified in the policy "
        "document.",
    ),
    "MalformedPOSTRequest": (
        400,
        "The body of your POST request is not well-formed multipart/form-data.",
    ),
    "MaxPostPreDataLengthExceededError": (
        400,
        "Your POST request fields preceding the upload file were too large.",
    ),
    "RequestHeaderSectionTooLarge": (
        400,
        "Your request header section exceeds the maximum allowed size.",
    ),
    "MaxMessageLengthExceeded": (400, "Your request was too big."),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within "
        "the timeout period.",
    ),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "NotImplemented": (
        501,
        "A header you provided implies functionality that is not implemented",
    ),
    # --- server side --------------------------------------------------------------
    "TooManyRequests": (
        429,
        "Rate limit exceeded. Retry after the duration in the Retry-After header.",
    ),
    "SlowDown": (503, "Please reduce your request rate."),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
}

# Statuses whose responses must not carry a body (RFC 9110: 304 has none).
_BODYLESS_STATUSES = frozenset({204, 304})


class S3Error(Exception):
    """An S3 protocol error: an error code, its HTTP status and an XML-renderable message.

    ``extra`` holds additional elements of the ``<Error>`` document (for instance
    ``StringToSign`` and ``CanonicalRequest`` for SignatureDoesNotMatch, or
    ``MinSizeAllowed`` for EntityTooSmall); ``headers`` holds response headers that
    belong with the error (``Retry-After`` for TooManyRequests, ...); ``detail`` is a
    server-side explanation for logs, never sent to the client.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        resource: str | None = None,
        extra: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        known = ERROR_TABLE.get(code)
        if known is None and status is None:
            # An unknown code without a status is a programming error, not a client one.
            raise ValueError(f"unknown S3 error code {code!r}: pass status= explicitly")
        default_status, default_message = known if known is not None else (500, code)
        self.code = code
        self.status = status if status is not None else default_status
        self.message = message if message is not None else default_message
        self.resource = resource
        self.extra: dict[str, str] = {k: str(v) for k, v in (extra or {}).items()}
        self.headers: dict[str, str] = dict(headers or {})
        # For logs only: never rendered, so internals don't leak to clients.
        self.detail = detail
        super().__init__(f"{code}: {self.message}")

    @property
    def has_body(self) -> bool:
        """Whether the error response may carry an XML body (not for 304 Not Modified)."""
        return self.status not in _BODYLESS_STATUSES

    def with_resource(self, resource: str) -> S3Error:
        """Set :attr:`resource` (the path the error applies to) and return ``self``."""
        self.resource = resource
        return self

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, status={self.status})"


def error_status(code: str) -> int:
    """The HTTP status of a known error ``code`` (KeyError if unknown)."""
    return ERROR_TABLE[code][0]


# --- constructors for errors that carry extra fields or a non-default message -------


def access_denied(message: str | None = None) -> S3Error:
    """403 AccessDenied."""
    return S3Error("AccessDenied", message)


def request_expired(expires_at: str, server_time: str, expires_seconds: int) -> S3Error:
    """403 AccessDenied for a presigned URL past its X-Amz-Expires (AWS's wording)."""
    return S3Error(
        "AccessDenied",
        "Request has expired",
        extra={
            "X-Amz-Expires": expires_seconds,
            "Expires": expires_at,
            "ServerTime": server_time,
        },
    )


def signature_does_not_match(
    access_key: str, string_to_sign: str, canonical_request: str, signature_provided: str
) -> S3Error:
    """403 SignatureDoesNotMatch with the debugging fields AWS returns.

    The string to sign and canonical request hold no secret; returning them lets a
    client author compare with what their signer computed.
    """
    return S3Error(
        "SignatureDoesNotMatch",
        extra={
            "AWSAccessKeyId": access_key,
            "StringToSign": _text(string_to_sign),
            "SignatureProvided": _text(signature_provided),
            "StringToSignBytes": _hex_bytes(string_to_sign),
            "CanonicalRequest": _text(canonical_request),
            "CanonicalRequestBytes": _hex_bytes(canonical_request),
        },
    )


def _text(value: str) -> str:
    # A header's non-UTF-8 bytes (kept as surrogates) shown as U+FFFD: the
    # document must be UTF-8; the *Bytes fields keep the exact bytes.
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _hex_bytes(text: str) -> str:
    # surrogateescape: the canonical request keeps a header's non-UTF-8 bytes as they came.
    return " ".join(f"{b:02x}" for b in text.encode("utf-8", "surrogateescape"))


def request_time_too_skewed(request_time: str, server_time: str, max_skew_ms: int) -> S3Error:
    """403 RequestTimeTooSkewed with RequestTime/ServerTime/MaxAllowedSkewMilliseconds."""
    return S3Error(
        "RequestTimeTooSkewed",
        extra={
            "RequestTime": request_time,
            "ServerTime": server_time,
            "MaxAllowedSkewMilliseconds": max_skew_ms,
        },
    )


def invalid_argument(message: str, name: str | None = None, value: str | None = None) -> S3Error:
    """400 InvalidArgument naming the offending argument, as AWS does."""
    extra: dict[str, object] = {}
    if name is not None:
        extra["ArgumentName"] = name
    if value is not None:
        extra["ArgumentValue"] = value
    return S3Error("InvalidArgument", message, extra=extra)


def invalid_encoding_type(value: str) -> S3Error:
    """400 InvalidArgument for an ``encoding-type`` other than ``url`` (AWS's response)."""
    return invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", value)


def entity_too_small(proposed_size: int, min_size_allowed: int) -> S3Error:
    """400 EntityTooSmall for a non-last multipart part under the minimum part size."""
    return S3Error(
        "EntityTooSmall",
        extra={"ProposedSize": proposed_size, "MinSizeAllowed": min_size_allowed},
    )


def entity_too_large(proposed_size: int, max_size_allowed: int) -> S3Error:
    """400 EntityTooLarge with the proposed and the allowed size."""
    return S3Error(
        "EntityTooLarge",
        extra={"ProposedSize": proposed_size, "MaxSizeAllowed": max_size_allowed},
    )


def key_too_long(size: int, max_size: int) -> S3Error:
    """400 KeyTooLongError with the key's UTF-8 size and the limit."""
    return S3Error("KeyTooLongError", extra={"Size": size, "MaxSizeAllowed": max_size})


def too_many_requests(retry_after_seconds: int) -> S3Error:
    """429 TooManyRequests carrying a ``Retry-After`` header."""
    return S3Error("TooManyRequests", headers={"Retry-After": str(max(0, retry_after_seconds))})


def method_not_allowed(method: str, resource_type: str) -> S3Error:
    """405 MethodNotAllowed naming the method and the resource type (OBJECT, BUCKET...)."""
    return S3Error("MethodNotAllowed", extra={"Method": method, "ResourceType": resource_type})


def not_implemented(what: str | None = None) -> S3Error:
    """501 NotImplemented; ``what`` names the unsupported feature in the message."""
    message = None if what is None else f"{what} is not implemented"
    return S3Error("NotImplemented", message)


def malformed_xml(detail: str | None = None) -> S3Error:
    """400 MalformedXML. ``detail`` is kept off the wire (AWS's message is fixed)."""
    return S3Error("MalformedXML", detail=detail)
