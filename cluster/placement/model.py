"""Layout data model of the placement package: nodes, layouts, partition numbering.

:class:`NodeSpec` and :class:`Layout` (validated, immutable, JSON round-trip),
:class:`LayoutError`, :func:`partition_of` (chunk id -> partition) and
:func:`inherited_assignment` (re-indexing a layout for another ``partition_bits``).
Pure computation: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PARTITION_BITS = 8
MAX_PARTITION_BITS = 10

_HEX_RE = re.compile(r"[0-9a-fA-F]+")


class LayoutError(ValueError):
    """Raised for an impossible or malformed layout (no storage node, bad rf, bad JSON...)."""


@dataclass(frozen=True)
class NodeSpec:
    """A cluster node as seen by placement.

    ``capacity`` is in bytes; 0 marks a gateway node that stores nothing and is never
    assigned a partition.
    """

    id: str
    zone: str
    capacity: int

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise LayoutError(f"node id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.zone, str) or not self.zone:
            raise LayoutError(f"zone of node {self.id!r} must be a non-empty string")
        # bool is an int subclass; a capacity of True is surely a bug.
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise LayoutError(f"capacity of node {self.id!r} must be an int")
        if self.capacity < 0:
            raise LayoutError(f"capacity of node {self.id!r} must be >= 0")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"id": self.id, "zone": self.zone, "capacity": self.capacity}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeSpec:
        """Inverse of :meth:`to_json`."""
        try:
            return cls(id=data["id"], zone=data["zone"], capacity=data["capacity"])
        except (KeyError, TypeError) as exc:
            raise LayoutError(f"malformed node entry {data!r}") from exc


@dataclass(frozen=True)
class Layout:
    """A versioned assignment of partitions to nodes.

    ``assignment[p]`` is the ordered tuple of ``replication_factor`` distinct node ids that
    own partition ``p`` (first = preferred). ``replication_factor`` is the *effective* one,
    i.e. the number of owners of every partition. ``nodes`` also lists gateway nodes
    (capacity 0), which own nothing.
    """

    version: int
    partition_bits: int
    replication_factor: int
    nodes: tuple[NodeSpec, ...]
    assignment: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from JSON) to tuples so the layout is really immutable.
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "assignment", tuple(tuple(a) for a in self.assignment))
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise LayoutError("version must be an int")
        if self.version < 0:
            raise LayoutError("version must be >= 0")
        check_partition_bits(self.partition_bits)
        if isinstance(self.replication_factor, bool) or not isinstance(
            self.replication_factor, int
        ):
            raise LayoutError("replication_factor must be an int")
        if self.replication_factor < 1:
            raise LayoutError("replication_factor must be >= 1")
        storage: set[str] = set()
        seen: set[str] = set()
        for node in self.nodes:
            if not isinstance(node, NodeSpec):
                raise LayoutError(f"nodes must be NodeSpec instances, got {node!r}")
            if node.id in seen:
                raise LayoutError(f"duplicate node id {node.id!r}")
            seen.add(node.id)
            if node.capacity > 0:
                storage.add(node.id)
        if len(self.assignment) != 1 << self.partition_bits:
            raise LayoutError(
                f"assignment has {len(self.assignment)} partitions, "
                f"expected {1 << self.partition_bits}"
            )
        for p, owner_ids in enumerate(self.assignment):
            if len(owner_ids) != self.replication_factor or len(set(owner_ids)) != len(owner_ids):
                raise LayoutError(
                    f"partition {p} must have {self.replication_factor} distinct owners, "
                    f"got {owner_ids!r}"
                )
            for node_id in owner_ids:
                if node_id not in storage:
                    raise LayoutError(
                        f"partition {p} is assigned to {node_id!r}, "
                        "which is not a storage node of this layout"
                    )

    @property
    def num_partitions(self) -> int:
        """Number of partitions (``2 ** partition_bits``)."""
        return 1 << self.partition_bits

    def node(self, node_id: str) -> NodeSpec:
        """The :class:`NodeSpec` with this id (``KeyError`` if unknown)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def owners(self, chunk_id_hex: str) -> tuple[str, ...]:
        """Owners of a chunk, preferred first (see :func:`owners`)."""
        return self.assignment[partition_of(chunk_id_hex, self.partition_bits)]

    def partitions_of(self, node_id: str) -> tuple[int, ...]:
        """Partitions a node holds a replica of, in increasing order."""
        return tuple(p for p, a in enumerate(self.assignment) if node_id in a)

    def replica_counts(self) -> dict[str, int]:
        """Number of partition replicas per node id (gateways included, with 0)."""
        counts = {node.id: 0 for node in self.nodes}
        for owner_ids in self.assignment:
            for node_id in owner_ids:
                counts[node_id] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; key order and list order are stable (nodes sorted by id)."""
        return {
            "version": self.version,
            "partition_bits": self.partition_bits,
            "replication_factor": self.replication_factor,
            "nodes": [n.to_json() for n in self.nodes],
            "assignment": [list(a) for a in self.assignment],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layout:
        """Inverse of :meth:`to_json`; raises :class:`LayoutError` on malformed input."""
        try:
            nodes = data["nodes"]
            assignment = data["assignment"]
            if not isinstance(nodes, list) or not isinstance(assignment, list):
                raise LayoutError("'nodes' and 'assignment' must be lists")
            for entry in assignment:
                if not isinstance(entry, list) or not all(isinstance(i, str) for i in entry):
                    raise LayoutError("each assignment entry must be a list of node ids")
            return cls(
                version=data["version"],
                partition_bits=data["partition_bits"],
                replication_factor=data["replication_factor"],
                nodes=tuple(NodeSpec.from_json(n) for n in nodes),
                assignment=tuple(tuple(a) for a in assignment),
            )
        except (KeyError, TypeError) as exc:
            raise LayoutError(f"malformed layout JSON: {exc!r}") from exc


def partition_of(chunk_id_hex: str, partition_bits: int) -> int:
    """Partition of a chunk: the leading ``partition_bits`` bits of its hex SHA-256 id.

    Leading bits (rather than trailing) keep partitions contiguous ranges of the id space,
    so changing ``partition_bits`` splits or merges partitions instead of reshuffling them.
    """
    check_partition_bits(partition_bits)
    if not isinstance(chunk_id_hex, str) or not _HEX_RE.fullmatch(chunk_id_hex):
        raise ValueError(f"chunk id must be a hex string, got {chunk_id_hex!r}")
    digits = (partition_bits + 3) // 4
    if len(chunk_id_hex) < digits:
        raise ValueError(f"chunk id {chunk_id_hex!r} is too short for {partition_bits} bits")
    if digits == 0:
        return 0
    return int(chunk_id_hex[:digits], 16) >> (4 * digits - partition_bits)


def check_partition_bits(bits: object) -> None:
    """Raise :class:`LayoutError` unless ``bits`` is an int in ``0..MAX_PARTITION_BITS``."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise LayoutError("partition_bits must be an int")
    if not 0 <= bits <= MAX_PARTITION_BITS:
        raise LayoutError(f"partition_bits must be in 0..{MAX_PARTITION_BITS}, got {bits}")


def inherited_assignment(layout: Layout, partition_bits: int) -> list[tuple[str, ...]]:
    """``layout``'s owners re-indexed for ``partition_bits`` partitions.

    Partitions are leading-bit ranges, so with more bits a new partition lies inside old
    partition ``p >> shift``; with fewer bits it covers old partitions ``p << shift ...``
    and the first one is kept (its data is then already in place).
    """
    old_bits = layout.partition_bits
    if partition_bits >= old_bits:
        shift = partition_bits - old_bits
        return [layout.assignment[p >> shift] for p in range(1 << partition_bits)]
    shift = old_bits - partition_bits
    return [layout.assignment[p << shift] for p in range(1 << partition_bits)]
