"""Tests for cluster.placement: minimal movement when nodes, capacities, zones or rf change.

Property tests use seeded ``random`` loops (hypothesis is not a dependency), so failures are
reproducible from the printed parameters.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from cluster.placement import (
    Layout,
    NodeSpec,
    compute_layout,
    diff_layouts,
)
from tests.unit.placement_support import GIB, assert_valid, make_nodes, random_cluster

# --------------------------------------------------------------------------------------------
# Minimal movement
# --------------------------------------------------------------------------------------------


def test_adding_fourth_node_moves_a_quarter() -> None:
    three = compute_layout(make_nodes(3), 3)
    nodes4 = make_nodes(4)
    four = compute_layout(nodes4, 3, previous=three)
    assert_valid(four, nodes4, 3)
    assert four.version == 2
    counts = four.replica_counts()
    assert counts == {"n00": 192, "n01": 192, "n02": 192, "n03": 192}
    diff = diff_layouts(three, four)
    minimum = 192  # the new node's share: 3/4 of the 256 partitions
    assert minimum <= diff.moved_replicas <= 1.1 * minimum
    assert len(diff.partitions_changed) == diff.moved_replicas
    for move in diff.moves:
        # Each partition loses at most one replica, to the new node.
        assert move.added_nodes == ("n03",)
        assert len(move.removed_nodes) == 1
    assert diff.counts_before == {"n00": 256, "n01": 256, "n02": 256, "n03": 0}
    assert diff.counts_after == counts


def test_removing_a_node_moves_only_its_replicas() -> None:
    nodes = make_nodes(6, zones=["a", "a", "b", "b", "c", "c"])
    before = compute_layout(nodes, 3)
    remaining = [n for n in nodes if n.id != "n03"]
    after = compute_layout(remaining, 3, previous=before)
    assert_valid(after, remaining, 3)
    diff = diff_layouts(before, after)
    lost = before.replica_counts()["n03"]
    assert diff.moved_replicas == lost
    for move in diff.moves:
        assert move.removed_nodes == ("n03",)
        assert len(move.added_nodes) == 1
    assert set(diff.partitions_changed) == set(before.partitions_of("n03"))


def optimal_moves(
    previous: Layout, nodes: Sequence[NodeSpec], rf: int, counts: dict[str, int]
) -> int:
    """Reference: fewest (partition, node) pairs not in ``previous`` over all valid layouts
    with these per-node ``counts`` (same zone rule), by min-cost flow (successive shortest
    paths from the empty flow, so it is exact). Small partition counts only.
    """
    storage = sorted((n for n in nodes if n.capacity), key=lambda n: n.id)
    zones = sorted({n.zone for n in storage})
    n_parts = 1 << previous.partition_bits
    zr = min(rf, len(zones))
    n_z = len(zones)
    pz0, node0 = 2 + 2 * n_parts, 2 + 2 * n_parts + n_parts * n_z
    adj: list[list[int]] = [[] for _ in range(node0 + len(storage))]
    to: list[int] = []
    cap: list[int] = []
    cost: list[int] = []

    def edge(u: int, v: int, c: int, w: int = 0) -> None:
        for a, b, cc, ww in ((u, v, c, w), (v, u, 0, -w)):
            adj[a].append(len(to))
            to.append(b)
            cap.append(cc)
            cost.append(ww)

    for p in range(n_parts):
        edge(0, 2 + p, zr)
        edge(0, 2 + n_parts + p, rf - zr)
        for z in range(n_z):
            edge(2 + p, pz0 + p * n_z + z, 1)
            edge(2 + n_parts + p, pz0 + p * n_z + z, rf - zr)
        for i, node in enumerate(storage):
            new_pair = int(node.id not in previous.assignment[p])
            edge(pz0 + p * n_z + zones.index(node.zone), node0 + i, 1, new_pair)
    for i, node in enumerate(storage):
        edge(node0 + i, 1, counts[node.id])
    total = 0
    for _ in range(n_parts * rf):
        dist = [1 << 30] * len(adj)
        back = [-1] * len(adj)
        dist[0] = 0
        changed = True
        while changed:  # Bellman-Ford: small graphs, negative residual costs
            changed = False
            for v in range(len(adj)):
                if dist[v] == 1 << 30:
                    continue
                for e in adj[v]:
                    if cap[e] and dist[v] + cost[e] < dist[to[e]]:
                        dist[to[e]] = dist[v] + cost[e]
                        back[to[e]] = e
                        changed = True
        assert dist[1] < 1 << 30, "reference found no valid layout"
        total += dist[1]
        v = 1
        while v != 0:
            e = back[v]
            cap[e] -= 1
            cap[e ^ 1] += 1
            v = to[e ^ 1]
    return total


def test_movement_is_near_optimal_on_random_changes() -> None:
    rng = random.Random(5)
    checked = 0
    while checked < 25:
        nodes = random_cluster(rng, max_nodes=8, max_zones=4)
        rf = rng.randint(1, 3)
        bits = rng.choice([3, 4])
        before = compute_layout(nodes, rf, bits)
        changed = list(nodes)
        op = rng.choice(["add", "remove", "resize"])
        if op == "add":
            changed.append(NodeSpec("new", f"zone-{rng.randrange(5)}", rng.choice([1, 2, 5])))
        elif op == "remove":
            changed.pop(rng.randrange(len(changed)))
        else:
            i = rng.randrange(len(changed))
            changed[i] = NodeSpec(changed[i].id, changed[i].zone, rng.choice([1, 2, 5]))
        if not any(n.capacity for n in changed):
            continue
        after = compute_layout(changed, rf, bits, previous=before)
        assert_valid(after, changed, rf)
        if after.replication_factor != before.replication_factor:
            continue
        best = optimal_moves(before, changed, after.replication_factor, after.replica_counts())
        moved = diff_layouts(before, after).moved_replicas
        assert best <= moved <= 1.1 * best + 1, (nodes, changed, rf, bits)
        checked += 1


def test_removing_node_in_single_zone_moves_only_its_replicas() -> None:
    nodes = make_nodes(7, zones=["z"] * 7)
    before = compute_layout(nodes, 3)
    for gone in ("n00", "n03", "n06"):
        remaining = [n for n in nodes if n.id != gone]
        after = compute_layout(remaining, 3, previous=before)
        diff = diff_layouts(before, after)
        assert diff.moved_replicas == before.replica_counts()[gone]
        assert all(m.removed_nodes == (gone,) for m in diff.moves)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 8, 10, 15])
@pytest.mark.parametrize("rf", [1, 2, 3])
def test_n_to_n_plus_one_moves_about_one_over_n_plus_one(n: int, rf: int) -> None:
    old = compute_layout(make_nodes(n, zones=["z"] * n), rf)
    nodes = make_nodes(n + 1, zones=["z"] * (n + 1))
    new = compute_layout(nodes, rf, previous=old)
    assert_valid(new, nodes, rf)
    total = 256 * rf
    minimum = new.replica_counts()[f"n{n:02d}"]  # what the newcomer must receive
    assert abs(minimum - total / (n + 1)) < 1
    moved = diff_layouts(old, new).moved_replicas
    assert minimum <= moved <= 1.1 * minimum


def test_adding_node_with_zones_moves_little() -> None:
    zones = ["a", "b", "c", "a", "b", "c"]
    old = compute_layout(make_nodes(6, zones=zones), 3)
    nodes = make_nodes(7, zones=[*zones, "a"])
    new = compute_layout(nodes, 3, previous=old)
    assert_valid(new, nodes, 3)
    need = new.replica_counts()["n06"]
    # With 3 zones and rf=3 zone "a" holds one replica of each partition, whatever its
    # capacity: its 256 replicas are now shared by 3 nodes.
    assert need in (85, 86)
    moved = diff_layouts(old, new).moved_replicas
    assert need <= moved <= 1.1 * need


def test_independent_recomputation_moves_little() -> None:
    # Without `previous`, rendezvous hashing still keeps most placements.
    for n in (4, 6, 9):
        old = compute_layout(make_nodes(n, zones=["z"] * n), 3)
        new = compute_layout(make_nodes(n + 1, zones=["z"] * (n + 1)), 3)
        minimum = 3 * 256 / (n + 1)
        assert diff_layouts(old, new).moved_replicas <= 1.5 * minimum


def test_capacity_change_moves_proportionally() -> None:
    nodes = make_nodes(5, zones=["z"] * 5)
    old = compute_layout(nodes, 2)
    bigger = [*nodes[:4], NodeSpec("n04", "z", 200 * GIB)]
    new = compute_layout(bigger, 2, previous=old)
    gain = new.replica_counts()["n04"] - old.replica_counts()["n04"]
    assert gain == pytest.approx(512 / 3 - 512 / 5, abs=1)
    assert diff_layouts(old, new).moved_replicas == gain


def test_new_zone_rebuilds_zone_spread() -> None:
    # Two zones, rf=3: partitions span 2 zones. A third zone appears: now every partition
    # must span 3 zones, so each loses one replica of its doubled zone to the new zone.
    old_nodes = make_nodes(4, zones=["a", "a", "b", "b"])
    old = compute_layout(old_nodes, 3)
    nodes = [*old_nodes, NodeSpec("c1", "c", 100 * GIB)]
    new = compute_layout(nodes, 3, previous=old)
    assert_valid(new, nodes, 3)
    diff = diff_layouts(old, new)
    assert diff.moved_replicas == 256
    assert all(m.added_nodes == ("c1",) and len(m.removed_nodes) == 1 for m in diff.moves)


def test_node_changing_zone_stays_valid() -> None:
    nodes = make_nodes(6, zones=["a", "a", "b", "b", "c", "c"])
    old = compute_layout(nodes, 3)
    moved_node = [*nodes[:5], NodeSpec("n05", "a", nodes[5].capacity)]
    new = compute_layout(moved_node, 3, previous=old)
    assert_valid(new, moved_node, 3)


def test_rf_increase_keeps_existing_replicas() -> None:
    nodes = make_nodes(5)
    old = compute_layout(nodes, 2)
    new = compute_layout(nodes, 3, previous=old)
    assert_valid(new, nodes, 3)
    kept = sum(len(set(a) & set(b)) for a, b in zip(old.assignment, new.assignment, strict=True))
    assert kept >= 0.95 * 512
    # rf decrease: nothing new has to be copied.
    back = compute_layout(nodes, 2, previous=new)
    assert_valid(back, nodes, 2)
    added = sum(len(set(b) - set(a)) for a, b in zip(new.assignment, back.assignment, strict=True))
    assert added <= 0.05 * 512


def test_previous_with_different_partition_bits() -> None:
    nodes = make_nodes(5, zones=["a", "b", "c", "a", "b"])
    old = compute_layout(nodes, 3, partition_bits=8)
    finer = compute_layout(nodes, 3, partition_bits=10, previous=old)
    assert_valid(finer, nodes, 3)
    # Every new partition lies inside an old one: almost nothing moves.
    diff = diff_layouts(old, finer)
    assert diff.moved_replicas <= 0.02 * 3 * 1024
    coarser = compute_layout(nodes, 3, partition_bits=6, previous=old)
    assert_valid(coarser, nodes, 3)
    assert diff_layouts(old, coarser).moved_replicas <= 0.1 * 3 * 64


def test_successive_changes_stay_valid_and_cheap() -> None:
    rng = random.Random(2024)
    nodes = make_nodes(4, zones=["a", "b", "c", "a"])
    layout = compute_layout(nodes, 3)
    next_id = 4
    for step in range(25):
        op = rng.choice(["add", "remove", "resize"])
        if op == "add" or len(nodes) <= 3:
            zone = rng.choice(["a", "b", "c"])
            nodes.append(NodeSpec(f"n{next_id:02d}", zone, rng.randint(1, 5) * 100 * GIB))
            next_id += 1
        elif op == "remove":
            nodes.pop(rng.randrange(len(nodes)))
        else:
            i = rng.randrange(len(nodes))
            nodes[i] = NodeSpec(nodes[i].id, nodes[i].zone, rng.randint(1, 5) * 100 * GIB)
        new = compute_layout(nodes, 3, previous=layout)
        assert_valid(new, nodes, 3)
        assert new.version == layout.version + 1
        diff = diff_layouts(layout, new)
        # Lower bound: replicas each node gains (sum of positive count deltas).
        needed = sum(
            max(0, after - diff.counts_before.get(node_id, 0))
            for node_id, after in diff.counts_after.items()
        )
        assert needed <= diff.moved_replicas <= 1.25 * needed + 3, (step, op)
        layout = new
