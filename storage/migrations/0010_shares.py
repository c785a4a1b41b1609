"""The tables of shares and image-transform cache (issue 16)."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0009_events')]

    initial = False

    operations: list = []
