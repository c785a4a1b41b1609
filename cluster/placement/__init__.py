"""Partition placement for the blob layer (pure computation: no I/O, no trio, no DB).

Chunks are named by their SHA-256; the leading ``partition_bits`` bits of that id select one
of ``2 ** partition_bits`` partitions, and a :class:`Layout` maps every partition to an
ordered tuple of ``replication_factor`` distinct storage nodes (the first one is the
preferred replica). Layouts are versioned, stored as JSON in the metadata DB and changed by
an operator: :func:`compute_layout` stages a new layout from the node list and the current
layout, :func:`diff_layouts` previews what would move, then the caller applies it.

Algorithm (in the spirit of Garage's layout computation, simplified):

1. *Targets.* Only nodes with ``capacity > 0`` store data. The ``P * rf`` replica slots are
   apportioned first to zones, then to the nodes of each zone, proportionally to capacity
   ("water-filling" with exact fractions, then largest-remainder rounding). The bounds of
   that apportionment encode the zone rule: with at least ``rf`` zones, a zone holds at
   most one replica of a partition (so at most ``P`` slots); with fewer zones than ``rf``
   every zone holds at least one replica of every partition. A node never gets more than
   ``P`` slots (one replica per partition). Capacity is therefore honoured as closely as
   the zone rule allows.
2. *Seed.* With a ``previous`` layout, start from its assignment (mapped through a change of
   ``partition_bits`` if any), dropping unknown/gateway nodes and replicas that break the
   zone rule or exceed ``rf``. Without one, seed each partition with its top nodes by
   weighted rendezvous hashing (highest random weight, weight = capacity), skipping nodes
   that would break the zone rule; an independent recomputation after adding or removing
   one node therefore starts from a seed that differs in only ~1/N of the slots.
3. *Minimal-movement repair.* (a) Holes are filled with nodes under their target, by
   rendezvous preference. (b) Each node under target takes partitions directly from nodes
   over target (one swap = one moved replica, the theoretical minimum), preferring the
   partitions it ranks highest and the most overloaded donor. (c) Remaining excess is
   shed and the holes refilled. (d) Whatever the greedy passes could not place is placed
   with augmenting paths in the flow network Garage uses (source -> partition ->
   (partition, zone) -> node -> sink, node capacities = targets), starting from the
   current assignment: first a max-flow that may only re-route replicas added by this
   computation (so no kept replica moves), then, if kept replicas of a ``previous``
   layout must make room, cheapest augmenting paths where every (partition, node) pair
   absent from the seed costs 1 (min-cost flow, i.e. fewest extra moves; bounded by a
   deterministic work budget, after which plain shortest augmenting paths finish). If
   the targets cannot all be met under the zone rule, node capacities are relaxed step by
   step until every partition has ``rf`` replicas, so the computation never ends with a
   partition short of replicas.
4. *Order.* Each partition's replicas are ordered by weighted rendezvous score, so the
   order only depends on the membership and "first replica" duty is spread by capacity.

Everything is deterministic: nodes are sorted by id, ties are broken by hash then id, and
hashing uses BLAKE2b of the node id mixed with the partition number (independent of
Python's hash seed).

Package layout: :mod:`.model` (nodes, layouts, partition numbering), :mod:`.diff` (what a
new layout moves), :mod:`.weights` (rendezvous scores, apportionment), :mod:`.flow` (the
flow graph) and :mod:`.placer` (the phases above); this module is the public face.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from cluster.placement.diff import LayoutDiff, PartitionMove, diff_layouts
from cluster.placement.model import (
    DEFAULT_PARTITION_BITS,
    MAX_PARTITION_BITS,
    Layout,
    LayoutError,
    NodeSpec,
    check_partition_bits,
    inherited_assignment,
    partition_of,
)
from cluster.placement.placer import Placer

__all__ = [
    "DEFAULT_PARTITION_BITS",
    "MAX_PARTITION_BITS",
    "Layout",
    "LayoutDiff",
    "LayoutError",
    "NodeSpec",
    "PartitionMove",
    "compute_layout",
    "diff_layouts",
    "owners",
    "partition_of",
]


def owners(layout: Layout, chunk_id_hex: str) -> tuple[str, ...]:
    """Node ids owning a chunk under ``layout``, preferred replica first."""
    return layout.owners(chunk_id_hex)


def compute_layout(
    nodes: Iterable[NodeSpec],
    replication_factor: int,
    partition_bits: int = DEFAULT_PARTITION_BITS,
    previous: Layout | None = None,
) -> Layout:
    """Compute a layout for ``nodes`` (see the module docstring for the algorithm).

    The result is deterministic and independent of the order of ``nodes``. The effective
    replication factor is ``min(replication_factor, number of nodes with capacity > 0)``.
    Given ``previous``, as many of its (partition, node) pairs as possible are kept and the
    version is ``previous.version + 1`` (else 1).

    Raises :class:`LayoutError` if ``replication_factor < 1``, if no node has capacity, if
    ``partition_bits`` is out of ``0..MAX_PARTITION_BITS`` or node ids are duplicated.
    """
    if isinstance(replication_factor, bool) or not isinstance(replication_factor, int):
        raise LayoutError("replication_factor must be an int")
    if replication_factor < 1:
        raise LayoutError(f"replication_factor must be >= 1, got {replication_factor}")
    check_partition_bits(partition_bits)
    all_nodes = list(nodes)
    for node in all_nodes:
        if not isinstance(node, NodeSpec):
            raise LayoutError(f"nodes must be NodeSpec instances, got {node!r}")
    all_nodes.sort(key=lambda n: n.id)
    for a, b in itertools.pairwise(all_nodes):
        if a.id == b.id:
            raise LayoutError(f"duplicate node id {a.id!r}")
    storage = [n for n in all_nodes if n.capacity > 0]
    if not storage:
        raise LayoutError("no storage node: at least one node needs a capacity > 0")
    rf = min(replication_factor, len(storage))

    placer = Placer(storage, rf, partition_bits)
    if previous is not None:
        placer.seed(inherited_assignment(previous, partition_bits))
    else:
        placer.seed_rendezvous()
    placer.fill_holes()
    placer.rebalance()
    placer.shed_excess()
    placer.fill_holes()
    placer.flow_fill()
    return Layout(
        version=previous.version + 1 if previous is not None else 1,
        partition_bits=partition_bits,
        replication_factor=rf,
        nodes=tuple(all_nodes),
        assignment=placer.result(),
    )
