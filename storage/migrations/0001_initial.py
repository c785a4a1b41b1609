from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('email', fields.CharField(unique=True, max_length=320)),
                ('password_hash', fields.CharField(null=True, max_length=255)),
                ('plan', fields.CharField(default='free', max_length=32)),
                ('quota_bytes', fields.BigIntField()),
                ('used_bytes', fields.BigIntField(default=0)),
                ('object_count', fields.BigIntField(default=0)),
                ('is_admin', fields.BooleanField(default=False)),
                ('status', fields.CharField(default='active', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'accounts', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A tenant: owns buckets, keys, usage and a quota.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AccessKey',
            fields=[
                ('access_key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='access_keys', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(default='', max_length=128)),
                ('secret_enc', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'access_keys', 'app': 'models', 'pk_attr': 'access_key', 'table_description': 'An S3 key pair.  SigV4 needs the secret itself, so it is stored'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Bucket',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=63)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='buckets', on_delete=OnDelete.RESTRICT)),
                ('region', fields.CharField(default='', max_length=32)),
                ('versioning', fields.CharField(default='', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'buckets', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A bucket. Names are global across the cluster, as in S3.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChunkRef',
            fields=[
                ('chunk_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('size', fields.BigIntField()),
                ('refcount', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'chunk_refs', 'app': 'models', 'indexes': [Index(fields=['refcount', 'updated_at'])], 'pk_attr': 'chunk_id', 'table_description': 'How many committed versions and parts reference a chunk.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ClusterLayout',
            fields=[
                ('version', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('state', fields.CharField(max_length=16)),
                ('layout', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'cluster_layouts', 'app': 'models', 'pk_attr': 'version', 'table_description': 'One version of the partition -> nodes assignment (staged or applied).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MultipartUpload',
            fields=[
                ('upload_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('bucket', fields.ForeignKeyField('models.Bucket', source_field='bucket_id', db_constraint=True, to_field='id', related_name='uploads', on_delete=OnDelete.CASCADE)),
                ('key', fields.TextField(unique=False)),
                ('content_type', fields.CharField(default='', max_length=255)),
                ('user_metadata', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('headers', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('checksum_algorithm', fields.CharField(default='', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'multipart_uploads', 'app': 'models', 'pk_attr': 'upload_id', 'table_description': 'An S3 multipart upload in progress.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MultipartPart',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('upload', fields.ForeignKeyField('models.MultipartUpload', source_field='upload_id', db_constraint=True, to_field='upload_id', related_name='parts', on_delete=OnDelete.CASCADE)),
                ('part_number', fields.IntField()),
                ('size', fields.BigIntField()),
                ('etag', fields.CharField(max_length=80)),
                ('checksums', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('chunks', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'multipart_parts', 'app': 'models', 'unique_together': (('upload', 'part_number'),), 'pk_attr': 'id', 'table_description': 'One uploaded part. Re-uploading a part number replaces it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Node',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('zone', fields.CharField(max_length=64)),
                ('capacity', fields.BigIntField()),
                ('transport_addr', fields.CharField(max_length=255)),
                ('web_addr', fields.CharField(default='', max_length=255)),
                ('s3_addr', fields.CharField(default='', max_length=255)),
                ('sftp_addr', fields.CharField(default='', max_length=255)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_heartbeat', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'nodes', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A cluster member: registers itself at start and heartbeats.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ObjectVersion',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bucket', fields.ForeignKeyField('models.Bucket', source_field='bucket_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('key', fields.TextField(unique=False)),
                ('version_id', fields.CharField(max_length=40)),
                ('is_latest', fields.BooleanField(null=True)),
                ('is_delete_marker', fields.BooleanField(default=False)),
                ('size', fields.BigIntField(default=0)),
                ('etag', fields.CharField(default='', max_length=80)),
                ('content_type', fields.CharField(default='', max_length=255)),
                ('user_metadata', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('headers', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('checksums', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('chunks', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('inline_data', fields.BinaryField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'object_versions', 'app': 'models', 'unique_together': (('bucket', 'key', 'is_latest'), ('bucket', 'key', 'version_id')), 'pk_attr': 'id', 'table_description': 'One version of an object (or a delete marker).'},
            bases=['Model'],
        ),
    ]
