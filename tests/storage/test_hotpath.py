"""The one-round-trip request loader agrees with the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from storage import errors
from storage.hotpath import load

pytestmark = pytest.mark.trio


async def _body(data: bytes):
    yield data


async def test_load_matches_services(core):
    creds = await core.accounts.create_access_key(core.account_id, "k")
    bucket = await core.buckets.create(core.account_id, "hot")
    small = await core.objects.put_object(
        bucket, "dir/small.txt", _body(b"hello"), content_type="text/plain",
        user_metadata={"color": "blue"}, headers={"cache-control": "no-cache"},
        checksums={"crc32": "AAAAAA=="},
    )
    big = await core.objects.put_object(bucket, "big.bin", _body(b"x" * 5000))

    got = await core.db.read(load, creds.access_key, "hot", "dir/small.txt", want_object=True)
    assert got.key is not None
    assert got.key.account == await core.accounts.get(core.account_id)
    assert core.accounts.open_secret(creds.access_key, got.key.sealed_secret) == creds.secret_key
    assert got.bucket == bucket and not got.bucket_missing
    assert got.obj == await core.objects.head_object(bucket, "dir/small.txt") == small

    got = await core.db.read(load, creds.access_key, "hot", "big.bin", want_object=True)
    assert got.obj == await core.objects.head_object(bucket, "big.bin")
    assert got.obj.chunks == big.chunks and got.obj.inline_data is None

    got = await core.db.read(load, creds.access_key, "hot", "big.bin", "0123abcd",
                            want_object=True)
    assert isinstance(got.obj, errors.NoSuchVersion)
    got = await core.db.read(load, creds.access_key, "hot", "big.bin", "null", want_object=True)
    assert got.obj == await core.objects.head_object(bucket, "big.bin", "null")
    got = await core.db.read(load, creds.access_key, "hot", "nope", want_object=True)
    assert isinstance(got.obj, errors.NoSuchKey)
    got = await core.db.read(load, creds.access_key, "hot", "big.bin")
    assert got.obj is None and got.bucket == bucket

    bucket = await core.buckets.set_versioning(bucket, "Enabled")
    await core.objects.delete_object(bucket, "big.bin")
    got = await core.db.read(load, creds.access_key, "hot", "big.bin", want_object=True)
    assert isinstance(got.obj, errors.NoSuchKey) and got.obj.details.get("delete_marker")

    got = await core.db.read(load, creds.access_key, "missing-bucket", "k", want_object=True)
    assert got.bucket is None and got.bucket_missing and got.obj is None
    got = await core.db.read(load, creds.access_key)
    assert got.bucket is None and not got.bucket_missing

    # Revocation is seen by the very next load.
    assert await core.accounts.delete_access_key(core.account_id, creds.access_key)
    got = await core.db.read(load, creds.access_key, "hot")
    assert got.key is None and got.bucket is not None


async def test_built_values_follow_every_change_of_their_rows(core):
    """The account and bucket values are reused only while their columns are
    the same: a suspension, a charge or a versioning change shows at once."""
    from storage.admin_queries import update_account

    creds = await core.accounts.create_access_key(core.account_id, "k")
    bucket = await core.buckets.create(core.account_id, "cached")
    first = await core.db.read(load, creds.access_key, "cached")
    again = await core.db.read(load, creds.access_key, "cached")
    assert again.key is first.key and again.bucket is first.bucket  # reused

    await update_account(core.db, core.account_id, status="suspended")
    got = await core.db.read(load, creds.access_key, "cached")
    assert got.key is not None and got.key.account.status == "suspended"
    await update_account(core.db, core.account_id, status="active")

    await core.objects.put_object(bucket, "k", _body(b"12345"))
    got = await core.db.read(load, creds.access_key, "cached")
    assert got.key is not None and got.key.account.used_bytes == 5
    assert got.key.account == await core.accounts.get(core.account_id)

    bucket = await core.buckets.set_versioning(bucket, "Enabled")
    got = await core.db.read(load, creds.access_key, "cached")
    assert got.bucket == bucket and got.bucket.versioning == "Enabled"


async def test_object_values_are_whole_dataclasses(core):
    """ObjectInfo is built without its __init__: every field is set, and it
    equals, compares and repr()s like one built the usual way."""
    import dataclasses

    from storage.objects import ObjectInfo

    creds = await core.accounts.create_access_key(core.account_id, "k")
    bucket = await core.buckets.create(core.account_id, "whole")
    await core.objects.put_object(bucket, "k", _body(b"hello"), user_metadata={"a": "b"})
    got = await core.db.read(load, creds.access_key, "whole", "k", want_object=True)
    assert isinstance(got.obj, ObjectInfo)
    usual = ObjectInfo(**{f.name: getattr(got.obj, f.name) for f in dataclasses.fields(ObjectInfo)})
    assert vars(got.obj) == vars(usual) and got.obj == usual and repr(got.obj) == repr(usual)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.obj.size = 1  # type: ignore[misc]
