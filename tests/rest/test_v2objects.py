"""The v2-objects dialect (seed 003) against a real node: the document's
examples as written (host changed), its error table, metadata, conditional
GET, content-type detection and rate-limit headers."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.harness import NodeProcess
from tests.rest.conftest import User, signup
from tests.rest.test_v1pro_support import admin_patch


def bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access_key}:{user.secret_key}"}


def v2(node: NodeProcess) -> str:
    return f"{node.web_url}/v2"


def s3_client(node: NodeProcess, user: User):
    return boto3.client("s3", endpoint_url=node.s3_url, region_name=node.region,
                        aws_access_key_id=user.access_key,
                        aws_secret_access_key=user.secret_key,
                        config=Config(retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def test_upload_download_example(node: NodeProcess, user: User) -> None:
    # The document's Python example, with the bucket of this account.
    url = f"{v2(node)}/buckets/{user.bucket}/objects/hello.txt"
    headers = {**bearer(user), "Content-Type": "text/plain"}
    r = httpx.put(url, headers=headers, content="Hello, World!")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "bucket", "key", "size", "etag"}
    assert body["id"].startswith("obj_")
    assert (body["bucket"], body["key"], body["size"]) == (user.bucket, "hello.txt", 13)
    assert body["etag"] == "65a8e27d8879283831b664bd8b7f0ad4"  # the document's ETag
    assert r.headers["X-RateLimit-Limit"] == "60"

    got = httpx.get(url, headers=bearer(user))
    assert got.status_code == 200
    assert got.content == b"Hello, World!"
    assert got.headers["Content-Type"] == "text/plain"
    assert got.headers["Content-Length"] == "13"
    assert got.headers["ETag"] == '"65a8e27d8879283831b664bd8b7f0ad4"'

    same = httpx.get(url, headers={**bearer(user),
                                   "If-None-Match": '"65a8e27d8879283831b664bd8b7f0ad4"'})
    assert same.status_code == 304 and same.content == b""
    changed = httpx.get(url, headers={**bearer(user), "If-None-Match": '"other"'})
    assert changed.status_code == 200

    gone = httpx.delete(url, headers=bearer(user))
    assert gone.status_code == 204 and gone.content == b""
    missing = httpx.get(url, headers=bearer(user))
    assert missing.status_code == 404
    assert missing.json() == {"error": {
        "code": "NOT_FOUND", "message": "The specified object does not exist",
        "details": {"bucket": user.bucket, "key": "hello.txt"}}}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_put_with_metadata_and_get(node: NodeProcess, user: User, tmp_path) -> None:
    src = tmp_path / "file.bin"
    src.write_bytes(bytes(range(256)) * 10)
    url = f"{v2(node)}/buckets/{user.bucket}/objects/path/to/file.bin"
    put = subprocess.run(
        ["curl", "-sS", "-X", "PUT", "-H", f"Authorization: Bearer {user.access_key}:"
         f"{user.secret_key}", "-H", "Content-Type: application/octet-stream",
         "-H", "X-CloudStore-Meta-Custom: value", "--data-binary", f"@{src}",
         "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=60, check=True)
    body, status = put.stdout.rsplit("\n", 1)
    assert status == "201", put.stdout
    assert httpx.Response(201, content=body).json()["size"] == 2560
    got = httpx.get(url, headers=bearer(user))
    assert got.content == src.read_bytes()
    assert got.headers["X-CloudStore-Meta-Custom"] == "value"
    assert got.headers["ETag"] == f'"{hashlib.md5(src.read_bytes()).hexdigest()}"'
    # The same metadata, seen through S3.
    head = s3_client(node, user).head_object(Bucket=user.bucket, Key="path/to/file.bin")
    assert head["Metadata"] == {"custom": "value"}


def test_content_type_detection_table(node: NodeProcess, user: User) -> None:
    table = {"a.txt": "text/plain", "a.html": "text/html", "a.json": "application/json",
             "a.jpg": "image/jpeg", "a.jpeg": "image/jpeg", "a.png": "image/png",
             "a.pdf": "application/pdf", "a.unknownext": "application/octet-stream"}
    for key, expected in table.items():
        url = f"{v2(node)}/buckets/{user.bucket}/objects/types/{key}"
        # No Content-Type header at all.
        r = httpx.put(url, headers=bearer(user), content=b"x")
        assert r.status_code == 201, r.text
        assert httpx.get(url, headers=bearer(user)).headers["Content-Type"] == expected, key


def test_list_prefix_limit_cursor(node: NodeProcess, user: User) -> None:
    s3 = s3_client(node, user)
    for name in ("images/photo1.jpg", "images/photo2.jpg", "images/photo3.jpg", "other.txt"):
        s3.put_object(Bucket=user.bucket, Key=name, Body=name.encode())
    url = f"{v2(node)}/buckets/{user.bucket}/objects"
    first = httpx.get(url, params={"prefix": "images/", "limit": 2}, headers=bearer(user))
    assert first.status_code == 200, first.text
    page = first.json()
    assert set(page) == {"objects", "cursor", "has_more"}
    assert [o["key"] for o in page["objects"]] == ["images/photo1.jpg", "images/photo2.jpg"]
    assert set(page["objects"][0]) == {"key", "size", "updated_at"}
    assert page["objects"][0]["size"] == len(b"images/photo1.jpg")
    assert page["objects"][0]["updated_at"].endswith("Z")
    assert page["has_more"] is True and page["cursor"]
    second = httpx.get(url, params={"prefix": "images/", "limit": 2, "cursor": page["cursor"]},
                       headers=bearer(user)).json()
    assert [o["key"] for o in second["objects"]] == ["images/photo3.jpg"]
    assert second == {**second, "has_more": False, "cursor": None}


def test_create_and_delete_bucket(node: NodeProcess, user: User) -> None:
    name = f"v2-{user.account_id[-8:].lower()}"
    r = httpx.post(f"{v2(node)}/buckets", headers=bearer(user),
                   json={"name": name, "region": "us-east-1", "versioning": True})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/buckets/{name}"
    body = r.json()
    assert {k: body[k] for k in ("name", "region", "versioning")} == {
        "name": name, "region": "us-east-1", "versioning": True}
    assert body["created_at"].endswith("Z")
    s3 = s3_client(node, user)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"

    again = httpx.post(f"{v2(node)}/buckets", headers=bearer(user), json={"name": name})
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"

    httpx.put(f"{v2(node)}/buckets/{name}/objects/k", headers=bearer(user), content=b"1")
    full = httpx.delete(f"{v2(node)}/buckets/{name}", headers=bearer(user))
    assert full.status_code == 409 and full.json()["error"]["code"] == "CONFLICT"
    for v in s3.list_object_versions(Bucket=name).get("Versions", []):
        s3.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
    for m in s3.list_object_versions(Bucket=name).get("DeleteMarkers", []):
        s3.delete_object(Bucket=name, Key=m["Key"], VersionId=m["VersionId"])
    empty = httpx.delete(f"{v2(node)}/buckets/{name}", headers=bearer(user))
    assert empty.status_code == 204, empty.text
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_error_table(node: NodeProcess, user: User) -> None:
    base = f"{v2(node)}/buckets/{user.bucket}/objects"

    def code(r: httpx.Response) -> tuple[int, str]:
        assert set(r.json()) == {"error"}, r.text
        return r.status_code, r.json()["error"]["code"]

    assert code(httpx.get(base, params={"limit": 0}, headers=bearer(user))) == (
        400, "INVALID_REQUEST")
    assert code(httpx.post(f"{v2(node)}/buckets", headers=bearer(user),
                           content=b"not json")) == (400, "INVALID_REQUEST")
    assert code(httpx.get(base)) == (401, "UNAUTHORIZED")
    assert code(httpx.get(base, headers={"Authorization": "Bearer AK:wrong"})) == (
        401, "UNAUTHORIZED")
    other = signup(node)
    try:
        assert code(httpx.get(f"{v2(node)}/buckets/{other.bucket}/objects",
                              headers=bearer(user))) == (403, "FORBIDDEN")
    finally:
        other.client.close()
    assert code(httpx.get(f"{v2(node)}/buckets/no-such-bucket-v2/objects",
                          headers=bearer(user))) == (404, "NOT_FOUND")
    assert code(httpx.post(f"{v2(node)}/buckets", headers=bearer(user),
                           json={"name": user.bucket})) == (409, "CONFLICT")


def test_rate_limit_free_plan(node: NodeProcess) -> None:
    user = signup(node)
    url = f"{v2(node)}/buckets/{user.bucket}/objects"
    try:
        with httpx.Client(headers=bearer(user)) as c:
            seen = [c.get(url) for _ in range(60)]
            assert [r.status_code for r in seen] == [200] * 60
            assert [int(r.headers["X-RateLimit-Remaining"]) for r in seen] == list(
                range(59, -1, -1))
            over = c.get(url)
    finally:
        user.client.close()
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert int(over.headers["X-RateLimit-Reset"]) >= int(seen[0].headers["X-RateLimit-Reset"])


def test_rate_limits_follow_the_plan(node: NodeProcess) -> None:
    user = signup(node)
    url = f"{v2(node)}/buckets/{user.bucket}/objects"
    assert httpx.get(url, headers=bearer(user)).headers["X-RateLimit-Limit"] == "60"
    admin_patch(node, user.account_id, plan="1tb")  # a paid plan: the Pro row
    r = httpx.get(url, headers=bearer(user))
    assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == (
        "600", "598")
    admin_patch(node, user.account_id, plan="enterprise")
    r = httpx.get(url, headers=bearer(user))
    assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
    user.client.close()
