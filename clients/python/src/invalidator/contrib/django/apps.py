"""The Django app: reads `settings.INVALIDATOR`, checking every value, and
records the models it names (see the package's documentation)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ...background import (
    DEFAULT_DELIVERY_TIMEOUT,
    DEFAULT_EXIT_TIMEOUT,
    DEFAULT_QUEUE_SIZE,
    BackgroundPublisher,
)
from ...errors import InvalidatorError
from ...publisher import Publisher
from .._publish import AnyPublisher
from .recorder import Recorder

# A request to serve waits this long at most (less when the delivery
# bound is shorter, so that a stalled serve cannot hold one past it).
REQUEST_TIMEOUT = 30.0

_KNOWN = {
    "HTTP",
    "TOKEN",
    "STREAM",
    "STREAM_NAME",
    "MODELS",
    "SOURCE",
    "BACKGROUND",
    "QUEUE_SIZE",
    "DELIVERY_TIMEOUT",
    "EXIT_TIMEOUT",
    "BEFORE_IMAGES",
}
_BEFORE_IMAGES = ("loaded", "query")


@dataclass(frozen=True)
class Settings:
    """`settings.INVALIDATOR`, checked, with its defaults."""

    http: str | None
    token: str | None
    stream: str | None
    stream_name: str
    models: tuple[str, ...]
    source: str | None
    background: bool
    queue_size: int
    delivery_timeout: float
    exit_timeout: float
    before_images: str

    @classmethod
    def read(cls, config: Any) -> Settings:
        """Raises `ImproperlyConfigured`, naming the setting and its value,
        unless `config` is a valid `settings.INVALIDATOR`."""
        if not isinstance(config, dict):
            raise ImproperlyConfigured(
                "settings.INVALIDATOR must be a dict with `HTTP` or `STREAM`, and `MODELS`, "
                f"not {config!r}"
            )
        unknown = sorted(set(config) - _KNOWN)
        if unknown:
            raise ImproperlyConfigured(
                f"settings.INVALIDATOR has unknown setting(s) {unknown}; the settings are "
                f"{sorted(_KNOWN)}"
            )
        http = _text(config, "HTTP")
        stream = _text(config, "STREAM")
        if http is None and stream is None:
            raise ImproperlyConfigured(
                "settings.INVALIDATOR names no publisher: give `HTTP` (serve's address) or "
                "`STREAM` (a Redis URL)"
            )
        if http is not None and stream is not None:
            raise ImproperlyConfigured(
                f"settings.INVALIDATOR gives both `HTTP` ({http!r}) and `STREAM` ({stream!r}); "
                "give one"
            )
        models = config.get("MODELS", [])
        if not isinstance(models, list | tuple) or not all(isinstance(m, str) for m in models):
            raise ImproperlyConfigured(
                "settings.INVALIDATOR['MODELS'] must be a list of model labels such as "
                f"`shop.Customer`, not {models!r}"
            )
        background = config.get("BACKGROUND", True)
        if not isinstance(background, bool):
            raise ImproperlyConfigured(
                f"settings.INVALIDATOR['BACKGROUND'] must be True or False, not {background!r}"
            )
        queue_size = config.get("QUEUE_SIZE", DEFAULT_QUEUE_SIZE)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ImproperlyConfigured(
                "settings.INVALIDATOR['QUEUE_SIZE'] must be a positive number of commits, not "
                f"{queue_size!r}"
            )
        before_images = config.get("BEFORE_IMAGES", "loaded")
        if before_images not in _BEFORE_IMAGES:
            raise ImproperlyConfigured(
                f"settings.INVALIDATOR['BEFORE_IMAGES'] must be one of {list(_BEFORE_IMAGES)}, "
                f"not {before_images!r}"
            )
        return cls(
            http=http,
            token=_text(config, "TOKEN"),
            stream=stream,
            stream_name=_text(config, "STREAM_NAME") or "commits",
            models=tuple(models),
            source=_text(config, "SOURCE"),
            background=background,
            queue_size=queue_size,
            delivery_timeout=_seconds(config, "DELIVERY_TIMEOUT", DEFAULT_DELIVERY_TIMEOUT),
            exit_timeout=_seconds(config, "EXIT_TIMEOUT", DEFAULT_EXIT_TIMEOUT, zero=True),
            before_images=before_images,
        )

    def publisher(self) -> AnyPublisher:
        """The publisher these settings describe: a `BackgroundPublisher`
        unless `BACKGROUND` is False."""
        timeout = min(REQUEST_TIMEOUT, self.delivery_timeout)
        try:
            if self.http is not None:
                publisher = Publisher.http(self.http, token=self.token, timeout=timeout)
            else:
                assert self.stream is not None
                publisher = Publisher.stream(self.stream, self.stream_name, timeout=timeout)
        except (InvalidatorError, ValueError) as e:
            which = "HTTP" if self.http is not None else "STREAM"
            raise ImproperlyConfigured(f"settings.INVALIDATOR['{which}']: {e}") from e
        if not self.background:
            return publisher
        return BackgroundPublisher(
            publisher,
            queue_size=self.queue_size,
            delivery_timeout=self.delivery_timeout,
            exit_timeout=self.exit_timeout,
        )


def _text(config: dict[str, Any], name: str) -> str | None:
    value = config.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise ImproperlyConfigured(
            f"settings.INVALIDATOR['{name}'] must be non-empty text, not {value!r}"
        )
    return value


def _seconds(config: dict[str, Any], name: str, default: float, zero: bool = False) -> float:
    value = config.get(name, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not (value >= 0 if zero else value > 0):
        bound = "zero or more" if zero else "more than zero"
        raise ImproperlyConfigured(
            f"settings.INVALIDATOR['{name}'] must be a number of seconds, {bound}, not {value!r}"
        )
    return float(value)


class InvalidatorConfig(AppConfig):
    """Reads `settings.INVALIDATOR` and starts recording."""

    name = "invalidator.contrib.django"
    label = "invalidator"
    verbose_name = "Invalidator"
    recorder: Recorder | None = None

    def ready(self) -> None:
        config = Settings.read(getattr(settings, "INVALIDATOR", None))
        models = []
        for label in config.models:
            try:
                models.append(apps.get_model(label))
            except (LookupError, ValueError) as e:
                raise ImproperlyConfigured(
                    f"settings.INVALIDATOR['MODELS'] names `{label}`, which is not a model: {e}"
                ) from e
        recorder = Recorder(config.publisher(), config.source, config.before_images == "query")
        for model in models:
            recorder.track(model)
        InvalidatorConfig.recorder = recorder

    @classmethod
    def flush(cls, timeout: float | None = None) -> bool:
        """Waits until every commit published so far is delivered or given
        up, for up to `timeout` seconds (default: `EXIT_TIMEOUT`); True if
        none is left. For management commands and tests that must know the
        invalidations are out before they go on."""
        recorder = cls.recorder
        if recorder is None or not isinstance(recorder.publisher, BackgroundPublisher):
            return True
        return recorder.publisher.flush(timeout)
