"""Layout changes as an operator sees them: show, stage, preview, apply, revert.

Layouts live in the ``cluster_layouts`` table: every applied version is kept
(the highest one is current; the one before it is what rebalancing reads
from), and at most one *staged* row (version = current + 1) holds the next
layout, already computed, so the preview shows exactly what apply will do.

Rules:

* ``apply(N)`` succeeds only when N is the staged version and the current
  version is N - 1; anything else (a stale or doubled apply) is refused.
* First start: when no layout exists and at least ``cluster.bootstrap_expect``
  nodes are up, any node creates version 1 from the registered nodes
  (:meth:`LayoutService.bootstrap`; racing nodes collide on the primary key
  and the loser simply reads the winner's layout).
* A node that joins a cluster whose layout does not contain it is only
  *staged* (:meth:`LayoutService.stage_add`); the operator previews and
  applies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from cluster.placement import (
    DEFAULT_PARTITION_BITS,
    Layout,
    LayoutDiff,
    LayoutError,
    NodeSpec,
    compute_layout,
    diff_layouts,
)
from storage import errors
from storage.db import Database
from storage.models import ClusterLayout, Node


class LayoutConflict(errors.StorageError):
    """The requested change does not fit the current state (stale apply, ...)."""

    code = "LayoutConflict"
    kind = errors.Kind.CONFLICT


def _load(row: ClusterLayout | None) -> Layout | None:
    return Layout.from_json(row.layout) if row is not None else None


async def _current_row() -> ClusterLayout | None:
    return await ClusterLayout.filter(state="applied").order_by("-version").first()


class LayoutService:
    """Reads and changes the cluster layout in the metadata database."""

    def __init__(
        self, db: Database, replication_factor: int,
        partition_bits: int = DEFAULT_PARTITION_BITS,
    ) -> None:
        self.db = db
        self.replication_factor = replication_factor
        self.partition_bits = partition_bits

    # -- reading ------------------------------------------------------------------

    async def current(self) -> Layout | None:
        """The applied layout with the highest version, or None."""

        async def q() -> Layout | None:
            return _load(await _current_row())

        return await self.db.run(q)

    async def current_and_previous(self) -> tuple[Layout | None, Layout | None]:
        """The current layout and the applied one before it (rebalance source)."""

        async def q() -> tuple[Layout | None, Layout | None]:
            rows = await ClusterLayout.filter(state="applied").order_by("-version").limit(2)
            return (_load(rows[0]) if rows else None,
                    _load(rows[1]) if len(rows) > 1 else None)

        return await self.db.run(q)

    async def staged(self) -> Layout | None:
        """The staged layout, or None."""

        async def q() -> Layout | None:
            current = await _current_row()
            row = await ClusterLayout.filter(state="staged").order_by("-version").first()
            if row is None or (current is not None and row.version <= current.version):
                return None
            return _load(row)

        return await self.db.run(q)

    async def history(self) -> list[int]:
        """Applied versions, oldest first."""

        async def q() -> list[int]:
            rows = await ClusterLayout.filter(state="applied").order_by("version")
            return [r.version for r in rows]

        return await self.db.run(q)

    # -- staging ------------------------------------------------------------------

    async def stage_add(
        self, node_id: str, *, zone: str | None = None, capacity: int | None = None
    ) -> Layout:
        """Stage adding a node (zone/capacity default to what it registered)."""
        return await self._stage(node_id, "add", zone, capacity)

    async def stage_remove(self, node_id: str) -> Layout:
        """Stage removing a node (its partitions move to the others)."""
        return await self._stage(node_id, "remove", None, None)

    async def stage_update(
        self, node_id: str, *, zone: str | None = None, capacity: int | None = None
    ) -> Layout:
        """Stage a zone and/or capacity change (capacity 0 = gateway, stores nothing)."""
        return await self._stage(node_id, "update", zone, capacity)

    async def _stage(
        self, node_id: str, op: str, zone: str | None, capacity: int | None
    ) -> Layout:
        rf, bits = self.replication_factor, self.partition_bits

        async def tx() -> Layout:
            async with in_transaction():
                current = _load(await _current_row())
                staged_row = await ClusterLayout.filter(state="staged").order_by(
                    "-version").first()
                base = _load(staged_row) if staged_row is not None else None
                if base is not None and current is not None and base.version <= current.version:
                    base = None
                nodes = {n.id: n for n in (base or current).nodes} if (base or current) else {}
                if op == "add":
                    if node_id in nodes:
                        raise LayoutConflict(f"node {node_id} is already in the layout")
                    row = await Node.get_or_none(id=node_id)
                    if row is None and (zone is None or capacity is None):
                        raise LayoutConflict(
                            f"node {node_id} has not registered: give its zone and capacity")
                    nodes[node_id] = NodeSpec(
                        node_id, zone or row.zone,  # type: ignore[union-attr]
                        capacity if capacity is not None else row.capacity)  # type: ignore[union-attr]
                elif op == "remove":
                    if node_id not in nodes:
                        raise LayoutConflict(f"node {node_id} is not in the layout")
                    del nodes[node_id]
                else:
                    if node_id not in nodes:
                        raise LayoutConflict(f"node {node_id} is not in the layout")
                    old = nodes[node_id]
                    nodes[node_id] = NodeSpec(
                        node_id, zone or old.zone, old.capacity if capacity is None else capacity)
                try:
                    layout = compute_layout(nodes.values(), rf, bits, previous=current)
                except LayoutError as exc:
                    raise LayoutConflict(str(exc)) from None
                await ClusterLayout.filter(state="staged").delete()
                await ClusterLayout.create(version=layout.version, state="staged",
                                           layout=layout.to_json())
                return layout

        return await self.db.run(tx)

    async def revert(self) -> bool:
        """Drop the staged changes; True if there were any."""

        async def tx() -> int:
            return await ClusterLayout.filter(state="staged").delete()

        return bool(await self.db.run(tx))

    # -- preview and apply --------------------------------------------------------

    async def preview(self) -> dict[str, Any] | None:
        """What applying the staged layout would change, or None if nothing is staged."""
        current, staged = await self.current(), await self.staged()
        if staged is None:
            return None
        return describe_change(current, staged)

    async def apply(self, version: int) -> Layout:
        """Make the staged layout ``version`` current; refuses anything but current + 1."""

        async def tx() -> Layout:
            async with in_transaction():
                current = await _current_row()
                expected = (current.version if current is not None else 0) + 1
                if version != expected:
                    raise LayoutConflict(
                        f"cannot apply version {version}: the current version is "
                        f"{expected - 1}, only {expected} can be applied")
                changed = await ClusterLayout.filter(version=version, state="staged").update(
                    state="applied")
                if changed != 1:
                    raise LayoutConflict(f"version {version} is not staged")
                row = await ClusterLayout.get(version=version)
                return Layout.from_json(row.layout)

        return await self.db.run(tx)

    async def bootstrap(self, min_nodes: int, down_after: float) -> Layout | None:
        """Create layout version 1 from the up nodes if none exists and enough are up.

        Returns the current layout (new or existing), or None while waiting
        for more nodes.
        """
        rf, bits = self.replication_factor, self.partition_bits

        async def tx() -> Layout | None:
            existing = await _current_row()
            if existing is not None:
                return _load(existing)
            cutoff = datetime.now(UTC) - timedelta(seconds=down_after)
            rows = await Node.filter(last_heartbeat__gte=cutoff).order_by("id")
            specs = [NodeSpec(r.id, r.zone, r.capacity) for r in rows]
            if len([s for s in specs if s.capacity > 0]) < min_nodes:
                return None
            layout = compute_layout(specs, rf, bits)
            try:
                async with in_transaction():
                    await ClusterLayout.create(version=1, state="applied",
                                               layout=layout.to_json())
            except IntegrityError:
                # Another node created it (or staged 1) at the same moment.
                return _load(await _current_row())
            return layout

        return await self.db.run(tx)


def describe_change(current: Layout | None, staged: Layout) -> dict[str, Any]:
    """The operator's preview: partitions that move, replicas to copy, per-node counts."""
    if current is None:
        return {
            "old_version": 0, "new_version": staged.version,
            "partitions": staged.num_partitions, "partitions_changed": staged.num_partitions,
            "moved_replicas": sum(len(a) for a in staged.assignment),
            "counts_before": {}, "counts_after": staged.replica_counts(),
            "moves": [], "replication_factor": staged.replication_factor,
        }
    diff: LayoutDiff = diff_layouts(current, staged)
    out = diff.to_json()
    out["partitions"] = staged.num_partitions
    out["partitions_changed"] = len(diff.partitions_changed)
    out["replication_factor"] = staged.replication_factor
    return out


