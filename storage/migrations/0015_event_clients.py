"""The client of the request behind each event (issue 20: the v2-drive audit
log's ``ip_address`` and ``user_agent``).  Nullable columns: adding them
rewrites no existing row, and events from before have no client recorded."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0014_v2drive')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Event',
            name='ip_address',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Event',
            name='user_agent',
            field=fields.CharField(null=True, max_length=512),
        ),
    ]
