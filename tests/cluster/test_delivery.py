"""Webhook delivery across real node processes on PostgreSQL: a node killed
with SIGKILL in the middle of a delivery hands it over when its lease runs
out, and every event reaches the receiver once it is back."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.cluster.replication_support import node_extra, start_nodes, stop_nodes
from tests.harness import NodeProcess
from tests.rest.conftest import signup
from tests.rest.webhook_support import receiver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EXTRA = """
[accounts]
dashboard_requests_per_minute = 10000
[outbound]
allowed_networks = ["127.0.0.0/8"]
[webhooks]
poll_seconds = 0.2
retry_base_seconds = 0.2
timeout_seconds = 3
lease_seconds = 4
"""


def _psql(url: str, query: str) -> str:
    parts = urlsplit(url)
    done = subprocess.run(
        [shutil.which("psql") or "psql", "-h", parts.hostname or "127.0.0.1",
         "-p", str(parts.port or 5432), "-U", parts.username or "postgres",
         "-d", parts.path.lstrip("/"), "-tAc", query],
        capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def _poll(pred, deadline: float = 40) -> None:
    end = time.monotonic() + deadline
    while not pred():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.1)


def test_killed_delivering_node_hands_over(tmp_path: Path, pg_url: str) -> None:
    nodes = start_nodes(tmp_path, pg_url, [("n1", "z1"), ("n2", "z2"), ("n3", "z3")],
                        node_extra(3) + EXTRA)
    try:
        _poll(lambda: all(httpx.get(f"{n.web_url}/health").status_code == 200 for n in nodes))
        user = signup(nodes[0])
        hold = threading.Event()
        with receiver(status=503, hold=hold) as rec:  # down: hangs, then refuses
            r = user.client.post("/api/webhooks", json={"url": rec.url,
                                                        "events": ["object.created"]})
            assert r.status_code == 201, r.text
            s3 = boto3.client(
                "s3", endpoint_url=nodes[0].s3_url, aws_access_key_id=user.access_key,
                aws_secret_access_key=user.secret_key, region_name="eu-central-1",
                config=Config(s3={"addressing_style": "path"}))
            keys = [f"k{i}" for i in range(5)]
            for key in keys:
                s3.put_object(Bucket=user.bucket, Key=key, Body=key.encode())
            # Some node is now in the middle of a delivery: kill it.
            _poll(lambda: rec.arrived >= 1)
            owner = ""

            def leased() -> bool:
                nonlocal owner
                owner = _psql(pg_url, "SELECT lease_owner FROM webhook_deliveries WHERE "
                                      "lease_owner <> '' ORDER BY id LIMIT 1")
                return bool(owner)

            _poll(leased)
            victim: NodeProcess = next(n for n in nodes if n.node_id == owner)
            held = _psql(pg_url, "SELECT string_agg('evt_' || event_id, ',') FROM "
                                 f"webhook_deliveries WHERE lease_owner = '{owner}'").split(",")
            victim.kill()
            # The receiver comes back: what was hanging is refused (the killed
            # node's answers go nowhere), then everything is accepted.
            hold.set()
            _poll(lambda: len(rec.requests()) == rec.arrived)
            rec.status = 200

            def delivered() -> set[str]:
                return {json.loads(q.body)["data"]["key"] for q in rec.requests()
                        if q.status == 200}

            _poll(lambda: delivered() == set(keys), deadline=60)
            answered = [q for q in rec.requests() if q.status == 200]
            ids = {q.headers["X-CloudStorage-Event-Id"] for q in answered}
            assert len(ids) == len(keys)
            # The killed node's claims were taken over once their lease ran out.
            assert held and set(held) <= ids
            assert all(int(q.headers["X-CloudStorage-Attempt"]) >= 2 for q in answered
                       if q.headers["X-CloudStorage-Event-Id"] in held)
            _poll(lambda: _psql(pg_url, "SELECT COUNT(*) FROM webhook_deliveries "
                                        "WHERE status <> 'succeeded'") == "0")
            owners = _psql(pg_url, "SELECT COUNT(*) FROM webhook_deliveries "
                                   f"WHERE lease_owner = '{owner}'")
            assert owners == "0"
        user.client.close()
    finally:
        stop_nodes(nodes)
