"""SigV4 parse errors: malformed, missing or conflicting header and query authentication."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from protocols.s3.errors import S3Error
from protocols.s3.sigv4 import (
    EMPTY_SHA256,
    parse_request_auth,
)
from tests.unit.sigv4_support import (
    AMZ_DATE,
    HOST,
    PRESIGNED_QUERY,
    S3_TIME,
)

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
