"""Streaming checksums for S3's ``x-amz-checksum-*`` headers and ``Content-MD5``.

S3 transports every checksum as the base64 of the big-endian digest. CRC32 comes
from zlib; CRC32C and CRC64NVME, and the CRC combination that full-object
multipart checksums need, from ``awscrt`` (the AWS SDKs' own native runtime:
over 10 GB/s here, where the pure-Python CRC64NVME it replaces ran at ~14 MB/s
holding the GIL). Also here: the composite (``<b64>-<N>``) checksum of
multipart uploads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Iterable
from typing import Protocol

from awscrt import checksums as _crt

from protocols.s3.errors import S3Error

CRC_ALGORITHMS = ("crc32", "crc32c", "crc64nvme")
HASH_ALGORITHMS = ("sha1", "sha256", "sha512")
#: Algorithms accepted in ``x-amz-checksum-<alg>`` / ``x-amz-sdk-checksum-algorithm``.
CHECKSUM_ALGORITHMS = CRC_ALGORITHMS + HASH_ALGORITHMS

_DIGEST_SIZES = {
    "crc32": 4,
    "crc32c": 4,
    "crc64nvme": 8,
    "sha1": 20,
    "sha256": 32,
    "sha512": 64,
    "md5": 16,
}


class Checksummer(Protocol):
    """An incremental checksum: feed bytes with :meth:`update`, read the digest."""

    algorithm: str

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` to the checksum."""

    def digest(self) -> bytes:
        """The big-endian digest of everything fed so far."""

    def b64digest(self) -> str:
        """The base64 of :meth:`digest`, as S3 headers carry it."""


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C (Castagnoli), continuing from ``crc``."""
    return _crt.crc32c(data, crc)  # type: ignore[arg-type, unused-ignore]  # any buffer


def crc64nvme(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC64NVME, continuing from ``crc``."""
    return _crt.crc64nvme(data, crc)  # type: ignore[arg-type, unused-ignore]  # any buffer


def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32 (IEEE, as zlib computes it)."""
    return zlib.crc32(data, crc)


# ====================================================================================
# Checksummers
# ====================================================================================


class _CrcChecksummer:
    def __init__(self, algorithm: str, func: Callable[..., int], size: int) -> None:
        self.algorithm = algorithm
        self._func = func
        self._size = size
        self._crc = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._crc = self._func(data, self._crc)

    @property
    def value(self) -> int:
        """The CRC as an integer."""
        return self._crc

    def digest(self) -> bytes:
        return self._crc.to_bytes(self._size, "big")

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


class _HashChecksummer:
    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        # MD5 is an integrity check here (Content-MD5, ETags), not a security primitive.
        self._hash = hashlib.new(algorithm, usedforsecurity=False)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def hexdigest(self) -> str:
        """Lower-case hex digest (S3 ETags are the hex MD5)."""
        return self._hash.hexdigest()

    def b64digest(self) -> str:
        return base64.b64encode(self._hash.digest()).decode("ascii")


def normalize_algorithm(algorithm: str) -> str:
    """Lower-case algorithm name (``CRC32`` -> ``crc32``); InvalidRequest if unsupported."""
    name = algorithm.strip().lower()
    if name not in CHECKSUM_ALGORITHMS and name != "md5":
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            "valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256, SHA512]",
        )
    return name


def make_checksummer(algorithm: str) -> Checksummer:
    """A fresh checksummer for ``algorithm`` (crc32, crc32c, crc64nvme, sha1, sha256,
    sha512 or md5; case-insensitive)."""
    name = normalize_algorithm(algorithm)
    if name == "crc32":
        return _CrcChecksummer(name, crc32, 4)
    if name == "crc32c":
        return _CrcChecksummer(name, crc32c, 4)
    if name == "crc64nvme":
        return _CrcChecksummer(name, crc64nvme, 8)
    return _HashChecksummer(name)


def compute_b64(algorithm: str, data: bytes | bytearray | memoryview) -> str:
    """One-shot base64 checksum of ``data``."""
    summer = make_checksummer(algorithm)
    summer.update(data)
    return summer.b64digest()


def header_name(algorithm: str) -> str:
    """The request/response header of an algorithm: ``x-amz-checksum-crc32``..."""
    return f"x-amz-checksum-{normalize_algorithm(algorithm)}"


def algorithm_from_header(name: str) -> str | None:
    """``x-amz-checksum-crc32`` -> ``crc32``; None for headers that are not checksums.

    ``x-amz-checksum-type``/``-algorithm``/``-mode`` are not checksums and give None.
    """
    lname = name.strip().lower()
    prefix = "x-amz-checksum-"
    if not lname.startswith(prefix):
        return None
    alg = lname[len(prefix) :]
    return alg if alg in CHECKSUM_ALGORITHMS else None


def decode_checksum(algorithm: str, value: str) -> bytes:
    """Decode a base64 checksum header value, checking its length for the algorithm.

    Raises InvalidRequest (AWS: "Value for x-amz-checksum-... header is invalid.").
    """
    name = normalize_algorithm(algorithm)
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _DIGEST_SIZES[name]:
        raise S3Error("InvalidRequest", f"Value for x-amz-checksum-{name} header is invalid.")
    return raw


def verify_checksum(algorithm: str, expected_b64: str, summer: Checksummer) -> None:
    """Compare a client-provided checksum with what was computed; BadDigest if different."""
    expected = decode_checksum(algorithm, expected_b64)
    if expected != summer.digest():
        name = normalize_algorithm(algorithm).upper()
        raise S3Error(
            "BadDigest",
            f"The {name} you specified did not match the calculated checksum.",
        )


def parse_content_md5(value: str) -> bytes:
    """Decode a ``Content-MD5`` header (base64 of 16 bytes); InvalidDigest otherwise."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error("InvalidDigest")
    return raw


