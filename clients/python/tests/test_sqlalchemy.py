"""`invalidator.contrib.sqlalchemy.track` against a real Postgres, a real
Redis and a real `invalidator serve` with the example rules: what the ORM
commits invalidates the rules' keys; a rollback invalidates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import PostgresCluster, RedisNode, Serve, wait_until
from sqlalchemy import Integer, String, create_engine, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from invalidator import Cache, Publisher
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
    yield sessions, Cache.from_url(redis_node.url), tracker
    tracker.stop()
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
