"""kill -9 of one node while clients upload through the real S3 API."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.cluster.replication_support import (
    CHUNK,
    holders,
    node_extra,
    payload,
    start_nodes,
    stop_nodes,
)
from tests.harness import NodeProcess

THREE = [("node1", "dc1"), ("node2", "dc1"), ("node3", "dc1")]


def s3_client(node: NodeProcess, writer: NodeProcess):
    """boto3 against ``node``'s S3 port with ``writer``'s first key pair."""
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=writer.access_key, aws_secret_access_key=writer.secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def chunk_ids(data: bytes) -> set[str]:
    """Chunks are named by their SHA-256: the ids follow from the bytes."""
    return {hashlib.sha256(data[i:i + CHUNK]).hexdigest() for i in range(0, len(data), CHUNK)}


def poll(condition, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_kill9_during_s3_uploads_survivors_serve_and_repair_restores(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    nodes = start_nodes(tmp_path, db_url, THREE, node_extra(3))
    writer, victim, reader = nodes
    s3_in = s3_client(writer, writer)
    s3_out = s3_client(reader, writer)
    try:
        # Layout version 1 appears once all three nodes are up.
        def layout_ready() -> bool:
            try:
                s3_in.put_object(Bucket="default", Key="probe", Body=b"x" * (CHUNK + 1))
                return True
            except Exception:
                return False

        poll(layout_ready, 60, "the first layout")
        acked: dict[str, bytes] = {}
        for i in range(200):
            if i == 60:
                victim.kill()  # kill -9, mid-loop
            data = payload(i, CHUNK + 1000 * (i % 7))  # two chunks each
            s3_in.put_object(Bucket="default", Key=f"k{i}", Body=data)  # must keep succeeding
            acked[f"k{i}"] = data
        survivors = [writer, reader]
        for key, data in acked.items():
            got = s3_out.get_object(Bucket="default", Key=key)["Body"].read()
            assert got == data, key
        wanted = set().union(*(chunk_ids(d) for d in acked.values()))
        # Written while node2 was dead: on both survivors (w = 2 of rf = 3).
        late = set().union(*(chunk_ids(acked[f"k{i}"]) for i in range(60, 200)))
        assert all(holders(survivors, cid) == {"node1", "node3"} for cid in late)

        victim.start()
        poll(lambda: all(len(holders(nodes, cid)) == 3 for cid in wanted), 90,
             "repair to restore 3 copies of every chunk")
    finally:
        stop_nodes(nodes)
