"""Garbage collection never deletes a chunk something still needs.

A node's storage core runs in-process (its real services: replicated blob
layer over its local chunk store, metadata on SQLite and PostgreSQL) with a
GC grace period of one second, and its GC pass is run directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from storage.integrity import mismatches
from storage.multipart import MultipartService
from tests.storage.test_objects import stream

pytestmark = pytest.mark.trio

CHUNK = 64 * 1024
GRACE = 1


@dataclass
class Node:
    services: object
    bucket: object

    @property
    def db(self):
        return self.services.db

    async def gc(self) -> dict:
        """One GC pass; its progress counters (fails if the pass failed)."""
        worker = self.services.maintenance.registry.get("gc")
        await worker.run_once()
        assert worker.last_error is None, worker.last_error
        return dict(worker.progress)

    def chunk_file(self, cid: str) -> Path:
        return self.services.local_chunks.path_of(cid)

    def age(self, cids, seconds: float = 3600) -> None:
        """Make chunk files look last written ``seconds`` ago."""
        then = time.time() - seconds
        for cid in cids:
            os.utime(self.chunk_file(cid), (then, then))


@pytest.fixture
async def node(db_url: str, tmp_path: Path) -> AsyncIterator[Node]:
    from cluster.services import build_services
    from config.settings import Settings, replace
    from storage.bridge import AsyncioBridge
    from storage.db import Database

    settings = replace(
        Settings(), node={"data_dir": tmp_path / "node"}, metadata={"url": db_url},
        cluster={"secret": "gc-test-cluster-secret-0123456789"},
        storage={"gc_grace_seconds": GRACE, "chunk_size": CHUNK, "inline_threshold": 1024},
    )
    bridge = AsyncioBridge()
    bridge.start()
    db = Database(settings.metadata.url, bridge)
    try:
        await db.open()
        services = build_services(settings, bridge, db)
        account = await services.accounts.create_account("gc@example.com")
        bucket = await services.buckets.create(account.id, "gc-safety")
        yield Node(services, bucket)
    finally:
        await db.close()
        bridge.stop()


async def _zero_refcounts(cids: list[str], age: float = 3600) -> None:
    """What the double-release bug left: refcount 0, unchanged for ``age`` seconds."""
    from storage.models import ChunkRef

    await ChunkRef.filter(chunk_id__in=cids).update(
        refcount=0, updated_at=datetime.now(UTC) - timedelta(seconds=age))


async def test_gc_keeps_listed_chunks_whose_refcount_is_wrong(node: Node) -> None:
    objects = node.services.objects
    data = os.urandom(3 * CHUNK + 5)
    info = await objects.put_object(node.bucket, "k", stream(data))
    multipart = MultipartService(node.db, objects, min_part_size=1024)
    upload = await multipart.create(node.bucket, "mp")
    part_data = os.urandom(2 * CHUNK)
    part = await multipart.upload_part(node.bucket, upload.upload_id, 1, stream(part_data))
    listed = [c for c, _ in info.chunks] + [c for c, _ in part.chunks]
    await node.db.run(_zero_refcounts, listed)
    node.age(listed)
    progress = await node.gc()
    assert progress["kept"] == len(listed) and progress["deleted"] == 0
    assert all(node.chunk_file(c).exists() for c in listed)
    # The truth repaired the cache.
    assert not await mismatches(node.db)
    head = await objects.head_object(node.bucket, "k")
    assert await objects.get_bytes(head) == data
    (plan_part,) = (await multipart.list_parts(node.bucket, upload.upload_id))[1].parts
    plan = await multipart.plan_completion(node.bucket, upload.upload_id,
                                           [(1, plan_part.etag)])
    done = await multipart.complete(node.bucket, plan)
    assert await objects.get_bytes(done) == part_data


async def test_gc_still_deletes_garbage(node: Node) -> None:
    objects = node.services.objects
    kept = await objects.put_object(node.bucket, "kept", stream(os.urandom(2 * CHUNK)))
    gone = await objects.put_object(node.bucket, "gone", stream(os.urandom(2 * CHUNK)))
    await objects.delete_object(node.bucket, "gone")
    await node.db.run(_zero_refcounts, [c for c, _ in gone.chunks])
    node.age([c for c, _ in kept.chunks + gone.chunks])
    progress = await node.gc()
    assert progress["deleted"] == len(gone.chunks)
    assert not any(node.chunk_file(c).exists() for c, _ in gone.chunks)
    assert all(node.chunk_file(c).exists() for c, _ in kept.chunks)


async def test_forgetting_old_rows_spares_listed_chunks(node: Node) -> None:
    """A zero row older than twice the grace is forgotten only if nothing lists it."""
    from storage.models import ChunkRef

    objects = node.services.objects
    info = await objects.put_object(node.bucket, "k", stream(os.urandom(2 * CHUNK)))
    cids = [c for c, _ in info.chunks]
    await node.db.run(_zero_refcounts, cids, 10 * GRACE + 60)
    # The files are fresh: GC skips them by age, yet it considers the rows.
    await node.gc()

    async def counts() -> list[int]:
        return list(await ChunkRef.filter(chunk_id__in=cids).values_list("refcount", flat=True))

    assert await node.db.run(counts) == [1, 1]


async def test_stale_temp_files_are_removed_fresh_ones_kept(node: Node) -> None:
    tmp = node.services.local_chunks.root / "tmp"
    stale, fresh = tmp / ("ab" * 32 + ".dead01"), tmp / ("cd" * 32 + ".live01")
    stale.write_bytes(b"half a chunk")
    fresh.write_bytes(b"being written")
    then = time.time() - 2 * 3600
    os.utime(stale, (then, then))
    await node.gc()
    assert not stale.exists() and fresh.exists()
    # At node start too (Maintenance.run begins with it).
    os.utime(fresh, (then, then))
    assert await node.services.maintenance.remove_stale_temp_files() == 1
    assert not fresh.exists()
    await trio.lowlevel.checkpoint()


async def _slow_body(data: bytes, pieces: int, pause: float):
    """``data`` in ``pieces`` pieces, ``pause`` seconds apart (a slow client)."""
    step = -(-len(data) // pieces)
    for i in range(0, len(data), step):
        yield data[i:i + step]
        await trio.sleep(pause)


async def _gc_while(node: Node, upload) -> tuple[object, dict]:
    """Run ``upload()`` while GC passes run back to back; (its result, GC totals)."""
    totals = {"passes": 0, "kept": 0, "deleted": 0}
    result = None

    async def run_upload(cancel: trio.CancelScope) -> None:
        nonlocal result
        result = await upload()
        cancel.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_upload, nursery.cancel_scope)
        while True:
            progress = await node.gc()
            totals["passes"] += 1
            totals["kept"] += progress["kept"]
            totals["deleted"] += progress["deleted"]
            await trio.sleep(0.1)
    return result, totals


async def test_slow_put_survives_gc_passes(node: Node) -> None:
    """An upload lasting several grace periods, GC running all along: its
    chunks stay, and the acknowledged object reads back exactly."""
    objects = node.services.objects
    data = os.urandom(8 * CHUNK)
    info, gc = await _gc_while(node, lambda: objects.put_object(
        node.bucket, "slow", _slow_body(data, 16, 0.25)))  # ~4 s, grace 1 s
    assert gc["passes"] >= 10 and gc["kept"] > 0 and gc["deleted"] == 0
    assert await objects.get_bytes(await objects.head_object(node.bucket, "slow")) == data
    # The commit removed the upload's pending rows; the object holds its chunks.
    assert await node.db.run(_pending_rows) == 0
    assert not await mismatches(node.db)
    assert len(info.chunks) == 8


async def test_slow_upload_part_survives_gc_passes(node: Node) -> None:
    objects = node.services.objects
    multipart = MultipartService(node.db, objects, min_part_size=1024)
    upload = await multipart.create(node.bucket, "slow-mp")
    data = os.urandom(6 * CHUNK)
    part, gc = await _gc_while(node, lambda: multipart.upload_part(
        node.bucket, upload.upload_id, 1, _slow_body(data, 12, 0.25)))
    assert gc["kept"] > 0 and gc["deleted"] == 0
    # The part references its chunks now: GC keeps them without pending rows.
    node.age([c for c, _ in part.chunks])
    assert (await node.gc())["deleted"] == 0
    plan = await multipart.plan_completion(node.bucket, upload.upload_id, [(1, part.etag)])
    done = await multipart.complete(node.bucket, plan)
    assert await objects.get_bytes(done) == data


async def test_pending_rows_of_a_dead_upload_expire(node: Node) -> None:
    """An upload that fails after registering leaves rows that expire; then GC
    collects its chunks."""
    objects = node.services.objects

    async def dies():
        async for piece in _slow_body(os.urandom(4 * CHUNK), 4, 0.4):
            yield piece
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await objects.store_stream(dies())
    assert await node.db.run(_pending_rows) > 0
    orphans = [p for p in (node.services.local_chunks.root / "chunks").rglob("*") if p.is_file()]
    node.age([p.name for p in orphans])

    async def collected() -> bool:
        await node.gc()
        return not any(p.exists() for p in orphans)

    deadline = trio.current_time() + 10 * GRACE
    while not await collected():
        assert trio.current_time() < deadline, "the dead upload's chunks were never collected"
        await trio.sleep(0.1)
    assert await node.db.run(_pending_rows) == 0


async def _pending_rows() -> int:
    from storage.models import PendingChunk

    return await PendingChunk.all().count()
