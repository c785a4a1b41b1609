# ruff: noqa: E501  (the shape makemigrations writes, filled in by hand)
"""Webhooks, their deliveries, the outbox cursor, Time Machine columns and policies (issue 17).

The two new ``object_versions`` columns are nullable, so adding them
rewrites no existing row on SQLite or PostgreSQL: NULL ``history_at`` is a
version S3 sees (every existing row), NULL ``version_number`` is numbered by
position when listed.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

_compact = functools.partial(dumps, separators=(',', ':'))


class Migration(migrations.Migration):
    dependencies = [('models', '0010_shares')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ObjectVersion',
            name='history_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ObjectVersion',
            name='version_number',
            field=fields.IntField(null=True),
        ),
        ops.CreateModel(
            name='Webhook',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='webhooks', on_delete=OnDelete.CASCADE)),
                ('url', fields.TextField(unique=False)),
                ('events', fields.JSONField(encoder=_compact, decoder=loads)),
                ('secret_enc', fields.TextField(unique=False)),
                ('active', fields.BooleanField(default=True)),
                ('failures', fields.IntField(default=0)),
                ('disabled_reason', fields.CharField(default='', max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhooks', 'app': 'models', 'pk_attr': 'id', 'table_description': "An endpoint that receives an account's events."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('webhook', fields.ForeignKeyField('models.Webhook', source_field='webhook_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('event_id', fields.BigIntField()),
                ('event_type', fields.CharField(max_length=32)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('lease_owner', fields.CharField(default='', max_length=64)),
                ('response_code', fields.IntField(null=True)),
                ('duration_ms', fields.IntField(null=True)),
                ('response_body', fields.TextField(default='', unique=False)),
                ('error', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_deliveries', 'app': 'models', 'unique_together': (('webhook', 'event_id'),), 'indexes': [Index(fields=['status', 'next_attempt_at']), Index(fields=['webhook_id', 'id'])], 'pk_attr': 'id', 'table_description': 'One event to one webhook: the delivery queue and the log.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxCursor',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('event_id', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox_cursors', 'app': 'models', 'pk_attr': 'name', 'table_description': 'How far a consumer of the events outbox has read.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VersionPolicy',
            fields=[
                ('account', fields.OneToOneField('models.Account', source_field='account_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name='version_policy', on_delete=OnDelete.CASCADE)),
                ('max_versions', fields.IntField()),
                ('max_age_days', fields.IntField()),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'version_policies', 'app': 'models', 'pk_attr': 'account_id', 'table_description': "An account's own Time Machine retention."},
            bases=['Model'],
        ),
    ]
