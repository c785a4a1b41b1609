"""Teams, members, shared buckets, invites, and Stripe billing (issue 18;
migration 0012)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from storage.models.core import Account, Bucket


class Team(Model):
    """A group of accounts sharing some of its members' buckets."""

    id = fields.CharField(primary_key=True, max_length=40)  # "team_<random>"
    name = fields.CharField(max_length=128)
    created_by = fields.CharField(max_length=40)
    created_at = fields.DatetimeField()

    class Meta:
        table = "teams"


class TeamMember(Model):
    """An account's role (admin, write, read) in a team."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "models.Team", related_name="members", on_delete=fields.CASCADE
    )
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="team_memberships", on_delete=fields.CASCADE,
        db_index=True,  # role lookups go by (account, bucket)
    )
    role = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()

    class Meta:
        table = "team_members"
        unique_together = (("team", "account"),)


class TeamBucket(Model):
    """A bucket its owner shared with a team (deleting the bucket unshares it)."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "models.Team", related_name="team_buckets", on_delete=fields.CASCADE
    )
    bucket: fields.ForeignKeyRelation[Bucket] = fields.ForeignKeyField(
        "models.Bucket", related_name="teams", on_delete=fields.CASCADE, db_index=True
    )
    created_at = fields.DatetimeField()

    class Meta:
        table = "team_buckets"
        unique_together = (("team", "bucket"),)


class TeamInvite(Model):
    """A pending invitation: single use, expiring, bound to one email.  Only
    the SHA-256 of its token is stored."""

    id = fields.CharField(primary_key=True, max_length=40)  # "inv_<random>"
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "models.Team", related_name="invites", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=320)
    role = fields.CharField(max_length=16)
    token_hash = fields.CharField(max_length=64, unique=True)
    invited_by = fields.CharField(max_length=40)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField(null=True)
    accepted_by = fields.CharField(max_length=40, null=True)

    class Meta:
        table = "team_invites"


class BillingCustomer(Model):
    """An account's Stripe customer and the subscription state Stripe reported."""

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="billing", on_delete=fields.CASCADE, primary_key=True
    )
    customer_id = fields.CharField(max_length=255, unique=True)
    subscription_id = fields.CharField(max_length=255, null=True)
    plan = fields.CharField(max_length=32, default="free")
    status = fields.CharField(max_length=32, default="")
    current_period_end = fields.DatetimeField(null=True)
    # A downgrade keeps the plan already paid for until the period ends.
    kept_plan = fields.CharField(max_length=32, default="")
    kept_until = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "billing_customers"


class StripeEvent(Model):
    """A Stripe webhook event already applied: its id is inserted in the
    transaction that applies it, so a second delivery (or a second node)
    cannot apply it again."""

    id = fields.CharField(primary_key=True, max_length=255)
    type = fields.CharField(max_length=64)
    processed_at = fields.DatetimeField()

    class Meta:
        table = "stripe_events"
