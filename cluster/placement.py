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
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

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

DEFAULT_PARTITION_BITS = 8
MAX_PARTITION_BITS = 10

_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_INF = 1 << 62
# Arc scans allowed for min-cost augmentation (~0.25 s of CPython),
# see _Placer.flow_fill.
_CHEAPEST_PATH_WORK = 250_000


class LayoutError(ValueError):
    """Raised for an impossible or malformed layout (no storage node, bad rf, bad JSON...)."""


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


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
        _check_partition_bits(self.partition_bits)
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


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def partition_of(chunk_id_hex: str, partition_bits: int) -> int:
    """Partition of a chunk: the leading ``partition_bits`` bits of its hex SHA-256 id.

    Leading bits (rather than trailing) keep partitions contiguous ranges of the id space,
    so changing ``partition_bits`` splits or merges partitions instead of reshuffling them.
    """
    _check_partition_bits(partition_bits)
    if not isinstance(chunk_id_hex, str) or not _HEX_RE.fullmatch(chunk_id_hex):
        raise ValueError(f"chunk id must be a hex string, got {chunk_id_hex!r}")
    digits = (partition_bits + 3) // 4
    if len(chunk_id_hex) < digits:
        raise ValueError(f"chunk id {chunk_id_hex!r} is too short for {partition_bits} bits")
    if digits == 0:
        return 0
    return int(chunk_id_hex[:digits], 16) >> (4 * digits - partition_bits)


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
    _check_partition_bits(partition_bits)
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

    placer = _Placer(storage, rf, partition_bits)
    if previous is not None:
        placer.seed(_inherited_assignment(previous, partition_bits))
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


def diff_layouts(old: Layout, new: Layout) -> LayoutDiff:
    """Compare two layouts partition by partition.

    If ``partition_bits`` differ, each new partition is compared with the old partition it
    inherits from (its enclosing range, or the first sub-range when partitions merge).
    ``moved_replicas`` counts the (partition, node) pairs that are new, i.e. replicas that
    must be copied before the new layout is fully in place. ``counts_before`` and
    ``counts_after`` are each layout's own replica counts per node id (0 when absent).
    """
    inherited = _inherited_assignment(old, new.partition_bits)
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


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _check_partition_bits(bits: object) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise LayoutError("partition_bits must be an int")
    if not 0 <= bits <= MAX_PARTITION_BITS:
        raise LayoutError(f"partition_bits must be in 0..{MAX_PARTITION_BITS}, got {bits}")


def _inherited_assignment(layout: Layout, partition_bits: int) -> list[tuple[str, ...]]:
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


_MASK64 = (1 << 64) - 1


def _rendezvous_scores(num_partitions: int, nodes: Sequence[NodeSpec]) -> list[list[float]]:
    """Weighted rendezvous (highest random weight) scores, ``[partition][node]``.

    ``-w / ln(u)`` with ``u`` uniform in (0, 1) makes a node's chance of ranking first
    proportional to its weight (capacity), and a node's capacity only changes its own
    scores. ``u`` comes from BLAKE2b of the node id mixed with the partition number by the
    splitmix64 finaliser: stable across processes and much cheaper than one hash per pair.
    """
    seeds = [
        int.from_bytes(hashlib.blake2b(n.id.encode(), digest_size=8).digest(), "big") for n in nodes
    ]
    weights = [float(n.capacity) for n in nodes]
    log = math.log
    scores = []
    for p in range(num_partitions):
        salt = ((p + 1) * 0x9E3779B97F4A7C15) & _MASK64
        row = []
        for seed, weight in zip(seeds, weights, strict=True):
            z = seed ^ salt
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
            z ^= z >> 31
            row.append(-weight / log((z + 0.5) / 18446744073709551616.0))
        scores.append(row)
    return scores


