"""The test app's model."""

from django.db import models


class Kind(models.Model):
    """A child in a turnus (the turnus rule's `kinder`)."""

    turnus_id = models.IntegerField()
    notes = models.TextField(default="")

    class Meta:
        app_label = "djapp"
        db_table = "kinder"
