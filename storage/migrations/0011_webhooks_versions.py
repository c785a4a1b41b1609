"""The tables of webhooks, deliveries and Time Machine versions (issue 17)."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0010_shares')]

    initial = False

    operations: list = []
