"""SigV4 signer round trips, and cross-checks with botocore and boto3 requests."""

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
    PayloadMode,
    parse_request_auth,
    verify,
)
from tests.unit.boto_support import CannedBody
from tests.unit.sigv4_support import (
    S3_TIME,
    SUITE_TIME,
)

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
        return AWSResponse(request.url, 200, {}, CannedBody(b""))

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
