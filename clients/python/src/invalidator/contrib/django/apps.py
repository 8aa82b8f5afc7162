"""The Django app: connects the model signals named in settings."""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_delete, post_save, pre_save

from ...publisher import Publisher
from .recorder import Recorder


class InvalidatorConfig(AppConfig):
    """Reads `settings.INVALIDATOR` and starts recording."""

    name = "invalidator.contrib.django"
    label = "invalidator"
    verbose_name = "Invalidator"
    recorder: Recorder | None = None

    def ready(self) -> None:
        config = getattr(settings, "INVALIDATOR", None)
        if not isinstance(config, dict):
            raise ImproperlyConfigured(
                "settings.INVALIDATOR must be a dict with `HTTP` or `STREAM`, and `MODELS`"
            )
        if "HTTP" in config:
            publisher = Publisher.http(config["HTTP"], token=config.get("TOKEN"))
        elif "STREAM" in config:
            publisher = Publisher.stream(config["STREAM"], config.get("STREAM_NAME", "commits"))
        else:
            raise ImproperlyConfigured(
                "settings.INVALIDATOR names no publisher: give `HTTP` (serve's address) or "
                "`STREAM` (a Redis URL)"
            )
        models = []
        for label in config.get("MODELS", []):
            try:
                models.append(apps.get_model(label))
            except (LookupError, ValueError) as e:
                raise ImproperlyConfigured(
                    f"settings.INVALIDATOR['MODELS'] names `{label}`, which is not a model: {e}"
                ) from e
        recorder = Recorder(publisher, config.get("SOURCE"))
        for model in models:
            uid = f"invalidator:{model._meta.label}"
            pre_save.connect(recorder.pre_save, sender=model, dispatch_uid=uid + ":pre")
            post_save.connect(recorder.post_save, sender=model, dispatch_uid=uid + ":post")
            post_delete.connect(recorder.post_delete, sender=model, dispatch_uid=uid + ":del")
        InvalidatorConfig.recorder = recorder
