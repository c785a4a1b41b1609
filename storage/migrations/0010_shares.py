# ruff: noqa: E501  (written in makemigrations' form)
"""The tables of shares and the image-transform cache (issue 16): new tables,
so existing rows are untouched."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0009_events')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Share',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='shares', on_delete=OnDelete.CASCADE)),
                ('bucket_id', fields.BigIntField()),
                ('bucket', fields.CharField(max_length=63)),
                ('key', fields.TextField(unique=False)),
                ('version_id', fields.CharField(max_length=40)),
                ('etag', fields.CharField(max_length=80)),
                ('file_name', fields.CharField(max_length=255)),
                ('file_size', fields.BigIntField()),
                ('content_type', fields.TextField(default='', unique=False)),
                ('password_hash', fields.CharField(null=True, max_length=255)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('max_downloads', fields.BigIntField(null=True)),
                ('downloads', fields.BigIntField(default=0)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shares', 'app': 'models', 'indexes': [Index(fields=['account_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A public link /s/{code} to one object version.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ImageVariant',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('bucket_id', fields.BigIntField()),
                ('size', fields.BigIntField()),
                ('content_type', fields.CharField(max_length=32)),
                ('width', fields.IntField()),
                ('height', fields.IntField()),
                ('chunks', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.FloatField(db_index=True)),
            ],
            options={'table': 'image_variants', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A cached image-transform result, its bytes stored as chunks.'},
            bases=['Model'],
        ),
    ]
