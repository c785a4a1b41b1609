"""Sans-I/O decoder (and encoder) for S3's ``aws-chunked`` content encoding.

Wire format::

    <hex-size>[;chunk-signature=<sig>]\\r\\n <data> \\r\\n      (repeated)
    0[;chunk-signature=<sig>]\\r\\n                            (final chunk)
    [<name>:<value>\\r\\n ...  [x-amz-trailer-signature:<sig>\\r\\n]]
    \\r\\n

Signed variants chain signatures: each chunk's string to sign names the previous
signature, starting from the request's seed signature, and the trailer signature
follows the final chunk's. Payload bytes are handed out as they arrive, before
their chunk's signature can be checked (the signature covers the whole chunk, and
buffering 16 MiB chunks would cost memory): if :meth:`ChunkedDecoder.feed` or
:meth:`~ChunkedDecoder.finish` raises, the caller must discard the upload.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Mapping

from protocols.s3.errors import S3Error
from protocols.s3.sigv4 import EMPTY_SHA256, SigningContext, hmac_hex, sha256_hex

CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
TRAILER_ALGORITHM = "AWS4-HMAC-SHA256-TRAILER"
TRAILER_SIGNATURE_HEADER = "x-amz-trailer-signature"

DEFAULT_MAX_CHUNK_SIZE = 16 << 20
DEFAULT_MAX_LINE_LENGTH = 4096
DEFAULT_MAX_TRAILER_SIZE = 16 << 10

_HEX_SIZE_RE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")

_SIZE_LINE, _DATA, _DATA_CRLF, _TRAILER, _DONE = range(5)


def chunk_string_to_sign(ctx: SigningContext, previous_signature: str, chunk_sha256: str) -> str:
    """String to sign of one chunk (``AWS4-HMAC-SHA256-PAYLOAD``)."""
    return (
        f"{CHUNK_ALGORITHM}\n{ctx.amz_date}\n{ctx.scope}\n{previous_signature}\n"
        f"{EMPTY_SHA256}\n{chunk_sha256}"
    )


def chunk_signature(ctx: SigningContext, previous_signature: str, data: bytes) -> str:
    """Signature of one chunk's ``data`` chained from ``previous_signature``."""
    return hmac_hex(
        ctx.signing_key, chunk_string_to_sign(ctx, previous_signature, sha256_hex(data))
    )


def canonical_trailers(trailers: Mapping[str, str]) -> str:
    """The trailer block as signed: ``name:value\\n`` per trailer, names lower-cased and
    sorted, values trimmed (the signature header excluded)."""
    items = sorted(
        (name.strip().lower(), value.strip())
        for name, value in trailers.items()
        if name.strip().lower() != TRAILER_SIGNATURE_HEADER
    )
    return "".join(f"{name}:{value}\n" for name, value in items)


def trailer_string_to_sign(
    ctx: SigningContext, previous_signature: str, trailers: Mapping[str, str]
) -> str:
    """String to sign of the trailing headers (``AWS4-HMAC-SHA256-TRAILER``)."""
    return (
        f"{TRAILER_ALGORITHM}\n{ctx.amz_date}\n{ctx.scope}\n{previous_signature}\n"
        f"{sha256_hex(canonical_trailers(trailers))}"
    )


def trailer_signature(
    ctx: SigningContext, previous_signature: str, trailers: Mapping[str, str]
) -> str:
    """Signature of the trailing headers, chained from the final chunk's signature."""
    return hmac_hex(ctx.signing_key, trailer_string_to_sign(ctx, previous_signature, trailers))


def _incomplete(detail: str) -> S3Error:
    return S3Error("IncompleteBody", detail=detail)


def _bad_size(detail: str) -> S3Error:
    return S3Error("InvalidChunkSizeError", detail=detail)


def _bad_trailer(detail: str) -> S3Error:
    return S3Error("MalformedTrailerError", detail=detail)


def _bad_signature(detail: str) -> S3Error:
    return S3Error("SignatureDoesNotMatch", detail=detail)


