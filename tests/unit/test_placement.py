"""Tests for cluster.placement: layout shapes, zones, capacity weighting, determinism, size.

Property tests use seeded ``random`` loops (hypothesis is not a dependency), so failures are
reproducible from the printed parameters.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cluster.placement import (
    NodeSpec,
    compute_layout,
    diff_layouts,
)
from cluster.placement.flow import FlowGraph
from cluster.placement.placer import Placer
from tests.unit.placement_support import GIB, assert_valid, make_nodes, quotas, random_cluster

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
    def skewed(self: Placer) -> list[int]:
        return [self.P * self.rf] + [0] * (len(self.nodes) - 1)

    monkeypatch.setattr(Placer, "_targets", skewed)
    nodes = make_nodes(5, zones=["a", "a", "b", "b", "c"])
    layout = compute_layout(nodes, 3, partition_bits=4)
    assert_valid(layout, nodes, 3)
    assert layout.replica_counts()["n00"] == 16
    again = compute_layout(nodes, 3, partition_bits=4, previous=layout)
    assert_valid(again, nodes, 3)


def test_cheapest_augment_cancels_negative_cycle() -> None:
    graph = FlowGraph(4)
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
