"""v2-drive (seed 004) against a live node: keys and their types, /users/me,
the error format, rate limits, cursor pagination, files and folders."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.harness import NodeProcess
from tests.rest.test_v2drive_support import (
    auth,
    curl,
    drive_user,
    error_of,
    new_key,
    s3_client,
    sftp_client,
    upload,
)

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
USER_FIELDS = {"id", "email", "display_name", "avatar_url", "role", "storage_used",
               "storage_quota", "two_factor_enabled", "created_at", "last_login"}
FILE_FIELDS = {"id", "name", "mime_type", "size", "checksum_sha256", "parent_folder_id",
               "owner_id", "created_at", "updated_at", "version", "download_url", "shared",
               "tags", "status"}


def test_users_me_and_auth_errors(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    r = httpx.get(f"{base}/users/me", headers={**auth(key), "X-Cloudy-Version": "2024-08-15"})
    assert r.status_code == 200, r.text
    me = r.json()
    assert set(me) == USER_FIELDS
    assert (me["id"], me["email"], me["role"]) == (user.account_id, user.email, "admin")
    assert ISO.match(me["created_at"]) and isinstance(me["storage_quota"], int)
    assert r.headers["X-RateLimit-Limit"] == "600"
    assert int(r.headers["X-RateLimit-Remaining"]) < 600
    assert r.headers["X-RateLimit-Reset"].isdigit()

    assert error_of(httpx.get(f"{base}/users/me")) == (401, "authentication_required")
    assert error_of(httpx.get(f"{base}/users/me", headers=auth("cs_live_sk_nope"))) == (
        401, "invalid_api_key")
    assert error_of(httpx.get(f"{base}/users/me", headers=auth("not-a-token"))) == (
        401, "invalid_token")
    assert error_of(httpx.get(f"{base}/users/me", headers={
        **auth(key), "X-Cloudy-Version": "yesterday"})) == (400, "invalid_request")
    assert error_of(httpx.get(f"{base}/nothing-here", headers=auth(key))) == (
        404, "resource_not_found")
    assert error_of(httpx.get(f"{base}/files/fl_missing", headers=auth(key))) == (
        404, "resource_not_found")
    assert error_of(httpx.get(f"{base}/files", params={"limit": "0"}, headers=auth(key))) == (
        400, "invalid_request")
    assert error_of(httpx.get(f"{base}/files", params={"cursor": "%%%"},
                              headers=auth(key))) == (400, "invalid_request")
    assert error_of(httpx.post(f"{base}/folders", content=b"{not json",
                               headers=auth(key))) == (400, "invalid_request")

    # Key types: a public key reads only; a secret key holds only its scopes.
    public = new_key(user, type="cs_live_pk_")
    assert public["key"].startswith("cs_live_pk_") and public["scopes"] == ["files.read"]
    assert httpx.get(f"{base}/files", headers=auth(public["key"])).status_code == 200
    assert error_of(httpx.post(f"{base}/folders", json={"name": "x"},
                               headers=auth(public["key"]))) == (403, "forbidden")
    reader = new_key(user, scopes=["files.read"])["key"]
    assert error_of(httpx.post(f"{base}/folders", json={"name": "x"},
                               headers=auth(reader))) == (403, "insufficient_scope")
    assert error_of(httpx.get(f"{base}/users", headers=auth(reader))) == (
        403, "insufficient_scope")
    listed = httpx.get(f"{base}/users", headers=auth(key)).json()
    assert [u["id"] for u in listed["data"]] == [user.account_id]
    assert listed["total_count"] == 1 and listed["has_more"] is False

    # Revocation stops a key at once.
    keys = user.client.get("/api/v2drive/keys").json()["keys"]
    assert {k["type"] for k in keys} == {"cs_live_sk_", "cs_live_pk_"}
    [mine] = [k for k in keys if k["name"] == "script"]
    assert key.startswith(mine["key_prefix"]) and key.endswith(mine["key_last4"])
    assert user.client.delete(f"/api/v2drive/keys/{mine['id']}").status_code == 200
    assert error_of(httpx.get(f"{base}/users/me", headers=auth(key))) == (401, "invalid_api_key")
    # The dashboard refuses unknown key types in its own format.
    assert user.client.post("/api/v2drive/keys", json={"type": "cs_x_"}).status_code == 400
    user.client.close()


def test_rate_limit_of_the_free_plan(node: NodeProcess) -> None:
    user, key = drive_user(node, plan="free")
    statuses = []
    # 60 a minute (and 10 a second): the 61st request is refused at the latest.
    for _ in range(61):
        r = httpx.get(f"{node.web_url}/v2/users/me", headers=auth(key))
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    assert error_of(r) == (429, "rate_limit_exceeded")
    assert int(r.headers["Retry-After"]) >= 1 and r.headers["X-RateLimit-Limit"] == "60"
    user.client.close()


def test_presigned_upload_metadata_and_pages(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    data = b"quarterly numbers\n" * 100
    r = httpx.post(f"{base}/files", headers=auth(key), json={
        "name": "Q3_Financial_Report.pdf", "mime_type": "application/pdf", "size": len(data),
        "checksum_sha256": hashlib.sha256(data).hexdigest()})
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {"id", "upload_url", "upload_expires_at", "status"}
    assert created["status"] == "pending_upload" and created["id"].startswith("fl_")
    assert ISO.match(created["upload_expires_at"])
    pending = httpx.get(f"{base}/files/{created['id']}", headers=auth(key)).json()
    assert pending["status"] == "pending_upload" and pending["download_url"] is None

    # A tampered URL, a wrong size, then the real upload.
    assert error_of(httpx.put(created["upload_url"].replace("sig=", "sig=0"),
                              content=data)) == (403, "forbidden")
    assert error_of(httpx.put(created["upload_url"], content=data + b"!")) == (
        400, "invalid_request")
    done = httpx.put(created["upload_url"], content=data)
    assert done.status_code == 200, done.text
    f = done.json()
    assert set(f) == FILE_FIELDS
    assert (f["id"], f["name"], f["size"], f["mime_type"]) == (
        created["id"], "Q3_Financial_Report.pdf", len(data), "application/pdf")
    assert f["checksum_sha256"] == hashlib.sha256(data).hexdigest()
    assert f["parent_folder_id"] == "fld_root" and f["owner_id"] == user.account_id
    assert f["status"] == "active" and f["version"] >= 1
    assert httpx.get(f["download_url"]).content == data
    got = httpx.get(f"{base}/files/{f['id']}/download", headers=auth(key))
    assert got.content == data
    # S3 sees the same object.
    s3 = s3_client(node, user)
    assert s3.get_object(Bucket=user.bucket, Key="Q3_Financial_Report.pdf")["Body"].read() == data

    # Replace: a new version, same id.
    replaced = httpx.put(f"{base}/files/{f['id']}", content=b"v2", headers=auth(key)).json()
    assert replaced["id"] == f["id"] and replaced["size"] == 2

    # Custom metadata follows the document's shape.
    meta = {"template": "document_classification", "fields": {
        "department": "Finance", "classification": "confidential",
        "retention_period": "7_years", "review_date": "2025-06-20"}}
    r = httpx.post(f"{base}/files/{f['id']}/metadata", json=meta, headers=auth(key))
    assert r.status_code == 200, r.text
    got_meta = httpx.get(f"{base}/files/{f['id']}/metadata", headers=auth(key)).json()
    assert got_meta == {"file_id": f["id"], "data": [meta]}
    assert error_of(httpx.post(f"{base}/files/{f['id']}/metadata", json={"template": "t"},
                               headers=auth(key))) == (400, "invalid_request")

    # Pagination: a cursor walks every file once; total_count counts them all.
    for i in range(4):
        s3.put_object(Bucket=user.bucket, Key=f"page/{i}.txt", Body=b"x" * (i + 1),
                      ContentType="text/plain")
    seen, cursor = [], None
    while True:
        params = {"limit": "2", "sort_by": "name", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{base}/files", params=params, headers=auth(key)).json()
        assert set(page) == {"data", "has_more", "next_cursor", "total_count"}
        assert page["total_count"] == 5
        seen += [d["name"] for d in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(["0.txt", "1.txt", "2.txt", "3.txt",
                                   "Q3_Financial_Report.pdf"]) and len(seen) == 5
    texts = httpx.get(f"{base}/files", params={"mime_type": "text/plain"},
                      headers=auth(key)).json()
    assert texts["total_count"] == 4
    user.client.close()


def test_folder_move_is_seen_by_s3_and_sftp(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    r = httpx.post(f"{base}/folders", json={"name": "Marketing_Assets", "color": "#4f46e5"},
                   headers=auth(key))
    assert r.status_code == 201, r.text
    folder = r.json()
    assert set(folder) >= {"id", "name", "parent_folder_id", "path", "created_at", "item_count"}
    assert (folder["name"], folder["parent_folder_id"], folder["path"],
            folder["item_count"]) == ("Marketing_Assets", "fld_root", "/Marketing_Assets", 0)
    sub = httpx.post(f"{base}/folders", json={"name": "2024", "parent_folder_id": folder["id"]},
                     headers=auth(key)).json()
    assert sub["path"] == "/Marketing_Assets/2024"
    assert error_of(httpx.post(f"{base}/folders", json={"name": "2024", "parent_folder_id":
                                                        folder["id"]}, headers=auth(key))) == (
        400, "resource_conflict")
    logo = upload(node, key, "logo.png", b"\x89PNG" + bytes(200), parent=sub["id"])
    s3 = s3_client(node, user)
    s3.put_object(Bucket=user.bucket, Key="Marketing_Assets/brief.txt", Body=b"brief")
    contents = httpx.get(f"{base}/folders/{folder['id']}/contents", headers=auth(key)).json()
    assert [(d["type"], d["name"]) for d in contents["data"]] == [
        ("folder", "2024"), ("file", "brief.txt")]
    assert contents["total_count"] == 2

    # Rename and move under a new parent: every key moves, ids stay.
    target = httpx.post(f"{base}/folders", json={"name": "Archive"}, headers=auth(key)).json()
    r = httpx.patch(f"{base}/folders/{folder['id']}", headers=auth(key),
                    json={"name": "Brand", "parent_folder_id": target["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/Archive/Brand" and r.json()["id"] == folder["id"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=user.bucket)["Contents"])
    assert keys == ["Archive/", "Archive/Brand/", "Archive/Brand/2024/",
                    "Archive/Brand/2024/logo.png", "Archive/Brand/brief.txt"]
    transport, sftp = sftp_client(user)
    try:
        assert sorted(sftp.listdir(f"/{user.bucket}/Archive/Brand")) == ["2024", "brief.txt"]
        with sftp.open(f"/{user.bucket}/Archive/Brand/2024/logo.png") as fh:
            assert fh.read() == b"\x89PNG" + bytes(200)
    finally:
        sftp.close()
        transport.close()
    moved = httpx.get(f"{base}/files/{logo['id']}", headers=auth(key)).json()
    assert moved["parent_folder_id"] == sub["id"] and moved["name"] == "logo.png"
    assert httpx.get(f"{base}/folders/{sub['id']}", headers=auth(key)).json()["path"] == (
        "/Archive/Brand/2024")
    # A folder cannot move into itself; a file renames in place.
    assert error_of(httpx.patch(f"{base}/folders/{target['id']}", headers=auth(key),
                                json={"parent_folder_id": sub["id"]})) == (400, "invalid_request")
    renamed = httpx.patch(f"{base}/files/{logo['id']}", json={"name": "logo-v2.png"},
                          headers=auth(key)).json()
    assert renamed["name"] == "logo-v2.png"
    s3.head_object(Bucket=user.bucket, Key="Archive/Brand/2024/logo-v2.png")
    user.client.close()


def test_sandbox_keys_see_only_the_sandbox(node: NodeProcess) -> None:
    user, live = drive_user(node)
    test_key = new_key(user, type="cs_test_sk_")["key"]
    upload(node, test_key, "sandboxed.txt", b"sand")
    upload(node, live, "live.txt", b"live")
    names = lambda k: [f["name"] for f in httpx.get(  # noqa: E731
        f"{node.web_url}/v2/files", headers=auth(k)).json()["data"]]
    assert names(test_key) == ["sandboxed.txt"]
    assert names(live) == ["live.txt"]
    user.client.close()


@needs_curl
def test_document_curl_examples(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    hdr = ["-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json"]
    status, me = curl(*hdr, f"{base}/users/me")
    assert status == 200 and set(me) == USER_FIELDS
    status, folder = curl(*hdr, "-X", "POST", "-d", '{"name": "Marketing_Assets", '
                          '"parent_folder_id": "fld_root", "color": "#4f46e5"}',
                          f"{base}/folders")
    assert status == 201 and folder["path"] == "/Marketing_Assets"
    status, created = curl(*hdr, "-X", "POST", "-d", '{"name": "Q3_Financial_Report.pdf", '
                           '"mime_type": "application/pdf", "size": 2458624, '
                           f'"parent_folder_id": "{folder["id"]}", '
                           '"checksum_sha256": "' + "a1" * 32 + '"}', f"{base}/files")
    assert status == 201 and created["status"] == "pending_upload"
    status, page = curl(*hdr, f"{base}/files?limit=25")
    assert status == 200 and set(page) == {"data", "has_more", "next_cursor", "total_count"}
    status, err = curl(*hdr, f"{base}/files/fl_9x2k4m")
    assert status == 404 and err["error"]["code"] == "resource_not_found"
    assert err["error"]["message"] == "The file with ID 'fl_9x2k4m' was not found."
    user.client.close()


def test_an_unused_upload_url_expires(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    created = httpx.post(f"{base}/files", json={"name": "late.txt"}, headers=auth(key)).json()
    path = node.db_url.removeprefix("sqlite://")
    with sqlite3.connect(path, timeout=30) as db:
        db.execute("UPDATE drive_files SET upload_expires_at = ? WHERE id = ?",
                   (datetime.now(UTC) - timedelta(minutes=1), created["id"]))
    got = httpx.get(f"{base}/files/{created['id']}", headers=auth(key)).json()
    assert got["status"] == "upload_expired" and got["download_url"] is None
    # The URL itself is signed with its expiry: a forged later expiry fails.
    late = created["upload_url"].replace("expires=", "expires=9")
    assert error_of(httpx.put(late, content=b"x")) == (403, "forbidden")
    user.client.close()