class ChunkedDecoder:
    """Incremental ``aws-chunked`` decoder: feed raw body bytes, get payload bytes.

    With a :class:`~protocols.s3.sigv4.SigningContext` the payload mode comes from the
    context: ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` verifies every chunk
    signature (and the trailer signature), ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``
    verifies none. Without one (anonymous request) chunks are unsigned and
    ``trailer`` says whether trailers are allowed (None: allowed, not required).

    ``decoded_length`` (``x-amz-decoded-content-length``) is enforced when given, and so
    is ``expected_trailers`` (the names listed in ``x-amz-trailer``): each must arrive,
    and no other.
    ``min_chunk_size`` (S3 uses 8192) rejects non-final chunks smaller than it; off by
    default because botocore's unsigned chunks may be short.
    """

    def __init__(
        self,
        signing: SigningContext | None = None,
        *,
        trailer: bool | None = None,
        decoded_length: int | None = None,
        expected_trailers: Iterable[str] | None = None,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_trailer_size: int = DEFAULT_MAX_TRAILER_SIZE,
        min_chunk_size: int = 0,
    ) -> None:
        if signing is not None:
            mode = signing.payload_mode
            if not mode.is_streaming:
                raise ValueError(f"payload {signing.payload_hash!r} is not aws-chunked")
            self._signed = mode.signed_chunks
            self._trailer_allowed: bool | None = mode.has_trailer
        else:
            self._signed = False
            self._trailer_allowed = trailer
        self._ctx = signing
        self._prev_signature = signing.seed_signature if signing is not None else ""
        self._decoded_length = decoded_length
        self._expected_trailers = (
            None
            if expected_trailers is None
            else frozenset(t.strip().lower() for t in expected_trailers if t.strip())
        )
        self._max_chunk_size = max_chunk_size
        self._max_line = max_line_length
        self._max_trailer = max_trailer_size
        self._min_chunk = min_chunk_size

        self._state = _SIZE_LINE
        self._line = bytearray()
        self._remaining = 0
        self._chunk_signature = ""
        self._hasher: hashlib._Hash | None = None
        self._last_chunk_size: int | None = None
        self._trailer_bytes = 0
        self._trailer_sig: str | None = None
        self.trailers: dict[str, str] = {}
        """Trailing headers (lower-case names), complete once :attr:`done`."""
        self.decoded_bytes = 0
        """Payload bytes produced so far."""

    # --------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """The terminating empty line was seen (and every signature checked)."""
        return self._state == _DONE

    @property
    def last_signature(self) -> str:
        """The latest verified signature of the chain (seed signature at first)."""
        return self._prev_signature

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume raw body bytes; return the payload bytes they complete, in order.

        ``bytes`` input is sliced without extra copies where a whole input is payload.
        Raises S3Error on malformed input or a bad signature.
        """
        if isinstance(data, memoryview):
            data = data.tobytes()
        out: list[bytes] = []
        n = len(data)
        if not n:
            return out
        if self._state == _DONE:
            raise S3Error("InvalidRequest", "Unexpected data after the end of the aws-chunked body")
        view = memoryview(data)
        i = 0
        while i < n:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, n - i)
                piece = view[i : i + take]
                if self._hasher is not None:
                    self._hasher.update(piece)
                if take == n and isinstance(data, bytes):
                    out.append(data)  # the whole input is payload: hand it over as is
                else:
                    out.append(piece.tobytes())
                i += take
                self._remaining -= take
                self.decoded_bytes += take
                if self._decoded_length is not None and self.decoded_bytes > self._decoded_length:
                    raise S3Error(
                        "InvalidRequest",
                        "The aws-chunked body is longer than x-amz-decoded-content-length",
                    )
                if self._remaining == 0:
                    self._end_of_chunk_data()
            elif state == _DATA_CRLF:
                need = 2 - len(self._line)
                self._line += view[i : i + need]
                i += min(need, n - i)
                if len(self._line) == 2:
                    if self._line != b"\r\n":
                        raise _incomplete("chunk data not followed by CRLF")
                    self._line.clear()
                    self._state = _SIZE_LINE
            elif state == _DONE:
                raise S3Error(
                    "InvalidRequest", "Unexpected data after the end of the aws-chunked body"
                )
            else:
                end = data.find(b"\n", i)
                limit = self._max_line
                if end < 0:
                    if len(self._line) + (n - i) > limit:
                        raise self._line_too_long()
                    self._line += view[i:]
                    i = n
                else:
                    if len(self._line) + (end + 1 - i) > limit:
                        raise self._line_too_long()
                    self._line += view[i : end + 1]
                    i = end + 1
                    line = bytes(self._line)
                    self._line.clear()
                    if state == _SIZE_LINE:
                        self._size_line(line)
                    else:
                        self._trailer_line(line)
        return out

    def finish(self) -> None:
        """Declare the end of the body; IncompleteBody if the stream ended early.

        A body that stops right after the final chunk or after a complete trailer line,
        without the closing empty line, is accepted (some clients omit it); signatures
        are still required.
        """
        if self._state == _TRAILER and not self._line:
            self._end_of_trailers()
        if self._state != _DONE:
            raise _incomplete("aws-chunked body ended before its final chunk")
        if self._decoded_length is not None and self.decoded_bytes != self._decoded_length:
            raise _incomplete(
                f"decoded {self.decoded_bytes} bytes, x-amz-decoded-content-length says "
                f"{self._decoded_length}"
            )

    # --------------------------------------------------------------------------------

    def _line_too_long(self) -> S3Error:
        if self._state == _TRAILER:
            return _bad_trailer("trailer line too long")
        return _bad_size("chunk-size line too long")

    def _size_line(self, line: bytes) -> None:
        if not line.endswith(b"\r\n"):
            raise _bad_size("chunk-size line not terminated by CRLF")
        size_text, _, extensions = line[:-2].partition(b";")
        if not _HEX_SIZE_RE.fullmatch(size_text):
            raise _bad_size(f"invalid chunk size {size_text[:32]!r}")
        size = int(size_text, 16)
        if size > self._max_chunk_size:
            raise _bad_size(f"chunk of {size} bytes exceeds {self._max_chunk_size}")
        signature = None
        for ext in extensions.split(b";") if extensions else ():
            name, _, value = ext.partition(b"=")
            if name.strip() == b"chunk-signature":
                signature = value.strip().decode("ascii", "replace").lower()
        if self._signed:
            if signature is None or not _SIGNATURE_RE.fullmatch(signature):
                raise _bad_signature("chunk without a valid chunk-signature")
            self._chunk_signature = signature
        if (
            size
            and self._min_chunk
            and self._last_chunk_size is not None
            and (self._last_chunk_size < self._min_chunk)
        ):
            raise S3Error("InvalidChunkSizeError")
        self._last_chunk_size = size
        if size == 0:
            if self._signed:
                self._check_chunk_signature(EMPTY_SHA256)
            self._state = _TRAILER
            return
        self._remaining = size
        self._hasher = hashlib.sha256() if self._signed else None
        self._state = _DATA

    def _end_of_chunk_data(self) -> None:
        if self._hasher is not None:
            self._check_chunk_signature(self._hasher.hexdigest())
            self._hasher = None
        self._state = _DATA_CRLF

    def _check_chunk_signature(self, chunk_sha256: str) -> None:
        assert self._ctx is not None
        expected = hmac_hex(
            self._ctx.signing_key,
            chunk_string_to_sign(self._ctx, self._prev_signature, chunk_sha256),
        )
        if not hmac.compare_digest(expected, self._chunk_signature):
            raise _bad_signature("chunk signature mismatch")
        self._prev_signature = expected

    def _trailer_line(self, line: bytes) -> None:
        if line == b"\r\n":
            self._end_of_trailers()
            return
        self._trailer_bytes += len(line)
        if self._trailer_bytes > self._max_trailer:
            raise _bad_trailer("trailers too large")
        if not line.endswith(b"\r\n"):
            raise _bad_trailer("trailer line not terminated by CRLF")
        if self._trailer_allowed is False:
            raise _bad_trailer("trailers sent for a payload mode without trailers")
        name_b, sep, value_b = line[:-2].partition(b":")
        name = name_b.decode("latin-1").strip().lower()
        if not sep or not name or any(c in name for c in " \t"):
            raise _bad_trailer("trailer line is not name:value")
        value = value_b.decode("latin-1").strip()
        if name == TRAILER_SIGNATURE_HEADER:
            if self._trailer_sig is not None:
                raise _bad_trailer("repeated trailer signature")
            self._trailer_sig = value.lower()
            return
        if self._trailer_sig is not None:
            raise _bad_trailer("trailer after the trailer signature")
        if name in self.trailers:
            raise _bad_trailer(f"repeated trailer {name}")
        self.trailers[name] = value

    def _end_of_trailers(self) -> None:
        expected = self._expected_trailers
        if expected is not None and set(self.trailers) != expected:
            raise _bad_trailer(
                f"trailers {sorted(self.trailers)} differ from x-amz-trailer {sorted(expected)}"
            )
        signed_trailer = self._signed and self._trailer_allowed
        if signed_trailer and (self.trailers or self._trailer_sig is not None):
            if self._trailer_sig is None:
                raise _bad_signature("signed trailers without x-amz-trailer-signature")
            assert self._ctx is not None
            signature = trailer_signature(self._ctx, self._prev_signature, self.trailers)
            if not hmac.compare_digest(signature, self._trailer_sig):
                raise _bad_signature("trailer signature mismatch")
            self._prev_signature = signature
        self._state = _DONE


# ====================================================================================
# Encoder (for our clients, tests and benchmarks)
# ====================================================================================


def iter_encode_chunked(
    chunks: Iterable[bytes],
    *,
    signing: SigningContext | None = None,
    trailers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
) -> Iterator[bytes]:
    """Encode payload ``chunks`` as ``aws-chunked`` frames.

    With ``signing`` (whose ``seed_signature`` starts the chain) every chunk is signed,
    and trailers too. ``trailers`` may be a callable, evaluated after the last chunk
    (so it can return a checksum of the payload).
    """
    previous = signing.seed_signature if signing is not None else ""

    def header(data: bytes) -> bytes:
        nonlocal previous
        size = f"{len(data):x}"
        if signing is None:
            return f"{size}\r\n".encode()
        previous = chunk_signature(signing, previous, data)
        return f"{size};chunk-signature={previous}\r\n".encode()

    for data in chunks:
        if data:
            yield header(data) + data + b"\r\n"
    final = header(b"")
    values = trailers() if callable(trailers) else trailers
    if not values:
        yield final + b"\r\n"
        return
    block = "".join(f"{name}:{value}\r\n" for name, value in values.items())
    if signing is not None:
        block += f"{TRAILER_SIGNATURE_HEADER}:{trailer_signature(signing, previous, values)}\r\n"
    yield final + block.encode("latin-1") + b"\r\n"


def encode_chunked(
    payload: bytes,
    chunk_size: int = 64 * 1024,
    *,
    signing: SigningContext | None = None,
    trailers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
) -> bytes:
    """Encode ``payload`` as one ``aws-chunked`` body of ``chunk_size`` chunks."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    pieces = (payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size))
    return b"".join(iter_encode_chunked(pieces, signing=signing, trailers=trailers))
