"""aws-chunked decoding: AWS's signed examples, botocore's unsigned trailers, limits."""

from __future__ import annotations

import io
import time

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from protocols.s3 import chunked
from protocols.s3.checksums import compute_b64
from protocols.s3.chunked import ChunkedDecoder, encode_chunked, iter_encode_chunked
from protocols.s3.errors import S3Error
from protocols.s3.sigv4 import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    CredentialScope,
    SigningContext,
    signing_key,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SCOPE = CredentialScope("20130524", "us-east-1", "s3")
KEY = signing_key(SECRET, "20130524", "us-east-1", "s3")
PAYLOAD = b"a" * 66560


def _ctx(seed: str, payload_hash: str) -> SigningContext:
    return SigningContext(
        "AKIAIOSFODNN7EXAMPLE", SCOPE, "20130524T000000Z", KEY, seed, payload_hash
    )


# From "Signature Calculations for the Authorization Header: Transferring Payload in
# Multiple Chunks" (65 KiB of 'a' in 64 KiB chunks).
EXAMPLE_CTX = _ctx(
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", STREAMING_PAYLOAD
)
EXAMPLE_BODY = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
    b"\r\n" + b"a" * 1024 + b"\r\n"
    b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
)

# From "Signature calculations for trailing headers (chunked uploads)".
TRAILER_CTX = _ctx(
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    STREAMING_PAYLOAD_TRAILER,
)
TRAILER_CHUNK_SIGS = (
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
)
TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
TRAILER_BODY = (
    f"10000;chunk-signature={TRAILER_CHUNK_SIGS[0]}\r\n".encode()
    + b"a" * 65536
    + f"\r\n400;chunk-signature={TRAILER_CHUNK_SIGS[1]}\r\n".encode()
    + b"a" * 1024
    + f"\r\n0;chunk-signature={TRAILER_CHUNK_SIGS[2]}\r\n".encode()
    + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    + f"x-amz-trailer-signature:{TRAILER_SIGNATURE}\r\n\r\n".encode()
)


def _decode(decoder: ChunkedDecoder, body: bytes, step: int | None = None) -> bytes:
    step = step or len(body) or 1
    out: list[bytes] = []
    for i in range(0, len(body), step):
        out.extend(decoder.feed(body[i : i + step]))
    decoder.finish()
    return b"".join(out)


def _error(decoder: ChunkedDecoder, body: bytes, step: int | None = None) -> S3Error:
    with pytest.raises(S3Error) as info:
        _decode(decoder, body, step)
    return info.value


# --- AWS examples -----------------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 2, 7, 86, 87, 1000, 65536, None])
def test_aws_signed_chunk_example_decodes_with_any_split(step):
    decoder = ChunkedDecoder(EXAMPLE_CTX, decoded_length=len(PAYLOAD))
    assert _decode(decoder, EXAMPLE_BODY, step) == PAYLOAD
    assert decoder.done
    assert decoder.decoded_bytes == 66560
    assert decoder.last_signature.startswith("b6c6ea8a")
    assert decoder.trailers == {}


def test_encoder_reproduces_the_aws_example_byte_for_byte():
    assert len(EXAMPLE_BODY) == 66824  # the example's Content-Length
    assert encode_chunked(PAYLOAD, 65536, signing=EXAMPLE_CTX) == EXAMPLE_BODY


def test_chunk_string_to_sign_layout():
    sts = chunked.chunk_string_to_sign(EXAMPLE_CTX, "prev", "cur")
    assert sts == (
        "AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\nprev\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\ncur"
    )


@pytest.mark.parametrize("step", [1, 13, 4096, None])
def test_aws_trailer_example_decodes_and_verifies(step):
    decoder = ChunkedDecoder(TRAILER_CTX)
    assert _decode(decoder, TRAILER_BODY, step) == PAYLOAD
    assert decoder.trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    assert decoder.last_signature == TRAILER_SIGNATURE
    assert compute_b64("crc32c", PAYLOAD) == "sOO8/Q=="


def test_encoder_reproduces_the_aws_trailer_example():
    body = encode_chunked(
        PAYLOAD, 65536, signing=TRAILER_CTX, trailers={"x-amz-checksum-crc32c": "sOO8/Q=="}
    )
    assert body == TRAILER_BODY


