"""The cluster control the admin API drives (``protocols/admin/control.py``),
made of this node's layout service, worker registry, membership and chunk store."""

from __future__ import annotations

from typing import Any

import trio

from cluster import membership
from cluster.layout_service import LayoutService
from cluster.services import NodeServices
from cluster.workers import WorkerRegistry
from storage.chunkstore import LocalChunkStore

# A directory walk of every chunk: recomputed at most this often.
CHUNK_STATS_TTL = 5.0


class _ChunkStats:
    """This node's chunk count and bytes, recomputed at most every few
    seconds (a directory walk, done in a worker thread)."""

    def __init__(self, store: LocalChunkStore | None) -> None:
        self._store = store
        self._at = -1e9
        self._value: dict[str, int] = {"count": 0, "bytes": 0}
        self._lock = trio.Lock()

    def _walk(self) -> dict[str, int]:
        count = total = 0
        if self._store is None:
            return {"count": 0, "bytes": 0}
        for chunk_id in self._store.iter_chunk_ids():
            try:
                total += self._store.path_of(chunk_id).stat().st_size
            except FileNotFoundError:  # deleted by GC while we walked
                continue
            count += 1
        return {"count": count, "bytes": total}

    async def get(self) -> dict[str, int]:
        async with self._lock:
            if trio.current_time() - self._at > CHUNK_STATS_TTL:
                self._value = await trio.to_thread.run_sync(self._walk)
                self._at = trio.current_time()
            return dict(self._value)


class NodeControl:
    """:class:`protocols.admin.control.ClusterControl` over one node's services."""

    def __init__(self, services: NodeServices) -> None:
        self._services = services
        self.layouts: Any = services.layouts or LayoutService(
            services.db, services.settings.storage.replication_factor)
        maintenance = services.maintenance
        self.workers: WorkerRegistry | None = (
            maintenance.registry if maintenance is not None else None)
        self._chunks = _ChunkStats(services.local_chunks)

    async def node_states(self) -> list[dict[str, Any]]:
        """Every registered node with ``up`` computed from its last heartbeat."""
        return await membership.node_states(
            self._services.db, self._services.settings.cluster.down_after_seconds)

    async def chunk_stats(self) -> dict[str, int]:
        """This node's stored chunks: ``{"count", "bytes"}``."""
        return await self._chunks.get()
