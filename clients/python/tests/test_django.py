"""`invalidator.contrib.django` in a Django project on a real Postgres,
publishing to a real `invalidator serve` over a real Redis: saves and
deletes of tracked models invalidate the turnus rule's keys, one commit
per transaction; a rolled-back transaction or savepoint publishes nothing.

Before images come from the values an instance was loaded with: a save of
a loaded instance issues its UPDATE and nothing else, and the images stay
right across saves, rollbacks, deferred fields, `refresh_from_db` and
expressions. Publishing happens off the request: a save returns while
serve hangs, and its commit is delivered by a retry once serve is back,
given up (counted, logged by transaction) when it never is, and flushed
when the process exits."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PostgresCluster,
    RedisNode,
    Serve,
    ServeAt,
    StalledPort,
    free_port,
    wait_until,
)

from invalidator import Cache, Publisher
from invalidator.background import BackgroundPublisher

TESTS = Path(__file__).resolve().parent


@dataclass
class Recording:
    """Stands in for the recorder's publisher: keeps each commit, and hands
    it to `target` (the app's background publisher, unless a test swaps
    it)."""

    target: Any
    sent: list[Any] = field(default_factory=list)

    def publish(self, commit: Any) -> None:
        self.sent.append(commit)
        self.target.publish(commit)


@dataclass
class App:
    cache: Cache
    redis: RedisNode
    recording: Recording
    background: BackgroundPublisher
    database: dict[str, Any]

    @property
    def sent(self) -> list[Any]:
        return self.recording.sent

    def last_write(self) -> dict[str, Any]:
        return self.sent[-1]["writes"][-1]


@pytest.fixture(scope="module")
def django_app(postgres: PostgresCluster) -> Iterator[App]:
    import psycopg

    with psycopg.connect(postgres.url(), autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS django_test")
        c.execute("CREATE DATABASE django_test")
    redis = RedisNode()
    serve = Serve(redis.url)
    import django
    from django.conf import settings

    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "django_test",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": postgres.port,
    }
    settings.configure(
        INSTALLED_APPS=["djapp", "invalidator.contrib.django"],
        DATABASES={"default": database},
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
    background = recorder.publisher
    assert isinstance(background, BackgroundPublisher), "publishing is in the background"
    recording = Recording(background)
    recorder.publisher = recording  # type: ignore[assignment]
    yield App(Cache.from_url(redis.url), redis, recording, background, database)
    connection.close()
    serve.stop()
    redis.stop()


@pytest.fixture
def app(django_app: App) -> Iterator[App]:
    django_app.sent.clear()
    yield django_app
    django_app.recording.target = django_app.background
    from invalidator.contrib.django.apps import InvalidatorConfig

    assert InvalidatorConfig.recorder is not None
    InvalidatorConfig.recorder.query_before = False


def statements(queries: Any) -> list[str]:
    """The first word of each captured query (`SELECT`, `UPDATE`, ...),
    leaving out the transaction's own (`BEGIN`, `COMMIT`), which Django
    issues around a delete whether we are installed or not."""
    words = [q["sql"].split()[0] for q in queries.captured_queries]
    return [w for w in words if w not in ("BEGIN", "COMMIT")]


def test_saves_and_deletes_invalidate_one_commit_per_transaction(app: App) -> None:
    from django.db import transaction
    from djapp.models import Kind

    cache, sent = app.cache, app.sent
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
    from invalidator.contrib.django.apps import InvalidatorConfig

    assert InvalidatorConfig.flush(10)
    assert app.background.undelivered == 0 and app.background.dropped == 0


def test_a_rollback_publishes_nothing_and_a_rolled_back_savepoint_is_left_out(app: App) -> None:
    from django.db import transaction
    from djapp.models import Kind

    cache, sent = app.cache, app.sent
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
    assert app.background.flush(10)
    assert cache.get("turnus_data_7") == b"page"


def test_a_save_of_a_loaded_instance_issues_only_its_update(app: App) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from djapp.models import Kind

    pk = Kind.objects.create(turnus_id=11, notes="n").pk
    child = Kind.objects.get(pk=pk)
    child.turnus_id = 12
    with CaptureQueriesContext(connection) as queries:
        child.save()
    assert statements(queries) == ["UPDATE"], queries.captured_queries
    write = app.last_write()
    assert write["before"] == {"id": pk, "turnus_id": 11, "notes": "n"}, write
    assert write["after"] == {"id": pk, "turnus_id": 12, "notes": "n"}, write
    # The second save's before image is what the first one wrote.
    child.turnus_id = 13
    with CaptureQueriesContext(connection) as queries:
        child.save()
    assert statements(queries) == ["UPDATE"], queries.captured_queries
    assert (app.last_write()["before"]["turnus_id"], app.last_write()["after"]["turnus_id"]) == (
        12,
        13,
    )
    # A field changed in memory but not saved (update_fields) stays as the
    # database has it, in this image and the next.
    child.notes = "changed, not saved"
    child.turnus_id = 14
    with CaptureQueriesContext(connection) as queries:
        child.save(update_fields=["turnus_id"])
    assert statements(queries) == ["UPDATE"]
    write = app.last_write()
    assert write["after"] == {"id": pk, "turnus_id": 14, "notes": "n"}, write
    child.notes = "n2"
    child.save()
    assert app.last_write()["before"]["notes"] == "n"
    # Many rows loaded at once, each saved: one UPDATE each.
    for turnus in (15, 16, 17):
        Kind.objects.create(turnus_id=turnus)
    loaded = list(Kind.objects.filter(turnus_id__in=[15, 16, 17]).order_by("turnus_id"))
    with CaptureQueriesContext(connection) as queries:
        for each in loaded:
            each.turnus_id += 100
            each.save()
    assert statements(queries) == ["UPDATE"] * 3
    assert [c["writes"][0]["before"]["turnus_id"] for c in app.sent[-3:]] == [15, 16, 17]
    # A delete of a loaded instance: its DELETE and nothing else.
    with CaptureQueriesContext(connection) as queries:
        child.delete()
    assert statements(queries) == ["DELETE"], queries.captured_queries
    write = app.last_write()
    assert write["op"] == "delete" and write["before"] == {"id": pk, "turnus_id": 14, "notes": "n2"}


def test_saves_in_a_transaction_and_after_a_rollback_have_the_right_before_images(
    app: App,
) -> None:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from djapp.models import Kind

    pk = Kind.objects.create(turnus_id=41).pk
    child = Kind.objects.get(pk=pk)
    with transaction.atomic():
        child.turnus_id = 42
        child.save()
        # Not committed yet: the second save reads its row (in the
        # transaction, so it sees 42).
        child.turnus_id = 43
        child.save()
    writes = app.sent[-1]["writes"]
    assert [(w["before"]["turnus_id"], w["after"]["turnus_id"]) for w in writes] == [
        (41, 42),
        (42, 43),
    ]
    # Committed: what it wrote is the row again, no query needed.
    child.turnus_id = 44
    with CaptureQueriesContext(connection) as queries:
        child.save()
    assert statements(queries) == ["UPDATE"]
    assert app.last_write()["before"]["turnus_id"] == 43

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        child.turnus_id = 45
        child.save()
        raise Abort
    # The database still has 44, whatever the instance says.
    child.turnus_id = 46
    child.save()
    assert (app.last_write()["before"]["turnus_id"], app.last_write()["after"]["turnus_id"]) == (
        44,
        46,
    )
    # And a savepoint's rollback, inside a transaction that commits.
    with transaction.atomic():
        try:
            with transaction.atomic():
                child.turnus_id = 47
                child.save()
                raise Abort
        except Abort:
            pass
        child.turnus_id = 48
        child.save()
    assert app.last_write()["before"]["turnus_id"] == 46


def test_deferred_fields_are_read_once_and_only_they(app: App) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from djapp.models import Kind

    pk = Kind.objects.create(turnus_id=21, notes="a").pk
    partial = Kind.objects.only("id", "notes").get(pk=pk)
    partial.notes = "b"
    with CaptureQueriesContext(connection) as queries:
        partial.save()
    assert statements(queries) == ["SELECT", "UPDATE"], queries.captured_queries
    select = queries.captured_queries[0]["sql"]
    assert '"turnus_id"' in select and '"notes"' not in select, select
    assert '"turnus_id"' not in queries.captured_queries[1]["sql"], "Django saves loaded fields"
    write = app.last_write()
    assert write["before"] == {"id": pk, "turnus_id": 21, "notes": "a"}, write
    assert write["after"] == {"id": pk, "turnus_id": 21, "notes": "b"}, write
    partial.notes = "c"
    with CaptureQueriesContext(connection) as queries:
        partial.save()
    assert statements(queries) == ["UPDATE"], "known since the last save"

    # A deferred field set without being read: its before is read.
    moved = Kind.objects.defer("turnus_id").get(pk=pk)
    moved.turnus_id = 22
    moved.save()
    write = app.last_write()
    assert (write["before"]["turnus_id"], write["after"]["turnus_id"]) == (21, 22), write

    # A deferred field read (Django loads it with `refresh_from_db`): known
    # from then on.
    read = Kind.objects.defer("turnus_id").get(pk=pk)
    assert read.turnus_id == 22
    read.turnus_id = 23
    with CaptureQueriesContext(connection) as queries:
        read.save()
    assert statements(queries) == ["UPDATE"], queries.captured_queries
    assert app.last_write()["before"]["turnus_id"] == 22


def test_a_fresh_instance_with_an_existing_primary_key_reads_its_row(app: App) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from djapp.models import Kind

    pk = Kind.objects.create(turnus_id=31, notes="x").pk
    with CaptureQueriesContext(connection) as queries:
        Kind(pk=pk, turnus_id=32).save()
    assert statements(queries) == ["SELECT", "UPDATE"], queries.captured_queries
    write = app.last_write()
    assert write["op"] == "update", write
    assert write["before"] == {"id": pk, "turnus_id": 31, "notes": "x"}, write
    assert write["after"] == {"id": pk, "turnus_id": 32, "notes": ""}, write
    # A fresh instance whose primary key is new: an insert.
    Kind(pk=pk + 1000, turnus_id=33).save()
    write = app.last_write()
    assert write["op"] == "insert" and "before" not in write, write
    # A delete of an instance not loaded: the row is read before it goes.
    Kind(pk=pk).delete()
    write = app.last_write()
    assert write["op"] == "delete", write
    assert write["before"] == {"id": pk, "turnus_id": 32, "notes": ""}, write
    # A new instance saved, then saved again: no query for the second.
    fresh = Kind(turnus_id=34)
    fresh.save()
    fresh.turnus_id = 35
    with CaptureQueriesContext(connection) as queries:
        fresh.save()
    assert statements(queries) == ["UPDATE"]
    assert app.last_write()["before"]["turnus_id"] == 34


def test_refresh_from_db_and_expressions_keep_the_before_image_right(app: App) -> None:
    from django.db import connection
    from django.db.models import F
    from django.test.utils import CaptureQueriesContext
    from djapp.models import Kind

    pk = Kind.objects.create(turnus_id=51).pk
    child = Kind.objects.get(pk=pk)
    Kind.objects.filter(pk=pk).update(turnus_id=52)  # unseen: no signal
    child.refresh_from_db()
    child.turnus_id = 53
    with CaptureQueriesContext(connection) as queries:
        child.save()
    assert statements(queries) == ["UPDATE"]
    assert app.last_write()["before"]["turnus_id"] == 52
    # Saved as an expression: the database knows the value, so it is read.
    child.turnus_id = F("turnus_id") + 1
    child.save()
    write = app.last_write()
    assert (write["before"]["turnus_id"], write["after"]["turnus_id"]) == (53, 54), write
    child.refresh_from_db()
    child.turnus_id = 55
    child.save()
    assert app.last_write()["before"]["turnus_id"] == 54


def test_a_pickled_instance_keeps_its_image(app: App) -> None:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from djapp.models import Kind

    pk = Kind.objects.create(turnus_id=61).pk
    copy = pickle.loads(pickle.dumps(Kind.objects.get(pk=pk)))
    copy.turnus_id = 62
    with CaptureQueriesContext(connection) as queries:
        copy.save()
    assert statements(queries) == ["UPDATE"]
    assert app.last_write()["before"]["turnus_id"] == 61
    with transaction.atomic():
        copy.turnus_id = 63
        copy.save()
        pickled = pickle.dumps(copy)  # during the transaction: not yet known committed
    again = pickle.loads(pickled)
    again.turnus_id = 64
    again.save()
    assert app.last_write()["before"]["turnus_id"] == 63


def test_before_images_query_reads_each_updated_row(app: App) -> None:
    """The trade-off of `BEFORE_IMAGES`: values loaded before another
    process changed the row give that row's old values; `query` reads it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from djapp.models import Kind

    from invalidator.contrib.django.apps import InvalidatorConfig

    pk = Kind.objects.create(turnus_id=71).pk
    loaded = Kind.objects.get(pk=pk)
    Kind.objects.filter(pk=pk).update(turnus_id=72)  # another process, say
    loaded.turnus_id = 73
    loaded.save()
    assert app.last_write()["before"]["turnus_id"] == 71, "as loaded"
    assert InvalidatorConfig.recorder is not None
    InvalidatorConfig.recorder.query_before = True
    loaded = Kind.objects.get(pk=pk)
    Kind.objects.filter(pk=pk).update(turnus_id=74)
    loaded.turnus_id = 75
    with CaptureQueriesContext(connection) as queries:
        loaded.save()
    assert statements(queries) == ["SELECT", "UPDATE"]
    assert app.last_write()["before"]["turnus_id"] == 74, "as the database had it"


