"""PostgreSQL deadlocks abort one transaction; every write path retries it.

Each test makes a real deadlock: a second connection locks the chunk_refs
row the operation will release, waits until the operation's transaction
queues behind it, then asks for a row that transaction already holds.  With
its own deadlock_timeout raised, PostgreSQL aborts the operation's
transaction (SQLSTATE 40P01) -- which must be retried, not answered as an
error.
"""

from __future__ import annotations

import threading

import pytest
import trio

from storage.multipart import MultipartService
from tests.storage.test_objects import put, stream

pytestmark = [pytest.mark.trio, pytest.mark.postgres]


@pytest.fixture
def db_url(pg_url: str) -> str:
    """Deadlocks are PostgreSQL's: SQLite serializes writers."""
    return pg_url


async def _hold_then_close_cycle(
    url: str, first: tuple[str, list], second: tuple[str, list], locked: threading.Event
) -> None:
    """On a connection of its own: lock ``first``, wait until another backend
    queues behind it, then take ``second`` (held by that backend) and commit."""
    import asyncpg

    holder = await asyncpg.connect(url)
    watcher = await asyncpg.connect(url)
    try:
        tx = holder.transaction()
        await tx.start()
        # Make sure PostgreSQL picks the other transaction as the victim.
        await holder.execute("SET LOCAL deadlock_timeout = '20s'")
        await holder.execute(first[0], *first[1])
        locked.set()
        for _ in range(1000):  # up to ~10 s
            if await watcher.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                break
            await watcher.execute("SELECT pg_sleep(0.01)")
        else:
            raise AssertionError("the operation never waited for the held row")
        await holder.execute(second[0], *second[1])
        await tx.commit()
    finally:
        await holder.close()
        await watcher.close()


async def _deadlocked(core, url: str, chunk_id: str, second: tuple[str, list], operation):
    """Run ``operation()`` while another connection deadlocks with it."""
    locked = threading.Event()
    first = ("UPDATE chunk_refs SET refcount = refcount WHERE chunk_id = $1", [chunk_id])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(core.db.bridge.run, _hold_then_close_cycle, url, first, second,
                           locked)
        assert await trio.to_thread.run_sync(locked.wait, 10)
        return await operation()


@pytest.fixture
async def stored(core):
    bucket = await core.buckets.create(core.account_id, "deadlocks")
    info = await put(core, bucket, "k", b"x" * 10_000)
    (chunk_id, _size), = info.chunks
    return bucket, chunk_id


async def test_delete_object_retries_a_deadlock(core, db_url, stored):
    bucket, chunk_id = stored
    second = ('UPDATE object_versions SET tags = tags WHERE bucket_id = $1', [bucket.id])
    await _deadlocked(core, db_url, chunk_id, second,
                      lambda: core.objects.delete_object(bucket, "k"))
    assert [e.key for e in (await core.objects.list_objects(bucket)).entries] == []


async def test_delete_version_retries_a_deadlock(core, db_url, stored):
    bucket, chunk_id = stored
    bucket = await core.buckets.set_versioning(bucket, "Enabled")
    await put(core, bucket, "k", b"y" * 10_000)
    second = ('UPDATE object_versions SET tags = tags WHERE bucket_id = $1', [bucket.id])
    await _deadlocked(core, db_url, chunk_id, second,
                      lambda: core.objects.delete_object(bucket, "k", "null"))
    page = await core.objects.list_versions(bucket)
    assert [e.version_id for e in page.entries] != ["null"] and len(page.entries) == 1


async def test_abort_and_part_replacement_retry_a_deadlock(core, db_url, stored):
    bucket, chunk_id = stored
    multipart = MultipartService(core.db, core.objects, min_part_size=1024)
    upload = await multipart.create(bucket, "mp")
    await multipart.upload_part(bucket, upload.upload_id, 1, stream(b"x" * 10_000))
    lock_upload = ("UPDATE multipart_uploads SET \"key\" = \"key\" WHERE upload_id = $1",
                   [upload.upload_id])
    await _deadlocked(core, db_url, chunk_id, lock_upload,
                      lambda: multipart.upload_part(bucket, upload.upload_id, 1,
                                                    stream(b"z" * 10_000)))
    await multipart.upload_part(bucket, upload.upload_id, 2, stream(b"x" * 10_000))
    await _deadlocked(core, db_url, chunk_id, lock_upload,
                      lambda: multipart.abort(bucket, upload.upload_id))
    assert (await multipart.list_uploads(bucket)).uploads == []


async def test_delete_bucket_retries_a_deadlock(core, db_url, stored):
    bucket, chunk_id = stored
    await core.objects.delete_object(bucket, "k")
    multipart = MultipartService(core.db, core.objects, min_part_size=1024)
    upload = await multipart.create(bucket, "mp")
    await multipart.upload_part(bucket, upload.upload_id, 1, stream(b"x" * 10_000))
    second = ("UPDATE buckets SET versioning = versioning WHERE id = $1", [bucket.id])
    await _deadlocked(core, db_url, chunk_id, second, lambda: core.buckets.delete(bucket))
    assert await core.buckets.list_for(core.account_id) == []
