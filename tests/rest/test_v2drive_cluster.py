"""v2-drive across two nodes over one PostgreSQL database: ids, presigned
URLs, search, trash, the rate window and revocation hold cluster-wide."""

from __future__ import annotations

import httpx
import pytest

from tests.harness import NodeProcess
from tests.rest.conftest import signup
from tests.rest.test_v1pro_cluster import two_nodes  # noqa: F401  (fixture)
from tests.rest.test_v1pro_support import admin_patch
from tests.rest.test_v2drive_support import auth, error_of, new_key, s3_client

pytestmark = pytest.mark.postgres


def test_drive_is_one_across_nodes(two_nodes: tuple[NodeProcess, NodeProcess]) -> None:  # noqa: F811
    one, two = two_nodes
    user = signup(one)
    admin_patch(one, user.account_id, plan="1tb")
    made = new_key(user)
    key = made["key"]
    # A presigned URL made by node1 takes the bytes on node2 (one cluster secret).
    created = httpx.post(f"{one.web_url}/v2/files", json={"name": "minutes.txt"},
                         headers=auth(key)).json()
    put = httpx.put(created["upload_url"].replace(one.web_url, two.web_url),
                    content=b"the zeppelin budget")
    assert put.status_code == 200, put.text
    folder = httpx.post(f"{two.web_url}/v2/folders", json={"name": "Shared"},
                        headers=auth(key)).json()
    got = httpx.get(f"{one.web_url}/v2/folders/{folder['id']}", headers=auth(key))
    assert got.status_code == 200 and got.json()["path"] == "/Shared"
    # A change through S3 on node1 is found by a search on node2.
    s3_client(one, user).put_object(Bucket=user.bucket, Key="Shared/plan.md",
                                    Body=b"# Zeppelin launch")
    hits = httpx.get(f"{two.web_url}/v2/search", params={"q": "zeppelin"},
                     headers=auth(key)).json()
    assert sorted(h["name"] for h in hits["results"]) == ["minutes.txt", "plan.md"]
    # Trash on node2, restore on node1.
    file_id = created["id"]
    assert httpx.delete(f"{two.web_url}/v2/files/{file_id}", headers=auth(key)).status_code \
        == 204
    assert httpx.post(f"{one.web_url}/v2/trash/{file_id}/restore",
                      headers=auth(key)).status_code == 200
    assert httpx.get(f"{two.web_url}/v2/files/{file_id}/download",
                     headers=auth(key)).content == b"the zeppelin budget"
    # One rate window: the remaining count falls across both nodes.
    left = [int(httpx.get(f"{n.web_url}/v2/users/me", headers=auth(key))
                .headers["X-RateLimit-Remaining"]) for n in (one, two, one, two)]
    assert left == sorted(left, reverse=True) and len(set(left)) == 4
    # Revoked on node1's dashboard: refused by node2 at once.
    assert user.client.delete(f"/api/v2drive/keys/{made['id']}").status_code == 200
    assert error_of(httpx.get(f"{two.web_url}/v2/users/me", headers=auth(key))) == (
        401, "invalid_api_key")
    user.client.close()
