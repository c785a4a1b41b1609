# ruff: noqa: E501  (written in makemigrations' form)
"""The tables of the v2-drive dialect (issue 20): its keys, folder and file
ids (with custom metadata, pending uploads and trash state) and its search
index.  New tables only, so existing rows are untouched.

The text index is the database's own and is not a Tortoise model: an FTS5
virtual table ``drive_search`` on SQLite, a ``tsv`` tsvector column with a
GIN index on ``drive_search_docs`` on PostgreSQL (see storage/search.py)."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

_compact = functools.partial(dumps, separators=(',', ':'))


def _account(related: str) -> fields.ForeignKeyField:
    return fields.ForeignKeyField('models.Account', source_field='account_id', db_index=True, db_constraint=True, to_field='id', related_name=related, on_delete=OnDelete.CASCADE)


_SQLITE_FTS = ("CREATE VIRTUAL TABLE IF NOT EXISTS drive_search USING fts5("
               "name, content, tags, metadata, tokenize = 'unicode61 remove_diacritics 2')")
_PG_TSV = ("ALTER TABLE drive_search_docs ADD COLUMN IF NOT EXISTS tsv tsvector; "
           "CREATE INDEX IF NOT EXISTS drive_search_docs_tsv ON drive_search_docs USING GIN (tsv)")


async def _text_index(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect == 'postgres':
        await client.execute_script(_PG_TSV)
    else:
        await client.execute_script(_SQLITE_FTS)


async def _drop_text_index(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect != 'postgres':
        await schema_editor.client.execute_script('DROP TABLE IF EXISTS drive_search')


class Migration(migrations.Migration):
    dependencies = [('models', '0013_rest_dialects')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DriveKey',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', _account('drive_keys')),
                ('name', fields.CharField(default='', max_length=128)),
                ('kind', fields.CharField(max_length=4)),
                ('env', fields.CharField(max_length=8)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('key_prefix', fields.CharField(max_length=32)),
                ('key_last4', fields.CharField(max_length=4)),
                ('scopes', fields.JSONField(encoder=_compact, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'drive_keys', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A cs_live_sk_ / cs_test_sk_ / cs_live_pk_ key of v2-drive.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DriveFolder',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', _account('drive_folders')),
                ('bucket', fields.CharField(max_length=63)),
                ('path', fields.TextField(unique=False)),
                ('path_hash', fields.CharField(max_length=64)),
                ('color', fields.CharField(default='', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('trashed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'drive_folders', 'app': 'models', 'unique_together': (('bucket', 'path_hash'),), 'pk_attr': 'id', 'table_description': 'The id of a folder (key prefix) seen by v2-drive.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DriveFile',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', _account('drive_files')),
                ('bucket', fields.CharField(max_length=63)),
                ('key', fields.TextField(unique=False)),
                ('key_hash', fields.CharField(max_length=64)),
                ('status', fields.CharField(default='active', max_length=16)),
                ('mime_type', fields.TextField(default='', unique=False)),
                ('expected_size', fields.BigIntField(null=True)),
                ('checksum_sha256', fields.CharField(default='', max_length=64)),
                ('upload_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('metadata', fields.JSONField(default=dict, encoder=_compact, decoder=loads)),
                ('trash', fields.JSONField(null=True, encoder=_compact, decoder=loads)),
                ('trashed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('trashed_with', fields.CharField(default='', max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'drive_files', 'app': 'models', 'unique_together': (('bucket', 'key_hash'),), 'indexes': [Index(fields=['status', 'trashed_at'])], 'pk_attr': 'id', 'table_description': 'The id, custom metadata, pending upload and trash state of a file seen by v2-drive.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DriveSearchDoc',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('doc_key', fields.CharField(unique=True, max_length=64)),
                ('account_id', fields.CharField(max_length=40)),
                ('bucket', fields.CharField(max_length=63)),
                ('key', fields.TextField(unique=False)),
                ('kind', fields.CharField(max_length=8)),
                ('mime', fields.TextField(default='', unique=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'drive_search_docs', 'app': 'models', 'indexes': [Index(fields=['bucket', 'kind'])], 'pk_attr': 'id', 'table_description': 'A file or folder in the v2-drive search index.'},
            bases=['Model'],
        ),
        ops.RunPython(_text_index, _drop_text_index),
        ops.CreateModel(
            name='OAuthClient',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', _account('oauth_clients')),
                ('name', fields.CharField(max_length=128)),
                ('redirect_uris', fields.JSONField(encoder=_compact, decoder=loads)),
                ('scopes', fields.JSONField(encoder=_compact, decoder=loads)),
                ('secret_hash', fields.CharField(default='', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_clients', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A third-party app of v2-drive OAuth 2.0.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OAuthCode',
            fields=[
                ('code_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('client_id', fields.CharField(max_length=40)),
                ('account_id', fields.CharField(max_length=40)),
                ('redirect_uri', fields.TextField(unique=False)),
                ('scopes', fields.JSONField(encoder=_compact, decoder=loads)),
                ('challenge', fields.CharField(max_length=128)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_codes', 'app': 'models', 'pk_attr': 'code_hash', 'table_description': 'A single-use OAuth authorization code bound to its PKCE challenge.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OAuthToken',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('access_hash', fields.CharField(unique=True, max_length=64)),
                ('refresh_hash', fields.CharField(unique=True, max_length=64)),
                ('client_id', fields.CharField(db_index=True, max_length=40)),
                ('account_id', fields.CharField(max_length=40)),
                ('scopes', fields.JSONField(encoder=_compact, decoder=loads)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('refresh_expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('revoked', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_tokens', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An OAuth access token and its refresh token (hashes only).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DriveProfile',
            fields=[
                ('account', fields.OneToOneField('models.Account', source_field='account_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name='drive_profile', on_delete=OnDelete.CASCADE)),
                ('display_name', fields.CharField(max_length=128)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'drive_profiles', 'app': 'models', 'pk_attr': 'account_id', 'table_description': 'The v2-drive display name of a user.'},
            bases=['Model'],
        ),
    ]
