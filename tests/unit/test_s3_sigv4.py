"""SigV4 verification and signing: AWS's published vectors, S3 examples, botocore."""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials

from protocols.s3 import sigv4
from protocols.s3.checksums import compute_b64
from protocols.s3.chunked import ChunkedDecoder
from protocols.s3.errors import S3Error
from protocols.s3.sigv4 import (
    EMPTY_SHA256,
    AuthRequest,
    PayloadMode,
    canonical_query_string,
    canonical_uri,
    parse_request_auth,
    verify,
)

# --- the generic aws-sig-v4-test-suite --------------------------------------------------

SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)
SUITE_SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"

# (name, method, path as on the request line, query, extra headers, body, signature)
SUITE_VECTORS = [
    ("get-vanilla", "GET", "/", "", [], b"",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query", "GET", "/", "", [], b"",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", [], b"",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("get-vanilla-query-order-value", "GET", "/", "Param1=value2&Param1=value1", [], b"",
     "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"),
    ("get-vanilla-utf8-query", "GET", "/", "\u1234=bar", [], b"",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
    ("get-unreserved", "GET",
     "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", [], b"",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
    ("get-utf8", "GET", "/\u1234", "", [], b"",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("get-space", "GET", "/example space/", "", [], b"",
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
    ("get-slashes", "GET", "//example//", "", [], b"",
     "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"),
    ("get-slash", "GET", "//", "", [], b"",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-slash-dot-slash", "GET", "/./", "", [], b"",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-slash-pointless-dot", "GET", "/./example", "", [], b"",
     "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"),
    ("get-relative", "GET", "/example/..", "", [], b"",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-relative-relative", "GET", "/example1/example2/../..", "", [], b"",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-header-value-trim", "GET", "/", "",
     [("My-Header1", " value1"), ("My-Header2", '"a   b   c"')], b"",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ("get-header-value-order", "GET", "/", "",
     [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"),
      ("My-Header1", "value2")], b"",
     "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
    ("get-header-key-duplicate", "GET", "/", "",
     [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")], b"",
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
    ("post-vanilla", "POST", "/", "", [], b"",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("post-vanilla-query", "POST", "/", "Param1=value1", [], b"",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    ("post-header-key-case", "POST", "/", "", [], b"",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("post-header-key-sort", "POST", "/", "", [("My-Header1", "value1")], b"",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    ("post-header-value-case", "POST", "/", "", [("My-Header1", "VALUE1")], b"",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
    ("post-x-www-form-urlencoded", "POST", "/", "",
     [("Content-Type", "application/x-www-form-urlencoded")], b"Param1=value1",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
]  # fmt: skip


def _suite_auth(method, path, query, extra, body, signature) -> AuthRequest:
    headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"), *extra]
    signed = ";".join(sorted({name.lower() for name, _ in headers}))
    authz = (
        f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, SignedHeaders={signed}, Signature={signature}"
    )
    auth = parse_request_auth(
        method,
        path,
        query,
        [*headers, ("Authorization", authz)],
        service="service",
        body_sha256=hashlib.sha256(body).hexdigest(),
    )
    assert auth is not None
    return auth


@pytest.mark.parametrize(
    ("name", "method", "path", "query", "extra", "body", "signature"),
    SUITE_VECTORS,
    ids=[v[0] for v in SUITE_VECTORS],
)
def test_generic_suite_vector_verifies(name, method, path, query, extra, body, signature):
    auth = _suite_auth(method, path, query, extra, body, signature)
    ctx = verify(auth, SUITE_SECRET, SUITE_TIME)
    assert ctx.seed_signature == signature
    assert ctx.scope.service == "service"


@pytest.mark.parametrize("forged", ["xyz", "g" * 64, "\u00e9\udce9"])
def test_signature_that_is_not_hex_does_not_match(forged):
    auth = _suite_auth(*SUITE_VECTORS[0][1:6], forged)
    with pytest.raises(S3Error) as info:
        verify(auth, SUITE_SECRET, SUITE_TIME)
    assert info.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("vector", SUITE_VECTORS[:6], ids=[v[0] for v in SUITE_VECTORS[:6]])
def test_generic_suite_vector_rejects_another_secret(vector):
    auth = _suite_auth(*vector[1:])
    with pytest.raises(S3Error) as info:
        verify(auth, SUITE_SECRET.replace("K", "k"), SUITE_TIME)
    assert info.value.code == "SignatureDoesNotMatch"
    assert info.value.status == 403


def test_suite_canonical_request_and_string_to_sign_of_query_order():
    auth = _suite_auth("GET", "/", "Param2=value2&Param1=value1", [], b"", "0" * 64)
    assert auth.canonical_request == (
        "GET\n/\nParam1=value1&Param2=value2\n"
        "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        f"host;x-amz-date\n{EMPTY_SHA256}"
    )
    assert auth.string_to_sign.startswith(
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
    )
    assert auth.string_to_sign.endswith(hashlib.sha256(auth.canonical_request.encode()).hexdigest())


def test_suite_header_trim_canonical_lines():
    auth = _suite_auth(
        "GET", "/", "", [("My-Header1", " value1"), ("My-Header2", '"a   b   c"')], b"", "0" * 64
    )
    assert 'my-header1:value1\nmy-header2:"a b c"\n' in auth.canonical_request


def test_suite_session_token_vector():
    token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
    signature = "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("X-Amz-Security-Token", token),
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, "
            f"SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={signature}",
        ),
    ]
    auth = parse_request_auth("GET", "/", "", headers, service="service")
    assert auth is not None and auth.security_token == token
    assert verify(auth, SUITE_SECRET, SUITE_TIME).seed_signature == signature


def test_signing_key_derivation_matches_aws_documentation():
    key = sigv4.signing_key(SUITE_SECRET, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    sts = (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    )
    assert sigv4.hmac_hex(key, sts) == (
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


# --- canonical forms ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "s3", "generic"),
    [
        ("", "/", "/"),
        ("/", "/", "/"),
        ("/test$file.text", "/test%24file.text", "/test%24file.text"),
        ("/example space/", "/example%20space/", "/example%20space/"),
        ("/a%20b", "/a%20b", "/a%2520b"),  # S3 encodes once, other services twice
        ("/a+b", "/a%2Bb", "/a%2Bb"),
        ("/a%2bb", "/a%2Bb", "/a%252bb"),
        ("/%E1%88%B4", "/%E1%88%B4", "/%25E1%2588%25B4"),
        ("/\u1234", "/%E1%88%B4", "/%E1%88%B4"),
        ("/a/../b", "/a/../b", "/b"),  # S3 keys may hold dot segments
        ("//x//y", "//x//y", "/x/y"),
        ("/~tilde/-_.", "/~tilde/-_.", "/~tilde/-_."),
    ],
)
def test_canonical_uri_s3_and_generic(raw, s3, generic):
    assert canonical_uri(raw, s3=True) == s3
    assert canonical_uri(raw, s3=False) == generic


def test_canonical_uri_accepts_raw_bytes_paths():
    assert canonical_uri(b"/dir/\xc3\xbc x", s3=True) == "/dir/%C3%BC%20x"
    assert canonical_uri(b"/k%C3%BC", s3=True) == "/k%C3%BC"


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("Param2=value2&Param1=value1", "Param1=value1&Param2=value2"),
        ("a=10&a=9", "a=10&a=9"),  # byte order, not numeric
        ("x=a.b&x=a%2Fb", "x=a%2Fb&x=a.b"),
        ("a=1&a=1", "a=1&a=1"),
        ("q=a+b", "q=a%2Bb"),
        ("q=a%20b", "q=a%20b"),
        ("b&a=1", "a=1&b="),
        ("a=1=2", "a=1%3D2"),
        ("acl", "acl="),
        ("&&x=1&", "x=1"),
        ("prefix=%7Etilde&list-type=2", "list-type=2&prefix=~tilde"),
        ("k=%E1%88%B4", "k=%E1%88%B4"),
    ],
)
def test_canonical_query_string(query, canonical):
    assert canonical_query_string(query) == canonical


def test_canonical_query_string_from_pairs_and_exclusion():
    pairs = [("prefix", "a b/c"), ("X-Amz-Signature", "abc"), ("delimiter", "/")]
    assert canonical_query_string(pairs, exclude=("X-Amz-Signature",)) == (
        "delimiter=%2F&prefix=a%20b%2Fc"
    )


def test_parse_query_keeps_plus_and_blank_values():
    assert sigv4.parse_query("a=1+2&b&c=%20") == [("a", "1+2"), ("b", ""), ("c", " ")]


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (EMPTY_SHA256, PayloadMode.SHA256),
        ("UNSIGNED-PAYLOAD", PayloadMode.UNSIGNED),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", PayloadMode.STREAMING_SIGNED),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", PayloadMode.STREAMING_SIGNED_TRAILER),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", PayloadMode.STREAMING_UNSIGNED_TRAILER),
    ],
)
def test_payload_mode_classification(value, mode):
    assert sigv4.payload_mode(value) is mode
    assert mode.is_streaming == value.startswith("STREAMING")
    assert mode.signed_chunks == value.startswith("STREAMING-AWS4-HMAC")
    assert mode.has_trailer == value.endswith("TRAILER")


@pytest.mark.parametrize("value", ["", "abc", EMPTY_SHA256.upper(), "STREAMING-PAYLOAD"])
def test_payload_mode_rejects_unknown_values(value):
    with pytest.raises(S3Error) as info:
        sigv4.payload_mode(value)
    assert info.value.code == "InvalidArgument"
    assert info.value.extra["ArgumentName"] == "x-amz-content-sha256"


def test_payload_mode_sigv4a_streaming_is_not_implemented():
    with pytest.raises(S3Error) as info:
        sigv4.payload_mode("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")
    assert info.value.status == 501


# --- the S3 documentation examples ----------------------------------------------------

S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_AKID = "AKIAIOSFODNN7EXAMPLE"
S3_TIME = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
WELCOME_SHA256 = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
HOST = ("Host", "examplebucket.s3.amazonaws.com")
AMZ_DATE = ("x-amz-date", "20130524T000000Z")

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


PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


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


# --- parse errors ---------------------------------------------------------------------

GOOD_SIG = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
BASE_HEADERS = [HOST, ("x-amz-content-sha256", EMPTY_SHA256), AMZ_DATE]


def _with_auth(value: str, headers=BASE_HEADERS):
    return [*headers, ("Authorization", value)]


def _expect(code: str, *args, **kwargs) -> S3Error:
    with pytest.raises(S3Error) as info:
        parse_request_auth(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value


def test_anonymous_request_has_no_auth():
    assert parse_request_auth("GET", "/b/k", "versionId=1", [HOST]) is None


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3,SignedHeaders=host,Signature="
        + GOOD_SIG,
        "AWS4-HMAC-SHA256 Credential=AK/2013052/us-east-1/s3/aws4_request,SignedHeaders=host,"
        "Signature=" + GOOD_SIG,
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws5_request,SignedHeaders=host,"
        "Signature=" + GOOD_SIG,
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/iam/aws4_request,SignedHeaders=host,"
        "Signature=" + GOOD_SIG,
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,Signature=" + GOOD_SIG,
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=x-amz-date,Signature=" + GOOD_SIG,
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,"
        "Signature=" + GOOD_SIG + ",Extra=1",
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,"
        "SignedHeaders=host,Signature=" + GOOD_SIG,
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;;x,"
        "Signature=" + GOOD_SIG,
    ],
    ids=[
        "short-scope",
        "bad-date",
        "bad-terminator",
        "wrong-service",
        "no-signed-headers",
        "host-not-signed",
        "unknown-component",
        "repeated-component",
        "empty-signed-header",
    ],
)
def test_malformed_authorization_header(authorization):
    err = _expect("AuthorizationHeaderMalformed", "GET", "/", "", _with_auth(authorization))
    assert err.status == 400


def test_unsupported_authorization_schemes():
    err = _expect("InvalidRequest", "GET", "/", "", _with_auth("AWS AKID:c2lnbmF0dXJl"))
    assert "AWS4-HMAC-SHA256" in err.message
    err = _expect("InvalidArgument", "GET", "/", "", _with_auth("Bearer abc"))
    assert err.extra["ArgumentName"] == "Authorization"
    _expect("InvalidRequest", "GET", "/", "AWSAccessKeyId=AK&Signature=x&Expires=1", [HOST])


def test_two_authorization_mechanisms_are_refused():
    authz = (
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,"
        "Signature=" + GOOD_SIG
    )
    err = _expect("InvalidArgument", "GET", "/", PRESIGNED_QUERY, _with_auth(authz))
    assert "Only one auth mechanism" in err.message


def _authz(signed="host;x-amz-content-sha256;x-amz-date"):
    return (
        f"AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={signed},Signature={GOOD_SIG}"
    )


def test_missing_content_sha256_header_is_invalid_request():
    err = _expect("InvalidRequest", "GET", "/", "", [HOST, AMZ_DATE, ("Authorization", _authz())])
    assert "x-amz-content-sha256" in err.message


def test_invalid_content_sha256_value():
    headers = [HOST, AMZ_DATE, ("x-amz-content-sha256", "nope"), ("Authorization", _authz())]
    _expect("InvalidArgument", "GET", "/", "", headers)


def test_missing_date_is_access_denied():
    headers = [HOST, ("x-amz-content-sha256", EMPTY_SHA256), ("Authorization", _authz())]
    err = _expect("AccessDenied", "GET", "/", "", headers)
    assert "Date" in err.message


def test_invalid_amz_date_is_access_denied():
    headers = [HOST, ("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", "2013-05-24")]
    _expect("AccessDenied", "GET", "/", "", [*headers, ("Authorization", _authz())])


def test_date_header_is_used_without_x_amz_date():
    headers = [
        HOST,
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("Authorization", _authz("date;host;x-amz-content-sha256")),
    ]
    auth = parse_request_auth("GET", "/", "", headers)
    assert auth is not None
    assert auth.amz_date == "20130524T000000Z"
    assert auth.timestamp == S3_TIME


def test_unsigned_amz_headers_are_refused():
    headers = [*BASE_HEADERS, ("x-amz-meta-evil", "1"), ("x-amz-copy-source", "/other/secret")]
    err = _expect("AccessDenied", "PUT", "/b/k", "", [*headers, ("Authorization", _authz())])
    assert err.extra["HeadersNotSigned"] == "x-amz-copy-source, x-amz-meta-evil"


def test_unsigned_integrity_headers_are_tolerated():
    headers = [
        *BASE_HEADERS,
        ("x-amz-checksum-crc32", "DUoRhQ=="),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ("User-Agent", "curl"),
    ]
    auth = parse_request_auth("PUT", "/b/k", "", [*headers, ("Authorization", _authz())])
    assert auth is not None


def test_multiple_authorization_headers_are_malformed():
    headers = [*BASE_HEADERS, ("Authorization", _authz()), ("Authorization", _authz())]
    _expect("AuthorizationHeaderMalformed", "GET", "/", "", headers)


def _presigned(**overrides: str) -> str:
    params = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AK/20130524/us-east-1/s3/aws4_request",
        "X-Amz-Date": "20130524T000000Z",
        "X-Amz-Expires": "3600",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": GOOD_SIG,
    }
    params.update(overrides)
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v != "DROP")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"X-Amz-Expires": "604801"}, "less than a week"),
        ({"X-Amz-Expires": "-1"}, "non-negative"),
        ({"X-Amz-Expires": "soon"}, "number"),
        ({"X-Amz-Expires": "DROP"}, "requires"),
        ({"X-Amz-Signature": "DROP"}, "requires"),
        ({"X-Amz-SignedHeaders": "DROP"}, "requires"),
        ({"X-Amz-Date": "20130524"}, "ISO8601"),
        ({"X-Amz-Algorithm": "AWS4-HMAC-SHA512"}, "only supports"),
        ({"X-Amz-Credential": "AK/20130524/us-east-1/s3"}, "Credential"),
        ({"X-Amz-Credential": "AK/20130525/us-east-1/s3/aws4_request"}, "Date"),
        ({"X-Amz-SignedHeaders": "content-type"}, "host"),
    ],
)
def test_presigned_parameter_errors(overrides, fragment):
    err = _expect("AuthorizationQueryParametersError", "GET", "/k", _presigned(**overrides), [HOST])
    assert fragment in err.message
    assert err.status == 400


def test_presigned_max_expiry_is_accepted():
    auth = parse_request_auth("GET", "/k", _presigned(**{"X-Amz-Expires": "604800"}), [HOST])
    assert auth is not None and auth.expires == 604800


def test_presigned_repeated_parameter_is_refused():
    query = _presigned() + "&X-Amz-Expires=10"
    _expect("AuthorizationQueryParametersError", "GET", "/k", query, [HOST])


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


# --- signer round trips ---------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "garage", "mars-north-7"])
def test_any_region_in_the_scope_is_accepted(region):
    signed = sigv4.sign_request(
        "PUT",
        "/bucket/dir/file%20name.txt",
        "x-id=PutObject",
        {"host": "s3.local", "content-type": "text/plain"},
        access_key="AK",
        secret_key="SK",
        region=region,
        body=b"hello",
        timestamp=S3_TIME,
    )
    auth = parse_request_auth(
        "PUT", "/bucket/dir/file%20name.txt", "x-id=PutObject", signed.headers
    )
    assert auth is not None and auth.scope.region == region
    ctx = verify(auth, "SK", S3_TIME)
    assert ctx.signing_key == sigv4.signing_key("SK", "20130524", region, "s3")
    assert ctx.payload_hash == hashlib.sha256(b"hello").hexdigest()
    assert signed.context.seed_signature == ctx.seed_signature


def test_sign_request_with_query_pairs_unsigned_payload_and_token():
    signed = sigv4.sign_request(
        "GET",
        "/b",
        [("list-type", "2"), ("prefix", "a b+c")],
        {"Host": "s3.local"},
        access_key="AK",
        secret_key="SK",
        payload_hash="UNSIGNED-PAYLOAD",
        timestamp=S3_TIME,
        security_token="tok",
    )
    assert "x-amz-security-token" in signed.authorization
    raw_query = "list-type=2&prefix=a%20b%2Bc"
    auth = parse_request_auth("GET", "/b", raw_query, signed.headers)
    assert auth is not None and auth.security_token == "tok"
    assert auth.payload_mode is PayloadMode.UNSIGNED
    verify(auth, "SK", S3_TIME)
    # A different prefix is a different request.
    other = parse_request_auth("GET", "/b", "list-type=2&prefix=a%20b", signed.headers)
    assert other is not None
    with pytest.raises(S3Error):
        verify(other, "SK", S3_TIME)


def test_sign_request_requires_host():
    with pytest.raises(ValueError):
        sigv4.sign_request("GET", "/", "", {}, access_key="a", secret_key="b")


def test_presign_query_round_trip_with_params_and_token():
    query = sigv4.presign_query(
        "PUT",
        "/b/k%20x",
        "response-content-type=text/plain",
        {"host": "s3.local:9000", "content-type": "image/jpeg"},
        access_key="AK",
        secret_key="SK",
        expires=600,
        region="eu-central-1",
        timestamp=S3_TIME,
        security_token="t+k",
    )
    headers = [("Host", "s3.local:9000"), ("Content-Type", "image/jpeg")]
    auth = parse_request_auth("PUT", "/b/k%20x", query, headers)
    assert auth is not None
    assert auth.signed_headers == ("content-type", "host")
    assert auth.security_token == "t+k"
    verify(auth, "SK", S3_TIME + dt.timedelta(seconds=599))
    wrong_type = parse_request_auth(
        "PUT", "/b/k%20x", query, [("Host", "s3.local:9000"), ("Content-Type", "text/html")]
    )
    assert wrong_type is not None
    with pytest.raises(S3Error) as info:
        verify(wrong_type, "SK", S3_TIME)
    assert info.value.code == "SignatureDoesNotMatch"


def test_presign_query_validates_expiry():
    with pytest.raises(ValueError):
        sigv4.presign_query(
            "GET", "/", "", {"host": "h"}, access_key="a", secret_key="b", expires=604801
        )


def test_utf8_header_values_are_canonicalised_from_wire_bytes():
    # A Go/JS client signs the UTF-8 bytes it sends; an ASGI server hands them to us
    # decoded as latin-1. Both must produce the same canonical request.
    client_headers = {"host": "s3.local", "x-amz-meta-name": "caf\u00e9 \u2603".encode()}
    signed = sigv4.sign_request(
        "PUT", "/b/k", "", client_headers, access_key="AK", secret_key="SK", timestamp=S3_TIME
    )
    wire = {
        k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in signed.headers.items()
    }
    assert wire["x-amz-meta-name"] == "caf\u00c3\u00a9 \u00e2\u0098\u0083"
    auth = parse_request_auth("PUT", "/b/k", "", wire)
    assert auth is not None
    assert "x-amz-meta-name:caf\u00e9 \u2603\n" in auth.canonical_request
    verify(auth, "SK", S3_TIME)


def test_check_payload_sha256():
    digest = hashlib.sha256(b"body").hexdigest()
    sigv4.check_payload_sha256(digest, digest)
    sigv4.check_payload_sha256("UNSIGNED-PAYLOAD", "anything")
    sigv4.check_payload_sha256("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "anything")
    with pytest.raises(S3Error) as info:
        sigv4.check_payload_sha256(digest, EMPTY_SHA256)
    err = info.value
    assert err.code == "XAmzContentSHA256Mismatch"
    assert err.extra == {
        "ClientComputedContentSHA256": digest,
        "S3ComputedContentSHA256": EMPTY_SHA256,
    }


def test_amz_date_helpers():
    assert sigv4.parse_amz_date("20150830T123600Z") == SUITE_TIME
    assert sigv4.format_amz_date(SUITE_TIME) == "20150830T123600Z"
    assert (
        sigv4.format_amz_date(
            dt.datetime(2015, 8, 30, 14, 36, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        )
        == "20150830T123600Z"
    )
    for bad in ("20150830T123600", "2015-08-30T12:36:00Z", "20151330T123600Z"):
        with pytest.raises(ValueError):
            sigv4.parse_amz_date(bad)


# --- cross-checks with botocore -------------------------------------------------------


def _botocore_signed(auth_cls, method, url, *, data=b"", headers=None, **auth_kwargs):
    request = AWSRequest(method=method, url=url, data=data, headers=headers or {})
    auth_cls(
        Credentials("AKBOTO", "boto/secret+key"), "s3", "eu-central-1", **auth_kwargs
    ).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    wire_headers = [(k, v) for k, v in prepared.headers.items()]
    wire_headers.append(("Host", parts.netloc))
    return parts.path, parts.query, wire_headers


BOTO_KEYS = [
    "plain.txt",
    "dir/sub dir/file name.txt",
    "unicode/\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9/\u2603.bin",
    "special/!$&'()*+,;=:@[]~_-.txt",
    "percent/100%.txt",
    "a//double/slash",
    "dots/..hidden/file..",
]


@pytest.mark.parametrize("key", BOTO_KEYS)
def test_botocore_header_signature_verifies(key):
    url = f"http://localhost:9000/bucket/{quote(key, safe='/~')}?tagging&x-id=GetObject"
    path, query, headers = _botocore_signed(
        S3SigV4Auth, "GET", url, headers={"Range": "bytes=0-10", "X-Amz-Meta-Note": "a  b"}
    )
    auth = parse_request_auth("GET", path, query, headers)
    assert auth is not None and auth.access_key == "AKBOTO"
    ctx = verify(auth, "boto/secret+key")
    assert ctx.scope.region == "eu-central-1"


def test_botocore_put_with_body_hash_verifies():
    body = b"some payload bytes"
    path, query, headers = _botocore_signed(
        S3SigV4Auth,
        "PUT",
        "http://localhost:9000/bucket/k",
        data=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    auth = parse_request_auth("PUT", path, query, headers)
    assert auth is not None and auth.payload_mode is PayloadMode.SHA256
    verify(auth, "boto/secret+key")
    sigv4.check_payload_sha256(auth.payload_hash, hashlib.sha256(body).hexdigest())
    with pytest.raises(S3Error):
        sigv4.check_payload_sha256(auth.payload_hash, hashlib.sha256(b"other").hexdigest())


@pytest.mark.parametrize("key", BOTO_KEYS)
def test_botocore_presigned_url_verifies(key):
    url = f"https://s3.example.com/bucket/{quote(key, safe='/~')}?response-content-type=a%2Fb"
    path, query, headers = _botocore_signed(S3SigV4QueryAuth, "GET", url, expires=900)
    auth = parse_request_auth("GET", path, query, headers)
    assert auth is not None and auth.kind == "query" and auth.expires == 900
    verify(auth, "boto/secret+key")
    with pytest.raises(S3Error) as info:
        verify(auth, "boto/secret+key", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1000))
    assert info.value.message == "Request has expired"


def test_botocore_wrong_secret_fails():
    path, query, headers = _botocore_signed(S3SigV4Auth, "GET", "http://localhost:9000/b/k")
    auth = parse_request_auth("GET", path, query, headers)
    assert auth is not None
    with pytest.raises(S3Error) as info:
        verify(auth, "not the secret")
    assert info.value.code == "SignatureDoesNotMatch"


class _Raw:
    """Minimal urllib3-like body for a canned botocore response."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data

    def read(self, *_args, **_kwargs) -> bytes:
        data, self._data = self._data, b""
        return data


def _capturing_client(endpoint: str):
    sent: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    def before_send(request, **_kwargs):
        body = request.body
        data = body.read() if hasattr(body, "read") else (body or b"")
        parts = urlsplit(request.url)
        headers = [(k, v) for k, v in request.headers.items()]
        # The HTTP layer adds Host on the wire; botocore's CRT signer (used
        # when awscrt is installed) already put it among the headers.
        if not any(k.lower() == "host" for k, _ in headers):
            headers.append(("Host", parts.netloc))
        sent.append((request.method, request.url, headers, bytes(data)))
        return AWSResponse(request.url, 200, {}, _Raw(b""))

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-central-1",
        aws_access_key_id="AKBOTO3",
        aws_secret_access_key="boto3-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0}),
    )
    client.meta.events.register("before-send", before_send)
    return client, sent


def test_boto3_https_put_uses_unsigned_trailer_and_verifies_end_to_end():
    client, sent = _capturing_client("https://s3.local:9000")
    payload = b"hello world" * 1000
    client.put_object(Bucket="bucket", Key="dir/\u00fc x+y.txt", Body=payload)
    method, url, headers, body = sent[0]
    parts = urlsplit(url)
    auth = parse_request_auth(method, parts.path, parts.query, headers)
    assert auth is not None
    assert auth.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER
    ctx = verify(auth, "boto3-secret")
    decoded_length = int(dict((k.lower(), v) for k, v in headers)["x-amz-decoded-content-length"])
    decoder = ChunkedDecoder(ctx, decoded_length=decoded_length)
    out = b"".join(decoder.feed(body))
    decoder.finish()
    assert out == payload
    assert decoder.trailers == {"x-amz-checksum-crc32": compute_b64("crc32", payload)}


def test_boto3_http_put_signs_the_full_payload():
    client, sent = _capturing_client("http://s3.local:9000")
    client.put_object(Bucket="bucket", Key="k", Body=b"data", Metadata={"owner": "me"})
    method, url, headers, body = sent[0]
    parts = urlsplit(url)
    auth = parse_request_auth(method, parts.path, parts.query, headers)
    assert auth is not None and auth.payload_mode is PayloadMode.SHA256
    assert "x-amz-meta-owner" in auth.signed_headers
    verify(auth, "boto3-secret")
    sigv4.check_payload_sha256(auth.payload_hash, hashlib.sha256(body).hexdigest())


def test_boto3_list_and_delete_objects_requests_verify():
    client, sent = _capturing_client("https://s3.local:9000")
    client.list_objects_v2(Bucket="bucket", Prefix="a b/", Delimiter="/", StartAfter="x+y")
    client.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    for method, url, headers, _body in sent:
        parts = urlsplit(url)
        auth = parse_request_auth(method, parts.path, parts.query, headers)
        assert auth is not None
        verify(auth, "boto3-secret")
    list_query = dict(sigv4.parse_query(urlsplit(sent[0][1]).query))
    assert list_query["encoding-type"] == "url"
    assert list_query["prefix"] == "a b/"


def test_boto3_generate_presigned_url_verifies():
    client, _sent = _capturing_client("https://s3.local:9000")
    url = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": "bucket", "Key": "uploads/photo 1.jpg", "ContentType": "image/jpeg"},
        ExpiresIn=600,
    )
    parts = urlsplit(url)
    headers = [("Host", parts.netloc), ("Content-Type", "image/jpeg")]
    auth = parse_request_auth("PUT", parts.path, parts.query, headers)
    assert auth is not None and auth.kind == "query"
    verify(auth, "boto3-secret")
