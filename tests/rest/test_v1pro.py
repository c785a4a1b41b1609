"""The v1-pro dialect (seed 002) against a real node: the document's curl
examples as written (host changed), its keys, listings, links and every code
of its error table that a healthy node can produce."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.harness import NodeProcess, started_node
from tests.rest.conftest import User, signup
from tests.rest.test_v1pro_support import admin_patch, auth, new_key, pro_user

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def s3_client(node: NodeProcess, user: User):
    return boto3.client("s3", endpoint_url=node.s3_url, region_name=node.region,
                        aws_access_key_id=user.access_key,
                        aws_secret_access_key=user.secret_key,
                        config=Config(retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def curl(*args: str) -> tuple[int, dict]:
    """Run curl as the document does; (status, JSON body)."""
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                          text=True, timeout=60, check=True)
    body, status = done.stdout.rsplit("\n", 1)
    return int(status), json.loads(body)


def events_of(node: NodeProcess, account_id: str) -> list[tuple[str, dict]]:
    """The account's (type, data) in the events outbox, oldest first."""
    path = node.db_url.removeprefix("sqlite://")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT type, data FROM events WHERE account_id = ? ORDER BY id",
                          (account_id,)).fetchall()
    return [(t, json.loads(d)) for t, d in rows]


def code_of(r: httpx.Response) -> tuple[int, str]:
    body = r.json()
    assert body["status"] == "error" and set(body) == {"status", "code", "message"}, body
    return r.status_code, body["code"]


@needs_curl
def test_document_curl_examples(node: NodeProcess, tmp_path: Path) -> None:
    user, key = pro_user(node)
    base = node.web_url
    status, me = curl("-H", f"Authorization: Bearer {key}", f"{base}/api/v1/me")
    assert status == 200, me
    assert me["status"] == "ok" and me["username"] == user.email and me["plan"] == "pro"
    assert me["key"]["scopes"] == ["upload", "import", "read"]
    assert me["key"]["name"] == "My script" and me["key"]["expires_at"] is None
    assert me["key"]["key_prefix"].startswith("csb_live_") and key.endswith(me["key"]["key_last4"])
    assert ISO.match(me["key"]["created_at"])
    assert me["rate_limit"]["limit"] == 60 and me["rate_limit"]["window_seconds"] == 60
    assert me["rate_limit"]["remaining"] == 59
    assert me["limits"] == {"upload_max_bytes": 8 * 1024 * 1024}

    movie = tmp_path / "movie.mp4"
    movie.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    status, up = curl("-H", f"Authorization: Bearer {key}", "--data-binary", f"@{movie}",
                      f"{base}/api/v1/upload?filename=movie.mp4&path=/Films/")
    assert status == 200, up
    assert set(up) == {"status", "tracking_id", "file_name", "size", "link", "folder"}
    assert (up["file_name"], up["size"], up["folder"]) == ("movie.mp4", movie.stat().st_size,
                                                           "/Films/")
    # The link streams the file without any key.
    assert httpx.get(up["link"]).content == movie.read_bytes()

    s3_client(node, user).put_object(Bucket=user.bucket, Key="Films/2026/x.txt", Body=b"x")
    status, page = curl("-H", f"Authorization: Bearer {key}",
                        f"{base}/api/v1/files?path=/Films/&offset=0")
    assert status == 200, page
    assert page["path"] == "/Films/" and page["folders"] == ["2026"]
    assert page["limit"] == 50 and page["next_offset"] == 1 and page["has_more"] is False
    [f] = page["files"]
    assert (f["name"], f["size"]) == ("movie.mp4", movie.stat().st_size)
    assert ISO.match(f["uploaded_at"]) and httpx.get(f["link"]).content == movie.read_bytes()

    status, tree = curl("-H", f"Authorization: Bearer {key}", f"{base}/api/v1/folders")
    assert status == 200
    assert tree == {"status": "ok", "tree": {"name": "", "path": "/", "folders": [
        {"name": "Films", "path": "/Films/", "folders": [
            {"name": "2026", "path": "/Films/2026/", "folders": []}]}]}}

    # The document's video import: no extractor is installed.
    status, video = curl(
        "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
        "-d", '{ "url": "https://www.youtube.com/watch?v=abc", "type": "auto", '
              '"video": { "quality": "1080", "subtitles": true } }', f"{base}/api/v1/import")
    assert status == 503 and video["code"] == "feature_disabled"
    user.client.close()


