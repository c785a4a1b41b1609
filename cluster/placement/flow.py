"""Unit-capacity flow graph used by the placer's last pass (max-flow and min-cost paths)."""

from __future__ import annotations

from collections import deque

_INF = 1 << 62


class FlowGraph:
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
