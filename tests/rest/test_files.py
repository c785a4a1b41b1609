"""Simple REST API /api/v1/files against a real node, with httpx."""

from __future__ import annotations

import hashlib
import os

import httpx

from tests.harness import NodeProcess
from tests.rest.conftest import User, signup


def test_multipart_upload_download_meta_delete(node: NodeProcess, user: User) -> None:
    data = os.urandom(204800)
    r = httpx.post(f"{node.web_url}/api/v1/files", headers=user.api_headers,
                   files={"file": ("photo.jpg", data, "image/jpeg")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "key", "bucket", "size", "contentType", "createdAt"}
    assert body["key"] == "photo.jpg" and body["bucket"] == user.bucket
    assert body["size"] == len(data) and body["contentType"] == "image/jpeg"
    fid = body["id"]
    got = httpx.get(f"{node.web_url}/api/v1/files/{fid}", headers=user.api_headers)
    assert got.status_code == 200 and got.content == data
    assert got.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    meta = httpx.get(f"{node.web_url}/api/v1/files/{fid}?meta=true", headers=user.api_headers)
    assert meta.json()["size"] == len(data) and meta.json()["key"] == "photo.jpg"
    gone = httpx.delete(f"{node.web_url}/api/v1/files/{fid}", headers=user.api_headers)
    assert gone.json() == {"success": True}
    missing = httpx.get(f"{node.web_url}/api/v1/files/{fid}", headers=user.api_headers)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"


def test_form_fields_after_file_and_bearer_auth(node: NodeProcess, user: User) -> None:
    # Fields given after the file part still choose bucket and key.
    boundary = "----b0undary"
    parts = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
        f"Content-Type: text/plain\r\n\r\nhello world\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nnotes/hello.txt\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"bucket\"\r\n\r\n{user.bucket}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    h = {"Authorization": f"Bearer {user.access_key}:{user.secret_key}",
         "Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = httpx.post(f"{node.web_url}/api/v1/files", headers=h, content=parts)
    assert r.status_code == 201, r.text
    assert r.json()["key"] == "notes/hello.txt" and r.json()["size"] == 11


def test_raw_upload_range_and_streaming(node: NodeProcess, user: User) -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)  # spans two storage chunks

    def body():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    r = httpx.post(f"{node.web_url}/api/v1/files?key=big/blob.bin&bucket={user.bucket}",
                   headers=user.api_headers, content=body(), timeout=60)
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    url = f"{node.web_url}/api/v1/files/{fid}"
    part = httpx.get(url, headers={**user.api_headers, "Range": "bytes=4194300-4194399"})
    assert part.status_code == 206 and part.content == data[4194300:4194400]
    assert part.headers["content-range"] == f"bytes 4194300-4194399/{len(data)}"
    tail = httpx.get(url, headers={**user.api_headers, "Range": "bytes=-10"})
    assert tail.content == data[-10:]
    bad = httpx.get(url, headers={**user.api_headers, "Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and bad.json()["error"] == "InvalidRange"
    with httpx.stream("GET", url, headers=user.api_headers) as s:
        digest = hashlib.sha256()
        for piece in s.iter_bytes():
            digest.update(piece)
    assert digest.digest() == hashlib.sha256(data).digest()


def test_list_prefix_limit_and_cursor(node: NodeProcess, user: User) -> None:
    for i in range(7):
        r = httpx.post(f"{node.web_url}/api/v1/files?key=photos/p{i}.png",
                       headers=user.api_headers, content=b"png")
        assert r.status_code == 201
    httpx.post(f"{node.web_url}/api/v1/files?key=other.txt", headers=user.api_headers,
               content=b"x")
    seen, cursor = [], ""
    while True:
        q = f"?prefix=photos/&limit=3&bucket={user.bucket}"
        q += f"&cursor={cursor}" if cursor else ""
        page = httpx.get(f"{node.web_url}/api/v1/files{q}", headers=user.api_headers).json()
        for f in page["files"]:
            assert set(f) == {"id", "key", "size", "contentType", "updatedAt"}
            assert f["contentType"] == "image/png"
        seen += [f["key"] for f in page["files"]]
        if not page["hasMore"]:
            break
        cursor = page["nextCursor"]
    assert seen == [f"photos/p{i}.png" for i in range(7)]


def test_auth_errors(node: NodeProcess, user: User) -> None:
    url = f"{node.web_url}/api/v1/files"
    assert httpx.get(url).status_code == 401
    wrong = httpx.get(url, headers={"X-API-Key": f"{user.access_key}:wrongsecret"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "Unauthorized"
    malformed = httpx.get(url, headers={"Authorization": "Bearer nocolon"})
    assert malformed.status_code == 401


def test_other_accounts_bucket_and_file_are_403(node: NodeProcess, user: User) -> None:
    other = signup(node)
    r = httpx.post(f"{node.web_url}/api/v1/files?key=secret.txt", headers=other.api_headers,
                   content=b"private")
    fid = r.json()["id"]
    for resp in (
        httpx.get(f"{node.web_url}/api/v1/files?bucket={other.bucket}", headers=user.api_headers),
        httpx.get(f"{node.web_url}/api/v1/files/{fid}", headers=user.api_headers),
        httpx.delete(f"{node.web_url}/api/v1/files/{fid}", headers=user.api_headers),
        httpx.post(f"{node.web_url}/api/v1/files?key=x&bucket={other.bucket}",
                   headers=user.api_headers, content=b"x"),
    ):
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "AccessDenied"
    # The owner still has it.
    assert httpx.get(f"{node.web_url}/api/v1/files/{fid}", headers=other.api_headers).content \
        == b"private"
    assert httpx.get(f"{node.web_url}/api/v1/files/bm90aGluZw",
                     headers=user.api_headers).status_code == 404
    nob = httpx.get(f"{node.web_url}/api/v1/files?bucket=nonexistent-bkt",
                    headers=user.api_headers)
    assert nob.status_code == 404 and nob.json()["error"] == "NoSuchBucket"


def test_upload_limits_413_and_quota(node: NodeProcess, user: User) -> None:
    big = b"x" * (9 * 1024 * 1024)  # the test node allows 8 MiB per upload
    r = httpx.post(f"{node.web_url}/api/v1/files?key=big.bin", headers=user.api_headers,
                   content=big)
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"

    def chunked():  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]

    r = httpx.post(f"{node.web_url}/api/v1/files?key=big.bin", headers=user.api_headers,
                   content=chunked())
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    # An operator-created account gets a default bucket, as a signup does.
    ak, sk = node.create_account("cli-made@example.com")
    r = httpx.post(f"{node.web_url}/api/v1/files?key=a", headers={"X-API-Key": f"{ak}:{sk}"},
                   content=b"a")
    assert r.status_code == 201 and r.json()["bucket"].startswith("default-")


def set_quota(node: NodeProcess, account_id: str, quota: int) -> None:
    """Operator action: change an account's quota in the metadata database."""
    import sqlite3

    db = sqlite3.connect(node.settings.metadata.url.removeprefix("sqlite://"), timeout=15)
    with db:
        db.execute("UPDATE accounts SET quota_bytes = ? WHERE id = ?", (quota, account_id))
    db.close()


def test_quota_exceeded_403(node: NodeProcess) -> None:
    u = signup(node)
    set_quota(node, u.account_id, 100_000)
    ok = httpx.post(f"{node.web_url}/api/v1/files?key=a.bin", headers=u.api_headers,
                    content=b"a" * 60_000)
    assert ok.status_code == 201
    over = httpx.post(f"{node.web_url}/api/v1/files?key=b.bin", headers=u.api_headers,
                      content=b"b" * 60_000)
    assert over.status_code == 403 and over.json()["error"] == "QuotaExceeded"
    over = httpx.post(f"{node.web_url}/api/v1/files", headers=u.api_headers,
                      files={"file": ("c.bin", b"c" * 60_000)})
    assert over.status_code == 403 and over.json()["error"] == "QuotaExceeded"
    listing = httpx.get(f"{node.web_url}/api/v1/files", headers=u.api_headers).json()
    assert [f["key"] for f in listing["files"]] == ["a.bin"]


def test_rest_rate_limit_429(node: NodeProcess, user: User) -> None:
    # The test node allows 5 list requests per second per key (the default is 50).
    url = f"{node.web_url}/api/v1/files"
    with httpx.Client(headers=user.api_headers) as c:
        codes = [c.get(url) for _ in range(30)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited
    assert limited[0].json()["error"] == "TooManyRequests"
    assert int(limited[0].headers["Retry-After"]) >= 1
    # Another key of another account is not affected.
    other = signup(node)
    assert httpx.get(url, headers=other.api_headers).status_code == 200


def test_unknown_route_is_json_404(node: NodeProcess) -> None:
    r = httpx.get(f"{node.web_url}/api/nope")
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
