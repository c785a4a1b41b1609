"""The v1-pro error format (seed 002): ``{status: "error", code, message}``.

Codes are the document's table; every failure maps onto one of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from quart import Response

from storage import errors


class ProError(Exception):
    """An error answer of the v1-pro API."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def ok(body: Mapping[str, Any], status: int = 200) -> Response:
    """A success answer: ``{"status": "ok", ...}``."""
    return Response(json.dumps({"status": "ok", **body}, separators=(",", ":")),
                    status=status, content_type="application/json")


def error_response(exc: ProError) -> Response:
    """The JSON answer of an error."""
    body = {"status": "error", "code": exc.code, "message": exc.message}
    return Response(json.dumps(body, separators=(",", ":")), status=exc.status,
                    headers=exc.headers, content_type="application/json")


def invalid(message: str) -> ProError:
    """400 invalid_request."""
    return ProError(400, "invalid_request", message)


def not_found(message: str = "Task or resource not found.") -> ProError:
    """404 not_found."""
    return ProError(404, "not_found", message)


def from_storage(exc: errors.StorageError) -> ProError:
    """A storage-core error in this format."""
    if isinstance(exc, errors.ServiceUnavailable):
        return ProError(503, "unavailable", "Storage is briefly unavailable; retry shortly.",
                        {"Retry-After": str(exc.retry_after)})
    kind = exc.kind
    if kind == errors.Kind.NOT_FOUND:
        return not_found(exc.message)
    if kind == errors.Kind.QUOTA:
        return ProError(413, "payload_too_large", "The upload exceeds your storage quota.")
    if kind in (errors.Kind.INVALID, errors.Kind.CONFLICT, errors.Kind.PRECONDITION,
                errors.Kind.RANGE, errors.Kind.LIMIT):
        return invalid(exc.message)
    if kind == errors.Kind.FORBIDDEN:
        return ProError(403, "account_unavailable", exc.message)
    if kind == errors.Kind.UNAVAILABLE:
        return ProError(503, "unavailable", exc.message)
    return ProError(500, "server_error", "An unexpected server error occurred.")
