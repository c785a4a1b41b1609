"""v2-drive trash (seed 004): trash and restore seen by S3, folders, permanent
deletes and the 30-day purge worker, against a live node."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.harness import NodeProcess
from tests.rest.test_v2drive_support import auth, drive_user, error_of, s3_client, upload

DATA = bytes(range(256)) * 40  # over the inline threshold: chunks, not inline bytes


def s3_keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_trash_and_restore_are_seen_by_s3(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    s3 = s3_client(node, user)
    f = upload(node, key, "report.bin", DATA)
    r = httpx.delete(f"{base}/files/{f['id']}", headers=auth(key))
    assert r.status_code == 204 and r.content == b""
    assert s3_keys(s3, user.bucket) == []
    with pytest.raises(ClientError):
        s3.head_object(Bucket=user.bucket, Key="report.bin")
    assert error_of(httpx.get(f"{base}/files/{f['id']}", headers=auth(key))) == (
        404, "resource_not_found")
    trash = httpx.get(f"{base}/trash", headers=auth(key)).json()
    assert trash["total_count"] == 1 and set(trash) == {"data", "has_more", "next_cursor",
                                                        "total_count"}
    [item] = trash["data"]
    assert (item["type"], item["id"], item["name"], item["original_path"], item["size"]) == (
        "file", f["id"], "report.bin", "/report.bin", len(DATA))
    trashed = datetime.fromisoformat(item["trashed_at"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(item["expires_at"].replace("Z", "+00:00")) == (
        trashed + timedelta(days=30))
    # A new file may take the name meanwhile; restoring onto it is refused.
    s3.put_object(Bucket=user.bucket, Key="report.bin", Body=b"new")
    assert error_of(httpx.post(f"{base}/trash/{f['id']}/restore", headers=auth(key))) == (
        400, "resource_conflict")
    s3.delete_object(Bucket=user.bucket, Key="report.bin")

    r = httpx.post(f"{base}/trash/{f['id']}/restore", headers=auth(key))
    assert r.status_code == 200, r.text
    assert r.json() == {"id": f["id"], "type": "file", "status": "restored"}
    assert s3.get_object(Bucket=user.bucket, Key="report.bin")["Body"].read() == DATA
    assert httpx.get(f"{base}/files/{f['id']}", headers=auth(key)).json()["size"] == len(DATA)
    assert httpx.get(f"{base}/trash", headers=auth(key)).json()["total_count"] == 0
    assert error_of(httpx.post(f"{base}/trash/{f['id']}/restore", headers=auth(key))) == (
        404, "resource_not_found")
    user.client.close()


def test_folders_in_the_trash(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    s3 = s3_client(node, user)
    folder = httpx.post(f"{base}/folders", json={"name": "Projects"}, headers=auth(key)).json()
    s3.put_object(Bucket=user.bucket, Key="Projects/a/plan.txt", Body=b"plan")
    loose = upload(node, key, "notes.bin", DATA, parent=folder["id"])
    # The file alone first, then its folder: restoring the file puts it at the root.
    assert httpx.delete(f"{base}/files/{loose['id']}", headers=auth(key)).status_code == 204
    assert httpx.delete(f"{base}/folders/{folder['id']}", headers=auth(key)).status_code == 204
    assert s3_keys(s3, user.bucket) == []
    assert error_of(httpx.get(f"{base}/folders/{folder['id']}", headers=auth(key))) == (
        404, "resource_not_found")
    items = httpx.get(f"{base}/trash", headers=auth(key)).json()["data"]
    assert sorted((i["type"], i["name"]) for i in items) == [("file", "notes.bin"),
                                                           ("folder", "Projects")]
    assert httpx.post(f"{base}/trash/{loose['id']}/restore",
                      headers=auth(key)).status_code == 200
    assert s3_keys(s3, user.bucket) == ["notes.bin"]
    assert httpx.post(f"{base}/trash/{folder['id']}/restore",
                      headers=auth(key)).status_code == 200
    assert s3_keys(s3, user.bucket) == ["Projects/", "Projects/a/plan.txt", "notes.bin"]
    assert httpx.get(f"{base}/folders/{folder['id']}", headers=auth(key)).json()["path"] == (
        "/Projects")
    # Permanent delete.
    assert httpx.delete(f"{base}/folders/{folder['id']}", headers=auth(key)).status_code == 204
    assert httpx.delete(f"{base}/trash/{folder['id']}", headers=auth(key)).status_code == 204
    assert httpx.get(f"{base}/trash", headers=auth(key)).json()["total_count"] == 0
    assert error_of(httpx.delete(f"{base}/trash/{folder['id']}", headers=auth(key))) == (
        404, "resource_not_found")
    assert error_of(httpx.delete(f"{base}/folders/fld_root", headers=auth(key))) == (
        400, "invalid_request")
    user.client.close()


def _db(node: NodeProcess) -> sqlite3.Connection:
    return sqlite3.connect(node.db_url.removeprefix("sqlite://"), timeout=30)


def test_the_purge_worker_deletes_after_30_days(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    # Bytes of this test alone: chunks are shared by content across the cluster.
    f = upload(node, key, "old.bin", os.urandom(len(DATA)))
    keep = upload(node, key, "recent.bin", os.urandom(len(DATA)))
    for fid in (f["id"], keep["id"]):
        assert httpx.delete(f"{base}/files/{fid}", headers=auth(key)).status_code == 204
    with _db(node) as db:
        [(trash,)] = db.execute("SELECT trash FROM drive_files WHERE id = ?", (f["id"],))
        chunks = [c for c, _ in json.loads(trash)["chunks"]]
        long_ago = datetime.now(UTC) - timedelta(days=31)
        db.execute("UPDATE drive_files SET trashed_at = ? WHERE id = ?", (long_ago, f["id"]))
    assert chunks
    token = node.settings.console_token_file().read_text().strip()
    r = httpx.post(f"{node.web_url}/admin/v1/workers/{node.node_id}/drive-trash/trigger",
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while True:
        ids = [i["id"] for i in httpx.get(f"{base}/trash", headers=auth(key)).json()["data"]]
        if ids == [keep["id"]]:
            break
        assert time.monotonic() < deadline, ids
        time.sleep(0.1)
    with _db(node) as db:
        counts = [db.execute("SELECT refcount FROM chunk_refs WHERE chunk_id = ?",
                             (c,)).fetchone()[0] for c in chunks]
    assert counts == [0] * len(chunks)  # the GC may now collect them
    user.client.close()


def test_restore_keeps_the_time_machine_history(node: NodeProcess) -> None:
    """Upload v1, replace it with v2, trash, restore: both versions are back,
    S3 reads v2 and v1's bytes still restore (on either database)."""
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    s3 = s3_client(node, user)
    v1, v2 = os.urandom(len(DATA)), os.urandom(len(DATA) + 1)
    f = upload(node, key, "plan.bin", v1)
    s3.put_object(Bucket=user.bucket, Key="plan.bin", Body=v2)
    listed = f"{base}/files/{f['id']}/versions"
    shape = [(v["version_number"], v["size"], v["is_current"])
             for v in httpx.get(listed, headers=auth(key)).json()["data"]]
    assert shape == [(2, len(v2), True), (1, len(v1), False)]

    assert httpx.delete(f"{base}/files/{f['id']}", headers=auth(key)).status_code == 204
    r = httpx.post(f"{base}/trash/{f['id']}/restore", headers=auth(key))
    assert r.status_code == 200, r.text
    after = httpx.get(listed, headers=auth(key)).json()
    assert [(v["version_number"], v["size"], v["is_current"]) for v in after["data"]] == shape
    assert s3.get_object(Bucket=user.bucket, Key="plan.bin")["Body"].read() == v2
    old = after["data"][1]["version_id"]
    r = httpx.post(f"{listed}/{old}/restore", headers=auth(key))
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=user.bucket, Key="plan.bin")["Body"].read() == v1
    user.client.close()