def _apportion(
    total: int, weights: Sequence[int], lo: Sequence[int], hi: Sequence[int]
) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` within ``[lo, hi]``.

    Exact water-filling: find ``lam`` with ``sum(clamp(lam * w, lo, hi)) == total`` (the sum
    is piecewise linear and non-decreasing in ``lam``), then round with largest remainders
    (ties to the lower index, i.e. the smaller node id / zone name). Weights must be > 0.
    """
    n = len(weights)
    if not sum(lo) <= total <= sum(hi):
        raise LayoutError("internal error: replica targets out of bounds")
    if total == sum(lo):
        return list(lo)

    def clamped(lam: Fraction) -> list[Fraction]:
        return [min(max(lam * weights[i], Fraction(lo[i])), Fraction(hi[i])) for i in range(n)]

    breakpoints = sorted(
        {Fraction(lo[i], weights[i]) for i in range(n)}
        | {Fraction(hi[i], weights[i]) for i in range(n)}
    )
    left = Fraction(0)
    right = breakpoints[-1]
    for bp in breakpoints:
        if sum(clamped(bp)) >= total:
            right = bp
            break
        left = bp
    # Between two breakpoints the clamp pattern is fixed: solve the linear equation.
    mid = (left + right) / 2
    fixed = Fraction(0)
    free_weight = 0
    for i in range(n):
        v = mid * weights[i]
        if v <= lo[i]:
            fixed += lo[i]
        elif v >= hi[i]:
            fixed += hi[i]
        else:
            free_weight += weights[i]
    lam = (total - fixed) / free_weight if free_weight else right
    exact = clamped(lam)
    result = [math.floor(x) for x in exact]
    missing = total - sum(result)
    by_remainder = sorted(range(n), key=lambda i: (-(exact[i] - result[i]), i))
    for i in by_remainder[:missing]:
        result[i] += 1
    return result


class _FlowGraph:
    """Residual graph for unit augmenting paths, edges stored in flat lists.

    Edge ``e`` and its reverse ``e ^ 1`` are stored side by side; ``cap`` is the residual
    capacity and ``cost`` the (antisymmetric) cost of pushing one unit.
    """

    def __init__(self, num_vertices: int) -> None:
        self.adj: list[list[int]] = [[] for _ in range(num_vertices)]
        self.to: list[int] = []
        self.cap: list[int] = []
        self.cost: list[int] = []
        # Arcs scanned by cheapest_augment, to bound its (deterministic) amount of work.
        self.work = 0

    def add_edge(self, u: int, v: int, capacity: int, flow: int = 0, cost: int = 0) -> int:
        """Add edge ``u -> v`` already carrying ``flow``; returns its index."""
        e = len(self.to)
        self.to += (v, u)
        self.cap += (capacity - flow, flow)
        self.cost += (cost, -cost)
        self.adj[u].append(e)
        self.adj[v].append(e + 1)
        return e

    def cheapest_augment(self, s: int, t: int) -> bool | None:
        """Push one unit along a cheapest ``s -> t`` path (SPFA: costs may be negative).

        A negative cycle met on the way is cancelled first (the current flow could do the
        same job more cheaply). Returns False when ``t`` is unreachable, None if the search
        gives up (a safety net that should not trigger; the caller then uses Dinic).
        """
        n = len(self.adj)
        to, cap, cost, adj = self.to, self.cap, self.cost, self.adj
        for _ in range(4 * n):
            dist = [_INF] * n
            parent = [-1] * n
            hops = [0] * n
            queued = [False] * n
            dist[s] = 0
            queue = deque([s])
            cycle_at = -1
            while queue and cycle_at < 0:
                v = queue.popleft()
                queued[v] = False
                dv = dist[v]
                self.work += len(adj[v])
                for e in adj[v]:
                    if cap[e] > 0:
                        w = to[e]
                        nd = dv + cost[e]
                        if nd < dist[w]:
                            dist[w] = nd
                            parent[w] = e
                            hops[w] = hops[v] + 1
                            if hops[w] >= n:  # only a negative cycle makes paths this long
                                cycle_at = w
                                break
                            if not queued[w]:
                                queued[w] = True
                                queue.append(w)
            if cycle_at < 0:
                if dist[t] == _INF:
                    return False
                v = t
                while v != s:
                    e = parent[v]
                    cap[e] -= 1
                    cap[e ^ 1] += 1
                    v = to[e ^ 1]
                return True
            cycle = self._parent_cycle(cycle_at, parent, s)
            if cycle is None or sum(cost[e] for e in cycle) >= 0:
                return None
            for e in cycle:
                cap[e] -= 1
                cap[e ^ 1] += 1
        return None

    def _parent_cycle(self, start: int, parent: list[int], s: int) -> list[int] | None:
        seen: dict[int, int] = {}
        order: list[int] = []
        v = start
        while v not in seen:
            if v == s or parent[v] < 0:
                return None
            seen[v] = len(order)
            e = parent[v]
            order.append(e)
            v = self.to[e ^ 1]
        return order[seen[v] :]

    def max_flow(self, s: int, t: int, limit: int) -> int:
        """Push up to ``limit`` more units from ``s`` to ``t``; returns the amount pushed."""
        pushed = 0
        n = len(self.adj)
        while pushed < limit:
            level = self._levels(s, t)
            if level[t] < 0:
                break
            cursor = [0] * n
            while pushed < limit and self._augment(s, t, level, cursor):
                pushed += 1
        return pushed

    def _levels(self, s: int, t: int) -> list[int]:
        level = [-1] * len(self.adj)
        level[s] = 0
        frontier = [s]
        to, cap, adj = self.to, self.cap, self.adj
        while frontier and level[t] < 0:
            nxt = []
            for v in frontier:
                lv = level[v] + 1
                for e in adj[v]:
                    w = to[e]
                    if cap[e] > 0 and level[w] < 0:
                        level[w] = lv
                        nxt.append(w)
            frontier = nxt
        return level

    def _augment(self, s: int, t: int, level: list[int], cursor: list[int]) -> bool:
        # Iterative DFS: paths can be long (they alternate through many partitions).
        to, cap, adj = self.to, self.cap, self.adj
        path: list[int] = []
        v = s
        while True:
            if v == t:
                for e in path:
                    cap[e] -= 1
                    cap[e ^ 1] += 1
                return True
            edges = adj[v]
            i = cursor[v]
            while i < len(edges):
                e = edges[i]
                if cap[e] > 0 and level[to[e]] == level[v] + 1:
                    break
                i += 1
            cursor[v] = i
            if i < len(edges):
                path.append(edges[i])
                v = to[edges[i]]
                continue
            if not path:
                return False
            e = path.pop()
            v = to[e ^ 1]
            cursor[v] += 1


class _Placer:
    """Mutable working state of :func:`compute_layout` (nodes as indices into ``nodes``)."""

    def __init__(self, nodes: list[NodeSpec], rf: int, partition_bits: int) -> None:
        self.nodes = nodes
        self.index = {n.id: i for i, n in enumerate(nodes)}
        self.rf = rf
        self.P = 1 << partition_bits
        zone_names = sorted({n.zone for n in nodes})
        zone_index = {z: i for i, z in enumerate(zone_names)}
        self.Z = len(zone_names)
        self.zone_of = [zone_index[n.zone] for n in nodes]
        self.zone_nodes: list[list[int]] = [[] for _ in zone_names]
        for i, z in enumerate(self.zone_of):
            self.zone_nodes[z].append(i)
        # Number of distinct zones every partition must span.
        self.zr = min(rf, self.Z)

        n_nodes = len(nodes)
        self.score = _rendezvous_scores(self.P, nodes)
        # Nodes by decreasing preference for each partition (ties: node index = id order).
        self.pref = [
            sorted(range(n_nodes), key=lambda i, row=row: (-row[i], i)) for row in self.score
        ]
        self.target = self._targets()

        self.members: list[list[int]] = [[] for _ in range(self.P)]
        self.zcount = [[0] * self.Z for _ in range(self.P)]
        self.distinct = [0] * self.P
        self.count = [0] * n_nodes
        # (partition, node) pairs of the seed that survived its clean-up: keeping them is
        # what "minimal movement" means.
        self.original: Set[tuple[int, int]] = frozenset()
        self.has_previous = False

    # -- targets ------------------------------------------------------------------------------

    def _targets(self) -> list[int]:
        n_parts, rf, n_zones = self.P, self.rf, self.Z
        zone_weight = [sum(self.nodes[i].capacity for i in members) for members in self.zone_nodes]
        if rf <= n_zones:
            # rf distinct zones per partition: a zone holds at most one replica of each.
            zone_lo = [0] * n_zones
            zone_hi = [n_parts] * n_zones
        else:
            # Every zone in every partition; the others' mandatory replicas bound the rest.
            zone_lo = [n_parts] * n_zones
            zone_hi = [n_parts * min(len(m), rf - n_zones + 1) for m in self.zone_nodes]
        zone_target = _apportion(n_parts * rf, zone_weight, zone_lo, zone_hi)
        target = [0] * len(self.nodes)
        for z, members in enumerate(self.zone_nodes):
            shares = _apportion(
                zone_target[z],
                [self.nodes[i].capacity for i in members],
                [0] * len(members),
                [n_parts] * len(members),
            )
            for i, share in zip(members, shares, strict=True):
                target[i] = share
        return target

    # -- elementary operations ----------------------------------------------------------------

    def _add(self, p: int, n: int) -> None:
        self.members[p].append(n)
        z = self.zone_of[n]
        if self.zcount[p][z] == 0:
            self.distinct[p] += 1
        self.zcount[p][z] += 1
        self.count[n] += 1

    def _remove(self, p: int, n: int) -> None:
        self.members[p].remove(n)
        z = self.zone_of[n]
        self.zcount[p][z] -= 1
        if self.zcount[p][z] == 0:
            self.distinct[p] -= 1
        self.count[n] -= 1

    def _completable(self, k: int, d: int) -> bool:
        """Can a partition with ``k`` replicas over ``d`` zones still reach ``zr`` zones?"""
        return k <= self.rf and self.zr - d <= self.rf - k

    def _can_add(self, p: int, n: int) -> bool:
        if n in self.members[p]:
            return False
        d = self.distinct[p] + (self.zcount[p][self.zone_of[n]] == 0)
        return self._completable(len(self.members[p]) + 1, d)

    def _can_swap(self, p: int, old: int, new: int) -> bool:
        """Can ``new`` replace ``old`` in partition ``p`` without breaking the zone rule?"""
        if new in self.members[p]:
            return False
        zo, zn = self.zone_of[old], self.zone_of[new]
        if zo == zn:
            return True
        counts = self.zcount[p]
        d = self.distinct[p] - (counts[zo] == 1) + (counts[zn] == 0)
        return self._completable(len(self.members[p]), d)

    # -- phases -------------------------------------------------------------------------------

    def seed(self, inherited: Sequence[Sequence[str]]) -> None:
        """Start from an existing assignment, dropping what is no longer allowed."""
        self.has_previous = True
        for p, owner_ids in enumerate(inherited):
            for node_id in owner_ids:
                n = self.index.get(node_id)
                if n is not None and n not in self.members[p]:
                    self._add(p, n)
        for p in range(self.P):
            members = self.members[p]
            while not self._completable(len(members), self.distinct[p]):
                zone_ok = self.zr - self.distinct[p] <= self.rf - len(members)
                # A replica sharing its zone with another is the only kind whose removal
                # brings the partition closer to the zone rule.
                candidates = (
                    members
                    if zone_ok
                    else [n for n in members if self.zcount[p][self.zone_of[n]] > 1]
                )
                victim = max(
                    candidates,
                    key=lambda n: (self.count[n] - self.target[n], -self.score[p][n], -n),
                )
                self._remove(p, victim)
        self._record_original()

    def _record_original(self) -> None:
        self.original = frozenset((p, n) for p, ms in enumerate(self.members) for n in ms)

    def seed_rendezvous(self) -> None:
        """Seed every partition with its top nodes by rendezvous score, zone rule permitting.

        Always completes: while a partition is short, either any absent node fits, or a node
        of a zone it does not span yet is needed and exists.
        """
        for p in range(self.P):
            for n in self.pref[p]:
                if len(self.members[p]) == self.rf:
                    break
                if self._can_add(p, n):
                    self._add(p, n)
        self._record_original()

    def fill_holes(self) -> None:
        """Fill missing replicas with nodes under target, by rendezvous preference."""
        for p in range(self.P):
            if len(self.members[p]) == self.rf:
                continue
            for n in self.pref[p]:
                if len(self.members[p]) == self.rf:
                    break
                if self.count[n] < self.target[n] and self._can_add(p, n):
                    self._add(p, n)

    def rebalance(self) -> None:
        """Move replicas straight from nodes over target to nodes under target.

        Each swap changes exactly one (partition, node) pair, so when swaps suffice the
        number of moved replicas is the minimum possible. The most under-filled nodes pick
        first, among the partitions they rank highest, taking from the most overloaded
        donor (ties: the replica the partition ranks lowest).
        """
        count, target, score = self.count, self.target, self.score
        if all(c <= t for c, t in zip(count, target, strict=True)):
            return
        takers = sorted(
            (n for n in range(len(self.nodes)) if count[n] < target[n]),
            key=lambda n: (count[n] - target[n], n),
        )
        for u in takers:
            for p in sorted(range(self.P), key=lambda p: (-score[p][u], p)):
                if count[u] >= target[u]:
                    break
                members = self.members[p]
                if u in members:
                    continue
                donor = -1
                best: tuple[int, float, int] | None = None
                for o in members:
                    if count[o] > target[o] and self._can_swap(p, o, u):
                        key = (count[o] - target[o], -score[p][o], -o)
                        if best is None or key > best:
                            best, donor = key, o
                if donor >= 0:
                    self._remove(p, donor)
                    self._add(p, u)

    def shed_excess(self) -> None:
        """Drop replicas of nodes still over target, preferring refillable partitions."""
        count, target = self.count, self.target
        n_nodes = len(self.nodes)
        for o in range(n_nodes):
            excess = count[o] - target[o]
            if excess <= 0:
                continue
            held = [p for p in range(self.P) if o in self.members[p]]

            def refillable(p: int, o: int = o) -> bool:
                return any(count[u] < target[u] and self._can_swap(p, o, u) for u in range(n_nodes))

            held.sort(key=lambda p: (not refillable(p), self.score[p][o], p))
            for p in held[:excess]:
                self._remove(p, o)

    def flow_fill(self) -> None:
        """Place the remaining holes with augmenting paths (see module docstring, step 3d)."""
        if self._missing() == 0:
            return
        # First only re-route replicas added by this computation (plain max-flow): every
        # replica kept from the seed stays put.
        graph, pair_edges, _ = self._flow_graph(frozen=self.original)
        graph.max_flow(0, 1, self._missing())
        self._apply_flow(graph, pair_edges)
        if self._missing() == 0:
            return
        # Some kept replicas have to make room: cheapest paths, where adding a pair that
        # was not in the seed costs 1, keep the extra movement minimal. Each search scans
        # the whole graph, so past a work budget (or without a previous layout, where the
        # seed is only a preference) plain shortest augmenting paths finish the job.
        graph, pair_edges, sink_edges = self._flow_graph(frozen=frozenset(), costs=True)
        missing = self._missing()
        budget = _CHEAPEST_PATH_WORK if self.has_previous else 0
        while missing and graph.work < budget:
            if not graph.cheapest_augment(0, 1):
                break
            missing -= 1
        missing -= graph.max_flow(0, 1, missing)
        # Targets unreachable under the zone rule: let nodes exceed them, a little at a time
        # so the overshoot stays spread, until every partition is complete.
        step = max(1, self.P // 64)
        limit = list(self.target)
        while missing:
            grown = False
            for n, e in enumerate(sink_edges):
                extra = min(step, self.P - limit[n])
                if extra > 0:
                    limit[n] += extra
                    graph.cap[e] += extra
                    grown = True
            if not grown:
                raise LayoutError("internal error: cannot give every partition enough replicas")
            missing -= graph.max_flow(0, 1, missing)
        self._apply_flow(graph, pair_edges)

    def _missing(self) -> int:
        return self.P * self.rf - sum(len(m) for m in self.members)

    def _flow_graph(
        self, frozen: Set[tuple[int, int]], costs: bool = False
    ) -> tuple[_FlowGraph, list[list[tuple[int, int]]], list[int]]:
        """Garage's flow network, already carrying the current assignment.

        source -> up(p) [cap zr: one unit per distinct zone] and source -> down(p) [cap
        rf - zr: the other replicas]; up(p) -> (p, z) [cap 1], down(p) -> (p, z); (p, z) ->
        node n of zone z [cap 1]; node -> sink [cap target]. A full flow is exactly a valid
        assignment. Pairs in ``frozen`` that are assigned get no edge, so they cannot move.
        With ``costs``, a (p, n) edge costs 1 unless the pair is in the seed.
        Returns the graph, the (node, edge) pairs of each partition and the sink edges.
        """
        n_parts, n_zones, rf, zr = self.P, self.Z, self.rf, self.zr
        slack = rf - zr
        n_nodes = len(self.nodes)
        source, sink = 0, 1
        up0 = 2
        down0 = up0 + n_parts
        pz0 = down0 + n_parts
        node0 = pz0 + n_parts * n_zones
        graph = _FlowGraph(node0 + n_nodes)
        original = self.original
        pair_edges: list[list[tuple[int, int]]] = []
        for p in range(n_parts):
            members = self.members[p]
            counts = self.zcount[p]
            k, d = len(members), self.distinct[p]
            graph.add_edge(source, up0 + p, zr, flow=d)
            if slack:
                graph.add_edge(source, down0 + p, slack, flow=k - d)
            for z in range(n_zones):
                graph.add_edge(up0 + p, pz0 + p * n_zones + z, 1, flow=1 if counts[z] else 0)
                if slack:
                    graph.add_edge(
                        down0 + p, pz0 + p * n_zones + z, slack, flow=max(counts[z] - 1, 0)
                    )
            # Preferred nodes first, so the DFS tries them first.
            edges = []
            for n in self.pref[p]:
                if (p, n) in frozen and n in members:
                    continue
                e = graph.add_edge(
                    pz0 + p * n_zones + self.zone_of[n],
                    node0 + n,
                    1,
                    flow=1 if n in members else 0,
                    cost=int(costs and (p, n) not in original),
                )
                edges.append((n, e))
            pair_edges.append(edges)
        sink_edges = [
            graph.add_edge(node0 + n, sink, self.target[n], flow=self.count[n])
            for n in range(n_nodes)
        ]
        return graph, pair_edges, sink_edges

    def _apply_flow(self, graph: _FlowGraph, pair_edges: list[list[tuple[int, int]]]) -> None:
        """Copy the (p, n) edges of ``graph`` back into the assignment."""
        for p, edges in enumerate(pair_edges):
            for n, _ in edges:
                if n in self.members[p]:
                    self._remove(p, n)
            for n, e in edges:
                if graph.cap[e ^ 1] > 0:
                    self._add(p, n)

    def result(self) -> tuple[tuple[str, ...], ...]:
        """Final assignment, each partition ordered by rendezvous score."""
        out = []
        for p, members in enumerate(self.members):
            if len(members) != self.rf or self.distinct[p] != self.zr:
                raise LayoutError(f"internal error: partition {p} is incomplete")
            row = self.score[p]
            ordered = sorted(members, key=lambda n: (-row[n], n))
            out.append(tuple(self.nodes[n].id for n in ordered))
        return tuple(out)
