"""Outbox and inbox tables, and the trigger that wakes the relay at commit."""

import django.db.models.functions.datetime
from django.db import migrations, models

# One NOTIFY per inserting statement; PostgreSQL delivers it at commit, folds
# duplicates within a transaction, and drops it on rollback.
NOTIFY_TRIGGER = """
CREATE FUNCTION comptoir_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('comptoir_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER comptoir_outbox_notify AFTER INSERT ON comptoir_events_outboxmessage
    FOR EACH STATEMENT EXECUTE FUNCTION comptoir_outbox_notify();
"""
DROP_NOTIFY_TRIGGER = """
DROP TRIGGER IF EXISTS comptoir_outbox_notify ON comptoir_events_outboxmessage;
DROP FUNCTION IF EXISTS comptoir_outbox_notify();
"""


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='InboxMessage',
            fields=[
                ('pk', models.CompositePrimaryKey('consumer', 'event_id', blank=True, editable=False, primary_key=True, serialize=False)),
                ('consumer', models.CharField(max_length=200)),
                ('event_id', models.UUIDField()),
                ('event_type', models.CharField(max_length=200)),
                ('topic', models.CharField(max_length=249)),
                ('partition', models.IntegerField()),
                ('offset', models.BigIntegerField()),
                ('handled_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
            options={
                'indexes': [models.Index(fields=['handled_at'], name='comptoir_inbox_handled_at')],
            },
        ),
        migrations.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('event_id', models.UUIDField(unique=True)),
                ('event_type', models.CharField(max_length=200)),
                ('topic', models.CharField(max_length=249)),
                ('key', models.CharField(max_length=255)),
                ('envelope', models.TextField(help_text='The exact Kafka value (envelope JSON).')),
                ('headers', models.JSONField(default=dict)),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'indexes': [models.Index(condition=models.Q(('sent_at__isnull', True)), fields=['id'], name='comptoir_outbox_pending'), models.Index(condition=models.Q(('sent_at__isnull', False)), fields=['sent_at'], name='comptoir_outbox_sent')],
            },
        ),
        migrations.RunSQL(NOTIFY_TRIGGER, DROP_NOTIFY_TRIGGER),
    ]