def test_keys_panel(node: NodeProcess) -> None:
    user = signup(node)
    admin_patch(node, user.account_id, plan="pro")
    first = new_key(user, name="ci", scopes=["read"])
    assert first["key"].startswith("csb_live_") and len(first["key"]) >= 40
    assert first["scopes"] == ["read"]
    listed = user.client.get("/api/v1pro/keys").json()["keys"]
    assert [k["id"] for k in listed] == [first["id"]]
    assert "key" not in listed[0] and first["key"] not in json.dumps(listed)
    assert httpx.get(f"{node.web_url}/api/v1/me", headers=auth(first["key"])).status_code == 200
    for _ in range(9):
        new_key(user)
    eleventh = user.client.post("/api/v1pro/keys", json={})
    assert eleventh.status_code == 409, eleventh.text
    bad = user.client.post("/api/v1pro/keys", json={"scopes": ["delete"]})
    assert bad.status_code == 400
    r = user.client.delete(f"/api/v1pro/keys/{first['id']}")
    assert r.status_code == 200
    recorded = events_of(node, user.account_id)
    assert [e for e in recorded if e[0] == "key.revoked"] == [
        ("key.revoked", {"keyId": first["id"], "type": "api_key"})]
    created = [e[1] for e in recorded if e[0] == "key.created" and "keyId" in e[1]]
    assert len(created) == 10 and created[0]["keyId"] == first["id"]
    assert created[0]["scopes"] == ["read"] and first["key"] not in json.dumps(recorded)
    revoked = httpx.get(f"{node.web_url}/api/v1/me", headers=auth(first["key"]))
    assert code_of(revoked) == (401, "invalid_key")
    assert httpx.get(f"{node.web_url}/api/v1pro/keys").status_code == 401  # needs the session
    user.client.close()


def test_error_table(node: NodeProcess) -> None:
    url = f"{node.web_url}/api/v1"
    user, key = pro_user(node)
    assert code_of(httpx.get(f"{url}/me")) == (401, "missing_auth")
    assert code_of(httpx.get(f"{url}/me", headers={"Authorization": "Basic abc"})) == (
        401, "missing_auth")
    assert code_of(httpx.get(f"{url}/me", headers=auth("csb_live_" + "x" * 32))) == (
        401, "invalid_key")
    expired = new_key(user, expires_at="2020-01-01T00:00:00+00:00")["key"]
    assert code_of(httpx.get(f"{url}/me", headers=auth(expired))) == (401, "expired_key")

    free, free_key = pro_user(node, plan="free")
    r = httpx.get(f"{url}/me", headers=auth(free_key))
    assert code_of(r) == (403, "premium_required")
    assert r.headers["X-RateLimit-Remaining"] == "59"  # every response carries them

    reader = new_key(user, scopes=["read"])["key"]
    r = httpx.post(f"{url}/upload", params={"filename": "a.txt"}, headers=auth(reader),
                   content=b"a")
    assert code_of(r) == (403, "insufficient_scope")
    assert r.json()["message"] == "This API key is missing the 'upload' scope."

    assert code_of(httpx.post(f"{url}/upload", headers=auth(key), content=b"a")) == (
        400, "invalid_request")
    assert code_of(httpx.get(f"{url}/import/status", params={"task_id": "file_1"},
                             headers=auth(key))) == (404, "not_found")
    assert code_of(httpx.post(f"{url}/import/cancel", json={"task_id": "file_1"},
                              headers=auth(key))) == (404, "not_found")
    too_big = httpx.post(f"{url}/upload", params={"filename": "big.bin"}, headers=auth(key),
                         content=b"x" * (8 * 1024 * 1024 + 1), timeout=60)
    assert code_of(too_big) == (413, "payload_too_large")
    assert code_of(httpx.post(f"{url}/import", json={"url": "https://vimeo.com/1"},
                              headers=auth(key))) == (503, "feature_disabled")

    suspended, suspended_key = pro_user(node)
    admin_patch(node, suspended.account_id, status="suspended")
    assert code_of(httpx.get(f"{url}/me", headers=auth(suspended_key))) == (
        403, "account_unavailable")
    for u in (user, free, suspended):
        u.client.close()


