"""Create the Ticket table."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    """The app's first and only migration."""

    initial = True
    dependencies: list[tuple[str, str]] = []  # noqa: RUF012 (Django's own shape)
    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="Ticket",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code", models.CharField(max_length=32, unique=True)),
                ("title", models.TextField()),
                ("points", models.IntegerField(default=0)),
            ],
        ),
    ]
