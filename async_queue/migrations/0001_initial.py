# The initial schema of async_queue.

import django.core.serializers.json
import django.db.models.deletion
import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models

# Workers LISTEN on this channel. The notification is sent by the transaction
# that writes the job, so it arrives exactly when the job becomes visible.
NOTIFY_SQL = """
CREATE OR REPLACE FUNCTION async_queue_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('async_queue', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER async_queue_job_inserted AFTER INSERT ON async_queue_job
    FOR EACH STATEMENT EXECUTE FUNCTION async_queue_notify();
CREATE TRIGGER async_queue_job_requeued AFTER UPDATE OF status ON async_queue_job
    FOR EACH ROW WHEN (
        NEW.status = 'queued' AND OLD.status <> 'queued'
        AND NEW.run_after <= statement_timestamp()
    ) EXECUTE FUNCTION async_queue_notify();
"""
DROP_NOTIFY_SQL = """
DROP TRIGGER IF EXISTS async_queue_job_inserted ON async_queue_job;
DROP TRIGGER IF EXISTS async_queue_job_requeued ON async_queue_job;
DROP FUNCTION IF EXISTS async_queue_notify();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="JobGroup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("reference", models.CharField(db_index=True, max_length=255)),
                ("description", models.TextField(blank=True, default="")),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="Job",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        help_text="Dotted path of the function to run.", max_length=255
                    ),
                ),
                (
                    "args",
                    models.JSONField(
                        blank=True,
                        default=list,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                    ),
                ),
                (
                    "kwargs",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                    ),
                ),
                (
                    "meta",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        help_text="Free-form caller data.",
                    ),
                ),
                ("queue", models.CharField(default="default", max_length=100)),
                ("priority", models.IntegerField(default=0, help_text="Higher runs first.")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                (
                    "run_after",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(),
                        help_text="Not run before this time.",
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "attempts",
                    models.PositiveIntegerField(default=0, help_text="Attempts claimed so far."),
                ),
                ("max_attempts", models.PositiveIntegerField(default=5)),
                (
                    "worker",
                    models.CharField(
                        blank=True,
                        default="",
                        help_text="The worker of the latest claim.",
                        max_length=200,
                    ),
                ),
                (
                    "result",
                    models.JSONField(
                        blank=True,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        null=True,
                    ),
                ),
                ("last_error", models.TextField(blank=True, default="")),
                (
                    "timeout",
                    models.FloatField(
                        blank=True,
                        help_text="Seconds an attempt may run before it is interrupted.",
                        null=True,
                    ),
                ),
                (
                    "waits_for_group",
                    models.BooleanField(
                        default=False,
                        help_text="Runs only once every other job of its group has finished.",
                    ),
                ),
                (
                    "has_locks",
                    models.BooleanField(default=False, help_text="Declared object locks."),
                ),
                (
                    "unique_key",
                    models.CharField(
                        blank=True,
                        help_text="At most one queued or running job has a given key.",
                        max_length=255,
                        null=True,
                    ),
                ),
                ("progress_current", models.BigIntegerField(blank=True, null=True)),
                ("progress_total", models.BigIntegerField(blank=True, null=True)),
                ("progress_message", models.CharField(blank=True, default="", max_length=255)),
                ("progress_updated_at", models.DateTimeField(blank=True, null=True)),
                (
                    "cancel_requested_at",
                    models.DateTimeField(
                        blank=True, help_text="Set when a running job is asked to stop.", null=True
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="async_queue_jobs",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "group",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="jobs",
                        to="async_queue.jobgroup",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="JobLock",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(db_index=True, max_length=255)),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="locks",
                        to="async_queue.job",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="JobError",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("attempt", models.PositiveIntegerField()),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                ("worker", models.CharField(blank=True, default="", max_length=200)),
                (
                    "exception",
                    models.CharField(help_text="Dotted class of the exception.", max_length=255),
                ),
                ("message", models.TextField(blank=True, default="")),
                ("traceback", models.TextField(blank=True, default="")),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="errors",
                        to="async_queue.job",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "indexes": [
                    models.Index(fields=["created_at"], name="async_queue_error_created_idx")
                ],
            },
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                models.OrderBy(models.F("priority"), descending=True),
                models.F("run_after"),
                models.F("id"),
                condition=models.Q(("status", "queued")),
                name="async_queue_job_claim_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                fields=["status", "finished_at"], name="async_queue_job_finished_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["name", "status"], name="async_queue_job_name_idx"),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status__in", ["queued", "running", "succeeded", "failed", "cancelled"])
                ),
                name="async_queue_job_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="joblock",
            constraint=models.UniqueConstraint(
                fields=("job", "key"), name="async_queue_joblock_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ["queued", "running"])),
                fields=("unique_key",),
                name="async_queue_job_unique_active",
            ),
        ),
        migrations.CreateModel(
            name="PeriodicTick",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                ("tick_at", models.DateTimeField()),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={
                "ordering": ["-tick_at"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("name", "tick_at"), name="async_queue_tick_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(_on_postgresql(NOTIFY_SQL), _on_postgresql(DROP_NOTIFY_SQL)),
    ]
