"""Fault and topology tests of the blob layer with real node processes:
kill -9 during uploads, zones, a node joining and the rebalance that follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.layout_service import LayoutService
from tests.cluster.replication_support import (
    eventually,
    holders,
    node_extra,
    open_gateway,
    payload,
    start_nodes,
    stop_nodes,
    wait_layout,
)
from tests.harness import prepare_node, run_cli

THREE = [("node1", "dc1"), ("node2", "dc1"), ("node3", "dc1")]

# Four processes and hundreds of uploads each: run with `-m slow` (CI runs them).
pytestmark = pytest.mark.slow


@pytest.mark.trio
async def test_kill9_during_uploads_then_repair(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    nodes = start_nodes(tmp_path, db_url, THREE, node_extra(3))
    victim = nodes[1]
    try:
        async with open_gateway(db_url, tmp_path / "cluster.secret") as gw:
            await wait_layout(gw, 1)
            acked: dict[str, bytes] = {}
            failed = 0
            for i in range(200):
                if i == 60:
                    victim.kill()  # kill -9, mid-loop
                data = payload(i, 64 * 1024 + 1000 * (i % 7))  # 2 chunks each
                try:
                    await gw.put(f"k{i}", data)
                except Exception:
                    failed += 1
                    continue
                acked[f"k{i}"] = data
            # Uploads kept succeeding with one node gone.
            assert failed == 0 and len(acked) == 200
            survivors = [n for n in nodes if n is not victim]
            # Every acknowledged upload reads back byte-identical from the survivors.
            for key, data in acked.items():
                assert await gw.get(key) == data, key
            infos = [await gw.objects.head_object(gw.bucket, k) for k in acked]
            chunk_ids = {cid for info in infos for cid, _ in info.chunks}
            for cid in chunk_ids:
                assert holders(survivors, cid), cid
            # The node comes back: repair restores three copies of everything.
            victim.start()
            await eventually(
                lambda: all(len(holders(nodes, cid)) == 3 for cid in chunk_ids), 60,
                "repair restores 3 copies of every chunk")
    finally:
        stop_nodes(nodes)


@pytest.mark.trio
async def test_two_zones_replicas_span_both(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    specs = [("a1", "zone-a"), ("a2", "zone-a"), ("b1", "zone-b"), ("b2", "zone-b")]
    nodes = start_nodes(tmp_path, db_url, specs, node_extra(4))
    zone = dict(specs)
    try:
        async with open_gateway(db_url, tmp_path / "cluster.secret") as gw:
            await wait_layout(gw, 1)
            layout = gw.view.layout
            assert layout.replication_factor == 3
            assert all({zone[n] for n in owners} == {"zone-a", "zone-b"}
                       for owners in layout.assignment)
            info = await gw.put("obj", payload(1, 8 * 64 * 1024))
            for cid, _ in info.chunks:
                where = holders(nodes, cid)
                assert len(where) == 3 and {zone[n] for n in where} == {"zone-a", "zone-b"}
    finally:
        stop_nodes(nodes)


@pytest.mark.trio
async def test_fourth_node_is_staged_applied_and_rebalanced(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    extra = node_extra(3)
    nodes = start_nodes(tmp_path, db_url, THREE, extra)
    try:
        async with open_gateway(db_url, tmp_path / "cluster.secret") as gw:
            await wait_layout(gw, 1)
            data = {f"k{i}": payload(i, 2 * 64 * 1024) for i in range(40)}
            for key, value in data.items():
                await gw.put(key, value)
            infos = [await gw.objects.head_object(gw.bucket, k) for k in data]
            chunk_ids = {cid for info in infos for cid, _ in info.chunks}

            node4 = prepare_node(tmp_path / "node4", db_url, "node4",
                                 secret_file=tmp_path / "cluster.secret", extra=extra)
            node4.start()
            nodes.append(node4)
            layouts = LayoutService(gw.db, 3)

            # The joiner is only staged; nothing moves until the operator applies.
            async def staged() -> bool:
                s = await layouts.staged()
                return s is not None and any(n.id == "node4" for n in s.nodes)

            await eventually(staged, 20, "node4 staged")
            assert (await layouts.current()).version == 1
            preview = await layouts.preview()
            assert preview["new_version"] == 2
            # ~1/4 of the replicas move to the new node, and only to it.
            share = preview["moved_replicas"] / (3 * preview["partitions"])
            assert 0.2 <= share <= 0.3, preview["moved_replicas"]
            assert {n for m in preview["moves"] for n in m["added"]} == {"node4"}
            shown = run_cli("layout", "preview", "--config", str(node4.config))
            assert "apply with: cloudstorage layout apply --version 2" in shown.stdout

            stale = run_cli("layout", "apply", "--config", str(node4.config), "--version", "3")
            assert stale.returncode == 2 and "only 2 can be applied" in stale.stderr
            done = run_cli("layout", "apply", "--config", str(node4.config), "--version", "2")
            assert done.returncode == 0, done.stderr
            again = run_cli("layout", "apply", "--config", str(node4.config), "--version", "2")
            assert again.returncode == 2 and "only 3 can be applied" in again.stderr

            await wait_layout(gw, 2)
            new = gw.view.layout

            def placed() -> bool:
                return all(holders(nodes, cid) == set(new.owners(cid)) for cid in chunk_ids)

            await eventually(placed, 60, "every chunk on exactly its new owners")
            assert any("node4" in new.owners(cid) for cid in chunk_ids)
            for key, value in data.items():
                assert await gw.get(key) == value
            # Rebalance progress is visible through the workers command.
            workers = run_cli("workers", "--config", str(node4.config))
            assert workers.returncode == 0, workers.stderr
            assert "rebalance" in workers.stdout and "chunks_done" in workers.stdout
    finally:
        stop_nodes(nodes)
