"""SigV4 against AWS's generic test suite vectors, and the canonical forms."""

from __future__ import annotations

import hashlib

import pytest

from protocols.s3 import sigv4
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
from tests.unit.sigv4_support import (
    SUITE_SECRET,
    SUITE_TIME,
)

# --- the generic aws-sig-v4-test-suite --------------------------------------------------
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
