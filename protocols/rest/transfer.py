"""Sending object bytes over the web port, shared by every REST surface: Range
parsing, a download's Content-Disposition, a stream whose first piece is
fetched before the status is sent, and draining an unread request body."""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import trio
from quart import request

from protocols.rest.common import ApiError
from storage import errors
from storage.blobs import ChunkError

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
log = logging.getLogger(__name__)


async def opened_stream(pieces: AsyncIterator[bytes], label: str) -> AsyncIterator[bytes]:
    """``pieces`` with its first piece already fetched, as the S3 GET does.

    Fetching it before the status is sent means a file whose data cannot be
    read (its chunks lost) is answered with an error, not a 200 whose body
    then stops.  A later chunk that fails can only cut the connection, so
    the client sees a short body rather than a silently wrong one.
    """
    try:
        first = await anext(pieces, b"")
    except errors.ServiceUnavailable:
        # Holders unreachable (blobs.ChunkUnavailable is also a ChunkError):
        # the app answers 503 with Retry-After, the data is likely fine.
        await pieces.aclose()
        raise
    except ChunkError as exc:
        await pieces.aclose()
        log.error("REST GET %s: %s", label, exc)
        raise ApiError(500, "InternalError",
                       "The file's data could not be read. Try again later.") from None
    except BaseException:
        await pieces.aclose()
        raise

    async def rest() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for piece in pieces:
                yield piece
        finally:
            await pieces.aclose()

    return rest()


async def drain_body(limit: int = 64 * 1024 * 1024, seconds: float = 10.0) -> bool:
    """Read and drop what is left of the request body; True if it ended."""
    dropped = 0
    with trio.move_on_after(seconds):
        try:
            async for piece in request.body:
                dropped += len(piece)
                if dropped > limit:
                    return False
        except Exception:
            return False
        return True
    return False


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a single ``bytes=`` Range header over ``size``
    bytes; None when it is malformed or not satisfiable (answer 416)."""
    m = _RANGE_RE.match(header.replace(" ", ""))
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        n = int(last)
        if n == 0:
            return None
        return max(size - n, 0), size
    start = int(first)
    stop = size if last == "" else min(int(last) + 1, size)
    if start >= size or stop <= start:
        return None
    return start, stop


def attachment(key: str) -> str:
    """A Content-Disposition that downloads ``key``'s last segment (RFC 6266,
    with an ASCII fallback and the UTF-8 name)."""
    name = posixpath.basename(key) or "file"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
