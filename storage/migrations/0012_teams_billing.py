# ruff: noqa: E501  (written in makemigrations' form)
"""The tables of teams, members, invites and billing (issue 18): new tables
only, so existing rows are untouched."""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0011_webhooks_versions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Team',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('name', fields.CharField(max_length=128)),
                ('created_by', fields.CharField(max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'teams', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A group of accounts sharing some of its members\' buckets.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TeamMember',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('models.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='members', on_delete=OnDelete.CASCADE)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_index=True, db_constraint=True, to_field='id', related_name='team_memberships', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'team_members', 'app': 'models', 'unique_together': (('team', 'account'),), 'pk_attr': 'id', 'table_description': "An account's role (admin, write, read) in a team."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TeamBucket',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('models.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='team_buckets', on_delete=OnDelete.CASCADE)),
                ('bucket', fields.ForeignKeyField('models.Bucket', source_field='bucket_id', db_index=True, db_constraint=True, to_field='id', related_name='teams', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'team_buckets', 'app': 'models', 'unique_together': (('team', 'bucket'),), 'pk_attr': 'id', 'table_description': 'A bucket its owner shared with a team (deleting the bucket unshares it).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TeamInvite',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('team', fields.ForeignKeyField('models.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='invites', on_delete=OnDelete.CASCADE)),
                ('email', fields.CharField(max_length=320)),
                ('role', fields.CharField(max_length=16)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('invited_by', fields.CharField(max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('accepted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('accepted_by', fields.CharField(null=True, max_length=40)),
            ],
            options={'table': 'team_invites', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A pending invitation: single use, expiring, bound to one email.  Only'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BillingCustomer',
            fields=[
                ('account', fields.OneToOneField('models.Account', source_field='account_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name='billing', on_delete=OnDelete.CASCADE)),
                ('customer_id', fields.CharField(unique=True, max_length=255)),
                ('subscription_id', fields.CharField(null=True, max_length=255)),
                ('plan', fields.CharField(default='free', max_length=32)),
                ('status', fields.CharField(default='', max_length=32)),
                ('current_period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('kept_plan', fields.CharField(default='', max_length=32)),
                ('kept_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'billing_customers', 'app': 'models', 'pk_attr': 'account_id', 'table_description': "An account's Stripe customer and the subscription state Stripe reported."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StripeEvent',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('type', fields.CharField(max_length=64)),
                ('processed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stripe_events', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A Stripe webhook event already applied: its id is inserted in the'},
            bases=['Model'],
        ),
    ]
