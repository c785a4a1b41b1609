"""Time Machine in the storage core, on SQLite and PostgreSQL: history kept on
overwrite, invisible to S3, pruned by count and age, restored, released
exactly once, and never in the way of a write's quota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import errors, integrity, versions
from storage.versions import Retention

pytestmark = pytest.mark.trio


async def body(data: bytes):
    yield data


async def put(core, bucket, key, data: bytes):
    return await core.objects.put_object(bucket, key, body(data))


async def read(core, bucket, key) -> bytes:
    info = await core.objects.head_object(bucket, key)
    return await core.objects.get_bytes(info)


async def usage(core) -> tuple[int, int]:
    account = await core.accounts.get(core.account_id)
    return account.used_bytes, account.object_count


async def consistent(core) -> None:
    """Chunk references and usage agree with a recount from the rows."""
    found = await integrity.mismatches(core.db)
    assert not found.refcounts and not found.usage, found


@pytest.fixture
async def bucket(core):
    return await core.buckets.create(core.account_id, "files")


async def test_overwrites_keep_numbered_history_invisible_to_s3(core, bucket):
    big = b"c" * 10_000  # chunked, not inline: references are counted
    for data in (b"a" * 10, b"b" * 200, big):
        await put(core, bucket, "doc", data)
    found = await versions.key_versions(core.db, bucket, "doc")
    assert [(v.number, v.size, v.is_current) for v in found] == [
        (3, 10_000, True), (2, 200, False), (1, 10, False)]
    assert await read(core, bucket, "doc") == big
    # S3 sees one null version, and nothing of the history.
    page = await core.objects.list_versions(bucket)
    assert [(e.key, e.version_id, e.is_latest) for e in page.entries] == [("doc", "null", True)]
    assert await usage(core) == (10_210, 3)
    await consistent(core)


async def test_history_version_ids_are_not_s3_versions(core, bucket):
    await put(core, bucket, "k", b"one")
    await put(core, bucket, "k", b"two")
    old = (await versions.key_versions(core.db, bucket, "k"))[1]

    async def s3_id_of(row_id: int) -> str:
        from storage.models import ObjectVersion

        async def q() -> str:
            return (await ObjectVersion.get(id=row_id)).version_id

        return await core.db.run(q)

    hidden_id = await s3_id_of(old.row_id)
    assert hidden_id != "null"
    with pytest.raises(errors.NoSuchVersion):
        await core.objects.head_object(bucket, "k", hidden_id)
    # Deleting it by version id as S3 would finds nothing (and succeeds, as S3 does).
    result = await core.objects.delete_object(bucket, "k", version_id=hidden_id)
    assert not result.delete_marker
    assert len(await versions.key_versions(core.db, bucket, "k")) == 2


async def test_eleventh_version_prunes_the_first(core, bucket):
    for i in range(1, 12):
        await put(core, bucket, "k", bytes([i]) * i)
    found = await versions.key_versions(core.db, bucket, "k")
    assert [v.number for v in found] == list(range(11, 1, -1))
    assert [v.size for v in found] == list(range(11, 1, -1))
    assert await usage(core) == (sum(range(2, 12)), 10)
    await consistent(core)


async def test_restore_makes_a_new_current_version(core, bucket):
    await put(core, bucket, "k", b"first" * 1000)
    await put(core, bucket, "k", b"second")
    first = (await versions.key_versions(core.db, bucket, "k"))[-1]
    info = await core.objects.restore_version(bucket, "k", first.row_id)
    assert info.version_number == 3
    assert await read(core, bucket, "k") == b"first" * 1000
    found = await versions.key_versions(core.db, bucket, "k")
    assert [(v.number, v.is_current) for v in found] == [(3, True), (2, False), (1, False)]
    with pytest.raises(errors.NoSuchVersion):
        await core.objects.restore_version(bucket, "other", first.row_id)
    await consistent(core)


async def test_delete_bucket_drops_history_released_once(core, bucket):
    await put(core, bucket, "k", b"x" * 9000)
    await put(core, bucket, "k", b"y" * 9000)
    await put(core, bucket, "j", b"z" * 9000)
    await put(core, bucket, "j", b"w" * 9000)
    await core.objects.delete_object(bucket, "k")  # a delete takes the file's history along
    assert await versions.key_versions(core.db, bucket, "k") == []
    # Only "j" is left for S3: delete it, and the bucket goes with j's history.
    await core.objects.delete_object(bucket, "j")
    await core.buckets.delete(bucket)
    assert await usage(core) == (0, 0)
    await consistent(core)


async def test_bucket_with_only_history_is_empty_to_s3(core, bucket):
    bucket = await core.buckets.set_versioning(bucket, "Suspended")
    await put(core, bucket, "k", b"1" * 5000)
    await put(core, bucket, "k", b"2" * 5000)  # the null version replaced: history
    marker = await core.objects.delete_object(bucket, "k")  # a null delete marker
    assert marker.delete_marker
    # As `aws s3 rb --force` would: delete every version S3 lists, then the bucket.
    page = await core.objects.list_versions(bucket)
    assert [(e.version_id, e.is_delete_marker) for e in page.entries] == [("null", True)]
    await core.objects.delete_object(bucket, "k", version_id="null")
    assert len(await versions.key_versions(core.db, bucket, "k")) == 2
    await core.buckets.delete(bucket)  # not BucketNotEmpty: history is not S3 content
    assert await usage(core) == (0, 0)
    await consistent(core)


async def test_quota_makes_room_from_history(core, bucket):
    await _set_quota(core, 25_000)
    await put(core, bucket, "k", b"a" * 10_000)
    await put(core, bucket, "k", b"b" * 10_000)  # 20,000 with the history
    await put(core, bucket, "k", b"c" * 10_000)  # over with both: the oldest goes
    found = await versions.key_versions(core.db, bucket, "k")
    assert [v.number for v in found] == [3, 2]
    assert (await usage(core))[0] == 20_000
    with pytest.raises(errors.QuotaExceeded):  # live data alone does not fit
        await put(core, bucket, "other", b"d" * 30_000)
    await consistent(core)


async def _set_quota(core, quota: int) -> None:
    from storage.models import Account

    async def q() -> None:
        await Account.filter(id=core.account_id).update(quota_bytes=quota)

    await core.db.run(q)


async def test_account_policy_and_age_pruning(core, bucket):
    await versions.set_policy(core.db, core.account_id, Retention(2, 7))
    for data in (b"1", b"22", b"333"):
        await put(core, bucket, "k", data)
    assert [v.size for v in await versions.key_versions(core.db, bucket, "k")] == [3, 2]
    assert await versions.get_policy(core.db, core.account_id, Retention()) == Retention(2, 7)
    # Eight days later the history is past its age, the current version stays.
    later = datetime.now(UTC) + timedelta(days=8)
    removed = await core.db.write(versions.prune_aged_steps, later, Retention(), 100)
    assert removed == 1
    assert [v.size for v in await versions.key_versions(core.db, bucket, "k")] == [3]
    assert await usage(core) == (3, 1)
    with pytest.raises(errors.StorageError):
        await versions.set_policy(core.db, core.account_id, Retention(0, 7))
    await consistent(core)


async def test_versioning_enabled_versions_are_the_time_machine_versions(core, bucket):
    bucket = await core.buckets.set_versioning(bucket, "Enabled")
    ids = [(await put(core, bucket, "k", bytes([i]) * 10)).version_id for i in range(12)]
    found = await versions.key_versions(core.db, bucket, "k")
    # S3 keeps every version the client asked to keep: retention does not prune them.
    assert [v.number for v in found] == list(range(12, 0, -1))
    page = await core.objects.list_versions(bucket)
    assert [e.version_id for e in page.entries] == ids[::-1]
    await consistent(core)