def test_rate_limit_window(node: NodeProcess) -> None:
    user, key = pro_user(node)
    with httpx.Client(headers=auth(key)) as c:
        seen = [c.get(f"{node.web_url}/api/v1/me") for _ in range(60)]
        over = c.get(f"{node.web_url}/api/v1/folders")
    assert [r.status_code for r in seen] == [200] * 60
    assert [r.headers["X-RateLimit-Remaining"] for r in seen] == [str(n) for n in
                                                                 range(59, -1, -1)]
    assert all(r.headers["X-RateLimit-Limit"] == "60" for r in seen)
    assert code_of(over) == (429, "rate_limited")
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    reset = int(seen[0].headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61
    assert int(over.headers["X-RateLimit-Reset"]) == reset  # when the first slot frees
    user.client.close()


def test_files_pages_and_shared_path(node: NodeProcess) -> None:
    user, key = pro_user(node)
    s3 = s3_client(node, user)
    for i in range(55):
        s3.put_object(Bucket=user.bucket, Key=f"Many/f{i:02d}.txt", Body=b"%d" % i)
    s3.put_object(Bucket=user.bucket, Key="Many/sub/inner.txt", Body=b"i")
    s3.put_object(Bucket=user.bucket, Key="Many/empty/", Body=b"")  # a folder marker
    url = f"{node.web_url}/api/v1/files"
    first = httpx.get(url, params={"path": "/Many/"}, headers=auth(key)).json()
    assert first["folders"] == ["empty", "sub"]
    assert [f["name"] for f in first["files"]] == [f"f{i:02d}.txt" for i in range(50)]
    assert (first["next_offset"], first["has_more"]) == (50, True)
    second = httpx.get(url, params={"path": "Many", "offset": 50}, headers=auth(key)).json()
    assert second["folders"] == [] and second["path"] == "/Many/"
    assert [f["name"] for f in second["files"]] == [f"f{i:02d}.txt" for i in range(50, 55)]
    assert (second["next_offset"], second["has_more"]) == (55, False)
    assert code_of(httpx.get(url, params={"offset": "-1"}, headers=auth(key))) == (
        400, "invalid_request")
    assert code_of(httpx.post(url, headers=auth(key), content=b"x")) == (
        400, "invalid_request")
    # The same path with the S3 key pair is still the Simple REST API of seed 000.
    simple = httpx.get(url, params={"prefix": "Many/", "limit": 5}, headers=user.api_headers)
    assert simple.status_code == 200 and len(simple.json()["files"]) == 5
    assert "hasMore" in simple.json()
    user.client.close()


def test_links_are_signed(node: NodeProcess) -> None:
    user, key = pro_user(node)
    up = httpx.post(f"{node.web_url}/api/v1/upload", params={"filename": "doc.txt"},
                    headers=auth(key), content=b"signed bytes").json()
    assert up["folder"] == "/"
    assert httpx.get(up["link"]).content == b"signed bytes"
    part = httpx.get(up["link"], headers={"Range": "bytes=7-11"})
    assert part.status_code == 206 and part.content == b"bytes"
    assert part.headers["Content-Range"] == "bytes 7-11/12"
    assert httpx.get(up["link"], headers={"Range": "bytes=50-"}).status_code == 416
    tampered = re.sub(r"signature=[0-9a-f]{4}", "signature=0000", up["link"])
    assert code_of(httpx.get(tampered)) == (404, "not_found")
    expired = re.sub(r"expires=\d+", "expires=1000", up["link"])
    assert code_of(httpx.get(expired)) == (404, "not_found")
    user.client.close()


def test_import_from_loopback_is_refused(node: NodeProcess) -> None:
    user, key = pro_user(node)
    for url in (f"{node.web_url}/health", "http://localhost:9/x", "http://[::1]/x",
                "http://10.0.0.1/file.bin", "file:///etc/passwd"):
        r = httpx.post(f"{node.web_url}/api/v1/import", json={"url": url, "type": "file"},
                       headers=auth(key))
        assert code_of(r) == (400, "invalid_request"), url
    user.client.close()


def test_api_switched_off(tmp_path: Path) -> None:
    with started_node(tmp_path, "[v1pro]\nenabled = false\n") as off:
        user, key = pro_user(off)
        for r in (httpx.get(f"{off.web_url}/api/v1/me", headers=auth(key)),
                  httpx.get(f"{off.web_url}/api/v1/files", headers=auth(key))):
            assert code_of(r) == (503, "feature_disabled")
        user.client.close()
