"""The placer: mutable working state and phases of :func:`cluster.placement.compute_layout`.

Targets, seeding (previous layout or rendezvous), greedy minimal-movement repair and the
final flow pass; see the :mod:`cluster.placement` docstring for the algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence, Set

from cluster.placement.flow import FlowGraph
from cluster.placement.model import LayoutError, NodeSpec
from cluster.placement.weights import apportion, rendezvous_scores

# Arc scans allowed for min-cost augmentation (~0.25 s of CPython),
# see Placer.flow_fill.
_CHEAPEST_PATH_WORK = 250_000


class Placer:
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
        self.score = rendezvous_scores(self.P, nodes)
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
        zone_target = apportion(n_parts * rf, zone_weight, zone_lo, zone_hi)
        target = [0] * len(self.nodes)
        for z, members in enumerate(self.zone_nodes):
            shares = apportion(
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
    ) -> tuple[FlowGraph, list[list[tuple[int, int]]], list[int]]:
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
        graph = FlowGraph(node0 + n_nodes)
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

    def _apply_flow(self, graph: FlowGraph, pair_edges: list[list[tuple[int, int]]]) -> None:
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