def format_layout(layout: Layout | None, title: str = "layout") -> str:
    """Human-readable summary of a layout for the CLI."""
    if layout is None:
        return f"{title}: none"
    counts = layout.replica_counts()
    lines = [f"{title}: version {layout.version}, {layout.num_partitions} partitions, "
             f"replication factor {layout.replication_factor}"]
    for n in layout.nodes:
        lines.append(f"  {n.id:16} zone {n.zone:10} capacity {n.capacity:>16}  "
                     f"partitions {counts.get(n.id, 0)}")
    return "\n".join(lines)


def format_preview(preview: dict[str, Any] | None) -> str:
    """Human-readable preview for the CLI."""
    if preview is None:
        return "nothing staged"
    lines = [
        f"apply version {preview['new_version']} over {preview['old_version']}: "
        f"{preview['partitions_changed']} of {preview['partitions']} partitions change, "
        f"{preview['moved_replicas']} replicas to copy",
    ]
    for node in sorted(set(preview["counts_before"]) | set(preview["counts_after"])):
        before = preview["counts_before"].get(node, 0)
        after = preview["counts_after"].get(node, 0)
        lines.append(f"  {node:16} {before:5} -> {after:5} partitions")
    targets: dict[str, int] = {}
    for move in preview["moves"]:
        for node in move["added"]:
            targets[node] = targets.get(node, 0) + 1
    if targets:
        lines.append("  partitions gained: " + ", ".join(
            f"{n} +{c}" for n, c in sorted(targets.items())))
    lines.append(f"apply with: cloudstorage layout apply --version {preview['new_version']}")
    return "\n".join(lines)
