"""The replicated blob layer: quorum writes and self-healing reads over the cluster.

:class:`ClusterView` is a node's cached picture of the cluster (current and
previous applied layout, peers' transport addresses and liveness), refreshed
from the metadata database by the layout worker.

:class:`ReplicatedBlobStore` implements :class:`storage.blobs.BlobStore`:

* ``put_chunk`` sends the chunk to every owner in parallel and returns once
  ``w`` of them acknowledged (stragglers get ``straggler_seconds`` more, then
  are left to repair).  Missed replicas are remembered in memory as hints for
  the repair worker; the durable record is the repair *scan* (every node
  regularly checks that it holds every referenced chunk of its partitions),
  so nothing depends on this process surviving.
* ``get_chunk`` tries the local copy first, then the current owners, then the
  previous layout's owners (who keep serving during a rebalance), then any
  other node; every copy is verified against its SHA-256, and owners found
  missing or corrupt are given the good bytes before returning.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta

import trio

from cluster.layout_service import LayoutService
from cluster.placement import Layout, NodeSpec, compute_layout
from cluster.transport import BodyTag, TransportClient, TransportError
from storage.blobs import ChunkCorrupt, ChunkNotFound, ChunkUnavailable, check_chunk_id
from storage.chunkstore import LocalChunkStore
from storage.db import Database
from storage.errors import ServiceUnavailable
from storage.models import Node
from storage.ratelog import ThrottledLog

log = logging.getLogger("cloudstorage.replication")
# Seconds a client is told to wait while too few nodes are up to write: about
# one heartbeat round, after which a restarted node is seen again.
RETRY_AFTER_SECONDS = 5


class ClusterView:
    """This node's cached view of layout and membership."""

    def __init__(
        self, db: Database, layouts: LayoutService, down_after: float, *,
        implicit_self: NodeSpec | None = None,
    ) -> None:
        self.db = db
        self.layouts = layouts
        self.down_after = down_after
        # A single-node deployment (cluster.bootstrap_expect = 1) must work
        # before its layout worker has written version 1: until a layout is
        # applied, this node alone owns everything (version 0, never stored).
        self.implicit_self = implicit_self
        self.layout: Layout | None = None
        self.previous: Layout | None = None
        self.addrs: dict[str, str] = {}
        self.up: dict[str, bool] = {}
        self._lock = trio.Lock()

    async def refresh(self) -> None:
        """Re-read the applied layouts and the node table."""
        async with self._lock:
            current, previous = await self.layouts.current_and_previous()
            down_after = self.down_after

            async def q() -> list[tuple[str, str, bool]]:
                cutoff = datetime.now(UTC) - timedelta(seconds=down_after)
                return [(n.id, n.transport_addr, n.last_heartbeat >= cutoff)
                        for n in await Node.all()]

            rows = await self.db.run(q)
            self.addrs = {i: a for i, a, _ in rows}
            self.up = {i: u for i, _, u in rows}
            if current is None and self.implicit_self is not None:
                current = compute_layout([self.implicit_self], 1, self.layouts.partition_bits)
                current = Layout(0, current.partition_bits, 1, current.nodes, current.assignment)
            self.layout, self.previous = current, previous

    def write_quorum_problem(self, write_quorum: int) -> str | None:
        """Why some partitions cannot be written now (fewer than ``write_quorum``
        of their owners up), or None.  None too while no layout is applied:
        a cluster still gathering its first nodes is starting, not broken."""
        layout = self.layout
        if layout is None:
            return None
        need = min(write_quorum, layout.replication_factor)
        up = {node_id for node_id, alive in self.up.items() if alive}
        short = sum(1 for owners in layout.assignment
                    if sum(owner in up for owner in owners) < need)
        if not short:
            return None
        down = sorted(n.id for n in layout.nodes if n.capacity > 0 and n.id not in up)
        return (f"{short} of {len(layout.assignment)} partitions have fewer than {need} "
                f"owners up (down: {', '.join(down) or 'none'})")

    async def ensure_layout(self) -> Layout:
        """The current layout, reading it once if not known yet."""
        if self.layout is None:
            await self.refresh()
        if self.layout is None:
            raise ServiceUnavailable(
                "The cluster is not ready to store data yet; please retry later.",
                cause="layout", retry_after=RETRY_AFTER_SECONDS,
                detail="the cluster has no layout yet (see `cloudstorage layout show`)")
        return self.layout


