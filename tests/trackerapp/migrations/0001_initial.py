# The tracker test models.

import django.core.serializers.json
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("async_queue", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TaskRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("job_id", models.BigIntegerField(unique=True)),
                ("state", models.CharField(blank=True, default="", max_length=20)),
                ("message", models.CharField(blank=True, default="", max_length=40)),
                ("percent", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("result", models.JSONField(blank=True, null=True)),
                ("error_text", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(blank=True, null=True)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("failed_at", models.DateTimeField(blank=True, null=True)),
                ("affected", models.JSONField(blank=True, null=True)),
                (
                    "extra",
                    models.JSONField(
                        blank=True,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        null=True,
                    ),
                ),
                (
                    "note",
                    models.CharField(
                        blank=True, default="", help_text="Never mapped.", max_length=100
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="TextRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("status", models.CharField(blank=True, default="", max_length=20)),
                ("progress", models.CharField(blank=True, default="", max_length=100)),
                ("result", models.TextField(blank=True, default="")),
                ("user", models.CharField(blank=True, default="", max_length=150)),
                ("locks", models.TextField(blank=True, default="")),
                ("payload", models.TextField(blank=True, default="")),
                ("lock_count", models.IntegerField(blank=True, null=True)),
                ("percent", models.FloatField(blank=True, null=True)),
                (
                    "job",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, to="async_queue.job"
                    ),
                ),
            ],
        ),
    ]