def test_trailer_string_to_sign_hashes_canonical_trailers():
    assert chunked.canonical_trailers({"X-Amz-Checksum-CRC32C": " sOO8/Q== "}) == (
        "x-amz-checksum-crc32c:sOO8/Q==\n"
    )
    sts = chunked.trailer_string_to_sign(TRAILER_CTX, "p", {"x-amz-checksum-crc32c": "sOO8/Q=="})
    assert sts.startswith("AWS4-HMAC-SHA256-TRAILER\n20130524T000000Z\n")
    assert sts.split("\n")[3] == "p"


# --- signature failures -----------------------------------------------------------------


def test_tampered_chunk_data_fails():
    body = bytearray(EXAMPLE_BODY)
    body[200] = ord("b")
    err = _error(ChunkedDecoder(EXAMPLE_CTX), bytes(body))
    assert err.code == "SignatureDoesNotMatch"


def test_tampered_chunk_signature_fails():
    body = EXAMPLE_BODY.replace(b"ad80c730", b"ad80c731")
    assert _error(ChunkedDecoder(EXAMPLE_CTX), body).code == "SignatureDoesNotMatch"


def test_wrong_seed_signature_fails():
    ctx = _ctx("0" * 64, STREAMING_PAYLOAD)
    assert _error(ChunkedDecoder(ctx), EXAMPLE_BODY).code == "SignatureDoesNotMatch"


def test_reordered_chunks_fail():
    body = encode_chunked(b"x" * 100 + b"y" * 100, 100, signing=EXAMPLE_CTX)
    first_end = body.index(b"\r\n", body.index(b"x" * 100)) + 2
    second_end = body.index(b"\r\n", body.index(b"y" * 100)) + 2
    swapped = body[first_end:second_end] + body[:first_end] + body[second_end:]
    assert _error(ChunkedDecoder(EXAMPLE_CTX), swapped).code == "SignatureDoesNotMatch"


def test_missing_chunk_signature_in_signed_mode_fails():
    body = b"5\r\nhello\r\n0\r\n\r\n"
    assert _error(ChunkedDecoder(EXAMPLE_CTX), body).code == "SignatureDoesNotMatch"


def test_dropped_final_chunk_signature_fails():
    body = EXAMPLE_BODY.replace(
        b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        b"0",
    )
    assert _error(ChunkedDecoder(EXAMPLE_CTX), body).code == "SignatureDoesNotMatch"


def test_tampered_trailer_value_fails():
    body = TRAILER_BODY.replace(b"sOO8/Q==", b"AAAAAA==")
    assert _error(ChunkedDecoder(TRAILER_CTX), body).code == "SignatureDoesNotMatch"


def test_missing_trailer_signature_fails():
    body = TRAILER_BODY.replace(f"x-amz-trailer-signature:{TRAILER_SIGNATURE}\r\n".encode(), b"")
    assert _error(ChunkedDecoder(TRAILER_CTX), body).code == "SignatureDoesNotMatch"


def test_signed_trailer_round_trip_with_callable_trailers():
    payload = bytes(range(256)) * 300
    body = b"".join(
        iter_encode_chunked(
            [payload[:10000], payload[10000:]],
            signing=TRAILER_CTX,
            trailers=lambda: {"x-amz-checksum-sha256": compute_b64("sha256", payload)},
        )
    )
    decoder = ChunkedDecoder(TRAILER_CTX)
    assert _decode(decoder, body, 999) == payload
    assert decoder.trailers["x-amz-checksum-sha256"] == compute_b64("sha256", payload)


# --- unsigned variants ------------------------------------------------------------------


def test_unsigned_trailer_context_does_not_require_signatures():
    ctx = _ctx("f" * 64, STREAMING_UNSIGNED_PAYLOAD_TRAILER)
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"
    decoder = ChunkedDecoder(ctx, decoded_length=5)
    assert _decode(decoder, body, 3) == b"hello"
    assert decoder.trailers == {"x-amz-checksum-crc32": "NhCmhg=="}
    assert compute_b64("crc32", b"hello") == "NhCmhg=="


@pytest.mark.parametrize("chunk_size", [1, 100, 1024 * 1024])
def test_botocore_aws_chunked_wrapper_output_decodes(chunk_size):
    payload = bytes(range(251)) * 40
    wrapper = AwsChunkedWrapper(
        io.BytesIO(payload), Crc32Checksum, "x-amz-checksum-crc32", chunk_size=chunk_size
    )
    body = wrapper.read()
    decoder = ChunkedDecoder(decoded_length=len(payload))
    assert _decode(decoder, body, 777) == payload
    assert decoder.trailers == {"x-amz-checksum-crc32": compute_b64("crc32", payload)}


