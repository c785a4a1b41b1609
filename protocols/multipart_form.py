"""A streaming ``multipart/form-data`` parser (RFC 7578), sans-I/O.

Feed it the request body as it arrives; it returns events: :class:`PartStart`
(the part's name, filename and Content-Type), :class:`PartData` pieces and
:class:`PartEnd`.  It never holds more than one delimiter's length of a part's
content back, so a browser upload of any size streams through in constant
memory.  Malformed framing raises :class:`FormDataError`.

One parser for every protocol: S3's POST Object (protocols/s3/ops/post_object.py)
and the REST form upload (protocols/rest/files.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The most header bytes one part may have (browsers send well under 1 KiB).
MAX_PART_HEADER_BYTES = 8 * 1024
# RFC 2046: a boundary is 1 to 70 characters.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class FormDataError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part begins: its form field name, and for a file its filename."""

    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class PartData:
    """A piece of the current part's content."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part is complete."""


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> str | None:
    """The boundary parameter of a ``multipart/form-data`` Content-Type, or None."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        return None
    for name, value in _PARAM_RE.findall(";" + params):
        if name.lower() == "boundary":
            value = _unquote(value.strip())
            return value if _BOUNDARY_RE.fullmatch(value) else None
    return None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _parse_part_headers(block: bytes) -> PartStart:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormDataError("a part's headers are not UTF-8") from exc
    disposition = content_type = None
    for line in text.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise FormDataError(f"malformed part header line {line[:80]!r}")
        name = name.strip().lower()
        if name == "content-disposition":
            disposition = value.strip()
        elif name == "content-type":
            content_type = value.strip()
    if disposition is None:
        raise FormDataError("a part has no Content-Disposition")
    kind, _, params = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise FormDataError("a part's Content-Disposition is not form-data")
    fields = {n.lower(): _unquote(v.strip()) for n, v in _PARAM_RE.findall(";" + params)}
    if "name" not in fields:
        raise FormDataError("a part has no field name")
    return PartStart(fields["name"], fields.get("filename"), content_type)


class FormParser:
    """Incremental multipart/form-data parser; see the module docstring."""

    def __init__(self, boundary: str, *, max_part_header_bytes: int = MAX_PART_HEADER_BYTES,
                 max_parts: int | None = None):
        if not _BOUNDARY_RE.fullmatch(boundary):
            raise FormDataError("invalid multipart boundary")
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._max_header = max_part_header_bytes
        # None: no limit (S3's form ends at its file part anyway).
        self._max_parts = max_parts
        self._parts = 0
        # A body starts with the delimiter minus its CRLF: pretend one preceded it.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"

    @property
    def done(self) -> bool:
        """The closing delimiter has been seen (whatever follows is epilogue)."""
        return self._state == "epilogue"

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; the events it completes, in order."""
        if self._state == "epilogue":
            return []
        self._buf += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def finish(self) -> None:
        """The body has ended: FormDataError unless it was complete."""
        if self._state != "epilogue":
            raise FormDataError("the body ended before the closing boundary")

    def _step(self, events: list[Event]) -> bool:
        buf, delimiter = self._buf, self._delimiter
        if self._state in ("preamble", "body"):
            at = buf.find(delimiter)
            if at < 0:
                # Keep what could be the start of a delimiter split across feeds.
                keep = len(delimiter) - 1
                if self._state == "body" and len(buf) > keep:
                    events.append(PartData(bytes(buf[:-keep])))
                    del buf[:-keep]
                elif self._state == "preamble" and len(buf) > keep:
                    del buf[:-keep]
                return False
            if self._state == "body":
                if at:
                    events.append(PartData(bytes(buf[:at])))
                events.append(PartEnd())
            del buf[: at + len(delimiter)]
            self._state = "after-delimiter"
            return True
        if self._state == "after-delimiter":
            if buf[:2] == b"--":
                self._state = "epilogue"
                buf.clear()
                return False
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > 256:
                    raise FormDataError("junk after a boundary")
                return False
            if buf[:eol].strip(b" \t"):  # only transport padding may follow a boundary
                raise FormDataError("junk after a boundary")
            del buf[: eol + 2]
            self._state = "headers"
            return True
        # headers
        end = 0 if buf[:2] == b"\r\n" else buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self._max_header:
                raise FormDataError("a part's headers are too large")
            return False
        if end > self._max_header:
            raise FormDataError("a part's headers are too large")
        block = bytes(buf[:end])
        del buf[: end + (2 if end == 0 else 4)]
        self._parts += 1
        if self._max_parts is not None and self._parts > self._max_parts:
            raise FormDataError("too many multipart parts")
        events.append(_parse_part_headers(block))
        self._state = "body"
        return True
