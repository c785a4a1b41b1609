"""Column widths: values that real requests produce fit their columns, on
SQLite and PostgreSQL, including a database migrated from before 0006."""

from __future__ import annotations

from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.migrations.api import migrate as tortoise_migrate

from storage.db import Database, tortoise_config
from storage.models import Bucket
from storage.multipart import MultipartService
from tests.storage.test_objects import put

pytestmark = pytest.mark.trio

# Longer than the 255 characters the column used to allow; S3 bounds a
# Content-Type only by the request head's size.
LONG_TYPE = "application/x-test; " + "; ".join(f"p{i}=v{i}" for i in range(120))


async def test_full_object_checksum_type_fits(core):
    bucket = await core.buckets.create(core.account_id, "widths")
    multipart = MultipartService(core.db, core.objects)
    for alg in ("crc32", "crc32c", "crc64nvme"):
        upload = await multipart.create(bucket, f"k-{alg}", checksum_algorithm=alg.upper(),
                                        checksum_type="FULL_OBJECT")
        again = await multipart.get_upload(bucket, upload.upload_id)
        assert (again.checksum_algorithm, again.checksum_type) == (alg, "FULL_OBJECT")


async def test_long_content_type_fits(core):
    assert len(LONG_TYPE) > 1000
    bucket = await core.buckets.create(core.account_id, "widths")
    await put(core, bucket, "small", b"tiny", content_type=LONG_TYPE)
    assert (await core.objects.head_object(bucket, "small")).content_type == LONG_TYPE
    upload = await MultipartService(core.db, core.objects).create(
        bucket, "big", content_type=LONG_TYPE)
    assert upload.content_type == LONG_TYPE


async def _migrate_to(url: str, target: str) -> None:
    await tortoise_migrate(config=tortoise_config(url), target=target)
    await Tortoise.close_connections()


async def test_upgrade_from_0005_keeps_rows(db_url: str, tmp_path: Path) -> None:
    """A database at 0005 with an open upload migrates to 0006 with it intact."""
    from storage.accounts import AccountService
    from storage.bridge import AsyncioBridge
    from storage.buckets import BucketService
    from storage.chunkstore import LocalChunkStore
    from storage.crypto import SecretBox
    from storage.objects import ObjectService

    bridge = AsyncioBridge()
    bridge.start()
    try:
        await bridge.publish_context(_migrate_to, db_url, "models.0005_version_upload_id")
        for migrate in (False, True):
            db = Database(db_url, bridge)
            await db.open(migrate=migrate)
            objects = ObjectService(db, LocalChunkStore(tmp_path / "chunks"))
            multipart = MultipartService(db, objects)
            buckets = BucketService(db)
            try:
                if not migrate:  # still at 0005: what an older node wrote
                    accounts = AccountService(db, SecretBox(b"test-cluster-secret-0123456789"),
                                              default_quota=10**9)
                    account = await accounts.create_account("old@example.com")
                    # As a 0005 node made it: through the ORM (today's
                    # BucketService also records an event, a later table).
                    await db.run(Bucket.create, name="before", account_id=account.id)
                    bucket = await buckets.get("before")
                    old = await multipart.create(bucket, "k", checksum_algorithm="CRC32",
                                                 checksum_type="COMPOSITE")
                    continue
                bucket = await buckets.get("before")
                kept = await multipart.get_upload(bucket, old.upload_id)
                assert (kept.checksum_algorithm, kept.checksum_type) == ("crc32", "COMPOSITE")
                new = await multipart.create(bucket, "k2", checksum_algorithm="CRC32",
                                             checksum_type="FULL_OBJECT", content_type=LONG_TYPE)
                assert new.checksum_type == "FULL_OBJECT"
            finally:
                await db.close()
    finally:
        bridge.stop()


async def test_account_plan_longer_than_its_column_is_refused(core):
    # ValueError is the admin API's 400 InvalidArgument (it was a 500).
    with pytest.raises(ValueError, match="plan"):
        await core.accounts.create_account("p@example.com", plan="p" * 33)
    account = await core.accounts.create_account("q@example.com", plan="p" * 32)
    assert account.plan == "p" * 32


@pytest.mark.parametrize(("toml", "needle"), [
    ('[node]\nzone = "' + "z" * 65 + '"\n', "node.zone"),
    ('[cluster]\nregion = "' + "r" * 33 + '"\n', "cluster.region"),
    ('[cluster]\nregion = ""\n', "cluster.region"),
])
async def test_config_refuses_zone_and_region_wider_than_their_columns(tmp_path, toml, needle):
    from config.settings import ConfigError, load_settings

    f = tmp_path / "n.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match=needle):
        load_settings(f, env={"CLOUDSTORAGE_CLUSTER_SECRET": "0123456789abcdef"})
