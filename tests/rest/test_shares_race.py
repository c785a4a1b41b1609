"""Shares across nodes, on PostgreSQL: two node processes on one database race
on the last downloads of a share (exactly ``maxDownloads`` succeed), and wrong
passwords are counted for the whole cluster."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.cluster.replication_support import node_extra, start_nodes, stop_nodes
from tests.harness import NodeProcess
from tests.rest.conftest import signup

pytestmark = pytest.mark.postgres

MAX_DOWNLOADS = 3
ATTEMPTS = 4
REQUESTS_PER_NODE = 8


@pytest.fixture
def two_nodes(tmp_path: Path, pg_url: str) -> Iterator[list[NodeProcess]]:
    extra = node_extra(2) + ("\n[accounts]\ndashboard_requests_per_minute = 1000\n"
                             f"[shares]\npassword_attempts_per_minute = {ATTEMPTS}\n")
    nodes = start_nodes(tmp_path, pg_url, [("node1", "dc1"), ("node2", "dc2")], extra)
    try:
        yield nodes
    finally:
        stop_nodes(nodes)


def test_two_nodes_race_on_the_last_downloads(two_nodes: list[NodeProcess]) -> None:
    user = signup(two_nodes[0])
    try:
        r = user.client.post("/api/v1/files", params={"bucket": user.bucket, "key": "hot.txt"},
                             content=b"popular", headers=user.api_headers)
        assert r.status_code == 201, r.text
        created = user.client.post("/api/shares", json={
            "bucket": user.bucket, "objectKey": "hot.txt", "maxDownloads": MAX_DOWNLOADS})
        assert created.status_code == 201, created.text
        code = created.json()["code"]
        start = threading.Barrier(2 * REQUESTS_PER_NODE)
        statuses: list[int] = []
        lock = threading.Lock()

        def fetch(node: NodeProcess) -> None:
            start.wait(timeout=30)
            status = httpx.get(f"{node.web_url}/s/{code}", timeout=60).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=fetch, args=(node,))
                   for node in two_nodes for _ in range(REQUESTS_PER_NODE)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(statuses) == [200] * MAX_DOWNLOADS + [410] * (
            2 * REQUESTS_PER_NODE - MAX_DOWNLOADS), statuses
        entry = user.client.get("/api/shares").json()["shares"][0]
        assert entry["downloads"] == MAX_DOWNLOADS and entry["active"] is False
    finally:
        user.client.close()


def test_wrong_passwords_are_limited_cluster_wide(two_nodes: list[NodeProcess],
                                                  pg_url: str) -> None:
    user = signup(two_nodes[0])
    try:
        r = user.client.post("/api/v1/files", params={"bucket": user.bucket, "key": "s.txt"},
                             content=b"locked", headers=user.api_headers)
        assert r.status_code == 201, r.text
        created = user.client.post("/api/shares", json={
            "bucket": user.bucket, "objectKey": "s.txt", "password": "right"}).json()
    finally:
        user.client.close()
    code = created["code"]
    for i in range(ATTEMPTS):  # spread over both nodes
        r = httpx.get(f"{two_nodes[i % 2].web_url}/s/{code}",
                      headers={"X-Share-Password": "wrong"})
        assert r.status_code == 403, r.text
    for node in two_nodes:  # the next one is refused on every node, even when right
        r = httpx.get(f"{node.web_url}/s/{code}", headers={"X-Share-Password": "right"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1

    async def events() -> list[str]:
        conn = await asyncpg.connect(pg_url)
        try:
            rows = await conn.fetch("SELECT type FROM events WHERE type LIKE 'share.%' "
                                    "ORDER BY id")
            return [r["type"] for r in rows]
        finally:
            await conn.close()

    assert asyncio.run(events()) == ["share.created"]  # refused attempts download nothing
