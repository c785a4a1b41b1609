"""Webhooks and their deliveries, the outbox cursor, and Time Machine retention
(issue 17; migration 0011)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from storage.models.core import Account


class Webhook(Model):
    """An endpoint that receives an account's events (see storage/webhooks.py).

    The signing secret is needed in clear to compute HMACs, so it is stored
    sealed with the cluster key (bound to the webhook id), never hashed.
    """

    id = fields.CharField(primary_key=True, max_length=40)  # "wh_<random>"
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="webhooks", on_delete=fields.CASCADE
    )
    url = fields.TextField()
    events = fields.JSONField()  # ["object.created", ...]
    secret_enc = fields.TextField()
    active = fields.BooleanField(default=True)
    # Consecutive failed attempts; at webhooks.disable_after_failures the
    # webhook is disabled (reason in disabled_reason) until re-enabled.
    failures = fields.IntField(default=0)
    disabled_reason = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "webhooks"


class WebhookDelivery(Model):
    """One event to one webhook: the delivery queue and, once finished, the log.

    Unique per (webhook, event), so fanning an event out twice (two nodes,
    a retried pass) never sends it twice.  A node claims a row by setting
    ``lease_until``/``lease_owner`` with a conditional UPDATE; a node killed
    mid-delivery leaves a lease that simply expires.
    """

    id = fields.BigIntField(primary_key=True)
    webhook: fields.ForeignKeyRelation[Webhook] = fields.ForeignKeyField(
        "models.Webhook", related_name="deliveries", on_delete=fields.CASCADE
    )
    event_id = fields.BigIntField()
    event_type = fields.CharField(max_length=32)
    # pending | succeeded | failed (retries exhausted) | skipped (webhook off)
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_until = fields.DatetimeField(null=True)
    lease_owner = fields.CharField(max_length=64, default="")
    response_code = fields.IntField(null=True)
    duration_ms = fields.IntField(null=True)
    # A small prefix of the answer's body (or the error): never more.
    response_body = fields.TextField(default="")
    error = fields.TextField(default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "webhook_deliveries"
        unique_together = (("webhook", "event_id"),)
        indexes = (("status", "next_attempt_at"), ("webhook", "id"))


class OutboxCursor(Model):
    """How far a consumer of the events outbox has read (all ids <= event_id)."""

    name = fields.CharField(primary_key=True, max_length=32)
    event_id = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "outbox_cursors"


class VersionPolicy(Model):
    """An account's own Time Machine retention (else the [versions] defaults)."""

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="version_policy", on_delete=fields.CASCADE,
        primary_key=True,
    )
    max_versions = fields.IntField()
    max_age_days = fields.IntField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "version_policies"
