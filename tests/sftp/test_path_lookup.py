"""The SFTP path lookup agrees with the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from storage.path_lookup import LoopReader, PathInfo, lookup

pytestmark = pytest.mark.trio


async def _body(data: bytes):
    yield data


async def test_lookup_matches_services(core):
    bucket = await core.buckets.create(core.account_id, "paths")
    small = await core.objects.put_object(bucket, "dir/small.txt", _body(b"hello"),
                                          content_type="text/plain")
    await core.objects.put_object(bucket, "dir/sub/big.bin", _body(b"x" * 5000))
    # Keys sorting right next to the folder's prefix "dir/" are not in it.
    await core.objects.put_object(bucket, "dir0", _body(b"0"))
    await core.objects.put_object(bucket, "dip/a", _body(b"a"))

    async def find(key: str = "", folder: bool = False) -> PathInfo:
        return await core.db.read(lookup, "paths", key, want_folder=folder)

    got = await find("dir/small.txt", True)
    assert got.bucket == bucket and got.obj == small and not got.is_folder
    assert got.obj == await core.objects.head_object(bucket, "dir/small.txt")
    got = await find("dir/sub/big.bin")
    assert got.obj == await core.objects.head_object(bucket, "dir/sub/big.bin")
    assert got.obj.inline_data is None and got.obj.chunks
    for folder in ("dir", "dir/sub"):
        got = await find(folder, True)
        assert got.bucket == bucket and got.obj is None and got.is_folder, folder
    for nothing in ("di", "dir/sub/big", "dir/small.txt/x"):
        got = await find(nothing, True)
        assert got.bucket == bucket and got.obj is None and not got.is_folder, nothing
    got = await find("dir0", True)
    assert got.obj is not None and not got.is_folder
    assert not (await find("dir")).is_folder  # only looked for when asked
    assert await find() == PathInfo(bucket)
    assert await core.db.read(lookup, "no-such-bucket", "k", want_folder=True) == PathInfo(None)

    # A delete marker hides the key, and a folder of only deleted keys is gone.
    bucket = await core.buckets.set_versioning(bucket, "Enabled")
    await core.objects.delete_object(bucket, "dir/sub/big.bin")
    got = await find("dir/sub/big.bin", True)
    assert got.obj is None and not got.is_folder
    assert not (await find("dir/sub", True)).is_folder
    assert (await find("dir", True)).is_folder  # dir/small.txt is still there


async def test_loop_reader_answers_on_sqlite_only(core):
    bucket = await core.buckets.create(core.account_id, "loop")
    info = await core.objects.put_object(bucket, "k/v", _body(b"v"))
    reader = LoopReader(core.db)
    reader.open()
    try:
        # The reader runs nothing asynchronous, so any event loop may drive it
        # (the SFTP server drives it from asyncio).
        got = await reader.lookup("loop", "k", want_folder=True)
        if core.db.dialect == "sqlite":
            assert got == await core.db.read(lookup, "loop", "k", want_folder=True)
            assert got is not None and got.is_folder
            assert await reader.lookup("loop", "k/v") == PathInfo(bucket, info)
        else:
            assert got is None  # PostgreSQL: the caller goes through trio
    finally:
        reader.close()
    # Closed, it cannot tell either: callers fall back.
    assert await reader.lookup("loop", "k/v") is None
