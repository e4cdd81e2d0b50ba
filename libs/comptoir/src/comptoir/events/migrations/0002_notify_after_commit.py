"""The relay is now woken after commit by publish_event: the insert trigger's NOTIFY
held PostgreSQL's notify lock through each writer's WAL flush."""

from django.db import migrations


DROP_NOTIFY_TRIGGER = """
DROP TRIGGER IF EXISTS comptoir_outbox_notify ON comptoir_events_outboxmessage;
DROP FUNCTION IF EXISTS comptoir_outbox_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("comptoir_events", "0001_initial")]

    operations = [migrations.RunSQL(DROP_NOTIFY_TRIGGER, migrations.RunSQL.noop)]
