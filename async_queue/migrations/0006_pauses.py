# Paused queues and job names, and the wake-up of idle workers when one is resumed.

import django.db.models.deletion
import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models

# Resuming wakes the idle workers at once, as a new job does (0001's function): the
# notification is sent by the transaction that deletes the pause, so it arrives at commit.
RESUME_NOTIFY_SQL = """
CREATE TRIGGER async_queue_pause_resumed AFTER DELETE OR UPDATE OF kind, value
    ON async_queue_pause FOR EACH STATEMENT EXECUTE FUNCTION async_queue_notify();
"""
DROP_RESUME_NOTIFY_SQL = "DROP TRIGGER IF EXISTS async_queue_pause_resumed ON async_queue_pause;"


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("async_queue", "0005_schedules"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Pause",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("queue", "Queue"), ("name", "Job name")], max_length=10
                    ),
                ),
                (
                    "value",
                    models.CharField(
                        help_text="The queue's name, or the job's dotted name.", max_length=255
                    ),
                ),
                ("reason", models.CharField(blank=True, default="", max_length=255)),
                (
                    "paused_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                (
                    "paused_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="async_queue_pauses",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-kind", "value"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("kind", "value"), name="async_queue_pause_unique"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["queue", "name"])),
                        name="async_queue_pause_kind_valid",
                    ),
                ],
            },
        ),
        migrations.RunPython(
            _on_postgresql(RESUME_NOTIFY_SQL), _on_postgresql(DROP_RESUME_NOTIFY_SQL)
        ),
    ]