def test_botocore_wrapper_without_checksum_decodes():
    wrapper = AwsChunkedWrapper(io.BytesIO(b"abc"), None, chunk_size=2)
    decoder = ChunkedDecoder(trailer=False)
    assert _decode(decoder, wrapper.read()) == b"abc"
    assert decoder.trailers == {}


def test_unsigned_encoder_round_trip_and_chunk_extensions_ignored():
    body = encode_chunked(b"0123456789", 4)
    assert body == b"4\r\n0123\r\n4\r\n4567\r\n2\r\n89\r\n0\r\n\r\n"
    with_ext = b"3;foo=bar\r\nabc\r\n0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n"
    assert _decode(ChunkedDecoder(), with_ext) == b"abc"


def test_uppercase_hex_sizes_and_crlf_inside_data():
    body = b"A\r\n0123456789\r\n4\r\na\r\nb\r\n0\r\n\r\n"
    assert _decode(ChunkedDecoder(), body, 1) == b"0123456789a\r\nb"


def test_missing_closing_blank_line_is_tolerated():
    assert _decode(ChunkedDecoder(), b"3\r\nabc\r\n0\r\n") == b"abc"
    decoder = ChunkedDecoder()
    assert _decode(decoder, b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n") == b"abc"
    assert decoder.trailers == {"x-amz-checksum-crc32": "NSRBwg=="}


def test_signed_trailer_without_closing_line_still_verifies():
    assert _decode(ChunkedDecoder(TRAILER_CTX), TRAILER_BODY[:-2]) == PAYLOAD
    tampered = TRAILER_BODY[:-2].replace(b"sOO8/Q==", b"AAAAAA==")
    assert _error(ChunkedDecoder(TRAILER_CTX), tampered).code == "SignatureDoesNotMatch"


def test_signing_context_must_be_streaming():
    ctx = _ctx("0" * 64, "UNSIGNED-PAYLOAD")
    with pytest.raises(ValueError):
        ChunkedDecoder(ctx)


# --- framing errors and limits ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"3\r\nab",  # cut inside data
        b"3\r\nabc",  # cut before the data's CRLF
        b"3\r\nabc\r\n",  # no final chunk
        b"3\r\nabc\r\n0",  # cut inside the final chunk line
        b"",  # nothing at all
        b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRB",  # cut inside a trailer
    ],
)
def test_truncated_bodies_are_incomplete(body):
    err = _error(ChunkedDecoder(), body)
    assert err.code == "IncompleteBody"
    assert err.status == 400


@pytest.mark.parametrize("line", [b"zz", b"0x10", b"1_0", b" 10", b"-1", b"", b"12345678901234567"])
def test_invalid_chunk_sizes(line):
    err = _error(ChunkedDecoder(), line + b"\r\nabc\r\n0\r\n\r\n")
    assert err.code == "InvalidChunkSizeError"


def test_size_line_must_end_with_crlf():
    assert _error(ChunkedDecoder(), b"3\nabc\r\n0\r\n\r\n").code == "InvalidChunkSizeError"


def test_chunk_larger_than_limit_is_refused_before_reading_it():
    decoder = ChunkedDecoder(max_chunk_size=1024)
    with pytest.raises(S3Error) as info:
        decoder.feed(b"401\r\n")
    assert info.value.code == "InvalidChunkSizeError"
    assert ChunkedDecoder(max_chunk_size=1024).feed(b"400\r\n") == []


def test_endless_size_line_is_refused_without_buffering_it():
    decoder = ChunkedDecoder(max_line_length=128)
    decoder.feed(b"1" * 100)
    with pytest.raises(S3Error) as info:
        decoder.feed(b"1" * 100)
    assert info.value.code == "InvalidChunkSizeError"


def test_data_not_followed_by_crlf():
    assert _error(ChunkedDecoder(), b"3\r\nabcX\n0\r\n\r\n").code == "IncompleteBody"


def test_data_after_the_end_is_refused():
    decoder = ChunkedDecoder()
    decoder.feed(b"0\r\n\r\n")
    assert decoder.done
    with pytest.raises(S3Error) as info:
        decoder.feed(b"junk")
    assert info.value.code == "InvalidRequest"
    with pytest.raises(S3Error):
        ChunkedDecoder().feed(b"0\r\n\r\nextra")