def _used(db: sqlite3.Connection, account_id: str) -> int:
    return int(db.execute("SELECT used_bytes FROM accounts WHERE id = ?",
                          (account_id,)).fetchone()[0])


def test_trashed_history_references_and_usage(node: NodeProcess) -> None:
    """While trashed, a file's history is not charged and its chunks are held
    by the trash; once restored, each row holds its own reference again."""
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    v1, v2 = os.urandom(len(DATA)), os.urandom(len(DATA) + 1)
    f = upload(node, key, "plan.bin", v1)
    s3_client(node, user).put_object(Bucket=user.bucket, Key="plan.bin", Body=v2)
    assert httpx.delete(f"{base}/files/{f['id']}", headers=auth(key)).status_code == 204
    with _db(node) as db:
        assert _used(db, user.account_id) == 0
        [(trash,)] = db.execute("SELECT trash FROM drive_files WHERE id = ?", (f["id"],))
        assert [h["size"] for h in json.loads(trash)["history"]] == [len(v1)]
    assert httpx.post(f"{base}/trash/{f['id']}/restore", headers=auth(key)).status_code == 200
    with _db(node) as db:
        assert _used(db, user.account_id) == len(v1) + len(v2)
        rows = db.execute('SELECT chunks FROM object_versions WHERE "key" = ? AND bucket_id = '
                          "(SELECT id FROM buckets WHERE name = ?)",
                          ("plan.bin", user.bucket)).fetchall()
        chunks = [c for (listing,) in rows for c, _ in json.loads(listing)]
        counts = [db.execute("SELECT refcount FROM chunk_refs WHERE chunk_id = ?",
                             (c,)).fetchone()[0] for c in chunks]
    assert len(rows) == 2 and chunks and counts == [1] * len(chunks)
    user.client.close()
