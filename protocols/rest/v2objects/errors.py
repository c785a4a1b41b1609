"""The v2-objects error format (seed 003): ``{"error": {code, message, details}}``.

The document's table names seven codes; every failure maps onto one of them
by HTTP status.  Two statuses the table lacks keep their HTTP meaning: 413
for an upload over the size limit and 503 when storage is briefly
unavailable (the document's retry advice covers every 5xx).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from quart import Response

from protocols.rest.common import ApiError
from storage import errors
from storage.authz import AccessDenied

CODES: dict[int, str] = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

_KIND_STATUS: dict[errors.Kind, int] = {
    errors.Kind.INVALID: 400,
    errors.Kind.FORBIDDEN: 403,
    errors.Kind.QUOTA: 403,
    errors.Kind.NOT_FOUND: 404,
    errors.Kind.CONFLICT: 409,
    errors.Kind.LIMIT: 409,
    errors.Kind.PRECONDITION: 400,
    errors.Kind.RANGE: 400,
    errors.Kind.RATE: 429,
    errors.Kind.UNAVAILABLE: 503,
    errors.Kind.INTERNAL: 500,
}


class V2Error(Exception):
    """An error answer of the v2-objects API."""

    def __init__(self, status: int, message: str, details: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "INVALID_REQUEST")
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})

    def response(self) -> Response:
        """The JSON answer."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return Response(json.dumps({"error": body}, separators=(",", ":")), status=self.status,
                        headers=self.headers, content_type="application/json")


def from_api_error(exc: ApiError) -> V2Error:
    """A shared helper's error (auth, JSON body, NUL refusal) in this format."""
    return V2Error(exc.status, exc.message, headers=exc.headers)


def from_storage(exc: errors.StorageError, details: Mapping[str, Any] | None = None) -> V2Error:
    """A storage-core error in this format."""
    if isinstance(exc, AccessDenied):
        return V2Error(403, "You do not have permission for this bucket.", details)
    if isinstance(exc, errors.ServiceUnavailable):
        return V2Error(503, exc.message, details, {"Retry-After": str(exc.retry_after)})
    status = _KIND_STATUS.get(exc.kind, 500)
    if status == 500:
        return V2Error(500, "We encountered an internal error.")
    return V2Error(status, exc.message, details)
