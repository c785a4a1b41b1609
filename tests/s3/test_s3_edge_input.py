"""Input the metadata database cannot hold is refused at the edge, on PostgreSQL.

PostgreSQL refuses NUL in text (SQLite stores it), so these run against an S3
server whose metadata is a PostgreSQL database of its own: a NUL anywhere in
a name, key or parameter must be a 400 in S3's format, never a 500 from the
database -- even before the request's signature is checked.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from protocols.s3.sigv4 import UNSIGNED_PAYLOAD
from tests.s3.conftest import S3Node, Server
from tests.s3.test_s3_errors import Raw, parse_error

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def s3_server(pg_s3_server: Server) -> Server:
    """This module's tests run on PostgreSQL metadata."""
    return pg_s3_server


@pytest.fixture
def raw(node: S3Node) -> Raw:
    return Raw(node)


FAKE_AUTH = ("AWS4-HMAC-SHA256 Credential=AKFAKEFAKEFAKE00/20250101/eu-central-1/s3/aws4_request,"
             " SignedHeaders=host, Signature=" + "0" * 64)


@pytest.mark.parametrize("target", [
    "/{bucket}/a%00b",
    "/{bucket}%00x/k",
    "/{bucket}?prefix=a%00",
    "/{bucket}?list-type=2&start-after=%00",
    "/{bucket}/k?versionId=%00",
    "/{bucket}/k?uploadId=%00",
    "/?X-Amz-Credential=AK%00/20250101/eu-central-1/s3/aws4_request",
])
def test_nul_is_refused_before_authentication(node, bucket, target):
    url = node.s3_url + target.format(bucket=bucket)
    for headers in ({"authorization": FAKE_AUTH}, {}):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 400, (target, r.text)
        assert parse_error(r.content)["Code"] in ("InvalidArgument", "InvalidURI",
                                                  "InvalidBucketName"), r.text


@pytest.mark.parametrize(("method", "path", "query", "param"), [
    ("GET", "/{bucket}", "list-type=2&prefix=a%00", "prefix"),
    ("GET", "/{bucket}", "list-type=2&start-after=a%00", "start-after"),
    ("GET", "/{bucket}", "list-type=2&continuation-token=%00", "continuation-token"),
    # A token that decodes to a NUL is one this node never issued.
    ("GET", "/{bucket}", "list-type=2&continuation-token=AA%3D%3D", "continuation-token"),
    ("GET", "/{bucket}", "delimiter=%00", "delimiter"),
    ("GET", "/{bucket}", "marker=%00", "marker"),
    ("GET", "/{bucket}", "versions=&key-marker=%00", "key-marker"),
    ("GET", "/{bucket}", "versions=&key-marker=k&version-id-marker=%00", "version-id-marker"),
    ("GET", "/{bucket}", "uploads=&upload-id-marker=%00&key-marker=k", "upload-id-marker"),
    ("GET", "/{bucket}/k", "versionId=%00", "versionId"),
    ("DELETE", "/{bucket}/k", "versionId=%00", "versionId"),
    ("PUT", "/{bucket}/k", "partNumber=1&uploadId=%00", "uploadId"),
    ("DELETE", "/{bucket}/k", "uploadId=%00", "uploadId"),
])
def test_nul_in_a_signed_parameter_names_it(raw, bucket, method, path, query, param):
    status, _, body = raw.request(method, path.format(bucket=bucket), query,
                                  payload_hash=UNSIGNED_PAYLOAD)
    err = parse_error(body)
    assert (status, err["Code"]) == (400, "InvalidArgument"), body
    assert err["ArgumentName"] == param


def test_nul_in_keys_names_and_headers_is_refused(raw, node, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    cases = [
        ("PUT", f"/{bucket}/a%00b", {}),
        ("GET", f"/{bucket}/a%00b", {}),
        ("HEAD", f"/{bucket}%00", {}),
        ("PUT", f"/{bucket}/copy", {"x-amz-copy-source": f"/{bucket}%00/src"}),
        ("PUT", f"/{bucket}/copy", {"x-amz-copy-source": f"/{bucket}/src?versionId=%00"}),
        ("PUT", f"/{bucket}/copy", {"x-amz-copy-source": f"/{bucket}/s%00rc"}),
        ("PUT", f"/{bucket}/tagged", {"x-amz-tagging": "a=b%00"}),
        ("PUT", f"/{bucket}/meta", {"x-amz-meta-m": "=?UTF-8?B?AA==?="}),
    ]
    for method, path, headers in cases:
        status, _, body = raw.request(method, path, headers=headers, body=b"x",
                                      payload_hash=UNSIGNED_PAYLOAD)
        assert status == 400, (path, headers, body)
        if method != "HEAD":
            assert parse_error(body)["Code"] in ("InvalidArgument", "InvalidBucketName",
                                                 "InvalidTag"), (path, headers, body)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["src"]


def test_non_utf8_key_is_invalid_uri_for_every_method(raw, bucket):
    path = f"/{bucket}/" + quote(b"\xae\x8a-")
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        status, _, body = raw.request(method, path, payload_hash=UNSIGNED_PAYLOAD)
        assert status == 400, (method, body)
        if method != "HEAD":
            err = parse_error(body)
            assert err["Code"] == "InvalidURI" and err["Message"] == (
                "Couldn't parse the specified URI."), body
