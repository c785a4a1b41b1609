"""Shares (public links) and the image-transform cache (issue 16; migration 0010)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from storage.models.core import Account


class Share(Model):
    """A public link ``/s/{code}`` to one object version (see storage/shares.py).

    The bucket is a plain id, not a foreign key: deleting the bucket leaves the
    share dead (410), never pointing at a new bucket of the same name.
    """

    id = fields.CharField(primary_key=True, max_length=40)  # "share_<random>"
    code = fields.CharField(max_length=32, unique=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="shares", on_delete=fields.CASCADE
    )
    bucket_id = fields.BigIntField()
    bucket = fields.CharField(max_length=63)
    key = fields.TextField()
    # The version shared: a later overwrite or delete ends the share.
    version_id = fields.CharField(max_length=40)
    etag = fields.CharField(max_length=80)
    file_name = fields.CharField(max_length=255)
    file_size = fields.BigIntField()
    content_type = fields.TextField(default="")
    password_hash = fields.CharField(max_length=255, null=True)
    expires_at = fields.DatetimeField(null=True)
    max_downloads = fields.BigIntField(null=True)
    downloads = fields.BigIntField(default=0)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "shares"
        indexes = (("account_id", "created_at"),)


class ImageVariant(Model):
    """A cached image-transform result, its bytes stored as chunks.

    ``id`` is the SHA-256 of the source's identity (bucket id, key, version
    and ETag) and the canonical parameters with the output format; each chunk
    listed holds one reference in ``chunk_refs`` until the row is evicted.
    """

    id = fields.CharField(primary_key=True, max_length=64)
    bucket_id = fields.BigIntField()
    size = fields.BigIntField()
    content_type = fields.CharField(max_length=32)
    width = fields.IntField()
    height = fields.IntField()
    chunks = fields.JSONField(default=list)
    created_at = fields.DatetimeField()
    # Unix time of the last hit (refreshed at most once a minute): eviction
    # drops the least recently used first.
    used_at = fields.FloatField(db_index=True)

    class Meta:
        table = "image_variants"
