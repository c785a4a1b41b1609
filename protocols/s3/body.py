"""Request bodies, streamed and verified as they arrive (:class:`BodyReader`)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping

import trio

from protocols.s3 import checksums as cks
from protocols.s3.chunked import ChunkedDecoder
from protocols.s3.errors import S3Error, invalid_argument
from protocols.s3.request import Request
from protocols.s3.sigv4 import PayloadMode, SigningContext, check_payload_sha256

#: Body pieces at least this large are hashed in a worker thread (a thread
#: hop costs more than hashing anything smaller).
OFFLOAD_HASH_BYTES = 128 * 1024


class BodyReader:
    """Stream a request body's payload, verifying it as it goes.

    Iterating yields payload bytes; the iterator raises at the end (before it
    finishes) if the signed SHA-256, a chunk or trailer signature, an
    ``x-amz-checksum-*`` header or trailer, or the declared length does not
    hold.  :attr:`checksums` then maps each verified algorithm to its base64
    value (what S3 stores and echoes).  A PUT or POST must frame its body
    (MissingContentLength) unless ``require_length`` is False.

    ``checksum_headers`` False: the request's ``x-amz-checksum-*`` headers are
    not about this body (CompleteMultipartUpload's name the object).
    ``compute``: an algorithm whose checksum :attr:`checksums` gets even when
    the client sent none (a part of an upload that has one).
    """

    def __init__(self, req: Request, signing: SigningContext | None, *,
                 require_length: bool = True, checksum_headers: bool = True,
                 compute: str | None = None) -> None:
        self.req = req
        self.mode = signing.payload_mode if signing is not None else PayloadMode.UNSIGNED
        self.declared = req.content_length()
        self.decoder: ChunkedDecoder | None = None
        self.size: int | None = self.declared
        if self.mode.is_streaming:
            raw = req.header("x-amz-decoded-content-length")
            decoded: int | None = None
            if raw is not None:
                if not raw.strip().isdigit():
                    raise invalid_argument(
                        "x-amz-decoded-content-length must be an integer",
                        "x-amz-decoded-content-length",
                    )
                decoded = int(raw.strip())
            elif self.declared is None:
                # Neither length: the upload's size is unknown until its end.
                raise S3Error("MissingContentLength")
            trailer_names = [
                t.strip().lower() for t in req.headers.get("x-amz-trailer", "").split(",")
                if t.strip()
            ]
            self.decoder = ChunkedDecoder(
                signing, decoded_length=decoded,
                expected_trailers=trailer_names if self.mode.has_trailer else None,
            )
            self.size = decoded
        elif require_length and self.declared is None and req.method in ("PUT", "POST"):
            if req.has_framed_body():
                # HTTP chunked framing without aws-chunked's declared length:
                # AWS answers 501 naming the header (observed for SigV2, SigV4
                # and presigned PUTs alike), where other servers answer 411.
                raise S3Error("NotImplemented", extra={"Header": "Transfer-Encoding"})
            raise S3Error("MissingContentLength")
        self._sha = None
        if self.mode is PayloadMode.SHA256:
            self._sha = hashlib.sha256()
        self.payload_hash = signing.payload_hash if signing is not None else ""
        # algorithm -> (checksummer, expected base64 or None when it comes as a trailer)
        self._summers: dict[str, tuple[cks.Checksummer, str | None]] = {}
        for name, value in req.headers.items() if checksum_headers else ():
            alg = cks.algorithm_from_header(name)
            if alg is not None:
                cks.decode_checksum(alg, value)  # InvalidRequest for a malformed value
                self._summers[alg] = (cks.make_checksummer(alg), value.strip())
        if self.decoder is not None and self.mode.has_trailer:
            for name in req.headers.get("x-amz-trailer", "").split(","):
                alg = cks.algorithm_from_header(name.strip())
                if alg is not None and alg not in self._summers:
                    self._summers[alg] = (cks.make_checksummer(alg), None)
        # Computed, checked against nothing: the client did not send it.
        self._computed: dict[str, cks.Checksummer] = {}
        if compute and compute not in self._summers:
            self._computed[compute] = cks.make_checksummer(compute)
        self.checksums: dict[str, str] = {}
        self.received = 0
        # The hex SHA-256 of the whole payload once the iteration checked it
        # against the signed one (None before, and for other payload modes).
        self.verified_sha256: str | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        sha = self._sha
        summers = [s for s, _ in self._summers.values()] + list(self._computed.values())
        decoder = self.decoder
        raw_total = 0

        def digest(piece: bytes) -> None:
            if sha is not None:
                sha.update(piece)
            for summer in summers:
                summer.update(piece)

        hashing = sha is not None or bool(summers)
        async for data in self.req.receive_body():
            raw_total += len(data)
            if self.declared is not None and raw_total > self.declared:
                raise S3Error("IncompleteBody", detail="body longer than Content-Length")
            pieces = decoder.feed(data) if decoder is not None else (data,)
            for piece in pieces:
                if hashing and len(piece) >= OFFLOAD_HASH_BYTES:
                    # Hashing a large piece on the trio thread would stall
                    # every other request of this node meanwhile.
                    await trio.to_thread.run_sync(digest, piece)
                elif hashing:
                    digest(piece)
                self.received += len(piece)
                yield piece
        if self.declared is not None and raw_total != self.declared:
            raise S3Error(
                "IncompleteBody",
                detail=f"received {raw_total} of the declared {self.declared} bytes",
            )
        trailers: Mapping[str, str] = {}
        if decoder is not None:
            decoder.finish()
            trailers = decoder.trailers
        if sha is not None:
            check_payload_sha256(self.payload_hash, sha.hexdigest())
            self.verified_sha256 = self.payload_hash.lower()
        for alg, (summer, expected) in self._summers.items():
            value = expected if expected is not None else trailers.get(f"x-amz-checksum-{alg}")
            if value is None:
                raise S3Error("MalformedTrailerError", detail=f"no trailer for {alg}")
            cks.verify_checksum(alg, value, summer)
            self.checksums[alg] = summer.b64digest()
        for alg, summer in self._computed.items():
            self.checksums[alg] = summer.b64digest()

    async def read_all(self, limit: int) -> bytes:
        """The whole (small) body; MaxMessageLengthExceeded beyond ``limit``."""
        if self.size is not None and self.size > limit:
            raise S3Error("MaxMessageLengthExceeded", detail=f"body over {limit} bytes")
        out = bytearray()
        async for piece in self:
            out += piece
            if len(out) > limit:
                raise S3Error("MaxMessageLengthExceeded", detail=f"body over {limit} bytes")
        return bytes(out)


async def summed(stream: AsyncIterator[bytes], algorithm: str,
                  out: dict[str, str]) -> AsyncIterator[bytes]:
    """``stream`` passed through; its ``algorithm`` checksum lands in ``out`` at the end."""
    summer = cks.make_checksummer(algorithm)
    async for piece in stream:
        if len(piece) >= OFFLOAD_HASH_BYTES:
            await trio.to_thread.run_sync(summer.update, piece)  # as BodyReader does
        else:
            summer.update(piece)
        yield piece
    out[algorithm] = summer.b64digest()