class ReplicatedBlobStore:
    """A :class:`~storage.blobs.BlobStore` over the owners of each chunk."""

    def __init__(
        self,
        node_id: str,
        view: ClusterView,
        client: TransportClient,
        local: LocalChunkStore | None,
        *,
        write_quorum: int = 2,
        straggler_seconds: float = 2.0,
    ) -> None:
        self.node_id = node_id
        self.view = view
        self.client = client
        self.local = local
        self.write_quorum = write_quorum
        self.straggler_seconds = straggler_seconds
        # (chunk id, node id) replicas a write or read found missing.
        self.hints: set[tuple[str, str]] = set()
        # A dead or full node fails every write to it: one line per node and
        # cause every few seconds, not one per chunk.
        self._failures = ThrottledLog(log)

    # -- one replica ------------------------------------------------------------------

    async def put_to(
        self, node_id: str, chunk_id: str, data: bytes, tag: BodyTag | None = None
    ) -> None:
        """Store a chunk on one node (this one or a peer); ``tag``: ``data``'s
        transport tag, when several peers get the same bytes."""
        if node_id == self.node_id and self.local is not None:
            await self.local.put_chunk(chunk_id, data)
            return
        addr = self.view.addrs.get(node_id)
        if addr is None:
            raise TransportError(f"node {node_id} has no known address")
        await self.client.put_chunk(addr, chunk_id, data, tag)

    async def get_from(self, node_id: str, chunk_id: str) -> bytes:
        """Verified bytes from one node; ChunkNotFound/ChunkCorrupt/TransportError."""
        if node_id == self.node_id and self.local is not None:
            return await self.local.get_chunk(chunk_id)
        addr = self.view.addrs.get(node_id)
        if addr is None:
            raise TransportError(f"node {node_id} has no known address")
        return await self.client.get_chunk(addr, chunk_id)

    async def has_on(self, node_id: str, chunk_id: str) -> bool:
        """Whether one node holds the chunk."""
        if node_id == self.node_id and self.local is not None:
            return await self.local.has_chunk(chunk_id)
        addr = self.view.addrs.get(node_id)
        if addr is None:
            raise TransportError(f"node {node_id} has no known address")
        return await self.client.has_chunk(addr, chunk_id)

    async def delete_on(self, node_id: str, chunk_id: str) -> None:
        """Remove the chunk from one node."""
        if node_id == self.node_id and self.local is not None:
            await self.local.delete_chunk(chunk_id)
            return
        addr = self.view.addrs.get(node_id)
        if addr is None:
            raise TransportError(f"node {node_id} has no known address")
        await self.client.delete_chunk(addr, chunk_id)

    # -- BlobStore --------------------------------------------------------------------

    async def put_chunk(self, chunk_id: str, data: bytes) -> None:
        """Write to every owner in parallel; succeed at the write quorum."""
        check_chunk_id(chunk_id)
        layout = await self.view.ensure_layout()
        owners = layout.owners(chunk_id)
        need = min(self.write_quorum, len(owners))
        acks: list[str] = []
        failures: list[str] = []
        quorum_decided = trio.Event()
        all_done = trio.Event()
        pending = len(owners)
        # One transport tag for every peer (GMAC, ~0.1 ms a MiB each time).
        peers = sum(1 for o in owners if o != self.node_id or self.local is None)
        tag = self.client.body_tag(data) if peers > 1 else None

        async def one(node_id: str) -> None:
            nonlocal pending
            try:
                await self.put_to(node_id, chunk_id, data, tag)
                acks.append(node_id)
            except (TransportError, OSError) as exc:
                failures.append(f"{node_id}: {exc}")
                self._failures.log(
                    f"put {node_id} {type(exc).__name__}",
                    f"[{self.node_id}] replica write to {node_id} failed: {exc}")
            finally:
                pending -= 1
                if len(acks) >= need or len(acks) + pending < need:
                    quorum_decided.set()
                if pending == 0:
                    all_done.set()

        async with trio.open_nursery() as nursery:
            for node_id in owners:
                nursery.start_soon(one, node_id)
            await quorum_decided.wait()
            # Give the remaining replicas a short chance; then repair owns them.
            with trio.move_on_after(self.straggler_seconds):
                await all_done.wait()
            nursery.cancel_scope.cancel()
        for node_id in owners:
            if node_id not in acks:
                self.hints.add((chunk_id, node_id))
        if len(acks) < need:
            raise self._quorum_lost(chunk_id, len(acks), need, failures)

    def _quorum_lost(
        self, chunk_id: str, acked: int, need: int, failures: list[str]
    ) -> ServiceUnavailable:
        """The error for a write that missed its quorum: unavailable, not internal
        (the data is fine; too few nodes can take it right now)."""
        detail = (f"chunk {chunk_id}: {acked} of {need} required replicas stored "
                  f"({'; '.join(failures) or 'timed out'})")
        self._failures.log("write quorum", f"[{self.node_id}] write quorum lost: {detail}")
        return ServiceUnavailable(
            "Too few storage nodes are available to store the data; please retry later.",
            cause="write quorum", retry_after=RETRY_AFTER_SECONDS, detail=detail)

    def read_order(self, chunk_id: str) -> list[str]:
        """Nodes to try for a read: local, current owners (up first), previous owners, rest."""
        order: list[str] = []
        layout, previous = self.view.layout, self.view.previous
        owners = list(layout.owners(chunk_id)) if layout is not None else []
        if self.local is not None:
            order.append(self.node_id)
        up = self.view.up
        order += sorted((o for o in owners if o not in order), key=lambda o: not up.get(o, True))
        if previous is not None:
            order += [o for o in previous.owners(chunk_id) if o not in order]
        # Last resort (two quick layout changes, a half-finished rebalance): anyone.
        order += sorted(n for n in self.view.addrs if n not in order and up.get(n, False))
        return order

    async def get_chunk(self, chunk_id: str) -> bytes:
        """Verified bytes from the nearest copy; repairs owners found lacking."""
        check_chunk_id(chunk_id)
        await self.view.ensure_layout()
        layout = self.view.layout
        owners = set(layout.owners(chunk_id)) if layout is not None else set()
        lacking: list[str] = []
        unreachable: list[str] = []
        for node_id in self.read_order(chunk_id):
            try:
                data = await self.get_from(node_id, chunk_id)
            except (ChunkNotFound, ChunkCorrupt):
                if node_id in owners:
                    lacking.append(node_id)
                continue
            except (TransportError, OSError):
                unreachable.append(node_id)
                continue
            await self._heal(chunk_id, data, lacking)
            return data
        if unreachable:
            self._failures.log(
                "read unreachable",
                f"[{self.node_id}] chunk {chunk_id}: no reachable copy "
                f"(unreachable: {', '.join(unreachable)})")
            raise ChunkUnavailable(chunk_id, f"unreachable: {', '.join(unreachable)}")
        raise ChunkNotFound(chunk_id, "no node holds a good copy")

    async def _heal(self, chunk_id: str, data: bytes, lacking: list[str]) -> None:
        """Give owners that lacked the chunk the good bytes (bounded, best effort)."""
        for node_id in lacking:
            with trio.move_on_after(self.straggler_seconds):
                try:
                    await self.put_to(node_id, chunk_id, data)
                    self.hints.discard((chunk_id, node_id))
                    continue
                except (TransportError, OSError):
                    pass
            self.hints.add((chunk_id, node_id))

    async def has_chunk(self, chunk_id: str) -> bool:
        """Whether any owner (or this node) holds a copy."""
        check_chunk_id(chunk_id)
        await self.view.ensure_layout()
        for node_id in self.read_order(chunk_id):
            with contextlib.suppress(TransportError, OSError):
                if await self.has_on(node_id, chunk_id):
                    return True
        return False

    async def delete_chunk(self, chunk_id: str) -> None:
        """Remove every copy the reachable nodes hold (GC normally does this locally)."""
        check_chunk_id(chunk_id)
        await self.view.ensure_layout()
        targets = set(self.view.addrs)
        if self.local is not None:
            targets.add(self.node_id)
        async with trio.open_nursery() as nursery:
            for node_id in sorted(targets):
                nursery.start_soon(self._delete_quietly, node_id, chunk_id)

    async def _delete_quietly(self, node_id: str, chunk_id: str) -> None:
        with contextlib.suppress(TransportError, OSError):
            await self.delete_on(node_id, chunk_id)
