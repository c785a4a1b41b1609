"""The blob layer's background passes: layout watch, rebalance, repair, scrub, GC.

Every pass is local in spirit -- each node takes care of *its own* disk and
partitions -- so no coordination between nodes is needed and a node coming
back from a crash heals itself:

* **layout**: refresh the cached layout and peers; create layout version 1
  on a fresh cluster (``cluster.bootstrap_expect``); stage this node if the
  applied layout does not know it yet.
* **rebalance**: after a layout change, pull the chunks of newly owned
  partitions from their previous owners; push every local chunk this node no
  longer owns to its current owners and delete it only once all of them hold
  it (so old owners keep serving until the new ones have the data).
* **repair**: push missed replicas remembered by writes and reads (hints),
  then scan the referenced chunks (``chunk_refs`` with refcount > 0, and
  those with refcount <= 0 that a version or part still lists) of the
  partitions this node owns and fetch any it lacks or holds truncated --
  the durable "queue" is derived from the database, so it survives restarts.
* **scrub**: re-hash every local chunk; a corrupt one is quarantined by the
  local store and replaced with a good copy from another node.
* **gc**: delete local chunks unreferenced for ``storage.gc_grace_seconds``:
  a chunk whose ``chunk_refs`` row has refcount 0 and was last changed before
  the grace period, or that has no row at all and whose file was last
  written/touched before it.  The refcount is only a cache: just before
  deleting, the candidates are checked against the rows that list chunks
  (object versions, multipart parts) and against the chunks of uploads still
  streaming (``pending_chunks``); a listed chunk is kept and its refcount
  repaired.  Every write touches the file, and a long upload registers its
  chunks as pending well within the grace period.  GC also removes temp
  files of writes that never finished.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from cluster.layout_service import LayoutConflict, LayoutService
from cluster.placement import partition_of
from cluster.replication import ClusterView, ReplicatedBlobStore
from cluster.transport import Response, TransportError
from cluster.workers import Worker, WorkerRegistry
from config import Settings
from storage import integrity, pending, refs, sql
from storage.blobs import ChunkCorrupt, ChunkNotFound
from storage.chunkstore import LocalChunkStore
from storage.db import Database
from storage.models import ChunkRef

_REPAIR_PAGE = 1000
_GC_BATCH = 500
# A temp file of a chunk write is at most seconds old while the write runs;
# one this old belongs to a write that died (a crash, a kill).
STALE_TEMP_SECONDS = 3600


class Throttle:
    """Paces a pass to at most ``rate`` bytes per second."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = trio.current_time()
        self.bytes = 0

    async def account(self, n: int) -> None:
        """Record ``n`` bytes done and pause if ahead of the allowed rate."""
        self.bytes += n
        ahead = self.bytes / self.rate - (trio.current_time() - self.start)
        if ahead > 0:
            await trio.sleep(ahead)


