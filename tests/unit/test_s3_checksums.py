"""Checksums: CRC32/CRC32C/CRC64NVME/SHA vectors, streaming, headers, multipart."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest

from protocols.s3 import checksums
from protocols.s3.checksums import (
    CHECKSUM_ALGORITHMS,
    composite_checksum,
    compute_b64,
    crc_combine,
    full_object_crc,
    make_checksummer,
)
from protocols.s3.errors import S3Error

CHECK = b"123456789"  # the standard CRC check input

RANDOM = os.urandom(100_003)


def test_crc_check_values():
    assert checksums.crc32(CHECK) == 0xCBF43926
    assert checksums.crc32c(CHECK) == 0xE3069283
    assert checksums.crc64nvme(CHECK) == 0xAE8B14860A799888


def test_crc32c_iscsi_vectors():
    # RFC 3720 B.4 test patterns.
    assert checksums.crc32c(bytes(32)) == 0x8A9136AA
    assert checksums.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert checksums.crc32c(bytes(range(32))) == 0x46DD794E
    assert checksums.crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


def test_crcs_are_incremental_and_take_any_buffer():
    a, b = RANDOM[:12345], RANDOM[12345:]
    for func in (checksums.crc32, checksums.crc32c, checksums.crc64nvme):
        assert func(b, func(a)) == func(RANDOM)
        assert func(memoryview(RANDOM)[5:]) == func(bytearray(RANDOM[5:])) == func(RANDOM[5:])


@pytest.mark.parametrize(
    ("algorithm", "data", "expected"),
    [
        ("crc32", b"hello world", "DUoRhQ=="),
        ("crc32", b"", "AAAAAA=="),
        ("crc32c", b"a" * 66560, "sOO8/Q=="),  # AWS's trailing-checksum example
        ("crc32c", b"", "AAAAAA=="),
        ("crc64nvme", CHECK, base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode()),
        ("sha1", b"", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
        ("sha256", b"", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        ("sha256", b"abc", "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="),
        ("md5", b"", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ],
)
def test_base64_digests(algorithm, data, expected):
    assert compute_b64(algorithm, data) == expected
    assert compute_b64(algorithm.upper(), data) == expected


@pytest.mark.parametrize("algorithm", [*CHECKSUM_ALGORITHMS, "md5"])
def test_streaming_update_equals_one_shot(algorithm):
    summer = make_checksummer(algorithm)
    for i in range(0, len(RANDOM), 4099):
        summer.update(memoryview(RANDOM)[i : i + 4099])
    assert summer.b64digest() == compute_b64(algorithm, RANDOM)
    assert summer.algorithm == algorithm
    assert base64.b64decode(summer.b64digest()) == summer.digest()


def test_digest_sizes_and_big_endian_order():
    summer = make_checksummer("crc32")
    summer.update(CHECK)
    assert summer.digest() == bytes.fromhex("cbf43926")
    summer = make_checksummer("crc64nvme")
    summer.update(CHECK)
    assert summer.digest() == bytes.fromhex("ae8b14860a799888")
    assert len(make_checksummer("sha512").digest()) == 64


def test_md5_checksummer_exposes_hex_for_etags():
    summer = make_checksummer("md5")
    summer.update(b"abc")
    assert summer.hexdigest() == hashlib.md5(b"abc").hexdigest()


@pytest.mark.parametrize("algorithm", ["md4", "xxhash64", "", "crc16"])
def test_unknown_algorithms_are_invalid_requests(algorithm):
    with pytest.raises(S3Error) as info:
        make_checksummer(algorithm)
    assert info.value.code == "InvalidRequest"


def test_header_names():
    assert checksums.header_name("CRC32C") == "x-amz-checksum-crc32c"
    assert checksums.algorithm_from_header("X-Amz-Checksum-CRC64NVME") == "crc64nvme"
    assert checksums.algorithm_from_header("x-amz-checksum-sha256") == "sha256"
    assert checksums.algorithm_from_header("x-amz-checksum-type") is None
    assert checksums.algorithm_from_header("x-amz-checksum-algorithm") is None
    assert checksums.algorithm_from_header("content-md5") is None


def test_decode_checksum_validates_base64_and_length():
    assert checksums.decode_checksum("crc32", "DUoRhQ==") == bytes.fromhex("0d4a1185")
    for bad in ("DUoRhQ", "!!!!!!==", "AAAAAAAA", ""):
        with pytest.raises(S3Error) as info:
            checksums.decode_checksum("crc32", bad)
        assert info.value.code == "InvalidRequest"
        assert "x-amz-checksum-crc32" in info.value.message


def test_verify_checksum():
    summer = make_checksummer("crc32")
    summer.update(b"hello world")
    checksums.verify_checksum("crc32", "DUoRhQ==", summer)
    with pytest.raises(S3Error) as info:
        checksums.verify_checksum("crc32", "AAAAAA==", summer)
    assert info.value.code == "BadDigest"
    assert "CRC32" in info.value.message


def test_content_md5():
    digest = hashlib.md5(b"body").digest()
    header = base64.b64encode(digest).decode()
    assert checksums.parse_content_md5(header) == digest
    checksums.verify_content_md5(header, digest)
    with pytest.raises(S3Error) as info:
        checksums.verify_content_md5(header, hashlib.md5(b"other").digest())
    assert info.value.code == "BadDigest"
    for bad in ("not base64!", base64.b64encode(b"short").decode(), ""):
        with pytest.raises(S3Error) as info:
            checksums.parse_content_md5(bad)
        assert info.value.code == "InvalidDigest"


def test_composite_checksum_of_parts():
    parts = [RANDOM[:5000], RANDOM[5000:9000], RANDOM[9000:]]
    digests = [hashlib.sha256(p).digest() for p in parts]
    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert composite_checksum("sha256", digests) == f"{expected}-3"
    crc_digests = [zlib.crc32(p).to_bytes(4, "big") for p in parts]
    assert composite_checksum("crc32", crc_digests) == (
        compute_b64("crc32", b"".join(crc_digests)) + "-3"
    )


@pytest.mark.parametrize(
    ("algorithm", "func"),
    [
        ("crc32", zlib.crc32),
        ("crc32c", checksums.crc32c),
        ("crc64nvme", checksums.crc64nvme),
    ],
)
def test_crc_combine_equals_crc_of_concatenation(algorithm, func):
    a, b = RANDOM[:3333], RANDOM[3333:40000]
    assert crc_combine(algorithm, func(a), func(b), len(b)) == func(a + b)
    assert crc_combine(algorithm, func(a), 0, 0) == func(a)
    assert crc_combine(algorithm, 0, func(b), len(b)) == func(b)


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme"])
def test_full_object_crc_from_parts(algorithm):
    cuts = [0, 1, 1000, 1001, 70_000, len(RANDOM)]
    parts = [RANDOM[cuts[i] : cuts[i + 1]] for i in range(len(cuts) - 1)]
    pairs = []
    for part in parts:
        summer = make_checksummer(algorithm)
        summer.update(part)
        pairs.append((summer.digest(), len(part)))
    assert full_object_crc(algorithm, pairs) == compute_b64(algorithm, RANDOM)


def test_full_object_crc_is_only_for_crcs():
    with pytest.raises(S3Error):
        full_object_crc("sha256", [(b"x" * 32, 1)])


@pytest.mark.parametrize(("algorithm", "kind", "expected"), [
    ("CRC32", "", ("crc32", "COMPOSITE")),
    ("crc32c", "full_object", ("crc32c", "FULL_OBJECT")),
    ("CRC64NVME", "", ("crc64nvme", "FULL_OBJECT")),
    ("CRC64NVME", "FULL_OBJECT", ("crc64nvme", "FULL_OBJECT")),
    ("SHA256", "COMPOSITE", ("sha256", "COMPOSITE")),
    ("", "", ("", "")),
])
def test_multipart_checksum_type_defaults(algorithm, kind, expected):
    assert checksums.multipart_checksum_type(algorithm, kind) == expected


@pytest.mark.parametrize(("algorithm", "kind", "message"), [
    ("SHA1", "FULL_OBJECT", "The FULL_OBJECT checksum type cannot be used with the sha1 "
                            "checksum algorithm."),
    ("CRC64NVME", "COMPOSITE", "The COMPOSITE checksum type cannot be used with the crc64nvme "
                               "checksum algorithm."),
    ("CRC32", "PARTIAL", "Value for x-amz-checksum-type header is invalid."),
    ("", "COMPOSITE", "The x-amz-checksum-type header can only be used with the "
                      "x-amz-checksum-algorithm header."),
])
def test_multipart_checksum_type_refusals(algorithm, kind, message):
    with pytest.raises(S3Error) as info:
        checksums.multipart_checksum_type(algorithm, kind)
    assert (info.value.code, info.value.message) == ("InvalidRequest", message)


def test_parse_object_checksum():
    digest = zlib.crc32(b"x").to_bytes(4, "big")
    b64 = base64.b64encode(digest).decode()
    assert checksums.parse_object_checksum("crc32", b64) == (digest, None)
    assert checksums.parse_object_checksum("crc32", f" {b64}-12 ") == (digest, 12)
    for bad in (f"{b64}-", f"{b64}-0", f"{b64}-x", "AAAA-2", "!!!!!!==", ""):
        with pytest.raises(S3Error) as info:
            checksums.parse_object_checksum("crc32", bad)
        assert info.value.code == "InvalidRequest", bad


def test_check_completion_type():
    checksums.check_completion_type(None, "COMPOSITE")
    checksums.check_completion_type("full_object", "FULL_OBJECT")
    with pytest.raises(S3Error) as info:
        checksums.check_completion_type("COMPOSITE", "FULL_OBJECT")
    assert info.value.code == "BadDigest"
    with pytest.raises(S3Error) as info:
        checksums.check_completion_type("BOTH", "FULL_OBJECT")
    assert info.value.code == "InvalidRequest"
