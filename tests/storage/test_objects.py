"""The object service on SQLite and PostgreSQL over a real local chunk store."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc

import pytest
import trio

from storage import errors
from storage.blobs import ChunkCorrupt
from storage.objects import ObjectService, WriteCondition
from storage.versions import Retention

pytestmark = pytest.mark.trio

MiB = 1024 * 1024


async def stream(data: bytes, piece: int = 64 * 1024):
    """Yield ``data`` in pieces, as a network body would arrive."""
    for i in range(0, len(data), piece):
        yield data[i : i + piece]
        await trio.lowlevel.checkpoint()


async def put(core, bucket, key, data: bytes, **kw):
    return await core.objects.put_object(bucket, key, stream(data), **kw)


async def read(core, bucket, key, start=0, stop=None, version_id=None) -> bytes:
    info = await core.objects.head_object(bucket, key, version_id)
    return b"".join([p async for p in core.objects.read_object(info, start, stop)])


@pytest.fixture
async def bucket(core):
    return await core.buckets.create(core.account_id, "photos")


@pytest.mark.parametrize(
    "size",
    [0, 1, 3 * 1024, 4 * MiB, 4 * MiB + 1,
     pytest.param(100 * MiB, marks=pytest.mark.slow)],
    ids=["empty", "1B", "3KiB", "4MiB", "4MiB+1", "100MiB"],
)
async def test_round_trip_sizes(core, bucket, size):
    data = os.urandom(size)
    info = await put(core, bucket, "obj.bin", data, content_type="application/x-test",
                     user_metadata={"color": "blue"})
    assert info.size == size
    assert info.etag == hashlib.md5(data).hexdigest()
    head = await core.objects.head_object(bucket, "obj.bin")
    assert (head.etag, head.size, head.content_type) == (info.etag, size, "application/x-test")
    assert head.user_metadata == {"color": "blue"}
    assert await read(core, bucket, "obj.bin") == data
    # Tiny objects live inline in metadata, the rest in 4 MiB chunks.
    if size <= 3 * 1024:
        assert head.inline_data is not None and head.chunks == ()
    else:
        assert [s for _, s in head.chunks] == [4 * MiB] * (size // (4 * MiB)) + (
            [size % (4 * MiB)] if size % (4 * MiB) else []
        )


async def test_byte_ranges_across_chunk_edges(core, bucket):
    objects = ObjectService(core.db, core.chunks, chunk_size=64 * 1024)
    data = os.urandom(64 * 1024 * 3 + 100)
    await objects.put_object(bucket, "r", stream(data, 10_000))
    info = await objects.head_object(bucket, "r")
    assert len(info.chunks) == 4
    edge = 64 * 1024
    for start, stop in [(0, 1), (edge - 1, edge + 1), (edge - 10, 2 * edge + 10), (0, len(data)),
                        (3 * edge, len(data)), (len(data) - 1, len(data)), (5, 5)]:
        got = b"".join([p async for p in objects.read_object(info, start, stop)])
        assert got == data[start:stop], (start, stop)
    with pytest.raises(errors.InvalidRange):
        [p async for p in objects.read_object(info, len(data) + 1, None)]


async def test_overwrite_replaces_and_frees_usage(core, bucket):
    await put(core, bucket, "k", b"a" * 5000)
    await put(core, bucket, "k", b"b" * 7000)
    assert await read(core, bucket, "k") == b"b" * 7000
    account = await core.accounts.get(core.account_id)
    # Time Machine keeps the replaced version, charged as S3 charges a
    # noncurrent version; keeping one version (the current) frees it all.
    assert (account.used_bytes, account.object_count) == (12000, 2)
    core.objects.retention = Retention(max_versions=1)
    await put(core, bucket, "k", b"c" * 3000)
    account = await core.accounts.get(core.account_id)
    assert (account.used_bytes, account.object_count) == (3000, 1)


async def test_list_prefix_delimiter_and_pagination(core, bucket):
    keys = ["a.txt", "docs/x/1", "docs/x/2", "docs/y", "docs/z/", "music/a", "n\u00e9", "n\u00ff",
            "z"]
    for k in keys:
        await put(core, bucket, k, b"x")
    page = await core.objects.list_objects(bucket)
    # UTF-8 byte order: "né" (C3 A9) sorts before "nÿ" (C3 BF).
    assert [e.key for e in page.entries] == sorted(keys, key=lambda k: k.encode())
    assert not page.is_truncated

    page = await core.objects.list_objects(bucket, delimiter="/")
    assert [e.key for e in page.entries] == ["a.txt", "n\u00e9", "n\u00ff", "z"]
    assert page.common_prefixes == ["docs/", "music/"]

    page = await core.objects.list_objects(bucket, prefix="docs/", delimiter="/")
    assert [e.key for e in page.entries] == ["docs/y"]
    assert page.common_prefixes == ["docs/x/", "docs/z/"]

    # Page through everything two at a time: no duplicates, nothing lost.
    seen: list[str] = []
    marker = ""
    while True:
        page = await core.objects.list_objects(bucket, delimiter="/", marker=marker, max_keys=2)
        seen += [e.key for e in page.entries] + page.common_prefixes
        if not page.is_truncated:
            break
        assert page.next_marker
        marker = page.next_marker
    assert sorted(seen) == sorted(["a.txt", "docs/", "music/", "n\u00e9", "n\u00ff", "z"])
    assert len(seen) == len(set(seen))

    page = await core.objects.list_objects(bucket, prefix="docs/", max_keys=2)
    assert [e.key for e in page.entries] == ["docs/x/1", "docs/x/2"]
    assert page.is_truncated and page.next_marker == "docs/x/2"
    page = await core.objects.list_objects(bucket, prefix="docs/", marker="docs/x/2")
    assert [e.key for e in page.entries] == ["docs/y", "docs/z/"]
    assert not page.is_truncated

    exact = await core.objects.list_objects(bucket, max_keys=len(keys))
    assert not exact.is_truncated and len(exact.entries) == len(keys)


async def test_copy_shares_chunks_and_replaces_metadata(core, bucket):
    other = await core.buckets.create(core.account_id, "backup")
    data = os.urandom(5 * MiB)
    src = await put(core, bucket, "src", data, user_metadata={"a": "1"})
    copied = await core.objects.copy_object(bucket, "src", other, "dst")
    assert copied.etag == src.etag and copied.user_metadata == {"a": "1"}
    assert copied.chunks == src.chunks
    assert await read(core, other, "dst") == data
    replaced = await core.objects.copy_object(
        bucket, "src", bucket, "src", user_metadata={"b": "2"}, content_type="text/plain"
    )
    assert replaced.user_metadata == {"b": "2"} and replaced.content_type == "text/plain"
    assert await read(core, bucket, "src") == data


async def test_delete(core, bucket):
    await put(core, bucket, "gone", b"bye")
    result = await core.objects.delete_object(bucket, "gone")
    assert result.delete_marker is False
    with pytest.raises(errors.NoSuchKey):
        await core.objects.head_object(bucket, "gone")
    # Deleting what is not there succeeds, as in S3.
    await core.objects.delete_object(bucket, "never-was")
    assert (await core.objects.list_objects(bucket)).entries == []
    account = await core.accounts.get(core.account_id)
    assert (account.used_bytes, account.object_count) == (0, 0)
    with pytest.raises(errors.BucketNotEmpty):
        await put(core, bucket, "keep", b"1")
        await core.buckets.delete(bucket)


async def test_versioned_bucket_keeps_versions_and_markers(core, bucket):
    bucket = await core.buckets.set_versioning(bucket, "Enabled")
    v1 = await put(core, bucket, "doc", b"one")
    v2 = await put(core, bucket, "doc", b"two")
    assert v1.version_id != v2.version_id
    assert await read(core, bucket, "doc") == b"two"
    assert await read(core, bucket, "doc", version_id=v1.version_id) == b"one"
    marker = await core.objects.delete_object(bucket, "doc")
    assert marker.delete_marker
    with pytest.raises(errors.NoSuchKey):
        await core.objects.head_object(bucket, "doc")
    assert (await core.objects.list_objects(bucket)).entries == []
    # Removing the marker brings the newest version back.
    await core.objects.delete_object(bucket, "doc", version_id=marker.version_id)
    assert await read(core, bucket, "doc") == b"two"
    account = await core.accounts.get(core.account_id)
    assert account.used_bytes == 6  # every stored version counts


async def test_cancelled_upload_leaves_nothing_visible(core, bucket):
    data = os.urandom(9 * MiB)

    async def body_then_hang():
        yield data[: 5 * MiB]
        yield data[5 * MiB :]
        await trio.sleep_forever()

    with trio.move_on_after(5) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(core.objects.put_object, bucket, "partial", body_then_hang())
            # Wait until the first chunks reached the store, then pull the plug.
            with trio.fail_after(10):
                while not list(core.chunks.iter_chunk_ids()):
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    with pytest.raises(errors.NoSuchKey):
        await core.objects.head_object(bucket, "partial")
    # The chunk that was written is unreferenced: collectable.
    written = list(core.chunks.iter_chunk_ids())
    assert written
    from storage.models import ChunkRef

    async def refs():
        return await ChunkRef.filter(chunk_id__in=written, refcount__gt=0).count()

    assert await core.db.run(refs) == 0


async def test_failing_body_leaves_nothing_visible(core, bucket):
    async def broken():
        yield os.urandom(5 * MiB)
        raise errors.BadDigest()

    with pytest.raises(errors.BadDigest):
        await core.objects.put_object(bucket, "bad", broken())
    with pytest.raises(errors.NoSuchKey):
        await core.objects.head_object(bucket, "bad")


async def test_md5_and_size_checks(core, bucket):
    with pytest.raises(errors.BadDigest):
        await put(core, bucket, "m", b"hello", content_md5=hashlib.md5(b"other").digest())
    with pytest.raises(errors.IncompleteBody):
        await put(core, bucket, "m", b"hello", expected_size=10)
    ok = await put(core, bucket, "m", b"hello", content_md5=hashlib.md5(b"hello").digest())
    assert ok.size == 5


async def test_corrupt_chunk_is_detected_not_served(core, bucket):
    data = os.urandom(4 * MiB + 10)
    info = await put(core, bucket, "c", data)
    path = core.chunks.path_of(info.chunks[0][0])
    raw = bytearray(path.read_bytes())
    raw[1234] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ChunkCorrupt):
        await read(core, bucket, "c")
    assert not path.exists()  # moved aside, never served again


async def test_quota_refuses_without_visible_change(core, bucket):
    small = await core.accounts.create_account("small@example.com", quota_bytes=10_000)
    b = await core.buckets.create(small.id, "tiny-quota")
    await put(core, b, "a", b"x" * 6000)
    with pytest.raises(errors.QuotaExceeded):
        await put(core, b, "b", b"x" * 6000)
    with pytest.raises(errors.NoSuchKey):
        await core.objects.head_object(b, "b")
    assert (await core.accounts.get(small.id)).used_bytes == 6000


async def test_concurrent_writers_leave_one_latest(core, bucket):
    bodies = {i: bytes([i]) * (1000 + i) for i in range(8)}
    async with trio.open_nursery() as nursery:
        for body in bodies.values():
            nursery.start_soon(put, core, bucket, "race", body)
    final = await read(core, bucket, "race")
    assert final in bodies.values()
    page = await core.objects.list_objects(bucket)
    assert [e.key for e in page.entries] == ["race"]
    account = await core.accounts.get(core.account_id)
    # Every replaced version is kept as Time Machine history (8 < 10), charged.
    assert (account.used_bytes, account.object_count) == (
        sum(len(b) for b in bodies.values()), len(bodies))


@pytest.mark.parametrize("versioning", ["", "Enabled"])
async def test_racing_conditional_creates_leave_exactly_one(core, bucket, versioning):
    if versioning:
        bucket = await core.buckets.set_versioning(bucket, versioning)
    # No pre-check here: every writer reaches the commit, which alone decides.
    create_only = WriteCondition(if_none_match=True)
    won: list[bytes] = []

    async def create(body: bytes) -> None:
        try:
            await put(core, bucket, "once", body, condition=create_only)
        except errors.PreconditionFailed:
            return
        won.append(body)

    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(create, bytes([i]) * 100)
    assert len(won) == 1
    assert await read(core, bucket, "once") == won[0]
    account = await core.accounts.get(core.account_id)
    assert (account.used_bytes, account.object_count) == (100, 1)


async def test_if_match_commits_only_over_the_expected_etag(core, bucket):
    first = await put(core, bucket, "k", b"one")
    with pytest.raises(errors.PreconditionFailed):
        await put(core, bucket, "k", b"two", condition=WriteCondition(frozenset({"beef"})))
    await put(core, bucket, "k", b"two", condition=WriteCondition(frozenset({first.etag})))
    assert await read(core, bucket, "k") == b"two"
    with pytest.raises(errors.NoSuchKey):
        await put(core, bucket, "gone", b"x", condition=WriteCondition(frozenset({"*"})))


async def test_upload_memory_is_bounded_by_chunks_not_size(core, bucket):
    chunk = 256 * 1024
    objects = ObjectService(core.db, core.chunks, chunk_size=chunk)
    rng = random.Random(7)
    piece = rng.randbytes(64 * 1024)

    async def body():
        for _ in range(64 * MiB // len(piece)):
            yield piece
            await trio.lowlevel.checkpoint()

    tracemalloc.start()
    try:
        info = await objects.put_object(bucket, "big", body())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 64 * MiB
    # A 64 MiB upload may hold a handful of 256 KiB chunks, never the object.
    assert peak < 12 * chunk, peak


async def test_multipart_records_part_sizes_and_tags(core, bucket):
    from storage.multipart import MultipartService

    multipart = MultipartService(core.db, core.objects, min_part_size=1024)
    up = await multipart.create(bucket, "mp", tags={"team": "blue"})
    sizes = {1: 2048, 2: 3000, 4: 10}
    for number, size in sizes.items():
        await multipart.upload_part(bucket, up.upload_id, number, stream(b"p" * size))
    plan = await multipart.plan_completion(
        bucket, up.upload_id,
        [(n, hashlib.md5(b"p" * s).hexdigest()) for n, s in sizes.items()],
    )
    info = await multipart.complete(bucket, plan)
    assert info.part_sizes == (2048, 3000, 10) and info.tags == {"team": "blue"}
    head = await core.objects.head_object(bucket, "mp")
    assert head == info

    copied = await core.objects.copy_object(bucket, "mp", bucket, "copy")
    assert copied.part_sizes == head.part_sizes and copied.tags == {"team": "blue"}
    retagged = await core.objects.copy_object(bucket, "mp", bucket, "retag", tags={})
    assert retagged.tags == {}
    single = await put(core, bucket, "single", b"abc", tags={"a": "1", "b": ""})
    assert single.part_sizes == () and single.tags == {"a": "1", "b": ""}


async def test_object_and_bucket_tags(core, bucket):
    bucket = await core.buckets.set_versioning(bucket, "Enabled")
    first = await put(core, bucket, "t", b"one", tags={"k": "v"})
    second = await put(core, bucket, "t", b"two")
    await core.objects.set_tags(bucket, "t", first.version_id, {"x": "1", "y": "2"})
    assert (await core.objects.head_object(bucket, "t", first.version_id)).tags == {
        "x": "1", "y": "2"}
    latest = await core.objects.head_object(bucket, "t")
    assert latest.tags == {} and latest.version_id == second.version_id
    assert latest.etag == second.etag and latest.last_modified == second.last_modified
    marker = await core.objects.delete_object(bucket, "t")
    with pytest.raises(errors.NoSuchVersion):
        await core.objects.set_tags(bucket, "t", marker.version_id, {"a": "b"})
    with pytest.raises(errors.NoSuchVersion):
        await core.objects.set_tags(bucket, "t", "nope", {"a": "b"})

    assert await core.buckets.get_tags(bucket) == {}
    await core.buckets.set_tags(bucket, {"env": "prod"})
    assert await core.buckets.get_tags(bucket) == {"env": "prod"}
    await core.buckets.set_tags(bucket, None)
    assert await core.buckets.get_tags(bucket) == {}
    assert await core.buckets.get_cors(bucket) is None
    rules = [{"origins": ["https://a.example"], "methods": ["GET"], "max_age": 60}]
    await core.buckets.set_cors(bucket, rules)
    assert await core.buckets.get_cors(bucket) == rules
    await core.buckets.set_cors(bucket, None)
    assert await core.buckets.get_cors(bucket) is None
