# ruff: noqa: E501  (written in makemigrations' form)
"""The tables of API keys, rate windows and import tasks of the REST dialects
(issue 19): new tables only, so existing rows are untouched."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0012_teams_billing')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_index=True, db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(default='', max_length=128)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('key_prefix', fields.CharField(max_length=32)),
                ('key_last4', fields.CharField(max_length=4)),
                ('scopes', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_keys', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A csb_live_ Bearer key of the v1-pro API.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RateWindow',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject', fields.CharField(max_length=64)),
                ('slot', fields.BigIntField()),
                ('count', fields.IntField(default=0)),
                ('expires', fields.BigIntField(db_index=True)),
            ],
            options={'table': 'rate_windows', 'app': 'models', 'unique_together': (('subject', 'slot'),), 'pk_attr': 'id', 'table_description': 'Requests of one subject in one time slot, counted cluster-wide.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ImportTask',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_index=True, db_constraint=True, to_field='id', related_name='import_tasks', on_delete=OnDelete.CASCADE)),
                ('type', fields.CharField(max_length=8)),
                ('url', fields.TextField(unique=False)),
                ('bucket', fields.CharField(max_length=63)),
                ('key', fields.TextField(unique=False)),
                ('state', fields.CharField(default='running', max_length=16)),
                ('bytes_done', fields.BigIntField(default=0)),
                ('total_bytes', fields.BigIntField(null=True)),
                ('error', fields.TextField(default='', unique=False)),
                ('attempts', fields.IntField(default=0)),
                ('lease_owner', fields.CharField(default='', max_length=64)),
                ('lease_until', fields.FloatField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'import_tasks', 'app': 'models', 'indexes': [Index(fields=['state', 'lease_until'])], 'pk_attr': 'id', 'table_description': 'An asynchronous import of the v1-pro API.'},
            bases=['Model'],
        ),
    ]
