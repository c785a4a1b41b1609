"""The v2-drive error format (seed 004).

Every failure answers ``{"error": {code, message, status, request_id,
doc_url}}`` with one of the document's statuses (400, 401, 403, 404, 429,
500; 503 when storage is briefly unavailable).  Codes used:

=====  ==========================  ==========================================
400    ``invalid_request``         malformed JSON, bad parameter or cursor
400    ``resource_conflict``       a folder or file of that name exists there
401    ``authentication_required`` no ``Authorization: Bearer ...`` header
401    ``invalid_api_key``         unknown or revoked key
401    ``invalid_token``           unknown, expired or revoked OAuth token
403    ``insufficient_scope``      the key or token lacks the endpoint's scope
403    ``forbidden``               a public (read-only) key writing, a suspended
                                   account, another user's profile
403    ``plan_upgrade_required``   audit logs outside Business/Enterprise
403    ``storage_quota_exceeded``  the upload does not fit the quota
404    ``resource_not_found``      no such file, folder, user or route
429    ``rate_limit_exceeded``     past the plan's requests per minute, burst
                                   or concurrent requests
500    ``internal_error``          a bug (logged)
503    ``service_unavailable``     storage briefly unreachable
=====  ==========================  ==========================================

Where the document is silent (409 Conflict is not in its table) a conflict
answers 400, the nearest status it lists.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from quart import Response

from storage import errors

DOC_URL = "https://docs.cloudy.io/errors/"


class DriveError(Exception):
    """An error answer of the v2-drive API."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def request_id() -> str:
    """A new ``req_...`` id (answered in the body and ``X-Request-Id``)."""
    return "req_" + secrets.token_hex(8)


def json_answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None
                ) -> Response:
    """A JSON answer (204 has no body)."""
    if status == 204:
        return Response("", status=204, headers=dict(headers or {}))
    return Response(json.dumps(body, separators=(",", ":")), status=status,
                    headers=dict(headers or {}), content_type="application/json")


def error_response(exc: DriveError, req_id: str) -> Response:
    """The document's error body for ``exc``."""
    body = {"error": {"code": exc.code, "message": exc.message, "status": exc.status,
                      "request_id": req_id, "doc_url": DOC_URL + exc.code}}
    return json_answer(body, exc.status, {**exc.headers, "X-Request-Id": req_id})


def invalid(message: str) -> DriveError:
    """400 invalid_request."""
    return DriveError(400, "invalid_request", message)


def not_found(message: str) -> DriveError:
    """404 resource_not_found."""
    return DriveError(404, "resource_not_found", message)


def forbidden(message: str) -> DriveError:
    """403 forbidden."""
    return DriveError(403, "forbidden", message)


def from_storage(exc: errors.StorageError) -> DriveError:
    """A storage-core error in this format."""
    if isinstance(exc, errors.ServiceUnavailable):
        return DriveError(503, "service_unavailable",
                          "Storage is briefly unavailable; retry shortly.",
                          {"Retry-After": str(exc.retry_after)})
    kind = exc.kind
    if kind == errors.Kind.NOT_FOUND:
        return not_found(exc.message)
    if kind == errors.Kind.QUOTA:
        return DriveError(403, "storage_quota_exceeded", "The upload exceeds your storage quota.")
    if kind == errors.Kind.CONFLICT:
        return DriveError(400, "resource_conflict", exc.message)
    if kind == errors.Kind.FORBIDDEN:
        return forbidden(exc.message)
    if kind == errors.Kind.RATE:
        return DriveError(429, "rate_limit_exceeded", exc.message)
    if kind == errors.Kind.UNAVAILABLE:
        return DriveError(503, "service_unavailable", exc.message)
    if kind in (errors.Kind.INVALID, errors.Kind.PRECONDITION, errors.Kind.RANGE,
                errors.Kind.LIMIT):
        return invalid(exc.message)
    return DriveError(500, "internal_error", "Something went wrong on our end.")
