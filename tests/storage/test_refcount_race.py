"""Concurrent deletes release each version's chunk references and usage once.

Chunks are deduplicated across accounts, so a reference released twice by
one account's racing deletes is another account's data lost to GC.
"""

from __future__ import annotations

import contextlib
import os

import pytest
import trio

from storage import errors
from storage.integrity import mismatches, recount
from storage.multipart import MultipartService
from storage.objects import ObjectService
from tests.storage.test_objects import stream

pytestmark = pytest.mark.trio

MiB = 1024 * 1024
ROUNDS = 100
DELETERS = 8


@pytest.fixture
async def shared(core):
    """Accounts A and B each hold the same 5 MiB (so they share its chunks)."""
    objects = ObjectService(core.db, core.chunks, chunk_size=512 * 1024)
    other = await core.accounts.create_account("b@example.com")
    bucket_a = await core.buckets.create(core.account_id, "tenant-a")
    bucket_b = await core.buckets.create(other.id, "tenant-b")
    data = os.urandom(5 * MiB)
    info = await objects.put_object(bucket_a, "mine", stream(data, 256 * 1024))
    assert len(info.chunks) == 10
    return objects, bucket_a, bucket_b, data, info


async def _race(n: int, fn, *args) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(fn, *args)


async def _assert_a_intact(core, objects, bucket_a, data, info) -> None:
    truth = await recount(core.db)
    assert {truth.refcounts[c] for c, _ in info.chunks} == {1}
    assert not await mismatches(core.db)
    head = await objects.head_object(bucket_a, "mine")
    assert await objects.get_bytes(head) == data


async def test_concurrent_unversioned_deletes_release_once(core, shared):
    objects, bucket_a, bucket_b, data, info = shared
    for _ in range(ROUNDS):
        await objects.put_object(bucket_b, "copy", stream(data, 1 * MiB))
        await _race(DELETERS, objects.delete_object, bucket_b, "copy")
        refs, _usage = await core.db.run(_refcounts_of, [c for c, _ in info.chunks])
        assert set(refs) == {1}, refs
    await _assert_a_intact(core, objects, bucket_a, data, info)


async def test_concurrent_version_deletes_release_once(core, shared):
    objects, bucket_a, bucket_b, data, info = shared
    bucket_b = await core.buckets.set_versioning(bucket_b, "Enabled")
    for _ in range(ROUNDS // 4):
        older = await objects.put_object(bucket_b, "copy", stream(data, 1 * MiB))
        latest = await objects.put_object(bucket_b, "copy", stream(data, 1 * MiB))
        # Both versions of B, each deleted by several racing clients at once.
        async with trio.open_nursery() as nursery:
            for version in (older, latest):
                for _ in range(DELETERS // 2):
                    nursery.start_soon(objects.delete_object, bucket_b, "copy",
                                       version.version_id)
        refs, _usage = await core.db.run(_refcounts_of, [c for c, _ in info.chunks])
        assert set(refs) == {1}, refs
    await _assert_a_intact(core, objects, bucket_a, data, info)


async def _quietly(fn, *args) -> None:
    """Run ``fn``; the losers of a race get a clean storage error, fine here."""
    with contextlib.suppress(errors.StorageError):
        await fn(*args)


async def test_concurrent_multipart_races_release_once(core, shared):
    objects, bucket_a, bucket_b, data, info = shared
    multipart = MultipartService(core.db, objects, min_part_size=1024)
    for _ in range(ROUNDS // 10):
        # Racing aborts of one upload.
        upload = await multipart.create(bucket_b, "mp")
        await multipart.upload_part(bucket_b, upload.upload_id, 1, stream(data, 1 * MiB))
        await _race(DELETERS, _quietly, multipart.abort, bucket_b, upload.upload_id)
        # Racing re-uploads of one part number, then completions racing aborts.
        upload = await multipart.create(bucket_b, "mp")

        async def part_one(upload_id: str) -> None:
            await multipart.upload_part(bucket_b, upload_id, 1, stream(data, 1 * MiB))

        await _race(DELETERS // 2, _quietly, part_one, upload.upload_id)
        (part,) = (await multipart.list_parts(bucket_b, upload.upload_id))[1].parts
        plan = await multipart.plan_completion(bucket_b, upload.upload_id, [(1, part.etag)])
        async with trio.open_nursery() as nursery:
            for _ in range(DELETERS // 2):
                nursery.start_soon(_quietly, multipart.complete, bucket_b, plan)
                nursery.start_soon(_quietly, multipart.abort, bucket_b, upload.upload_id)
        await _race(DELETERS, objects.delete_object, bucket_b, "mp")
        refs, _usage = await core.db.run(_refcounts_of, [c for c, _ in info.chunks])
        assert set(refs) == {1}, refs
    await _assert_a_intact(core, objects, bucket_a, data, info)


async def _refcounts_of(ids: list[str]) -> tuple[list[int], None]:
    from storage.models import ChunkRef

    rows = await ChunkRef.filter(chunk_id__in=ids).values_list("refcount", flat=True)
    return list(rows), None
