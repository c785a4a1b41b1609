"""Moving object bytes over the web port, shared by every REST surface: a
streamed multipart upload form, Range parsing, a download's
Content-Disposition, a stream whose first piece is fetched before the status
is sent, and draining an unread request body."""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import trio
from quart import request

from protocols.multipart_form import FormDataError, FormParser, PartData, PartEnd, PartStart
from protocols.rest.common import ApiError, refuse_nul
from storage import errors
from storage.blobs import ChunkError

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
log = logging.getLogger(__name__)

# A form field's value (bucket, key, password...) at most; the file is streamed.
FIELD_LIMIT = 4096
# The most parts one upload form may have (the file, its fields and a few spares).
MAX_FORM_PARTS = 64


@dataclass(frozen=True)
class UploadForm:
    """A multipart upload form: its text fields and its one file, stored."""

    fields: dict[str, str]
    stored: Any  # what ``store`` returned for the file part
    file_name: str
    content_type: str


async def read_upload_form(
    boundary: str,
    store: Callable[[AsyncIterator[bytes]], Awaitable[Any]],
    *,
    max_upload: int | None = None,
    fields: Mapping[str, str] | None = None,
    before_file: Callable[[dict[str, str]], Awaitable[None]] | None = None,
) -> UploadForm:
    """Stream the request's multipart form: its file (the part named ``file``)
    goes to ``store`` as it arrives, nothing referenced yet; the other fields
    may come before or after it.

    ``fields`` are defaults (e.g. from the query string) that form fields
    override; ``before_file`` sees the fields read so far just before the file
    is stored (to refuse early); ``max_upload`` bounds the file's bytes.
    """
    try:
        parser = FormParser(boundary, max_parts=MAX_FORM_PARTS)
    except FormDataError as exc:
        raise ApiError(400, "InvalidMultipart", str(exc)) from None
    body = request.body.__aiter__()
    pending: list[Any] = []

    async def next_event() -> Any:
        while not pending:
            try:
                piece = await body.__anext__()
            except StopAsyncIteration:
                parser.finish()
                raise FormDataError("the body ended early") from None
            pending.extend(parser.feed(piece))
        return pending.pop(0)

    async def file_body() -> AsyncIterator[bytes]:
        total = 0
        while not isinstance(e := await next_event(), PartEnd):
            if isinstance(e, PartData):
                total += len(e.data)
                if max_upload is not None and total > max_upload:
                    raise ApiError(413, "PayloadTooLarge",
                                   f"Uploads are limited to {max_upload} bytes.")
                yield e.data

    found = dict(fields or {})
    stored, file_name, part_type = None, "", ""
    try:
        while pending or not parser.done:
            ev = await next_event()
            if not isinstance(ev, PartStart):
                raise FormDataError("unexpected multipart structure")
            if ev.filename is not None or ev.name == "file":
                if ev.name != "file" or stored is not None:
                    raise ApiError(400, "InvalidMultipart",
                                   "Send exactly one file, in the form field 'file'.")
                file_name = posixpath.basename((ev.filename or "").replace("\\", "/"))
                part_type = ev.content_type or ""
                if before_file is not None:
                    await before_file(found)
                stored = await store(file_body())
                continue
            value = bytearray()
            while not isinstance(e := await next_event(), PartEnd):
                value += e.data
                if len(value) > FIELD_LIMIT:
                    raise ApiError(400, "InvalidMultipart", f"Form field '{ev.name}' is too long.")
            found[ev.name] = refuse_nul(ev.name, value.decode("utf-8", "replace"))
    except FormDataError as exc:
        raise ApiError(400, "InvalidMultipart", str(exc)) from None
    if stored is None:
        raise ApiError(400, "MissingFile", "The form has no 'file' field.")
    return UploadForm(found, stored, file_name or "file", part_type)


async def opened_stream(
    pieces: AsyncGenerator[bytes, None], label: str
) -> AsyncIterator[bytes]:
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
