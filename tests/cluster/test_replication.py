"""The replicated blob layer across real node processes: placement, quorum
writes, self-healing reads, scrub/repair and garbage collection."""

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
from tests.harness import run_cli

THREE = [("node1", "dc1"), ("node2", "dc1"), ("node3", "dc1")]


@pytest.mark.trio
async def test_three_nodes_every_chunk_on_exactly_three(tmp_path: Path, db_url: str) -> None:
    nodes = start_nodes(tmp_path, db_url, THREE, node_extra(3))
    try:
        async with open_gateway(db_url, tmp_path / "cluster.secret") as gw:
            # Nobody applied anything: the nodes created version 1 themselves.
            await wait_layout(gw, 1)
            assert gw.view.layout.replication_factor == 3
            data = payload(1, 5 * 64 * 1024 + 1234)
            info = await gw.put("obj", data)
            assert len(info.chunks) == 6
            for cid, _ in info.chunks:
                assert holders(nodes, cid) == {"node1", "node2", "node3"}
            assert await gw.get("obj") == data
        shown = run_cli("layout", "show", "--config", str(nodes[0].config))
        assert shown.returncode == 0, shown.stderr
        assert "current layout: version 1, 256 partitions, replication factor 3" in shown.stdout
    finally:
        stop_nodes(nodes)
    for node in nodes:
        assert "Traceback" not in node.read_log(), node.read_log()


@pytest.mark.trio
async def test_lost_and_corrupt_replicas_are_restored(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    nodes = start_nodes(tmp_path, db_url, THREE, node_extra(3, scrub=1.0))
    try:
        async with open_gateway(db_url, tmp_path / "cluster.secret") as gw:
            await wait_layout(gw, 1)
            read_data = payload(1, 64 * 1024)
            idle_data = payload(2, 64 * 1024)
            read_cid = (await gw.put("read-me", read_data)).chunks[0][0]
            idle_cid = (await gw.put("leave-me", idle_data)).chunks[0][0]
            n1, n2, _ = nodes
            for cid in (read_cid, idle_cid):
                chunk_path(n1, cid).unlink()  # lost on node1
                chunk_path(n2, cid).write_bytes(b"rotten" * 100)  # corrupt on node2
            # Reads stay correct whichever replica is tried first (a read that
            # meets the damaged copies first also hands the owners good bytes).
            assert await gw.get("read-me") == read_data
            # Repair (node1's lost file) and scrub (node2's corrupt one) restore
            # both chunks in the background, read or not.

            def restored() -> bool:
                return all(
                    holders(nodes, cid) == {"node1", "node2", "node3"}
                    and chunk_path(n2, cid).read_bytes() == data
                    for cid, data in ((read_cid, read_data), (idle_cid, idle_data)))

            await eventually(restored, 30, "repair and scrub restore both chunks")
            assert await gw.get("leave-me") == idle_data
            # The corrupt file was kept aside for the operator, not served.
            assert any((n2.data_dir / "corrupt").iterdir())
    finally:
        stop_nodes(nodes)


@pytest.mark.trio
async def test_gc_removes_unreferenced_chunks_and_keeps_shared_ones(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    nodes = start_nodes(tmp_path, db_url, THREE, node_extra(3, grace=2))
    try:
        async with open_gateway(db_url, tmp_path / "cluster.secret") as gw:
            await wait_layout(gw, 1)
            shared = payload(1, 3 * 64 * 1024)
            unique = payload(2, 2 * 64 * 1024)
            a = await gw.put("a", shared)
            b = await gw.put("b", shared)  # deduplicated: same chunks as "a"
            c = await gw.put("c", unique)
            assert a.chunks == b.chunks
            await gw.objects.delete_object(gw.bucket, "a")
            await gw.objects.delete_object(gw.bucket, "c")
            gone = [cid for cid, _ in c.chunks]
            await eventually(lambda: all(not holders(nodes, cid) for cid in gone), 30,
                             "the deleted object's chunks vanish from every node")
            # GC has run past the grace period for "a"'s release too (same
            # moment), yet "b" still references the shared chunks.
            for cid, _ in b.chunks:
                assert holders(nodes, cid) == {"node1", "node2", "node3"}
            assert await gw.get("b") == shared
    finally:
        stop_nodes(nodes)