def test_decoded_length_mismatches():
    assert _error(ChunkedDecoder(decoded_length=4), b"3\r\nabc\r\n0\r\n\r\n").code == (
        "IncompleteBody"
    )
    err = _error(ChunkedDecoder(decoded_length=2), b"3\r\nabc\r\n0\r\n\r\n")
    assert err.code == "InvalidRequest"


def test_trailer_limits_and_shape():
    big = b"3\r\nabc\r\n0\r\nx-amz-meta-a:" + b"v" * 2000 + b"\r\n\r\n"
    assert _error(ChunkedDecoder(max_trailer_size=1000), big).code == "MalformedTrailerError"
    long_line = b"0\r\nx-amz-a:" + b"v" * 5000
    assert _error(ChunkedDecoder(), long_line).code == "MalformedTrailerError"
    no_colon = b"0\r\nnot-a-header\r\n\r\n"
    assert _error(ChunkedDecoder(), no_colon).code == "MalformedTrailerError"
    repeated = b"0\r\nx-amz-checksum-crc32:a\r\nx-amz-checksum-crc32:b\r\n\r\n"
    assert _error(ChunkedDecoder(), repeated).code == "MalformedTrailerError"
    bare_lf = b"0\r\nx-amz-checksum-crc32:a\n\r\n"
    assert _error(ChunkedDecoder(), bare_lf).code == "MalformedTrailerError"


def test_trailers_refused_when_the_mode_has_none():
    body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n"
    assert _error(ChunkedDecoder(trailer=False), body).code == "MalformedTrailerError"
    signed = encode_chunked(b"abc", signing=EXAMPLE_CTX)[:-2] + b"x-amz-meta-a:b\r\n\r\n"
    assert _error(ChunkedDecoder(EXAMPLE_CTX), signed).code == "MalformedTrailerError"


def test_min_chunk_size_rule_when_enabled():
    small_first = encode_chunked(b"x" * 20, 10)
    assert _decode(ChunkedDecoder(), small_first) == b"x" * 20
    err = _error(ChunkedDecoder(min_chunk_size=16), small_first)
    assert err.code == "InvalidChunkSizeError"
    # A short last chunk is fine.
    assert _decode(ChunkedDecoder(min_chunk_size=16), encode_chunked(b"x" * 20, 16)) == b"x" * 20


# --- buffers ------------------------------------------------------------------------------


def test_payload_only_input_is_passed_through_without_copy():
    decoder = ChunkedDecoder()
    decoder.feed(b"100000\r\n")  # a 1 MiB chunk
    piece = b"z" * 65536
    out = decoder.feed(piece)
    assert len(out) == 1 and out[0] is piece


def test_bytearray_and_memoryview_inputs():
    body = encode_chunked(b"hello world", 4)
    assert b"".join(ChunkedDecoder().feed(bytearray(body))) == b"hello world"
    assert b"".join(ChunkedDecoder().feed(memoryview(body))) == b"hello world"


def test_large_bodies_decode_in_linear_time():
    payload = b"q" * (32 << 20)
    body = encode_chunked(payload, 1 << 20)
    decoder = ChunkedDecoder(decoded_length=len(payload))
    started = time.perf_counter()
    total = 0
    for i in range(0, len(body), 65536):
        total += sum(len(p) for p in decoder.feed(body[i : i + 65536]))
    decoder.finish()
    assert total == len(payload)
    # Quadratic buffering would take minutes here; linear takes well under a second.
    assert time.perf_counter() - started < 10


def test_expected_trailers_must_match_x_amz_trailer():
    body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n"
    decoder = ChunkedDecoder(expected_trailers=["X-Amz-Checksum-CRC32"])
    assert _decode(decoder, body) == b"abc"
    missing = ChunkedDecoder(expected_trailers=["x-amz-checksum-crc32c"])
    assert _error(missing, body).code == "MalformedTrailerError"
    none_sent = ChunkedDecoder(expected_trailers=["x-amz-checksum-crc32"])
    assert _error(none_sent, b"3\r\nabc\r\n0\r\n\r\n").code == "MalformedTrailerError"
    undeclared = ChunkedDecoder(expected_trailers=[])
    assert _error(undeclared, body).code == "MalformedTrailerError"