class Maintenance:
    """The passes of one node, over its local store and the replicated layer."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        layouts: LayoutService,
        view: ClusterView,
        store: ReplicatedBlobStore,
        local: LocalChunkStore,
    ) -> None:
        self.settings = settings
        self.node_id = settings.node.id
        self.db = db
        self.layouts = layouts
        self.view = view
        self.store = store
        self.local = local
        self.registry = WorkerRegistry()
        w = settings.workers
        self._pulled_version = 0
        self._seen_version = 0
        r = self.registry
        r.add(Worker("layout", settings.cluster.layout_refresh_seconds, self.layout_pass,
                     description="refresh layout and peers; bootstrap; stage joiners"))
        r.add(Worker("rebalance", w.rebalance_interval, self.rebalance_pass,
                     description="move chunks to their owners after a layout change"))
        r.add(Worker("repair", w.repair_interval, self.repair_pass,
                     description="re-replicate chunks this node should hold"))
        r.add(Worker("scrub", w.scrub_interval, self.scrub_pass,
                     description="re-hash local chunks, replace corrupt ones"))
        r.add(Worker("gc", w.gc_interval, self.gc_pass,
                     description="delete chunks unreferenced for the grace period"))

    async def run(self) -> None:
        """Run every worker until cancelled: layout first, so the others have one."""
        await self.remove_stale_temp_files()
        await self.registry.get("layout").run_once()
        self.registry.trigger("repair")
        self.registry.trigger("rebalance")
        await self.registry.run_all(first_delay=self.settings.cluster.layout_refresh_seconds)

    # -- helpers ---------------------------------------------------------------------

    async def remove_stale_temp_files(self) -> int:
        """Delete temp files left by chunk writes that never finished."""
        removed = await trio.to_thread.run_sync(self.local.remove_stale_temp_files,
                                                STALE_TEMP_SECONDS)
        if removed:
            print(f"[{self.node_id}] removed {removed} stale temp file(s) of unfinished "
                  "chunk writes", flush=True)
        return removed

    async def _repair_refcounts(self, listed: dict[str, tuple[int, int]]) -> None:
        """Give chunks that rows still list (refcount <= 0) their recounted refcount."""
        repaired = await sql.retry(lambda: self.db.write(refs.repair_steps, listed))
        if repaired:
            shown = ", ".join(c[:12] for c in repaired[:5])
            print(f"[{self.node_id}] {len(repaired)} chunk(s) still listed by versions or "
                  f"parts had refcount <= 0; refcount repaired ({shown}"
                  f"{', ...' if len(repaired) > 5 else ''})", flush=True)

    async def _still_needed(self, chunk_ids: list[str]) -> set[str]:
        """Those of ``chunk_ids`` that a version or part lists (their refcount
        is repaired)."""
        if not chunk_ids:
            return set()
        listed = await integrity.listed_references(self.db, chunk_ids)
        if listed:
            await self._repair_refcounts(listed)
        return set(listed)

    async def _local_ids(self) -> list[str]:
        return await trio.to_thread.run_sync(lambda: list(self.local.iter_chunk_ids()))

    def _owns(self, chunk_id: str) -> bool:
        layout = self.view.layout
        return layout is not None and self.node_id in layout.owners(chunk_id)

    async def fetch_elsewhere(self, chunk_id: str) -> bytes:
        """A verified copy from any other node (ChunkNotFound if none has one)."""
        for node_id in self.store.read_order(chunk_id):
            if node_id == self.node_id:
                continue
            try:
                return await self.store.get_from(node_id, chunk_id)
            except (ChunkNotFound, ChunkCorrupt, TransportError, OSError):
                continue
        raise ChunkNotFound(chunk_id, "no other node holds a good copy")

    # -- layout ----------------------------------------------------------------------

    async def layout_pass(self, worker: Worker) -> None:
        """Refresh the view; bootstrap version 1; stage this node if unknown."""
        await self.view.refresh()
        c = self.settings.cluster
        # Version 0 is the implicit single-node layout (never stored).
        no_layout = self.view.layout is None or self.view.layout.version == 0
        if no_layout and await self.layouts.bootstrap(c.bootstrap_expect, c.down_after_seconds):
            await self.view.refresh()
        layout = self.view.layout
        if layout is not None and all(n.id != self.node_id for n in layout.nodes):
            staged = await self.layouts.staged()
            if staged is None or all(n.id != self.node_id for n in staged.nodes):
                with contextlib.suppress(LayoutConflict):
                    await self.layouts.stage_add(self.node_id)
                    print(f"[{self.node_id}] joined: staged for the next layout "
                          "(cloudstorage layout preview / apply)", flush=True)
        version = layout.version if layout is not None else 0
        if version != self._seen_version:
            self._seen_version = version
            # A new layout: move data now rather than at the next interval.
            with contextlib.suppress(KeyError):
                self.registry.trigger("rebalance")
        worker.progress.update(
            layout_version=version,
            nodes_up=sorted(n for n, up in self.view.up.items() if up),
        )

    # -- rebalance -------------------------------------------------------------------

    async def rebalance_pass(self, worker: Worker) -> None:
        """Pull newly owned partitions; hand off and drop chunks no longer owned."""
        layout, previous = self.view.layout, self.view.previous
        if layout is None:
            return
        throttle = Throttle(self.settings.workers.rebalance_rate)
        p = worker.progress
        p.update(layout_version=layout.version, chunks_done=0, bytes_done=0,
                 chunks_remaining=0, bytes_remaining=0, errors=0)
        # 1. New owners fetch their partitions' chunks from the previous owners.
        to_pull: dict[str, list[str]] = {}
        if previous is not None and self._pulled_version != layout.version:
            mine_before = set(previous.partitions_of(self.node_id))
            gained = [q for q in layout.partitions_of(self.node_id) if q not in mine_before]
            sources: dict[str, list[int]] = {}
            for q in gained:
                for src in previous.assignment[q]:
                    sources.setdefault(src, []).append(q)
            local = set(await self._local_ids())
            for src, parts in sources.items():
                addr = self.view.addrs.get(src)
                if addr is None or not self.view.up.get(src, False):
                    continue
                try:
                    ids = await self.store.client.list_chunks(addr, parts, layout.partition_bits)
                except TransportError:
                    p["errors"] += 1
                    continue
                for cid in ids:
                    if cid not in local and self._owns(cid):
                        to_pull.setdefault(cid, []).append(src)
        # 2. Chunks held here that this node no longer owns.
        misplaced = [c for c in await self._local_ids() if not self._owns(c)]
        p["chunks_remaining"] = len(to_pull) + len(misplaced)
        p["bytes_remaining"] = sum(self._size(c) for c in misplaced)
        failed = 0
        for cid, srcs in to_pull.items():
            await worker.checkpoint()
            data = None
            for src in srcs:
                with contextlib.suppress(ChunkNotFound, ChunkCorrupt, TransportError, OSError):
                    data = await self.store.get_from(src, cid)
                    break
            if data is None:
                failed += 1
            else:
                await self.local.put_chunk(cid, data)
                p["bytes_done"] += len(data)
                await throttle.account(len(data))
            p["chunks_done"] += 1
            p["chunks_remaining"] -= 1
        if failed == 0:
            self._pulled_version = layout.version
        for cid in misplaced:
            await worker.checkpoint()
            size = self._size(cid)
            if await self._hand_off(cid, layout.owners(cid), throttle):
                p["chunks_done"] += 1
                p["bytes_done"] += size
            else:
                p["errors"] += 1
            p["chunks_remaining"] -= 1
            p["bytes_remaining"] -= size

    def _size(self, chunk_id: str) -> int:
        try:
            return self.local.path_of(chunk_id).stat().st_size
        except OSError:
            return 0

    async def _hand_off(self, chunk_id: str, owners: Iterable[str], throttle: Throttle) -> bool:
        """Make sure every owner holds the chunk, then delete the local copy."""
        data: bytes | None = None
        for owner in owners:
            try:
                if await self.store.has_on(owner, chunk_id):
                    continue
                if data is None:
                    data = await self.local.get_chunk(chunk_id)
                await self.store.put_to(owner, chunk_id, data)
                await throttle.account(len(data))
            except (ChunkNotFound, ChunkCorrupt):
                return False  # gone or bad here: nothing to hand off
            except (TransportError, OSError):
                return False  # an owner is unreachable: keep serving our copy
        await self.local.delete_chunk(chunk_id)
        return True

    # -- repair ----------------------------------------------------------------------

    async def repair_pass(self, worker: Worker) -> None:
        """Push hinted replicas, then fetch every referenced chunk this node
        lacks or holds with the wrong size.

        Cost: chunk_refs in pages of 1,000 and one stat per owned chunk; plus
        the rows with refcount <= 0 (recently freed chunks, kept for twice the
        GC grace) checked against the listing rows -- up to 400 of them by
        database-side searches, more by one paged pass over versions and parts.
        """
        if self.view.layout is None:
            return
        p = worker.progress
        p.update(hints=len(self.store.hints), checked=0, repaired=0, missing_everywhere=0,
                 hinted_pushed=0, truncated=0)
        for cid, node_id in sorted(self.store.hints):
            await worker.checkpoint()
            if not self.view.up.get(node_id, False):
                continue
            try:
                if not await self.store.has_on(node_id, cid):
                    await self.store.put_to(node_id, cid, await self.store.get_chunk(cid))
                    p["hinted_pushed"] += 1
                self.store.hints.discard((cid, node_id))
            except ChunkNotFound:
                self.store.hints.discard((cid, node_id))  # never committed anywhere
            except (ChunkCorrupt, TransportError, OSError):
                continue
        after = ""
        while True:
            batch = await self.db.run(_referenced_after, after, _REPAIR_PAGE)
            if not batch:
                break
            after = batch[-1][0]
            await self._repair_batch(worker, batch)
        # A refcount of 0 or less may be wrong: chunks the rows still list
        # are repaired like any other.
        zero = await self.db.run(_unreferenced_ids)
        if zero:
            await self._repair_batch(worker, sorted(await self._still_needed(zero)))

    async def _repair_batch(self, worker: Worker, batch: list[tuple[str, int]] | list[str]
                            ) -> None:
        """Fetch the owned chunks of ``batch`` that are missing or truncated here."""
        p = worker.progress
        for item in batch:
            cid, size = item if isinstance(item, tuple) else (item, None)
            if not self._owns(cid):
                continue
            await worker.checkpoint()
            p["checked"] += 1
            have = await self.local.size_of(cid)
            if have is not None and (size is None or have == size):
                continue
            if have is not None:
                # Truncated (or grown): only the daily scrub would re-hash it.
                await self.local.quarantine(cid)
                p["truncated"] += 1
            try:
                data = await self.fetch_elsewhere(cid)
            except ChunkNotFound:
                p["missing_everywhere"] += 1
                continue
            await self.local.put_chunk(cid, data)
            p["repaired"] += 1

    # -- scrub -----------------------------------------------------------------------

    async def scrub_pass(self, worker: Worker) -> None:
        """Re-hash local chunks; replace corrupt ones from other nodes."""
        throttle = Throttle(self.settings.workers.scrub_rate)
        ids = await self._local_ids()
        p = worker.progress
        p.update(total=len(ids), scanned=0, corrupt=0, replaced=0, bytes=0)
        for cid in ids:
            await worker.checkpoint()
            try:
                data = await self.local.get_chunk(cid)
            except ChunkNotFound:
                continue  # deleted meanwhile (gc, rebalance)
            except ChunkCorrupt:
                p["corrupt"] += 1
                with contextlib.suppress(ChunkNotFound):
                    await self.local.put_chunk(cid, await self.fetch_elsewhere(cid))
                    p["replaced"] += 1
                continue
            finally:
                p["scanned"] += 1
            p["bytes"] += len(data)
            await throttle.account(len(data))

    # -- gc --------------------------------------------------------------------------

    async def gc_pass(self, worker: Worker) -> None:
        """Delete local chunks unreferenced for longer than the grace period.

        Cost per pass: one listing of the local store, one chunk_refs lookup
        per 500 old-enough files, and for the few that look unreferenced a
        check against the listing rows (:func:`storage.integrity.listed_references`:
        a database-side scan of versions and parts per 100 candidates) and
        against pending uploads (one indexed lookup per batch).
        """
        grace = self.settings.storage.gc_grace_seconds
        await self.remove_stale_temp_files()
        ids = await self._local_ids()
        old_enough = time.time() - grace
        candidates = [c for c in ids if self._mtime(c) < old_enough]
        p = worker.progress
        p.update(local=len(ids), candidates=len(candidates), deleted=0, bytes_freed=0, kept=0)
        for start in range(0, len(candidates), _GC_BATCH):
            await worker.checkpoint()
            batch = candidates[start:start + _GC_BATCH]
            refs_of = await self.db.run(_refs_of, batch)
            cutoff = datetime.now(UTC) - timedelta(seconds=grace)
            unreferenced = [c for c in batch if _collectable(refs_of.get(c), cutoff)]
            needed = await self._still_needed(unreferenced)
            needed |= await self.db.run(pending.live_among, unreferenced, time.time())
            p["kept"] += len(needed)
            for cid in unreferenced:
                if cid in needed:
                    continue
                # Re-checked under the store's lock: an upload may have
                # touched the file since the listing.
                freed = await self.local.delete_if_idle(cid, time.time() - grace)
                if freed is not None:
                    p["deleted"] += 1
                    p["bytes_freed"] += freed
        await self._forget_old_zero_refs(datetime.now(UTC) - timedelta(seconds=2 * grace))
        await self.db.run(pending.forget_expired, time.time())

    async def _forget_old_zero_refs(self, cutoff: datetime) -> None:
        """Drop rows of chunks unreferenced since ``cutoff`` (twice the grace
        period: every node has had its chance to collect by row; later it
        collects by file age) -- unless the rows still list them."""
        old = await self.db.run(_old_zero_refs, cutoff)
        for start in range(0, len(old), _GC_BATCH):
            batch = old[start:start + _GC_BATCH]
            needed = await self._still_needed(batch)
            await self.db.run(_forget_refs, [c for c in batch if c not in needed])

    def _mtime(self, chunk_id: str) -> float:
        try:
            return self.local.path_of(chunk_id).stat().st_mtime
        except OSError:
            return time.time()

    # -- control (transport /v1/workers) ---------------------------------------------

    async def control(self, method: str, path: str, query: dict[str, list[str]]) -> Response:
        """Workers' state and pause/resume/run over the authenticated transport."""
        import json

        parts = path.strip("/").split("/")  # v1 workers [name action]
        if method == "GET" and len(parts) == 2:
            return Response(200, json.dumps(self.registry.status()).encode(),
                            "application/json")
        if method == "POST" and len(parts) == 4 and parts[3] in ("pause", "resume", "run"):
            try:
                worker = self.registry.get(parts[2])
            except KeyError:
                return Response(404, b"no such worker\n")
            {"pause": worker.pause, "resume": worker.resume, "run": worker.trigger}[parts[3]]()
            return Response(200, json.dumps(worker.status()).encode(), "application/json")
        return Response(404, b"not found\n")


