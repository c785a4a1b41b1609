"""Cursor pagination of v2-drive: ``limit`` (1-100, default 20) and ``cursor``.

Every list answers ``{data, has_more, next_cursor, total_count}``.  A cursor
is opaque to clients: url-safe base64 of a small JSON object holding the
position after the last item returned (``{"o": offset}`` here), so a bad one
answers 400 invalid_request rather than anything else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from quart import request

from protocols.rest.v2drive.errors import invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def limit_param() -> int:
    """``limit`` of the query (1-100, default 20); 400 otherwise."""
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid(f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return int(raw)


def encode(position: dict[str, Any]) -> str:
    """The cursor of a position."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def offset_param() -> int:
    """The offset the query's ``cursor`` stands for (0 without one); 400 if bad."""
    cursor = request.args.get("cursor", "")
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid("The cursor is not valid.") from None
    offset = value.get("o") if isinstance(value, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid("The cursor is not valid.")
    return offset


def page(items: Sequence[Any], total: int | None = None) -> dict[str, Any]:
    """One page of ``items`` (the whole ordered collection) per the query."""
    limit, offset = limit_param(), offset_param()
    chunk = list(items[offset:offset + limit])
    more = offset + limit < len(items)
    return {"data": chunk, "has_more": more,
            "next_cursor": encode({"o": offset + limit}) if more else None,
            "total_count": len(items) if total is None else total}
