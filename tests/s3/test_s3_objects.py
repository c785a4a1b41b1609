"""Objects and buckets through real boto3 against a served S3 app."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import os
import secrets
import subprocess

import pytest
from botocore.exceptions import ClientError

from protocols.s3.sigv4 import presign_query
from tests.s3.support import code_of, status_of


@pytest.mark.parametrize("checksums", ["when_supported", "when_required"])
@pytest.mark.parametrize("size", [0, 5, 3 * 1024, 70_000, 5 * 1024 * 1024 + 3])
def test_put_get_round_trip(node, checksums, size):
    s3 = node.client(request_checksum_calculation=checksums,
                     response_checksum_validation=checksums)
    name = f"rt-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=name)
    data = os.urandom(size)
    put = s3.put_object(Bucket=name, Key="dir/obj.bin", Body=data)
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    if checksums == "when_supported":
        assert "ChecksumCRC32" in put  # boto3's default checksum is verified and echoed
    got = s3.get_object(Bucket=name, Key="dir/obj.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got["ContentLength"] == size
    assert got["ETag"] == put["ETag"]


def test_metadata_and_stored_headers(s3, bucket):
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    s3.put_object(
        Bucket=bucket, Key="doc.html", Body=b"<p>hi</p>", ContentType="text/html",
        CacheControl="max-age=60", ContentDisposition='attachment; filename="d.html"',
        ContentEncoding="identity", ContentLanguage="de", Expires=expires,
        Metadata={"color": "blue", "Owner-Name": "Ann"},
    )
    for resp in (s3.head_object(Bucket=bucket, Key="doc.html"),
                 s3.get_object(Bucket=bucket, Key="doc.html")):
        assert resp["ContentType"] == "text/html"
        assert resp["CacheControl"] == "max-age=60"
        assert resp["ContentDisposition"] == 'attachment; filename="d.html"'
        assert resp["ContentEncoding"] == "identity"
        assert resp["ContentLanguage"] == "de"
        assert resp["Metadata"] == {"color": "blue", "owner-name": "Ann"}
        assert resp["ResponseMetadata"]["HTTPHeaders"]["expires"].startswith("Wed, 02 Jan 2030")
    over = s3.get_object(Bucket=bucket, Key="doc.html", ResponseContentType="text/plain",
                         ResponseCacheControl="no-cache",
                         ResponseContentDisposition="inline")
    assert over["ContentType"] == "text/plain"
    assert over["CacheControl"] == "no-cache"
    assert over["ContentDisposition"] == "inline"


def test_ranges(s3, bucket):
    data = bytes(range(256)) * 40  # 10240 bytes: stored in a chunk, not inline
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    cases = {"bytes=0-9": (0, 10), "bytes=100-": (100, len(data)), "bytes=-5": (len(data) - 5,
             len(data)), "bytes=10000-99999": (10000, len(data))}
    for header, (start, stop) in cases.items():
        resp = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert resp["ContentRange"] == f"bytes {start}-{stop - 1}/{len(data)}"
        assert resp["Body"].read() == data[start:stop]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert code_of(exc) == "InvalidRange" and status_of(exc) == 416
    s3.put_object(Bucket=bucket, Key="small", Body=b"0123456789")
    assert s3.get_object(Bucket=bucket, Key="small", Range="bytes=2-4")["Body"].read() == b"234"


def test_conditional_get(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"data")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    past = modified - dt.timedelta(days=1)
    future = modified + dt.timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"data"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert status_of(exc) == 412 and code_of(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status_of(exc) == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert status_of(exc) == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert status_of(exc) == 412
    # S3's precedence: If-Match true wins over a failing If-Unmodified-Since,
    # If-None-Match false (no match) wins over a failing If-Modified-Since.
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag,
                         IfUnmodifiedSince=past)["Body"].read() == b"data"
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"other"',
                         IfModifiedSince=future)["Body"].read() == b"data"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert status_of(exc) == 412


def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/x-a",
                  Metadata={"k": "v"})
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"payload").hexdigest()}"'
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "text/x-a" and head["Metadata"] == {"k": "v"}
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", ContentType="text/x-b", Metadata={"n": "1"})
    head = s3.head_object(Bucket=bucket, Key="dst2")
    assert head["ContentType"] == "text/x-b" and head["Metadata"] == {"n": "1"}
    assert s3.get_object(Bucket=bucket, Key="dst2")["Body"].read() == b"payload"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert code_of(exc) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", Metadata={"again": "yes"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"again": "yes"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/src",
                       CopySourceIfMatch='"wrong"')
    assert status_of(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/missing")
    assert code_of(exc) == "NoSuchKey"


def test_delete_and_delete_objects(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="k0")
    s3.delete_object(Bucket=bucket, Key="never-existed")  # S3: success
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "k1"}, {"Key": "k2"}, {"Key": "missing"}, {"Key": "a/../b"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["k1", "k2", "missing"]
    assert [e["Key"] for e in r["Errors"]] == ["a/../b"]
    assert r["Errors"][0]["Code"] == "InvalidArgument"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["k3", "k4"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k3"}], "Quiet": True})
    assert "Deleted" not in r
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"x{i}"}
                                                             for i in range(1001)]})
    assert code_of(exc) == "MalformedXML"


def _all_pages(s3, method, **kw):
    pages = list(s3.get_paginator(method).paginate(**kw))
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    return pages, keys, prefixes


def test_list_pagination_with_delimiter(s3, bucket):
    names = ["a.txt", "b/1", "b/2", "c/x/1", "c/y", "d", "e f+g.txt", "ü/z", "z"]
    for name in names:
        s3.put_object(Bucket=bucket, Key=name, Body=b"")
    for method in ("list_objects_v2", "list_objects"):
        pages, keys, prefixes = _all_pages(s3, method, Bucket=bucket,
                                           PaginationConfig={"PageSize": 2})
        assert keys == sorted(names, key=lambda k: k.encode()), method
        assert len(pages) == 5
        pages, keys, prefixes = _all_pages(s3, method, Bucket=bucket, Delimiter="/",
                                           PaginationConfig={"PageSize": 2})
        assert keys == ["a.txt", "d", "e f+g.txt", "z"], method
        assert prefixes == ["b/", "c/", "ü/"], method
        _, keys, prefixes = _all_pages(s3, method, Bucket=bucket, Prefix="c/", Delimiter="/")
        assert (keys, prefixes) == (["c/y"], ["c/x/"])
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="c/y", MaxKeys=2)
    assert [o["Key"] for o in r["Contents"]] == ["d", "e f+g.txt"] and r["IsTruncated"]
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=1, FetchOwner=True)
    assert r["KeyCount"] == 1 and r["Contents"][0]["Owner"]["ID"]
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert r["KeyCount"] == 0
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="%%%")
    assert code_of(exc) == "InvalidArgument"


def test_bucket_operations(s3, node):
    s3.create_bucket(Bucket="ops-bucket",
                     CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    s3.head_bucket(Bucket="ops-bucket")
    assert s3.get_bucket_location(Bucket="ops-bucket")["LocationConstraint"] == "eu-central-1"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="ops-bucket")
    assert code_of(exc) == "BucketAlreadyOwnedByYou"
    other = node.client(*node.create_account("other-ops@example.com"))
    with pytest.raises(ClientError) as exc:
        other.create_bucket(Bucket="ops-bucket")
    assert code_of(exc) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Bad_Name")
    assert code_of(exc) == "InvalidBucketName"
    s3.put_object(Bucket="ops-bucket", Key="k", Body=b"1")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="ops-bucket")
    assert code_of(exc) == "BucketNotEmpty" and status_of(exc) == 409
    s3.delete_object(Bucket="ops-bucket", Key="k")
    s3.delete_bucket(Bucket="ops-bucket")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="ops-bucket")
    assert status_of(exc) == 404
    for i in range(10):
        s3.create_bucket(Bucket=f"many-{i}-{node.access_key.lower()[:8]}")
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=f"many-x-{node.access_key.lower()[:8]}")
    assert code_of(exc) == "TooManyBuckets"
    assert len(s3.list_buckets()["Buckets"]) == 10


def test_versioning(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="v", Body=b"before")  # the null version
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"two"
    assert s3.get_object(Bucket=bucket, Key="v", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == b"before"
    d = s3.delete_object(Bucket=bucket, Key="v")
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="v")
    assert code_of(exc) == "NoSuchKey"
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="v", VersionId=marker)
    assert status_of(exc) == 405
    listing = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in listing["Versions"]] == [
        (v2, False), (v1, False), ("null", False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in listing["DeleteMarkers"]] == [(marker, True)]
    pages = list(s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 1}))
    seen = [v["VersionId"] for p in pages for v in p.get("Versions", []) + p.get(
        "DeleteMarkers", [])]
    assert sorted(seen) == sorted([marker, v2, v1, "null"])
    # Removing the marker brings the latest version back.
    s3.delete_object(Bucket=bucket, Key="v", VersionId=marker)
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"two"
    s3.delete_object(Bucket=bucket, Key="v", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"one"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="v", VersionId="0000000000000000000000000000")
    assert code_of(exc) == "NoSuchVersion"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    # A suspended bucket overwrites the null version: the write names no
    # version id (as AWS answers), reads name it "null".
    assert "VersionId" not in s3.put_object(Bucket=bucket, Key="v", Body=b"s")
    copied = s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "v"})
    assert "VersionId" not in copied
    assert s3.head_object(Bucket=bucket, Key="v")["VersionId"] == "null"


def _curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args],
                          capture_output=True, timeout=60, check=True)


def test_presigned_get_and_put_with_curl(node, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="report.pdf", Body=b"%PDF-1.4 data")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket,
                                                          "Key": "report.pdf"}, ExpiresIn=3600)
    out = _curl(url).stdout
    assert out == b"%PDF-1.4 data\n200"
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(os.urandom(100_000))
    url = s3.generate_presigned_url("put_object", Params={
        "Bucket": bucket, "Key": "uploads/user-file.jpg", "ContentType": "image/jpeg"},
        ExpiresIn=600)
    out = _curl("-X", "PUT", "-H", "Content-Type: image/jpeg", "--data-binary", f"@{photo}",
                url).stdout
    assert out.endswith(b"200")
    got = s3.get_object(Bucket=bucket, Key="uploads/user-file.jpg")
    assert got["ContentType"] == "image/jpeg" and got["Body"].read() == photo.read_bytes()
    # A tampered signature, and a URL past its expiry, are refused.
    flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
    out = _curl(flipped).stdout
    assert b"<Code>" in out and out.endswith(b"403")
    # Signed two hours ago for one minute: expired.
    host = node.s3_url.removeprefix("http://")
    query = presign_query("GET", f"/{bucket}/report.pdf", "", {"host": host},
                          access_key=node.access_key, secret_key=node.secret_key, expires=60,
                          region=node.region,
                          timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    out = _curl(f"{node.s3_url}/{bucket}/report.pdf?{query}").stdout
    assert b"Request has expired" in out and out.endswith(b"403")
    # More than the 7-day maximum is refused even with a valid signature.
    long = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "report.pdf"},
                                     ExpiresIn=8 * 86400)
    out = _curl(long).stdout
    assert b"AuthorizationQueryParametersError" in out and out.endswith(b"400")


def test_non_ascii_metadata_is_returned_rfc2047_encoded(node, s3, bucket):
    """As S3 does: values that are not ASCII come back as RFC 2047 encoded
    words (mail-safe headers); encoded words sent in are stored decoded."""
    from email.header import decode_header, make_header

    s3.put_object(Bucket=bucket, Key="plain", Body=b"x", Metadata={"name": "Zoe"})
    # botocore refuses non-ASCII metadata; other clients send it as UTF-8.
    from tests.s3.test_s3_errors import Raw
    raw = Raw(node)
    signed = raw.signed_headers("PUT", f"/{bucket}/accent",
                                headers={"x-amz-meta-name": "Zo\u00eb".encode()},
                                body=b"x").headers
    conn = http.client.HTTPConnection(raw.host, raw.port, timeout=30)
    conn.putrequest("PUT", f"/{bucket}/accent", skip_host=True, skip_accept_encoding=True)
    for name, value in signed.items():
        conn.putheader(name, value if isinstance(value, bytes) else value.encode())
    conn.putheader("Content-Length", "1")
    conn.endheaders(b"x")
    assert conn.getresponse().status == 200
    conn.close()
    s3.put_object(Bucket=bucket, Key="encoded", Body=b"x",
                  Metadata={"name": "=?UTF-8?B?5pel5pys6Kqe?="})
    assert s3.head_object(Bucket=bucket, Key="plain")["Metadata"] == {"name": "Zoe"}
    for key, text in (("accent", "Zo\u00eb"), ("encoded", "\u65e5\u672c\u8a9e")):
        sent = s3.head_object(Bucket=bucket, Key=key)["Metadata"]["name"]
        assert sent.startswith("=?UTF-8?B?") and sent.isascii()
        assert str(make_header(decode_header(sent))) == text