def test_a_save_returns_while_serve_hangs_and_a_retry_delivers_when_it_is_back(
    app: App,
) -> None:
    from djapp.models import Kind

    stalled = StalledPort()
    background = BackgroundPublisher(Publisher.http(stalled.url), delivery_timeout=30)
    app.recording.target = background
    service = None
    try:
        app.cache.set("turnus_data_81", b"page")
        child = Kind(turnus_id=81)
        started = time.perf_counter()
        child.save()
        took = time.perf_counter() - started
        # A publish in the save would wait for serve's answer: 30 s here.
        assert took < 0.1, f"the save took {took:.3f} s while serve hangs"
        time.sleep(0.3)
        assert background.queued == 1 and background.published == 0
        assert app.cache.get("turnus_data_81") == b"page"
        stalled.release()
        wait_until("a failed attempt", lambda: background.retries >= 1)
        service = ServeAt(app.redis.url, stalled.port)
        wait_until("the key is gone", lambda: app.cache.get("turnus_data_81") is None)
        assert background.flush(10)
        assert (background.published, background.undelivered) == (1, 0)
    finally:
        background.close()
        if service is not None:
            service.stop()


def test_an_undeliverable_commit_is_counted_and_logged_naming_its_transaction(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import transaction
    from djapp.models import Kind

    nowhere = f"http://127.0.0.1:{free_port()}"
    background = BackgroundPublisher(Publisher.http(nowhere), delivery_timeout=0.5)
    app.recording.target = background
    try:
        with transaction.atomic():
            Kind.objects.create(turnus_id=91)
            Kind.objects.create(turnus_id=92)
        txn = app.sent[-1]["txn"]
        assert background.flush(10)
        assert (background.undelivered, background.published) == (1, 0)
        assert background.retries >= 1
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(
            f"commit `{txn}` (2 writes to kinder)" in m and "given up" in m for m in logged
        ), logged
    finally:
        background.close()


EXITING = """
import sys

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["djapp", "invalidator.contrib.django"],
    DATABASES={"default": %(database)r},
    INVALIDATOR=%(invalidator)r,
    USE_TZ=True,
)
django.setup()
from djapp.models import Kind

Kind.objects.create(turnus_id=%(turnus)d)
print("saved", flush=True)
sys.stdin.readline()
"""


def run_exiting(app: App, invalidator: dict[str, Any], turnus: int) -> subprocess.Popen[str]:
    """A Python process that saves a child of `turnus`, says `saved`, and
    exits once told to (a line on its standard input)."""
    script = EXITING % {"database": app.database, "invalidator": invalidator, "turnus": turnus}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "saved":
        process.kill()
        pytest.fail(f"the script did not save: {line!r}\n{process.communicate()[1]}")
    return process


def test_what_is_queued_is_delivered_before_the_process_exits(app: App) -> None:
    port = free_port()
    app.cache.set("turnus_data_95", b"page")
    invalidator = {"HTTP": f"http://127.0.0.1:{port}", "MODELS": ["djapp.Kind"]}
    process = run_exiting(app, invalidator, 95)
    service = None
    try:
        # Saved while nothing listens: its commit waits in the queue,
        # retried; serve starts, and the process is told to exit at once.
        time.sleep(0.5)
        service = ServeAt(app.redis.url, port)
        _, stderr = process.communicate("exit\n", timeout=30)
        assert process.returncode == 0, stderr
        assert "given up" not in stderr, stderr
        # Nobody else holds that commit: the key goes only if the exiting
        # process handed it over.
        wait_until("the key is gone", lambda: app.cache.get("turnus_data_95") is None, within=5)
    finally:
        process.kill()
        if service is not None:
            service.stop()


def test_what_cannot_be_delivered_at_exit_is_logged_and_the_exit_is_bounded(app: App) -> None:
    invalidator = {
        "HTTP": f"http://127.0.0.1:{free_port()}",
        "MODELS": ["djapp.Kind"],
        "EXIT_TIMEOUT": 0.5,
    }
    process = run_exiting(app, invalidator, 96)
    try:
        started = time.monotonic()
        _, stderr = process.communicate("exit\n", timeout=30)
        took = time.monotonic() - started
        assert process.returncode == 0, stderr
        assert took < 3, f"the exit took {took:.1f} s with EXIT_TIMEOUT 0.5"
        assert "(1 write to kinder)" in stderr and "still queued when the publisher closed" in (
            stderr
        ), stderr
    finally:
        process.kill()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("http://x", "must be a dict"),
        ({"MODELS": []}, "names no publisher"),
        ({"HTTP": "http://a:1", "STREAM": "redis://b"}, "both `HTTP`"),
        ({"HTTP": "http://a:1", "QUEUESIZE": 5}, r"unknown setting\(s\) \['QUEUESIZE'\]"),
        ({"HTTP": "http://a:1", "QUEUE_SIZE": 0}, r"\['QUEUE_SIZE'\].* not 0"),
        ({"HTTP": "http://a:1", "QUEUE_SIZE": "10"}, r"\['QUEUE_SIZE'\].* not '10'"),
        ({"HTTP": "http://a:1", "DELIVERY_TIMEOUT": -1}, r"\['DELIVERY_TIMEOUT'\].* not -1"),
        ({"HTTP": "http://a:1", "EXIT_TIMEOUT": "5"}, r"\['EXIT_TIMEOUT'\].* not '5'"),
        ({"HTTP": "http://a:1", "BACKGROUND": "yes"}, r"\['BACKGROUND'\].* not 'yes'"),
        ({"HTTP": "http://a:1", "BEFORE_IMAGES": "x"}, r"\['BEFORE_IMAGES'\].* not 'x'"),
        ({"HTTP": "http://a:1", "MODELS": "shop.A"}, r"\['MODELS'\].* not 'shop.A'"),
        ({"HTTP": 8080}, r"\['HTTP'\].* not 8080"),
        ({"HTTP": "http://a:1", "TOKEN": 5}, r"\['TOKEN'\].* not 5"),
    ],
)
def test_settings_are_checked_naming_the_bad_value(config: Any, named: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from invalidator.contrib.django.apps import Settings

    with pytest.raises(ImproperlyConfigured, match=named):
        Settings.read(config)


def test_settings_defaults_and_a_bad_address(django_app: App) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from invalidator.contrib.django.apps import Settings

    settings = Settings.read({"HTTP": "http://127.0.0.1:1"})
    assert (settings.background, settings.queue_size, settings.before_images) == (
        True,
        10_000,
        "loaded",
    )
    assert (settings.delivery_timeout, settings.exit_timeout) == (60.0, 5.0)
    publisher = settings.publisher()
    assert isinstance(publisher, BackgroundPublisher)
    assert (publisher.queue_size, publisher.delivery_timeout) == (10_000, 60.0)
    publisher.close()
    direct = Settings.read({"STREAM": "redis://127.0.0.1:1", "BACKGROUND": False}).publisher()
    assert isinstance(direct, Publisher) and "stream commits" in direct.destination
    with pytest.raises(ImproperlyConfigured, match=r"\['HTTP'\]: `127.0.0.1:1` is not an http"):
        Settings.read({"HTTP": "127.0.0.1:1"}).publisher()
