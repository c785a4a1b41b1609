"""Tests for cluster.placement (pure layout computation).

Property tests use seeded ``random`` loops (hypothesis is not a dependency), so failures are
reproducible from the printed parameters.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from cluster import placement
from cluster.placement import (
    Layout,
    LayoutDiff,
    LayoutError,
    NodeSpec,
    PartitionMove,
    compute_layout,
    diff_layouts,
    owners,
    partition_of,
)

GIB = 1 << 30


def make_nodes(
    n: int, zones: Sequence[str] | None = None, capacities: Sequence[int] | None = None
) -> list[NodeSpec]:
    """``n`` nodes n00.., one zone each unless ``zones`` is given, 100 GiB unless given."""
    return [
        NodeSpec(
            id=f"n{i:02d}",
            zone=zones[i] if zones is not None else f"z{i}",
            capacity=capacities[i] if capacities is not None else 100 * GIB,
        )
        for i in range(n)
    ]


def assert_valid(layout: Layout, nodes: Sequence[NodeSpec], rf: int) -> None:
    """Invariants every computed layout must satisfy."""
    storage = [n for n in nodes if n.capacity > 0]
    zone = {n.id: n.zone for n in nodes}
    n_zones = len({n.zone for n in storage})
    eff_rf = min(rf, len(storage))
    assert layout.replication_factor == eff_rf
    assert len(layout.assignment) == 1 << layout.partition_bits
    storage_ids = {n.id for n in storage}
    for p, owner_ids in enumerate(layout.assignment):
        assert len(owner_ids) == eff_rf, p
        assert len(set(owner_ids)) == eff_rf, p
        assert set(owner_ids) <= storage_ids, p
        # As many distinct zones as possible.
        assert len({zone[i] for i in owner_ids}) == min(eff_rf, n_zones), (p, owner_ids)


def random_cluster(rng: random.Random, max_nodes: int = 12, max_zones: int = 5) -> list[NodeSpec]:
    while True:
        n = rng.randint(1, max_nodes)
        n_zones = rng.randint(1, max_zones)
        nodes = [
            NodeSpec(
                f"node-{i}", f"zone-{rng.randrange(n_zones)}", rng.choice([0, 1, 1, 2, 3, 5, 10])
            )
            for i in range(n)
        ]
        if any(x.capacity for x in nodes):
            return nodes


def quotas(nodes: Sequence[NodeSpec], total: int) -> dict[str, float]:
    cap = sum(n.capacity for n in nodes)
    return {n.id: total * n.capacity / cap for n in nodes if n.capacity}


# --------------------------------------------------------------------------------------------
# Basic shapes
# --------------------------------------------------------------------------------------------


def test_three_nodes_rf3_every_node_holds_every_partition() -> None:
    nodes = make_nodes(3)
    layout = compute_layout(nodes, 3)
    assert_valid(layout, nodes, 3)
    assert layout.version == 1
    assert layout.partition_bits == 8
    assert layout.num_partitions == 256
    assert all(set(a) == {"n00", "n01", "n02"} for a in layout.assignment)
    assert layout.replica_counts() == {"n00": 256, "n01": 256, "n02": 256}


def test_effective_rf_is_capped_by_storage_nodes() -> None:
    nodes = [*make_nodes(2), NodeSpec("gw", "z9", 0)]
    layout = compute_layout(nodes, 3)
    assert layout.replication_factor == 2
    assert_valid(layout, nodes, 3)
    single = compute_layout(make_nodes(1), 3)
    assert single.replication_factor == 1
    assert set(single.assignment) == {("n00",)}


def test_gateway_nodes_are_never_assigned_but_kept_in_layout() -> None:
    nodes = [*make_nodes(4), NodeSpec("gateway", "z0", 0)]
    layout = compute_layout(nodes, 3)
    assert_valid(layout, nodes, 3)
    assert "gateway" in {n.id for n in layout.nodes}
    assert layout.partitions_of("gateway") == ()
    assert layout.replica_counts()["gateway"] == 0


def test_rf1_and_rf_above_zone_count() -> None:
    nodes = make_nodes(5, zones=["a", "a", "b", "b", "c"])
    for rf in (1, 2, 3, 4, 5):
        assert_valid(compute_layout(nodes, rf), nodes, rf)


# --------------------------------------------------------------------------------------------
# Zones
# --------------------------------------------------------------------------------------------


def test_four_nodes_two_zones_rf3_every_partition_spans_both_zones() -> None:
    nodes = make_nodes(4, zones=["paris", "paris", "lyon", "lyon"])
    layout = compute_layout(nodes, 3)
    assert_valid(layout, nodes, 3)
    zone = {n.id: n.zone for n in nodes}
    for owner_ids in layout.assignment:
        assert {zone[i] for i in owner_ids} == {"paris", "lyon"}
    # Equal capacities: 768 replicas split evenly.
    assert set(layout.replica_counts().values()) == {192}


def test_zones_at_least_rf_gives_distinct_zones() -> None:
    nodes = make_nodes(9, zones=["a", "a", "a", "b", "b", "b", "c", "c", "c"])
    layout = compute_layout(nodes, 3)
    zone = {n.id: n.zone for n in nodes}
    for owner_ids in layout.assignment:
        assert sorted(zone[i] for i in owner_ids) == ["a", "b", "c"]


def test_zone_rule_beats_capacity() -> None:
    # One zone has 10x the capacity, but with 3 zones and rf=3 each zone must hold exactly
    # one replica of every partition.
    nodes = [
        NodeSpec("big1", "a", 500),
        NodeSpec("big2", "a", 500),
        NodeSpec("small", "b", 100),
        NodeSpec("tiny", "c", 1),
    ]
    layout = compute_layout(nodes, 3)
    assert_valid(layout, nodes, 3)
    counts = layout.replica_counts()
    assert counts["small"] == counts["tiny"] == 256
    assert counts["big1"] + counts["big2"] == 256
    assert counts["big1"] == counts["big2"] == 128


def test_two_zones_rf3_small_zone_is_in_every_partition() -> None:
    nodes = [NodeSpec("a1", "a", 100), NodeSpec("a2", "a", 100), NodeSpec("a3", "a", 100)]
    nodes.append(NodeSpec("b1", "b", 10))
    layout = compute_layout(nodes, 3)
    assert_valid(layout, nodes, 3)
    assert layout.replica_counts()["b1"] == 256


def test_zone_rule_on_random_clusters() -> None:
    rng = random.Random(1234)
    for _ in range(150):
        nodes = random_cluster(rng)
        rf = rng.randint(1, 5)
        bits = rng.choice([0, 1, 4, 6, 8])
        layout = compute_layout(nodes, rf, bits)
        assert_valid(layout, nodes, rf)


# --------------------------------------------------------------------------------------------
# Capacity weighting
# --------------------------------------------------------------------------------------------


def test_double_capacity_node_gets_double_share() -> None:
    nodes = make_nodes(6, capacities=[200, 100, 100, 100, 100, 100])
    layout = compute_layout(nodes, 3)
    counts = layout.replica_counts()
    small = [counts[f"n{i:02d}"] for i in range(1, 6)]
    assert max(small) - min(small) <= 1
    ratio = counts["n00"] / (sum(small) / len(small))
    assert ratio == pytest.approx(2.0, rel=0.02)
    for node_id, quota in quotas(nodes, 3 * 256).items():
        assert abs(counts[node_id] - quota) < 1


def test_capacity_weighting_within_a_zone() -> None:
    zones = ["a", "a", "a", "b", "b", "b"]
    caps = [100, 200, 300, 300, 200, 100]
    nodes = make_nodes(6, zones=zones, capacities=caps)
    layout = compute_layout(nodes, 2, partition_bits=10)
    assert_valid(layout, nodes, 2)
    counts = layout.replica_counts()
    for node_id, quota in quotas(nodes, 2 * 1024).items():
        assert abs(counts[node_id] - quota) < 1


def test_node_never_holds_more_than_one_replica_per_partition() -> None:
    # The huge node would "deserve" 2 replicas of every partition: it gets each once, the
    # rest is spread over the others by capacity.
    nodes = make_nodes(4, zones=["z"] * 4, capacities=[1000, 100, 100, 200])
    layout = compute_layout(nodes, 3)
    counts = layout.replica_counts()
    assert counts["n00"] == 256
    assert counts["n01"] == counts["n02"] == 128
    assert counts["n03"] == 256


def test_capacity_weighting_random_single_zone() -> None:
    # Without binding constraints (one zone, no node above one replica per partition),
    # counts are the capacity quotas rounded.
    rng = random.Random(99)
    for _ in range(40):
        n = rng.randint(3, 12)
        caps = [rng.randint(1, 10) for _ in range(n)]
        rf = rng.randint(1, 3)
        total = 256 * rf
        if max(caps) * total > 256 * sum(caps):
            continue
        nodes = make_nodes(n, zones=["z"] * n, capacities=caps)
        counts = compute_layout(nodes, rf).replica_counts()
        for node_id, quota in quotas(nodes, total).items():
            assert abs(counts[node_id] - quota) < 1, (caps, rf)


def test_preferred_replica_is_spread() -> None:
    nodes = make_nodes(4)
    layout = compute_layout(nodes, 3, partition_bits=10)
    first = Counter(a[0] for a in layout.assignment)
    assert set(first) == {n.id for n in nodes}
    assert all(180 <= c <= 330 for c in first.values()), first


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------


def test_deterministic_and_independent_of_input_order() -> None:
    rng = random.Random(7)
    for _ in range(20):
        nodes = random_cluster(rng)
        rf = rng.randint(1, 4)
        reference = compute_layout(nodes, rf)
        previous = compute_layout(random_cluster(rng), rng.randint(1, 4))
        with_prev = compute_layout(nodes, rf, previous=previous)
        for _ in range(3):
            shuffled = list(nodes)
            rng.shuffle(shuffled)
            assert compute_layout(shuffled, rf) == reference
            assert compute_layout(shuffled, rf, previous=previous) == with_prev


def test_recompute_with_same_nodes_keeps_assignment() -> None:
    zones = ["a", "b", "c", "a", "b", "c", "a"]
    nodes = make_nodes(7, zones=zones, capacities=[1, 2, 3, 4, 5, 6, 7])
    first = compute_layout(nodes, 3)
    again = compute_layout(nodes, 3, previous=first)
    assert again.version == first.version + 1
    assert again.assignment == first.assignment
    diff = diff_layouts(first, again)
    assert diff.moved_replicas == 0
    assert diff.moves == ()
    assert diff.partitions_changed == ()


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


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    nodes = [*make_nodes(5, zones=["a", "b", "c", "a", "b"]), NodeSpec("gw", "c", 0)]
    layout = compute_layout(nodes, 3, partition_bits=6)
    data = layout.to_json()
    text = json.dumps(data)
    restored = Layout.from_json(json.loads(text))
    assert restored == layout
    assert restored.to_json() == data
    # Stable serialisation: same layout -> byte-identical JSON, whatever the input order.
    again = compute_layout(list(reversed(nodes)), 3, partition_bits=6)
    assert json.dumps(again.to_json()) == text
    assert list(data) == ["version", "partition_bits", "replication_factor", "nodes", "assignment"]
    assert data["nodes"][0] == {"id": "gw", "zone": "c", "capacity": 0}


def test_round_tripped_layout_works_as_previous() -> None:
    nodes = make_nodes(4)
    layout = compute_layout(nodes, 3)
    restored = Layout.from_json(json.loads(json.dumps(layout.to_json())))
    assert compute_layout(nodes, 3, previous=restored).assignment == layout.assignment


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("assignment"),
        lambda d: d.update(assignment=d["assignment"][:-1]),
        lambda d: d.update(assignment="nope"),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n00", "n01"]),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n01"]),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n01", "ghost"]),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n01", 3]),
        lambda d: d["nodes"].append({"id": "n00", "zone": "z", "capacity": 1}),
        lambda d: d["nodes"].append({"id": "x", "zone": "z"}),
        lambda d: d["nodes"].__setitem__(2, {"id": "n02", "zone": "z2", "capacity": 0}),
        lambda d: d.update(replication_factor=0),
        lambda d: d.update(partition_bits=11),
        lambda d: d.update(version="1"),
    ],
)
def test_from_json_rejects_malformed(mutate: Callable[[dict[str, Any]], object]) -> None:
    data = json.loads(json.dumps(compute_layout(make_nodes(3), 3, partition_bits=2).to_json()))
    mutate(data)
    with pytest.raises(LayoutError):
        Layout.from_json(data)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_no_storage_node_is_an_error() -> None:
    with pytest.raises(LayoutError, match="no storage node"):
        compute_layout([], 3)
    with pytest.raises(LayoutError, match="no storage node"):
        compute_layout([NodeSpec("gw1", "a", 0), NodeSpec("gw2", "b", 0)], 3)


@pytest.mark.parametrize("rf", [0, -1])
def test_bad_replication_factor(rf: int) -> None:
    with pytest.raises(LayoutError, match="replication_factor"):
        compute_layout(make_nodes(3), rf)


@pytest.mark.parametrize("bits", [-1, 11, 16])
def test_bad_partition_bits(bits: int) -> None:
    with pytest.raises(LayoutError, match="partition_bits"):
        compute_layout(make_nodes(3), 3, partition_bits=bits)


def test_duplicate_node_ids() -> None:
    with pytest.raises(LayoutError, match="duplicate"):
        compute_layout([NodeSpec("a", "z1", 1), NodeSpec("a", "z2", 1)], 1)


@pytest.mark.parametrize(
    ("node_id", "zone", "capacity"),
    [("", "z", 1), ("a", "", 1), ("a", "z", -1), ("a", "z", 1.5), ("a", "z", True)],
)
def test_bad_node_spec(node_id: str, zone: str, capacity: int) -> None:
    with pytest.raises(LayoutError):
        NodeSpec(node_id, zone, capacity)


def test_layout_constructor_validates() -> None:
    nodes = (NodeSpec("a", "z", 1), NodeSpec("b", "z", 1))
    ok = Layout(1, 1, 2, nodes, (("a", "b"), ("b", "a")))
    assert ok.num_partitions == 2
    with pytest.raises(LayoutError):
        Layout(1, 1, 2, nodes, (("a", "b"),))
    with pytest.raises(LayoutError):
        Layout(1, 1, 2, nodes, (("a", "a"), ("b", "a")))
    with pytest.raises(LayoutError):
        Layout(1, 1, 2, nodes, (("a", "c"), ("b", "a")))


# --------------------------------------------------------------------------------------------
# partition_of / owners
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "bits", "expected"),
    [
        ("00", 8, 0),
        ("ff", 8, 255),
        ("80", 8, 128),
        ("7f", 8, 127),
        ("01", 8, 1),
        ("FF", 8, 255),
        ("0000", 10, 0),
        ("003f", 10, 0),
        ("0040", 10, 1),
        ("ffc0", 10, 1023),
        ("ffff", 10, 1023),
        ("8000", 10, 512),
        ("7fff", 1, 0),
        ("8000", 1, 1),
        ("ffff", 0, 0),
        ("a0", 4, 10),
    ],
)
def test_partition_of_boundaries(prefix: str, bits: int, expected: int) -> None:
    chunk_id = prefix + "0" * (64 - len(prefix))
    assert partition_of(chunk_id, bits) == expected
    chunk_id = prefix + "f" * (64 - len(prefix))
    assert partition_of(chunk_id, bits) == expected


def test_partition_of_matches_sha256_leading_bits() -> None:
    for i in range(200):
        digest = hashlib.sha256(str(i).encode()).digest()
        hex_id = digest.hex()
        assert partition_of(hex_id, 8) == digest[0]
        assert partition_of(hex_id, 10) == int.from_bytes(digest[:2], "big") >> 6
        # Splitting partitions: a finer partition lies inside its coarse parent.
        assert partition_of(hex_id, 10) >> 2 == partition_of(hex_id, 8)


@pytest.mark.parametrize("bad", ["", "xyz", "0x12ab", "12 34", "g" * 64, "1_2_3_4"])
def test_partition_of_rejects_non_hex(bad: str) -> None:
    with pytest.raises(ValueError, match="hex string"):
        partition_of(bad, 8)


def test_partition_of_rejects_too_short_and_bad_bits() -> None:
    with pytest.raises(ValueError, match="too short"):
        partition_of("f", 8)
    assert partition_of("f", 4) == 15
    with pytest.raises(LayoutError):
        partition_of("ff" * 32, 11)


def test_owners() -> None:
    nodes = make_nodes(5)
    layout = compute_layout(nodes, 3)
    seen: Counter[str] = Counter()
    for i in range(2000):
        hex_id = hashlib.sha256(i.to_bytes(4, "big")).hexdigest()
        result = owners(layout, hex_id)
        assert result == layout.assignment[partition_of(hex_id, 8)]
        assert result == layout.owners(hex_id)
        assert len(set(result)) == 3
        seen.update(result)
    # Equal nodes share the load: 6000 replicas, ~1200 each.
    assert all(1000 <= c <= 1400 for c in seen.values()), seen


# --------------------------------------------------------------------------------------------
# diff_layouts
# --------------------------------------------------------------------------------------------


def test_diff_layouts_fields() -> None:
    old = compute_layout(make_nodes(3), 2, partition_bits=4)
    nodes = make_nodes(4)
    new = compute_layout(nodes, 2, partition_bits=4, previous=old)
    diff = diff_layouts(old, new)
    assert isinstance(diff, LayoutDiff)
    assert (diff.old_version, diff.new_version) == (1, 2)
    assert diff.moved_replicas == sum(len(m.added_nodes) for m in diff.moves)
    assert diff.partitions_changed == tuple(m.partition for m in diff.moves)
    assert list(diff.partitions_changed) == sorted(diff.partitions_changed)
    assert sum(diff.counts_before.values()) == sum(diff.counts_after.values()) == 32
    assert diff.total_replicas == 32
    assert diff.counts_after["n03"] == 8
    for move in diff.moves:
        assert isinstance(move, PartitionMove)
        partition, removed, added = move  # plain tuple shape
        assert set(old.assignment[partition]) - set(removed) | set(added) == set(
            new.assignment[partition]
        )
        assert removed == tuple(sorted(removed))
    for p in set(range(16)) - set(diff.partitions_changed):
        assert set(old.assignment[p]) == set(new.assignment[p])
    data = json.loads(json.dumps(diff.to_json()))
    assert data["moved_replicas"] == diff.moved_replicas
    assert len(data["moves"]) == len(diff.moves)


def test_diff_of_identical_layouts_is_empty() -> None:
    layout = compute_layout(make_nodes(4), 3)
    diff = diff_layouts(layout, layout)
    assert diff.moves == ()
    assert diff.moved_replicas == 0
    assert diff.counts_before == diff.counts_after


# --------------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------------


def test_large_layouts_compute() -> None:
    # Speed is not asserted (machine-dependent); this just exercises the big sizes.
    zones = [f"z{i % 4}" for i in range(20)]
    caps = [(i % 5 + 1) * 100 * GIB for i in range(20)]
    nodes = make_nodes(20, zones=zones, capacities=caps)
    for bits in (8, 10):
        layout = compute_layout(nodes, 3, partition_bits=bits)
        assert_valid(layout, nodes, 3)
        grown = [*nodes, NodeSpec("n20", "z1", 300 * GIB)]
        new = compute_layout(grown, 3, partition_bits=bits, previous=layout)
        assert_valid(new, grown, 3)
        need = new.replica_counts()["n20"]
        assert diff_layouts(layout, new).moved_replicas <= 1.1 * need + 2


# --------------------------------------------------------------------------------------------
# Internal safety nets (paths that regular inputs do not reach)
# --------------------------------------------------------------------------------------------


def test_infeasible_targets_are_relaxed_not_left_short(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force targets no valid layout can meet (one node "owning" every replica): the
    # computation must relax them rather than leave partitions short.
    def skewed(self: placement._Placer) -> list[int]:
        return [self.P * self.rf] + [0] * (len(self.nodes) - 1)

    monkeypatch.setattr(placement._Placer, "_targets", skewed)
    nodes = make_nodes(5, zones=["a", "a", "b", "b", "c"])
    layout = compute_layout(nodes, 3, partition_bits=4)
    assert_valid(layout, nodes, 3)
    assert layout.replica_counts()["n00"] == 16
    again = compute_layout(nodes, 3, partition_bits=4, previous=layout)
    assert_valid(again, nodes, 3)


def test_cheapest_augment_cancels_negative_cycle() -> None:
    graph = placement._FlowGraph(4)
    source, sink, a, b = 0, 1, 2, 3
    graph.add_edge(source, a, 1)
    first = graph.add_edge(a, sink, 1, cost=5)
    graph.add_edge(a, b, 1, cost=-1)
    graph.add_edge(b, a, 1, cost=-1)
    assert graph.cheapest_augment(source, sink) is True
    # The cycle a -> b -> a (cost -2) was cancelled, then the unit went to the sink.
    assert graph.cap[first] == 0
    assert graph.cap[4] == graph.cap[6] == 0
    assert graph.cheapest_augment(source, sink) is False
