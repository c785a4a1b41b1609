"""The rest of v2-drive's error table against a live node: 500 for a file
whose data is lost, 403 storage_quota_exceeded, 403 forbidden for a
suspended account and 400 for an over-long body."""

from __future__ import annotations

import hashlib
import os

import httpx

from tests.cluster.replication_support import chunk_path
from tests.harness import NodeProcess
from tests.rest.test_v1pro_support import admin_patch
from tests.rest.test_v2drive_support import auth, drive_user, error_of, upload


def test_lost_data_quota_and_suspension(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    data = os.urandom(64 * 1024)  # one chunk, not inline
    f = upload(node, key, "lost.bin", data)
    chunk_path(node, hashlib.sha256(data).hexdigest()).unlink()
    r = httpx.get(f"{base}/files/{f['id']}/download", headers=auth(key))
    assert error_of(r) == (500, "internal_error")
    link = httpx.get(f"{base}/files/{f['id']}", headers=auth(key)).json()["download_url"]
    assert error_of(httpx.get(link)) == (500, "internal_error")

    admin_patch(node, user.account_id, quota_bytes=100 * 1024)
    r = httpx.post(f"{base}/files", json={"name": "big.bin", "size": 64 * 1024},
                   headers=auth(key))
    assert r.status_code == 201, r.text
    assert error_of(httpx.put(r.json()["upload_url"], content=os.urandom(64 * 1024))) == (
        403, "storage_quota_exceeded")

    assert error_of(httpx.post(f"{base}/folders", content=b'{"name": "' + b"x" * 70000 + b'"}',
                               headers=auth(key))) == (400, "invalid_request")
    admin_patch(node, user.account_id, status="suspended")
    assert error_of(httpx.get(f"{base}/users/me", headers=auth(key))) == (403, "forbidden")
    user.client.close()
