"""`invalidator.contrib.sqlalchemy.track` against a real Postgres, a real
Redis and a real `invalidator serve` with the example rules: what the ORM
commits invalidates the rules' keys; a rollback invalidates nothing; a
commit never waits on serve (publishing is in the background)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import PostgresCluster, RedisNode, Serve, StalledPort, wait_until
from sqlalchemy import Integer, String, create_engine, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from invalidator import Cache, Publisher
from invalidator.background import BackgroundPublisher
from invalidator.contrib.sqlalchemy import track


class Base(DeclarativeBase):
    pass


class Kind(Base):
    """The turnus rule's `kinder`: a child in a turnus."""

    __tablename__ = "kinder"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turnus_id: Mapped[int] = mapped_column(Integer)
    notes: Mapped[str] = mapped_column(String, default="")


@pytest.fixture
def app(
    postgres: PostgresCluster, redis_node: RedisNode, serve: Serve
) -> Iterator[tuple[sessionmaker[Session], Cache, Any]]:
    engine = create_engine(postgres.url(driver="postgresql+psycopg"))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine)
    tracker = track(sessions, Publisher.http(serve.url), source="sqlalchemy-test")
    assert isinstance(tracker.publisher, BackgroundPublisher)
    yield sessions, Cache.from_url(redis_node.url), tracker
    assert tracker.stop(), "everything published was delivered"
    engine.dispose()


def test_committed_writes_invalidate_and_a_moved_row_invalidates_both_places(
    app: tuple[sessionmaker[Session], Cache, Any],
) -> None:
    sessions, cache, _ = app
    for key in ("turnus_data_1", "turnus_data_2", "turnus_data_3"):
        cache.set(key, b"page")
    with sessions.begin() as s:
        s.add(Kind(id=1, turnus_id=1))
    wait_until("the insert's turnus is gone", lambda: cache.get("turnus_data_1") is None)
    cache.set("turnus_data_1", b"page")
    with sessions.begin() as s:
        child = s.get(Kind, 1)
        assert child is not None
        child.turnus_id = 2
    wait_until(
        "both turnuses are gone",
        lambda: cache.get("turnus_data_1") is None and cache.get("turnus_data_2") is None,
    )
    assert cache.get("turnus_data_3") == b"page"
    cache.set("turnus_data_2", b"page")
    with sessions.begin() as s:
        s.delete(s.get(Kind, 1))
    wait_until("the delete's turnus is gone", lambda: cache.get("turnus_data_2") is None)


def test_a_rolled_back_transaction_publishes_nothing(
    app: tuple[sessionmaker[Session], Cache, Any],
) -> None:
    sessions, cache, tracker = app
    sent: list[Any] = []
    real = tracker.publisher

    class Recording:
        def publish(self, commit: Any) -> None:
            sent.append(commit)
            real.publish(commit)

    tracker.publisher = Recording()
    cache.set("turnus_data_5", b"page")
    with sessions() as s:
        s.add(Kind(id=5, turnus_id=5))
        s.flush()
        s.rollback()
    with sessions.begin() as s:
        s.execute(text("SELECT 1"))
    assert sent == []
    assert cache.get("turnus_data_5") == b"page"
    with sessions.begin() as s:
        s.add(Kind(id=6, turnus_id=5))
    assert len(sent) == 1
    write = sent[0]["writes"][0]
    assert write["table"] == "kinder" and write["op"] == "insert"
    assert write["key"] == {"id": 6} and write["after"]["turnus_id"] == 5
    assert sent[0]["source"] == "sqlalchemy-test"
    wait_until("the committed insert invalidates", lambda: cache.get("turnus_data_5") is None)


def test_a_commit_does_not_wait_on_serve_and_stop_tells_what_was_left(
    postgres: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(postgres.url(driver="postgresql+psycopg"))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine)
    stalled = StalledPort()
    tracker = track(sessions, Publisher.http(stalled.url))
    try:
        started = time.perf_counter()
        with sessions.begin() as s:
            s.add(Kind(id=7, turnus_id=7))
        took = time.perf_counter() - started
        assert took < 0.5, f"the commit took {took:.3f} s while serve hangs"
        assert isinstance(tracker.publisher, BackgroundPublisher)
        assert tracker.publisher.queued == 1
        assert tracker.flush(0.2) is False
        assert tracker.stop(timeout=0.2) is False
        assert tracker.publisher.undelivered == 1
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("(1 write to kinder)" in m and "still queued" in m for m in logged), logged
    finally:
        stalled.release()
        engine.dispose()


def test_without_background_a_commit_publishes_before_it_returns(
    app: tuple[sessionmaker[Session], Cache, Any], serve: Serve
) -> None:
    sessions, cache, background_tracker = app
    background_tracker.stop()
    tracker = track(sessions, Publisher.http(serve.url), background=False)
    try:
        assert isinstance(tracker.publisher, Publisher)
        cache.set("turnus_data_8", b"page")
        with sessions.begin() as s:
            s.add(Kind(id=8, turnus_id=8))
        wait_until("the insert's turnus is gone", lambda: cache.get("turnus_data_8") is None)
    finally:
        tracker.stop()
