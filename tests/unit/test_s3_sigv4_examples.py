"""SigV4 against the S3 documentation examples (header and presigned), and clock checks."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from protocols.s3 import sigv4
from protocols.s3.errors import S3Error
from protocols.s3.sigv4 import (
    EMPTY_SHA256,
    AuthRequest,
    parse_request_auth,
    verify,
)
from tests.unit.sigv4_support import (
    AMZ_DATE,
    HOST,
    PRESIGNED_QUERY,
    S3_AKID,
    S3_SECRET,
    S3_TIME,
)

# --- the S3 documentation examples ----------------------------------------------------
WELCOME_SHA256 = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()

S3_EXAMPLES = [
    ("GET Object", "GET", "/test.txt", "",
     [HOST, ("Range", "bytes=0-9"), ("x-amz-content-sha256", EMPTY_SHA256), AMZ_DATE],
     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    ("PUT Object", "PUT", "/test$file.text", "",
     [HOST, ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
      ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
      ("x-amz-content-sha256", WELCOME_SHA256), AMZ_DATE],
     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    ("GET Bucket Lifecycle", "GET", "/", "lifecycle",
     [HOST, ("x-amz-content-sha256", EMPTY_SHA256), AMZ_DATE],
     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ("GET Bucket (List Objects)", "GET", "/", "max-keys=2&prefix=J",
     [HOST, ("x-amz-content-sha256", EMPTY_SHA256), AMZ_DATE],
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ("PUT chunked (seed)", "PUT", "/examplebucket/chunkObject.txt", "",
     [("Host", "s3.amazonaws.com"), AMZ_DATE, ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
      ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
      ("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
      ("Content-Length", "66824")],
     "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"),
    ("PUT chunked with trailer (seed)", "PUT", "/examplebucket/chunkObject.txt", "",
     [("Host", "s3.amazonaws.com"), AMZ_DATE, ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
      ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
      ("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
      ("x-amz-trailer", "x-amz-checksum-crc32c")],
     "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"),
]  # fmt: skip


def _s3_header_auth(method, path, query, headers, signature, *, spaces=False) -> AuthRequest:
    signed = ";".join(sorted(name.lower() for name, _ in headers))
    sep = ", " if spaces else ","
    authz = (
        f"AWS4-HMAC-SHA256 Credential={S3_AKID}/20130524/us-east-1/s3/aws4_request"
        f"{sep}SignedHeaders={signed}{sep}Signature={signature}"
    )
    auth = parse_request_auth(method, path, query, [*headers, ("Authorization", authz)])
    assert auth is not None
    return auth


@pytest.mark.parametrize(
    ("name", "method", "path", "query", "headers", "signature"),
    S3_EXAMPLES,
    ids=[e[0] for e in S3_EXAMPLES],
)
def test_s3_documentation_examples_verify(name, method, path, query, headers, signature):
    auth = _s3_header_auth(method, path, query, headers, signature, spaces=name.startswith("G"))
    assert auth.kind == "header"
    assert auth.access_key == S3_AKID
    ctx = verify(auth, S3_SECRET, S3_TIME + dt.timedelta(minutes=5))
    assert ctx.seed_signature == signature
    assert ctx.signing_key == sigv4.signing_key(S3_SECRET, "20130524", "us-east-1", "s3")


def test_s3_example_canonical_request_is_exact():
    auth = _s3_header_auth(*S3_EXAMPLES[0][1:5], S3_EXAMPLES[0][5])
    assert auth.canonical_request == (
        "GET\n/test.txt\n\n"
        "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        f"x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\n"
        f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
    )
    assert auth.string_to_sign == (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )


def test_s3_example_tampered_header_fails_with_debug_fields():
    _name, method, path, query, headers, signature = S3_EXAMPLES[0]
    tampered = [("Range", "bytes=0-99") if h[0] == "Range" else h for h in headers]
    auth = _s3_header_auth(method, path, query, tampered, signature)
    with pytest.raises(S3Error) as info:
        verify(auth, S3_SECRET, S3_TIME)
    err = info.value
    assert err.code == "SignatureDoesNotMatch"
    assert err.extra["CanonicalRequest"] == auth.canonical_request
    assert err.extra["StringToSign"] == auth.string_to_sign
    assert err.extra["SignatureProvided"] == signature
    assert err.extra["AWSAccessKeyId"] == S3_AKID
    assert S3_SECRET not in "".join(err.extra.values())


def test_s3_presigned_example_verifies_within_its_lifetime():
    auth = parse_request_auth("GET", "/test.txt", PRESIGNED_QUERY, [HOST])
    assert auth is not None and auth.kind == "query"
    assert auth.expires == 86400
    assert auth.payload_hash == "UNSIGNED-PAYLOAD"
    ctx = verify(auth, S3_SECRET, S3_TIME + dt.timedelta(hours=23))
    assert ctx.seed_signature.startswith("aeeed9bb")


def test_s3_presigned_example_expires():
    auth = parse_request_auth("GET", "/test.txt", PRESIGNED_QUERY, [HOST])
    assert auth is not None
    with pytest.raises(S3Error) as info:
        verify(auth, S3_SECRET, S3_TIME + dt.timedelta(seconds=86401))
    err = info.value
    assert (err.code, err.message, err.status) == ("AccessDenied", "Request has expired", 403)
    assert err.extra["X-Amz-Expires"] == "86400"
    assert err.extra["Expires"] == "2013-05-25T00:00:00Z"
    assert err.extra["ServerTime"] == "2013-05-25T00:00:01Z"


def test_s3_presigned_not_yet_valid():
    auth = parse_request_auth("GET", "/test.txt", PRESIGNED_QUERY, [HOST])
    assert auth is not None
    with pytest.raises(S3Error) as info:
        verify(auth, S3_SECRET, S3_TIME - dt.timedelta(hours=1))
    assert info.value.code == "AccessDenied"


def test_presign_query_reproduces_the_s3_example():
    query = sigv4.presign_query(
        "GET",
        "/test.txt",
        "",
        {"host": "examplebucket.s3.amazonaws.com"},
        access_key=S3_AKID,
        secret_key=S3_SECRET,
        expires=86400,
        timestamp=S3_TIME,
    )
    assert query == PRESIGNED_QUERY


def test_s3_presigned_tampered_path_fails():
    auth = parse_request_auth("GET", "/test2.txt", PRESIGNED_QUERY, [HOST])
    assert auth is not None
    with pytest.raises(S3Error) as info:
        verify(auth, S3_SECRET, S3_TIME)
    assert info.value.code == "SignatureDoesNotMatch"


# --- time checks ----------------------------------------------------------------------


def _signed_now(now: dt.datetime, **kwargs) -> AuthRequest:
    signed = sigv4.sign_request(
        "GET",
        "/bucket/key",
        "",
        {"host": "localhost:9000"},
        access_key="AK",
        secret_key="SK",
        timestamp=now,
        **kwargs,
    )
    auth = parse_request_auth("GET", "/bucket/key", "", signed.headers)
    assert auth is not None
    return auth


def test_x_amz_date_of_another_day_is_skew_first_then_malformed():
    # Signed at midnight; X-Amz-Date then changed to another day.
    signed = sigv4.sign_request("GET", "/bucket/key", "", {"host": "localhost:9000"},
                                access_key="AK", secret_key="SK", timestamp=S3_TIME)
    for earlier, code in ((dt.timedelta(days=1), "RequestTimeTooSkewed"),
                          (dt.timedelta(seconds=10), "AuthorizationHeaderMalformed")):
        headers = {**signed.headers, "x-amz-date": sigv4.format_amz_date(S3_TIME - earlier)}
        auth = parse_request_auth("GET", "/bucket/key", "", headers)
        assert auth is not None
        with pytest.raises(S3Error) as info:
            verify(auth, "SK", S3_TIME)
        assert info.value.code == code


def test_clock_skew_within_15_minutes_is_accepted():
    auth = _signed_now(S3_TIME)
    for delta in (-899, 0, 899):
        verify(auth, "SK", S3_TIME + dt.timedelta(seconds=delta))


@pytest.mark.parametrize("delta", [-901, 901, 86400])
def test_clock_skew_beyond_15_minutes_is_refused(delta):
    auth = _signed_now(S3_TIME)
    with pytest.raises(S3Error) as info:
        verify(auth, "SK", S3_TIME + dt.timedelta(seconds=delta))
    err = info.value
    assert err.code == "RequestTimeTooSkewed"
    assert err.status == 403
    assert err.extra["RequestTime"] == "20130524T000000Z"
    assert err.extra["MaxAllowedSkewMilliseconds"] == "900000"


def test_verify_accepts_epoch_seconds_and_naive_datetimes():
    auth = _signed_now(S3_TIME)
    verify(auth, "SK", S3_TIME.timestamp() + 10)
    verify(auth, "SK", S3_TIME.replace(tzinfo=None))
