"""Bucket CORS: Put/Get/DeleteBucketCors through boto3, unsigned OPTIONS
preflights answered from the rules, and Access-Control-* headers on signed
requests from an allowed Origin."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of

RULES = [
    {"ID": "app", "AllowedOrigins": ["https://app.example.com", "https://*.example.org"],
     "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["content-type", "x-amz-*"],
     "ExposeHeaders": ["ETag", "x-amz-request-id"], "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
]


def preflight(node, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """An unsigned OPTIONS request, as a browser sends it."""
    url = urlsplit(node.s3_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("OPTIONS", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error_code(body: bytes) -> str:
    return ElementTree.fromstring(body).findtext("Code") or ""


def test_put_get_delete_bucket_cors(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert (status_of(exc), code_of(exc)) == (404, "NoSuchCORSConfiguration")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert code_of(exc) == "NoSuchCORSConfiguration"


def test_invalid_cors_configurations(node, bucket):
    s3 = node.client(parameter_validation=False)
    bad = [
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["https://*.*.example"], "AllowedMethods": ["GET"]}],
         "InvalidRequest"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["*-*"]}],
         "InvalidRequest"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": []}], "MalformedXML"),
        ([{"AllowedOrigins": [], "AllowedMethods": ["GET"]}], "MalformedXML"),
        ([], "MalformedXML"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "MalformedXML"),
    ]
    for rules, code in bad:
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
        assert (status_of(exc), code_of(exc)) == (400, code), rules
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert code_of(exc) == "NoSuchCORSConfiguration"


def test_preflight_answers_from_the_rules(node, s3, bucket):
    path = f"/{bucket}/some/key.txt"
    status, _, body = preflight(node, path, {"Origin": "https://app.example.com",
                                             "Access-Control-Request-Method": "GET"})
    assert (status, error_code(body)) == (403, "CORSResponse")
    assert b"CORS is not enabled for this bucket" in body

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    status, headers, _ = preflight(node, path, {
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-allow-methods"] == "GET, PUT"
    assert headers["access-control-allow-headers"] == "content-type, x-amz-date"
    assert headers["access-control-expose-headers"] == "ETag, x-amz-request-id"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-allow-credentials"] == "true"
    assert "Origin" in headers["vary"]

    # A wildcard origin pattern, and the catch-all rule for HEAD.
    status, headers, _ = preflight(node, path, {"Origin": "https://cdn.example.org",
                                                "Access-Control-Request-Method": "GET"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://cdn.example.org"
    status, headers, _ = preflight(node, f"/{bucket}", {
        "Origin": "http://anywhere.test", "Access-Control-Request-Method": "HEAD"})
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in headers

    refused = [
        {"Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"},
        {"Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE"},
        {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET",
         "Access-Control-Request-Headers": "x-custom"},
        {"Origin": "https://example.org", "Access-Control-Request-Method": "GET"},
    ]
    for headers in refused:
        status, _, body = preflight(node, path, headers)
        assert (status, error_code(body)) == (403, "CORSResponse"), headers
        assert b"This CORS request is not allowed" in body
    status, _, body = preflight(node, path, {"Access-Control-Request-Method": "GET"})
    assert (status, error_code(body)) == (400, "BadRequest")
    status, _, body = preflight(node, path, {"Origin": "https://app.example.com"})
    assert (status, error_code(body)) == (400, "BadRequest")
    status, _, body = preflight(node, "/no-such-bucket-here/k", {
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"})
    assert (status, error_code(body)) == (403, "CORSResponse")

    s3.delete_bucket_cors(Bucket=bucket)
    status, _, body = preflight(node, path, {"Origin": "https://app.example.com",
                                             "Access-Control-Request-Method": "GET"})
    assert (status, error_code(body)) == (403, "CORSResponse")


def test_cors_headers_on_signed_requests(node, s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    browser = node.client()

    def with_origin(origin: str):
        def hook(request, **_):
            request.headers["Origin"] = origin
        return hook

    browser.meta.events.register("before-sign.s3.*", with_origin("https://app.example.com"))
    got = browser.get_object(Bucket=bucket, Key="k")
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-expose-headers"] == "ETag, x-amz-request-id"
    assert got["Body"].read() == b"x"
    # An error is readable by the page too.
    with pytest.raises(ClientError) as exc:
        browser.get_object(Bucket=bucket, Key="missing")
    headers = exc.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    # DELETE is not allowed to that origin: no CORS headers, but the request
    # itself is signed and still works (CORS is for browsers to enforce).
    deleted = browser.delete_object(Bucket=bucket, Key="k")
    assert "access-control-allow-origin" not in deleted["ResponseMetadata"]["HTTPHeaders"]

    stranger = node.client()
    stranger.meta.events.register("before-sign.s3.*", with_origin("https://evil.example.net"))
    listed = stranger.list_objects_v2(Bucket=bucket)
    assert "access-control-allow-origin" not in listed["ResponseMetadata"]["HTTPHeaders"]
    plain = s3.list_objects_v2(Bucket=bucket)
    assert "access-control-allow-origin" not in plain["ResponseMetadata"]["HTTPHeaders"]
