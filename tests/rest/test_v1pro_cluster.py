"""v1-pro across two node processes sharing one PostgreSQL database: the
per-key window, scopes, revocation and links hold for the cluster, however
the requests alternate between the nodes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import NodeProcess, prepare_node
from tests.rest.conftest import signup
from tests.rest.test_v1pro_support import admin_patch, auth, new_key

pytestmark = pytest.mark.postgres
# Every object on both nodes, both needed for a write: losing one makes
# storage unavailable (the 503 "unavailable" of the error table).
EXTRA = """bootstrap_expect = 2
layout_refresh_seconds = 0.3
straggler_seconds = 0.5
transport_timeout_seconds = 5

[storage]
replication_factor = 2
write_quorum = 2
"""


@pytest.fixture
def two_nodes(tmp_path: Path, pg_url: str) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Two nodes, one PostgreSQL metadata database, one cluster secret."""
    first = prepare_node(tmp_path / "node1", pg_url, "node1", zone="dc1", extra=EXTRA)
    second = prepare_node(tmp_path / "node2", pg_url, "node2", zone="dc2", extra=EXTRA)
    first.start()
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_window_scopes_and_revocation_are_cluster_wide(
    two_nodes: tuple[NodeProcess, NodeProcess],
) -> None:
    one, two = two_nodes
    user = signup(one)
    admin_patch(one, user.account_id, plan="pro")
    created = new_key(user, name="reader", scopes=["read"])
    key = created["key"]
    nodes = itertools.cycle(two_nodes)
    seen = [httpx.get(f"{next(nodes).web_url}/api/v1/me", headers=auth(key), timeout=30)
            for _ in range(10)]
    assert [r.status_code for r in seen] == [200] * 10
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in seen] == list(range(59, 49, -1))
    assert [r.json()["rate_limit"]["remaining"] for r in seen] == list(range(59, 49, -1))
    assert len({r.headers["X-RateLimit-Reset"] for r in seen}) == 1
    assert all(r.json()["key"]["scopes"] == ["read"] for r in seen)

    for node in two_nodes:  # a scope missing on one node is missing on all
        r = httpx.post(f"{node.web_url}/api/v1/upload", params={"filename": "a"},
                       headers=auth(key), content=b"a")
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
        assert r.headers["X-RateLimit-Remaining"] in ("49", "48")

    writer = new_key(user, scopes=["upload", "read"])["key"]
    up = httpx.post(f"{one.web_url}/api/v1/upload", params={"filename": "n.txt"},
                    headers=auth(writer), content=b"from node1")
    assert up.status_code == 200, up.text
    # The link signed by node1 streams from node2 (one cluster secret).
    assert httpx.get(up.json()["link"].replace(one.web_url, two.web_url)).content == (
        b"from node1")

    assert user.client.delete(f"/api/v1pro/keys/{created['id']}").status_code == 200
    r = httpx.get(f"{two.web_url}/api/v1/me", headers=auth(key))
    assert r.status_code == 401 and r.json()["code"] == "invalid_key"
    user.client.close()


def test_storage_unavailable_and_v2_window(two_nodes: tuple[NodeProcess, NodeProcess]) -> None:
    one, two = two_nodes
    user = signup(one)
    # v2-objects counts a free account's requests for the cluster too.
    v2_auth = {"Authorization": f"Bearer {user.access_key}:{user.secret_key}"}
    nodes = itertools.cycle(two_nodes)
    seen = [httpx.get(f"{next(nodes).web_url}/v2/buckets/{user.bucket}/objects",
                      headers=v2_auth, timeout=30) for _ in range(6)]
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in seen] == list(range(59, 53, -1))

    admin_patch(one, user.account_id, plan="pro")
    key = new_key(user)["key"]
    two.stop()
    # With a node of two gone, new data cannot reach its write quorum.
    r = httpx.post(f"{one.web_url}/api/v1/upload", params={"filename": "big.bin"},
                   headers=auth(key), content=bytes(64 * 1024), timeout=60)
    assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
    assert "Retry-After" in r.headers
    user.client.close()
