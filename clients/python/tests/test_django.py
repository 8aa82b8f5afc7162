"""`invalidator.contrib.django` in a Django project on a real Postgres,
publishing to a real `invalidator serve` over a real Redis: saves and
deletes of tracked models invalidate the turnus rule's keys, one commit
per transaction; a rolled-back transaction or savepoint publishes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import PostgresCluster, RedisNode, Serve, wait_until

from invalidator import Cache


@pytest.fixture(scope="module")
def django_app(postgres: PostgresCluster) -> Iterator[tuple[Cache, list[Any]]]:
    import psycopg

    with psycopg.connect(postgres.url(), autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS django_test")
        c.execute("CREATE DATABASE django_test")
    redis = RedisNode()
    serve = Serve(redis.url)
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["djapp", "invalidator.contrib.django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "django_test",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": postgres.port,
            }
        },
        INVALIDATOR={"HTTP": serve.url, "MODELS": ["djapp.Kind"], "SOURCE": "django-test"},
        USE_TZ=True,
    )
    django.setup()
    from django.db import connection
    from djapp.models import Kind

    with connection.schema_editor() as editor:
        editor.create_model(Kind)
    from invalidator.contrib.django.apps import InvalidatorConfig

    recorder = InvalidatorConfig.recorder
    assert recorder is not None
    sent: list[Any] = []
    real = recorder.publisher

    class Recording:
        def publish(self, commit: Any) -> None:
            sent.append(commit)
            real.publish(commit)

    recorder.publisher = Recording()  # type: ignore[assignment]
    yield Cache.from_url(redis.url), sent
    connection.close()
    serve.stop()
    redis.stop()


def test_saves_and_deletes_invalidate_one_commit_per_transaction(
    django_app: tuple[Cache, list[Any]],
) -> None:
    from django.db import transaction
    from djapp.models import Kind

    cache, sent = django_app
    sent.clear()
    for key in ("turnus_data_1", "turnus_data_2", "turnus_data_3"):
        cache.set(key, b"page")
    with transaction.atomic():
        child = Kind.objects.create(turnus_id=1)
        Kind.objects.create(turnus_id=3)
    assert len(sent) == 1 and len(sent[0]["writes"]) == 2, sent
    wait_until(
        "both inserts' turnuses are gone",
        lambda: cache.get("turnus_data_1") is None and cache.get("turnus_data_3") is None,
    )
    cache.set("turnus_data_1", b"page")
    child.turnus_id = 2
    child.save()  # autocommit: its own transaction
    write = sent[-1]["writes"][0]
    assert write["op"] == "update" and write["before"]["turnus_id"] == 1, write
    assert write["key"] == {"id": child.pk}
    wait_until(
        "the moved child's old and new turnuses are gone",
        lambda: cache.get("turnus_data_1") is None and cache.get("turnus_data_2") is None,
    )
    cache.set("turnus_data_2", b"page")
    child.delete()
    wait_until("the deleted child's turnus is gone", lambda: cache.get("turnus_data_2") is None)
    assert sent[-1]["writes"][0]["op"] == "delete"
    assert all(c["source"] == "django-test" for c in sent)


def test_a_rollback_publishes_nothing_and_a_rolled_back_savepoint_is_left_out(
    django_app: tuple[Cache, list[Any]],
) -> None:
    from django.db import transaction
    from djapp.models import Kind

    cache, sent = django_app
    sent.clear()
    cache.set("turnus_data_7", b"page")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        Kind.objects.create(turnus_id=7)
        raise Abort
    assert sent == []
    with transaction.atomic():
        Kind.objects.create(turnus_id=8)
        try:
            with transaction.atomic():
                Kind.objects.create(turnus_id=7)
                raise Abort
        except Abort:
            pass
        Kind.objects.create(turnus_id=9)
    assert len(sent) == 1, sent
    turnuses = [w["after"]["turnus_id"] for w in sent[0]["writes"]]
    assert turnuses == [8, 9], "the savepoint's write is left out"
    assert cache.get("turnus_data_7") == b"page"
