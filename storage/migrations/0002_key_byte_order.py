"""Object keys sort by their UTF-8 bytes, as S3 lists them.

SQLite's default BINARY collation already does that; PostgreSQL sorts by the
database locale unless the column says otherwise, which would reorder
listings (and break continuation tokens) on a non-C locale.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

_COLUMNS = (("object_versions", "key"), ("multipart_uploads", "key"))


async def _byte_order(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    for table, column in _COLUMNS:
        await client.execute_script(
            f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT COLLATE "C"'
        )


async def _locale_order(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    for table, column in _COLUMNS:
        await client.execute_script(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT')


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(_byte_order, _locale_order)]
