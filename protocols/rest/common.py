"""What every JSON surface of the web port shares: errors, auth, limits.

Every error leaves as ``{"error": "<Code>", "message": "<text>", "status": N}``
with the same status on the response; nothing ever answers with a traceback.

Client text is checked for NUL at the edge, once (:func:`refuse_nul`, run for
every query parameter and path value by :func:`check_request_params` and for
every decoded id, cursor and JSON string): PostgreSQL cannot store NUL in a
text column and fails the whole statement, which would surface as a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quart import Response, request

from storage import errors
from storage.accounts import AccountInfo
from storage.crypto import constant_time_equals
from storage.ratelimit import RateLimited, RateLimiter, retry_after

JSON_LIMIT = 64 * 1024


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer (compact, UTF-8)."""
    return Response(
        json.dumps(body, separators=(",", ":")), status=status,
        headers=dict(headers or {}), content_type="application/json",
    )


def error_response(exc: ApiError) -> Response:
    """The JSON form of an :class:`ApiError`."""
    return json_response({"error": exc.code, "message": exc.message, "status": exc.status},
                         exc.status, exc.headers)


def refuse_nul(name: str, value: str) -> str:
    """``value``, or a 400 naming ``name`` if it holds a NUL character."""
    if "\x00" in value:
        raise ApiError(400, "InvalidArgument",
                       f"The parameter '{name}' must not contain NUL characters.")
    return value


def check_request_params() -> None:
    """Refuse NUL in any query parameter (name or value) or path value.

    Registered as ``before_request`` on every REST/dashboard blueprint, so no
    handler can forget it.
    """
    for name, value in request.args.items(multi=True):
        refuse_nul(name.replace("\x00", "\\0"), name)  # named printably
        refuse_nul(name, value)
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            refuse_nul(name, value)


def decode_cursor(cursor: str, name: str = "cursor") -> str:
    """The listing marker a ``nextCursor`` stands for ("" for none); 400 if invalid."""
    if not cursor:
        return ""
    try:
        marker = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidArgument", f"The {name} is not valid.") from None
    return refuse_nul(name, marker)


def encode_cursor(marker: str) -> str:
    """The opaque ``nextCursor`` of a listing marker (unpadded url-safe base64)."""
    return base64.urlsafe_b64encode(marker.encode()).decode().rstrip("=")


# How storage errors surface over HTTP/JSON: by kind, and a few by code.
_KIND_STATUS: dict[errors.Kind, int] = {
    errors.Kind.INVALID: 400,
    errors.Kind.FORBIDDEN: 403,
    errors.Kind.NOT_FOUND: 404,
    errors.Kind.CONFLICT: 409,
    errors.Kind.PRECONDITION: 412,
    errors.Kind.RANGE: 416,
    errors.Kind.QUOTA: 403,
    errors.Kind.LIMIT: 409,
    errors.Kind.RATE: 429,
    errors.Kind.UNAVAILABLE: 503,
    errors.Kind.INTERNAL: 500,
}
_CODE_STATUS = {"MethodNotAllowed": 405}


def from_storage(exc: errors.StorageError) -> ApiError:
    """Translate a storage-core error."""
    if isinstance(exc, RateLimited):
        return too_many_requests(exc.retry_after)
    if isinstance(exc, errors.ServiceUnavailable):
        return ApiError(503, exc.code, exc.message, {"Retry-After": str(exc.retry_after)})
    status = _CODE_STATUS.get(exc.code) or _KIND_STATUS[exc.kind]
    if status == 500:
        return ApiError(500, "InternalError", "We encountered an internal error.")
    return ApiError(status, exc.code, exc.message)


def iso(ts: datetime) -> str:
    """``2026-01-15T10:30:00Z``, as the documents show timestamps."""
    if ts.tzinfo is None:  # the database hands back naive UTC on some backends
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def read_json(limit: int = JSON_LIMIT) -> dict[str, Any]:
    """The request's JSON object body (bounded in size); 400 if it is not one."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "PayloadTooLarge", f"The JSON body exceeds {limit} bytes.")
    data = bytearray()
    async for piece in request.body:
        data += piece
        if len(data) > limit:
            raise ApiError(413, "PayloadTooLarge", f"The JSON body exceeds {limit} bytes.")
    try:
        value = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidJSON", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ApiError(400, "InvalidJSON", "The request body must be a JSON object.")
    return value


def string_field(body: Mapping[str, Any], name: str, *, required: bool = True,
                 max_len: int = 1024) -> str:
    """A string member of a JSON body, validated."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, "MissingField", f"The field '{name}' is required.")
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise ApiError(400, "InvalidField", f"The field '{name}' must be a string "
                       f"of at most {max_len} characters.")
    return refuse_nul(name, value)


def too_many_requests(wait: float) -> ApiError:
    """The 429 answer, with Retry-After for a wait of ``wait`` seconds."""
    return ApiError(429, "TooManyRequests",
                    "Rate limit exceeded. Retry after the duration in the Retry-After header.",
                    {"Retry-After": str(retry_after(wait))})


def check_rate(limiter: RateLimiter, key: str) -> None:
    """429 with Retry-After when ``key`` is over its limit."""
    try:
        limiter.check(key)
    except RateLimited as exc:
        raise too_many_requests(exc.retry_after) from None


def client_ip() -> str:
    """The peer address (no proxy headers are trusted).

    Quart puts the connection's address in a ``Remote-Addr`` header over
    whatever a client sent under that name; ``remote_addr`` says so plainly."""
    return request.remote_addr or "unknown"


@dataclass(frozen=True)
class KeyAuth:
    """A request authenticated with an S3 key pair."""

    account: AccountInfo
    access_key: str


async def authenticate_api_key(accounts: Any) -> KeyAuth:
    """Check ``X-API-Key: AK:SK`` or ``Authorization: Bearer AK:SK``.

    The key is looked up in the shared database on every request (no cache),
    so a revoked key stops working at once on every node.
    """
    raw = request.headers.get("X-API-Key", "")
    if not raw:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer":
            raw = token.strip()
    if not raw:
        raise ApiError(401, "Unauthorized",
                       "Authenticate with 'X-API-Key: ACCESS_KEY:SECRET_KEY' or "
                       "'Authorization: Bearer ACCESS_KEY:SECRET_KEY'.")
    access_key, sep, secret = raw.partition(":")
    if not sep or not access_key or not secret or len(raw) > 512:
        raise ApiError(401, "Unauthorized", "The API key must be ACCESS_KEY:SECRET_KEY.")
    found = await accounts.resolve_access_key(access_key)
    # Compare against a dummy secret when the key is unknown, so timing does not
    # tell which access key ids exist.
    expected = found[1] if found else "x" * 40
    if not constant_time_equals(secret, expected) or found is None:
        raise ApiError(401, "Unauthorized", "The API key is invalid or has been revoked.")
    return KeyAuth(account=found[0], access_key=access_key)
