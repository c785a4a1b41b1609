"""The v1-pro and v2-objects dialects: API keys, cluster-wide rate windows and
import tasks (issue 19; migration 0013)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from storage.models.core import Account


class ApiKey(Model):
    """A ``csb_live_`` Bearer key of the v1-pro API (seed 002).

    Only the SHA-256 of the key is stored (the key holds 256 random bits, so a
    plain hash cannot be brute-forced); ``key_prefix`` and ``key_last4`` are
    what the owner sees to recognise it.  Revoking deletes the row."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="api_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128, default="")
    key_hash = fields.CharField(max_length=64, unique=True)
    key_prefix = fields.CharField(max_length=32)
    key_last4 = fields.CharField(max_length=4)
    scopes = fields.JSONField()
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


class RateWindow(Model):
    """Requests of one subject (an API key, an account) in one time slot,
    counted in the shared database so a limit holds for the whole cluster
    (see :mod:`storage.rate_windows`)."""

    id = fields.BigIntField(primary_key=True)
    subject = fields.CharField(max_length=64)
    slot = fields.BigIntField()
    count = fields.IntField(default=0)
    # Unix second after which the row counts for no window (pruned).
    expires = fields.BigIntField(db_index=True)

    class Meta:
        table = "rate_windows"
        unique_together = (("subject", "slot"),)


class ImportTask(Model):
    """An asynchronous import of the v1-pro API: a row any node's import
    worker may claim while its lease has run out (see :mod:`storage.imports`)."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="import_tasks", on_delete=fields.CASCADE
    )
    type = fields.CharField(max_length=8)  # file | video
    url = fields.TextField()
    bucket = fields.CharField(max_length=63)
    key = fields.TextField()
    # running | completed | failed | cancelled
    state = fields.CharField(max_length=16, default="running")
    bytes_done = fields.BigIntField(default=0)
    total_bytes = fields.BigIntField(null=True)
    error = fields.TextField(default="")
    attempts = fields.IntField(default=0)
    lease_owner = fields.CharField(max_length=64, default="")
    lease_until = fields.FloatField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "import_tasks"
        indexes = (("state", "lease_until"),)
