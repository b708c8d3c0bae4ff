"""The app's one model."""

from __future__ import annotations

from django.db import models


class Ticket(models.Model):
    """A ticket with a unique code, so a duplicate raises IntegrityError inside a transaction."""

    code = models.CharField(max_length=32, unique=True)
    title = models.TextField()
    points = models.IntegerField(default=0)

    class Meta:
        """The app the model belongs to."""

        app_label = "django_app"

    def __str__(self) -> str:
        return self.code
