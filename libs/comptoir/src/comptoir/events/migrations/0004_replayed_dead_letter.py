from django.db import migrations, models
from django.db.models.functions import Now


class Migration(migrations.Migration):
    dependencies = [
        ("comptoir_events", "0003_inbox_entry_for_the_admin"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReplayedDeadLetter",
            fields=[
                (
                    "letter_id",
                    models.CharField(
                        help_text="<dlq topic>:<partition>:<offset>",
                        max_length=300,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("replayed_to", models.CharField(max_length=249)),
                ("replayed_at", models.DateTimeField(db_default=Now())),
                ("replayed_by", models.CharField(blank=True, default="", max_length=200)),
            ],
        ),
    ]