def _collectable(ref: tuple[int, Any] | None, cutoff: datetime) -> bool:
    """Whether a chunk_refs row (refcount, updated_at) lets GC consider its chunk."""
    return ref is None or (ref[0] <= 0 and ref[1] < cutoff)


async def _referenced_after(after: str, limit: int) -> list[tuple[str, int]]:
    rows = await ChunkRef.filter(refcount__gt=0, chunk_id__gt=after).order_by(
        "chunk_id").limit(limit).values_list("chunk_id", "size")
    return [(c, s) for c, s in rows]


async def _unreferenced_ids() -> list[str]:
    return list(await ChunkRef.filter(refcount__lte=0).values_list("chunk_id", flat=True))


async def _refs_of(ids: list[str]) -> dict[str, tuple[int, Any]]:
    rows = await ChunkRef.filter(chunk_id__in=ids).values_list(
        "chunk_id", "refcount", "updated_at")
    return {c: (n, u) for c, n, u in rows}


async def _old_zero_refs(cutoff: datetime) -> list[str]:
    # Compared in Python: raw-SQL and ORM writes may format SQLite
    # timestamps differently, so a string comparison in SQL is not safe.
    rows = await ChunkRef.filter(refcount__lte=0).values_list("chunk_id", "updated_at")
    return [c for c, updated in rows if updated < cutoff]


async def _forget_refs(ids: list[str]) -> None:
    if ids:
        await ChunkRef.filter(chunk_id__in=ids, refcount__lte=0).delete()


__all__ = ["Maintenance", "Throttle", "partition_of"]
