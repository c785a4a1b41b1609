"""v2-drive file versions (seed 004) over Time Machine, against a live node:
overwrites through S3 and v2-drive are versions; a restore is a new one."""

from __future__ import annotations

import re

import httpx

from tests.harness import NodeProcess
from tests.rest.test_v2drive_support import auth, drive_user, error_of, s3_client, upload


def test_versions_list_and_restore(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    s3 = s3_client(node, user)
    f = upload(node, key, "plan.txt", b"one")
    assert httpx.put(f"{base}/files/{f['id']}", content=b"two!", headers=auth(key)).status_code \
        == 200
    s3.put_object(Bucket=user.bucket, Key="plan.txt", Body=b"three")
    r = httpx.get(f"{base}/files/{f['id']}/versions", headers=auth(key))
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"data", "has_more", "next_cursor", "total_count"}
    assert page["total_count"] == 3
    assert [(v["version_number"], v["size"]) for v in page["data"]] == [(3, 5), (2, 4), (1, 3)]
    newest, _, oldest = page["data"]
    assert {"version_id", "version_number", "size", "uploaded_by", "created_at"} <= set(newest)
    assert re.match(r"^ver_\d+$", oldest["version_id"]) and newest["uploaded_by"] == \
        user.account_id
    assert newest["is_current"] and not oldest["is_current"]
    paged = httpx.get(f"{base}/files/{f['id']}/versions", params={"limit": "2"},
                      headers=auth(key)).json()
    assert len(paged["data"]) == 2 and paged["has_more"] and paged["total_count"] == 3

    r = httpx.post(f"{base}/files/{f['id']}/versions/{oldest['version_id']}/restore",
                   headers=auth(key))
    assert r.status_code == 200, r.text
    restored = r.json()
    assert restored["version_number"] == 4 and restored["size"] == 3
    assert restored["restored_version_id"] == oldest["version_id"]
    assert s3.get_object(Bucket=user.bucket, Key="plan.txt")["Body"].read() == b"one"
    assert httpx.get(f"{base}/files/{f['id']}", headers=auth(key)).json()["version"] == 4

    # A version of another file, or none, is not found.
    other = upload(node, key, "other.txt", b"x")
    other_version = httpx.get(f"{base}/files/{other['id']}/versions",
                              headers=auth(key)).json()["data"][0]["version_id"]
    for bad in (other_version, "ver_999999999", "nonsense"):
        assert error_of(httpx.post(f"{base}/files/{f['id']}/versions/{bad}/restore",
                                   headers=auth(key))) == (404, "resource_not_found")
    assert error_of(httpx.get(f"{base}/files/fl_nope/versions", headers=auth(key))) == (
        404, "resource_not_found")
    user.client.close()
