"""Repair heals what it used to overlook, on a cluster of real node processes:
a truncated chunk file (only the daily scrub re-hashed files), and a missing
replica of a chunk whose refcount is wrongly 0 while a version lists it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.replication_support import (
    chunk_path,
    eventually,
    holders,
    node_extra,
    open_gateway,
    payload,
    start_nodes,
    stop_nodes,
    wait_layout,
)

THREE = [("node1", "dc1"), ("node2", "dc1"), ("node3", "dc1")]


async def _zero_refcount(cid: str) -> None:
    from storage.models import ChunkRef

    await ChunkRef.filter(chunk_id=cid).update(refcount=0)


@pytest.mark.trio
async def test_repair_replaces_truncated_and_unreferenced_missing_chunks(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    # Scrub far away: only repair may notice.
    nodes = start_nodes(tmp_path, db_url, THREE, node_extra(3, scrub=3600))
    try:
        async with open_gateway(db_url, tmp_path / "cluster.secret") as gw:
            await wait_layout(gw, 1)
            data = payload(1, 2 * 64 * 1024)
            info = await gw.put("obj", data)
            (truncated, size), (lost, _) = info.chunks
            assert holders(nodes, truncated) == holders(nodes, lost) == {
                "node1", "node2", "node3"}
            # A file cut short (a crash mid-copy, a bad disk) on node1...
            victim = chunk_path(nodes[0], truncated)
            victim.write_bytes(victim.read_bytes()[: size // 2])
            # ... and a replica gone on node2 of a chunk whose refcount is wrongly 0.
            await gw.db.run(_zero_refcount, lost)
            chunk_path(nodes[1], lost).unlink()
            await eventually(lambda: victim.exists() and victim.stat().st_size == size, 30,
                             "repair re-fetches the truncated chunk")
            await eventually(lambda: chunk_path(nodes[1], lost).exists(), 30,
                             "repair re-fetches a listed chunk despite refcount 0")
            # The short copy is kept aside for the operator, never served.
            assert any((nodes[0].data_dir / "corrupt").iterdir())
            assert await gw.get("obj") == data
    finally:
        stop_nodes(nodes)
