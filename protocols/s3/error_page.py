"""S3's XML error for requests the HTTP server refuses before the app sees them."""

from __future__ import annotations

import secrets

from protocols.s3 import xml as s3xml
from protocols.s3.errors import S3Error

# What S3 answers for each refusal the HTTP layer can make (S3 sends 400, not
# 431, for a header section too large).
_CODES = {
    400: ("BadRequest", "An error occurred when parsing the HTTP request."),
    431: ("RequestHeaderSectionTooLarge", None),
    500: ("InternalError", None),
}


def s3_error_page(status: int, reason: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Headers and body of the S3 error for an HTTP-level refusal (``status``)."""
    code, message = _CODES.get(status, _CODES[400])
    err = S3Error(code, message)
    err.detail = reason
    request_id = secrets.token_hex(8).upper()
    return (err.status, [("content-type", "application/xml"), ("x-amz-request-id", request_id)],
            s3xml.render_error(err, request_id))
