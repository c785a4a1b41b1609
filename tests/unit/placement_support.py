"""Shared helpers of the cluster.placement tests: node lists, layout invariants, quotas."""

from __future__ import annotations

import random
from collections.abc import Sequence

from cluster.placement import Layout, NodeSpec

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
