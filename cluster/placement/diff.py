"""Layout diffs: what applying a new layout over an old one would move (operator preview)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from cluster.placement.model import Layout, inherited_assignment


class PartitionMove(NamedTuple):
    """Replica changes of one partition between two layouts (node ids sorted)."""

    partition: int
    removed_nodes: tuple[str, ...]
    added_nodes: tuple[str, ...]


@dataclass(frozen=True)
class LayoutDiff:
    """What applying ``new`` over ``old`` would change: the operator's preview."""

    old_version: int
    new_version: int
    partitions_changed: tuple[int, ...]
    counts_before: dict[str, int]
    counts_after: dict[str, int]
    moves: tuple[PartitionMove, ...]
    moved_replicas: int

    @property
    def total_replicas(self) -> int:
        """Number of (partition, node) pairs in the new layout."""
        return sum(self.counts_after.values())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (for an admin API / TUI)."""
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "partitions_changed": list(self.partitions_changed),
            "counts_before": dict(self.counts_before),
            "counts_after": dict(self.counts_after),
            "moves": [
                {
                    "partition": m.partition,
                    "removed": list(m.removed_nodes),
                    "added": list(m.added_nodes),
                }
                for m in self.moves
            ],
            "moved_replicas": self.moved_replicas,
        }


def diff_layouts(old: Layout, new: Layout) -> LayoutDiff:
    """Compare two layouts partition by partition.

    If ``partition_bits`` differ, each new partition is compared with the old partition it
    inherits from (its enclosing range, or the first sub-range when partitions merge).
    ``moved_replicas`` counts the (partition, node) pairs that are new, i.e. replicas that
    must be copied before the new layout is fully in place. ``counts_before`` and
    ``counts_after`` are each layout's own replica counts per node id (0 when absent).
    """
    inherited = inherited_assignment(old, new.partition_bits)
    moves: list[PartitionMove] = []
    for p, after in enumerate(new.assignment):
        before = set(inherited[p])
        after_set = set(after)
        if before != after_set:
            moves.append(
                PartitionMove(
                    partition=p,
                    removed_nodes=tuple(sorted(before - after_set)),
                    added_nodes=tuple(sorted(after_set - before)),
                )
            )
    before_counts = old.replica_counts()
    after_counts = new.replica_counts()
    ids = sorted(set(before_counts) | set(after_counts))
    return LayoutDiff(
        old_version=old.version,
        new_version=new.version,
        partitions_changed=tuple(m.partition for m in moves),
        counts_before={i: before_counts.get(i, 0) for i in ids},
        counts_after={i: after_counts.get(i, 0) for i in ids},
        moves=tuple(moves),
        moved_replicas=sum(len(m.added_nodes) for m in moves),
    )