def verify_content_md5(value: str, computed_md5: bytes) -> None:
    """Check a ``Content-MD5`` header against the MD5 of the received body."""
    if parse_content_md5(value) != computed_md5:
        raise S3Error("BadDigest")


# ====================================================================================
# Multipart checksums
# ====================================================================================


#: The ``x-amz-checksum-type`` values: how part checksums make the object's.
CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")


def _invalid_type() -> S3Error:
    return S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")


def multipart_checksum_type(algorithm: str, checksum_type: str) -> tuple[str, str]:
    """``(algorithm, type)`` of a new multipart upload from CreateMultipartUpload's
    ``x-amz-checksum-algorithm`` / ``x-amz-checksum-type`` (either may be "").

    As AWS documents the matrix: CRC32 and CRC32C combine either way (COMPOSITE
    by default), CRC64NVME only FULL_OBJECT, the hashes only COMPOSITE; a type
    without an algorithm, an unknown type or a pairing outside the matrix is
    400 InvalidRequest with AWS's messages.  No algorithm gives ``("", "")``.
    """
    kind = checksum_type.strip().upper()
    if kind and kind not in CHECKSUM_TYPES:
        raise _invalid_type()
    if not algorithm.strip():
        if kind:
            raise S3Error("InvalidRequest", "The x-amz-checksum-type header can only be used "
                          "with the x-amz-checksum-algorithm header.")
        return "", ""
    name = normalize_algorithm(algorithm)
    full_only = name == "crc64nvme"
    if (kind == "FULL_OBJECT" and name not in CRC_ALGORITHMS) or (
            kind == "COMPOSITE" and full_only):
        raise S3Error("InvalidRequest", f"The {kind} checksum type cannot be used with the "
                      f"{name} checksum algorithm.")
    return name, kind or ("FULL_OBJECT" if full_only else "COMPOSITE")


def check_completion_type(header: str | None, upload_type: str) -> None:
    """CompleteMultipartUpload's ``x-amz-checksum-type``, if sent, must name the
    upload's type: InvalidRequest for an unknown value, BadDigest (as AWS
    documents) for the other type."""
    if header is None:
        return
    kind = header.strip().upper()
    if kind not in CHECKSUM_TYPES:
        raise _invalid_type()
    if kind != upload_type:
        raise S3Error("BadDigest", f"The upload was created using the {upload_type or 'no'} "
                      f"checksum type, not {kind}.")


def parse_object_checksum(algorithm: str, value: str) -> tuple[bytes, int | None]:
    """An object checksum as CompleteMultipartUpload's ``x-amz-checksum-<alg>`` carries
    it: ``<base64>`` (FULL_OBJECT) or ``<base64>-<parts>`` (COMPOSITE).

    Returns the digest and the part count (None without a suffix).  A value that
    cannot be one (not base64, a digest of the wrong length, a count that is not
    a positive integer) is InvalidRequest, as for any checksum header; whether it
    matches is the caller's BadDigest.
    """
    digest_b64, dash, count = value.strip().partition("-")
    if dash and not (count.isdigit() and int(count) >= 1):
        name = normalize_algorithm(algorithm)
        raise S3Error("InvalidRequest", f"Value for x-amz-checksum-{name} header is invalid.")
    return decode_checksum(algorithm, digest_b64), int(count) if dash else None


def composite_checksum(algorithm: str, part_digests: Iterable[bytes]) -> str:
    """S3's COMPOSITE multipart checksum: checksum of the concatenated part digests,
    base64, suffixed with ``-<number of parts>``."""
    summer = make_checksummer(algorithm)
    count = 0
    for digest in part_digests:
        summer.update(digest)
        count += 1
    return f"{summer.b64digest()}-{count}"


_COMBINE: dict[str, Callable[[int, int, int], int]] = {
    "crc32": _crt.combine_crc32,
    "crc32c": _crt.combine_crc32c,
    "crc64nvme": _crt.combine_crc64nvme,
}


def crc_combine(algorithm: str, crc1: int, crc2: int, len2: int) -> int:
    """CRC of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)`` (zlib's
    crc32_combine, for any of S3's CRCs). Used for FULL_OBJECT multipart checksums."""
    if len2 <= 0:
        return crc1
    return _COMBINE[normalize_algorithm(algorithm)](crc1, crc2, len2)


def full_object_crc(algorithm: str, parts: Iterable[tuple[bytes, int]]) -> str:
    """Base64 CRC of a whole object from its parts' ``(digest, length)`` pairs."""
    name = normalize_algorithm(algorithm)
    if name not in CRC_ALGORITHMS:
        raise S3Error("InvalidRequest", f"{name.upper()} has no full-object combination")
    size = _DIGEST_SIZES[name]
    crc = 0
    for digest, length in parts:
        crc = crc_combine(name, crc, int.from_bytes(digest, "big"), length)
    return base64.b64encode(crc.to_bytes(size, "big")).decode("ascii")
