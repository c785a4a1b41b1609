"""An incremental (sans-I/O) multipart/form-data parser.

Quart's ``request.files`` buffers whole uploads; this parser is fed the body
chunk by chunk and emits events, so a file part can be streamed straight into
the object store with bounded memory.  Limits: header block size, number of
parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.http import parse_options_header


class FormDataError(ValueError):
    """The body is not well-formed multipart/form-data (or breaks a limit)."""


@dataclass(frozen=True)
class PartStart:
    """A part begins: its form field name, file name and content type."""

    name: str
    filename: str | None
    content_type: str


@dataclass(frozen=True)
class PartData:
    """Bytes of the current part's body."""

    data: bytes


@dataclass(frozen=True)
class PartEnd:
    """The current part is complete."""


@dataclass(frozen=True)
class Finished:
    """The closing boundary was seen."""


Event = PartStart | PartData | PartEnd | Finished

_PREAMBLE, _HEADERS, _BODY, _AFTER_DELIM, _DONE = range(5)


class MultipartParser:
    """Feed bytes with :meth:`feed`; get events back."""

    def __init__(self, boundary: str, *, max_header_bytes: int = 16384, max_parts: int = 64):
        if not boundary or len(boundary) > 200:
            raise FormDataError("invalid multipart boundary")
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        # The body starts with the boundary without a preceding CRLF: pretend it had one.
        self._buf = bytearray(b"\r\n")
        self._state = _PREAMBLE
        self._max_header = max_header_bytes
        self._max_parts = max_parts
        self._parts = 0

    @property
    def finished(self) -> bool:
        """True once the closing boundary was parsed."""
        return self._state == _DONE

    def feed(self, data: bytes) -> list[Event]:
        """Parse more of the body."""
        if self._state == _DONE:
            return []  # epilogue is ignored
        self._buf += data
        events: list[Event] = []
        while True:
            if self._state == _PREAMBLE:
                i = self._buf.find(self._delim)
                if i < 0:
                    # Keep only what could still be the start of the delimiter.
                    keep = len(self._delim) - 1
                    if len(self._buf) > keep:
                        del self._buf[: len(self._buf) - keep]
                    if len(self._buf) > 1 << 20:
                        raise FormDataError("no multipart boundary found")
                    return events
                del self._buf[: i + len(self._delim)]
                self._state = _AFTER_DELIM
            elif self._state == _AFTER_DELIM:
                if len(self._buf) < 2:
                    return events
                head = bytes(self._buf[:2])
                if head == b"--":
                    self._state = _DONE
                    self._buf.clear()
                    events.append(Finished())
                    return events
                # Transport padding (spaces/tabs) may precede the CRLF.
                j = self._buf.find(b"\r\n")
                if j < 0:
                    if len(self._buf) > 256:
                        raise FormDataError("malformed multipart boundary line")
                    return events
                if self._buf[:j].strip(b" \t"):
                    raise FormDataError("malformed multipart boundary line")
                del self._buf[: j + 2]
                self._state = _HEADERS
            elif self._state == _HEADERS:
                j = self._buf.find(b"\r\n\r\n")
                if j < 0:
                    if len(self._buf) > self._max_header:
                        raise FormDataError("multipart part headers are too large")
                    return events
                raw = bytes(self._buf[:j])
                del self._buf[: j + 4]
                self._parts += 1
                if self._parts > self._max_parts:
                    raise FormDataError("too many multipart parts")
                events.append(self._start(raw))
                self._state = _BODY
            elif self._state == _BODY:
                i = self._buf.find(self._delim)
                if i < 0:
                    # Everything but a possible partial delimiter at the end is data.
                    safe = len(self._buf) - (len(self._delim) - 1)
                    if safe > 0:
                        events.append(PartData(bytes(self._buf[:safe])))
                        del self._buf[:safe]
                    return events
                if i:
                    events.append(PartData(bytes(self._buf[:i])))
                del self._buf[: i + len(self._delim)]
                events.append(PartEnd())
                self._state = _AFTER_DELIM
            else:  # pragma: no cover
                return events

    def _start(self, raw: bytes) -> PartStart:
        headers: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                raise FormDataError("malformed multipart part header")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode(
                "utf-8", "replace"
            )
        disposition, options = parse_options_header(headers.get("content-disposition", ""))
        if disposition.lower() != "form-data" or "name" not in options:
            raise FormDataError("a multipart part lacks Content-Disposition: form-data; name=")
        return PartStart(
            name=options["name"], filename=options.get("filename"),
            content_type=headers.get("content-type", ""),
        )

    def close(self) -> None:
        """Raise unless the closing boundary was seen (a truncated body)."""
        if self._state != _DONE:
            raise FormDataError("the multipart body ended before its closing boundary")
