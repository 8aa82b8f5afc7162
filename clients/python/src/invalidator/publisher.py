"""`Publisher`: hands commits to `invalidator serve`, over its HTTP API or
through a Redis stream it consumes. Every commit is checked before
anything is sent (`check_commit`).

A `Publisher` sends in the caller's thread and raises when a commit cannot
be handed over. `invalidator.background.BackgroundPublisher` wraps one so
that the caller never waits: it queues, batches and retries behind it.

Over HTTP, connections are kept alive and reused (a new TCP connection per
commit costs more than the request itself), a few idle ones at most, so
the publisher can be shared between threads.
"""

from __future__ import annotations

import http.client
import json
import math
import numbers
import os
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from .commit import check_commit, dumps
from .errors import InvalidatorError, InvalidInput, ServerError, shown, utf8

Send = Callable[[list[Mapping[str, Any]]], None]

# Errors of a request on a connection the server has closed while it sat
# idle in the pool: the request never reached the server's handler, so it
# is sent once more on a new connection.
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

# Idle connections kept per publisher: one per thread that publishes at the
# same time is plenty; more would only hold sockets open on the server.
_MAX_IDLE = 4


class Publisher:
    """Where commits go; make one with `Publisher.http` or `Publisher.stream`."""

    def __init__(self, send: Send, describe: str, close: Callable[[], None] | None = None) -> None:
        self._send = send
        self._describe = describe
        self._close = close

    def __repr__(self) -> str:
        return f"Publisher({self._describe})"

    @property
    def destination(self) -> str:
        """Where commits go, for messages: the endpoint, or the stream."""
        return self._describe

    @classmethod
    def http(cls, url: str, token: str | None = None, timeout: float = 30.0) -> Publisher:
        """Posts to `serve`'s HTTP API at `url` (`http://127.0.0.1:8080`), with
        the bearer `token` its mutating endpoints require when it has one.
        `timeout` bounds each connect and each wait for an answer, in
        seconds."""
        sender = _HttpSender(url, token, timeout)
        return cls(sender, sender.endpoint, sender.close)

    @classmethod
    def stream(cls, redis_url: str, stream: str = "commits", timeout: float = 30.0) -> Publisher:
        """Adds each commit to the Redis stream `stream` (field `commit`), which
        `serve --stream` consumes. `timeout` bounds each connect and each
        command, in seconds, so that a Redis that stalls fails the publish
        instead of hanging it."""
        _check_timeout(timeout)
        if not isinstance(redis_url, str):
            raise InvalidInput(f"the Redis URL is {shown(redis_url)}; give redis://HOST:PORT")
        if not isinstance(stream, str) or not stream:
            raise InvalidInput(f"the stream is {shown(stream)}; give its name")
        utf8(stream, f"the stream {stream!r}")
        try:
            client = redis.Redis.from_url(
                redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as e:  # redis-py's word for a URL it cannot read
            raise InvalidInput(f"`{redis_url}` is not a Redis URL: {e}") from None

        def send(commits: list[Mapping[str, Any]]) -> None:
            # One round trip for the batch; redis-py's pool keeps the
            # connection alive between publishes.
            pipe = client.pipeline(transaction=False)
            for commit in commits:
                pipe.xadd(stream, {"commit": dumps(commit)})
            pipe.execute()

        return cls(send, f"{redis_url} stream {stream}", client.close)

    def publish(self, commit: Mapping[str, Any]) -> None:
        """Hands over one commit."""
        check_commit(commit)
        self._send([commit])

    def publish_many(self, commits: Iterable[Mapping[str, Any]]) -> None:
        """Hands over commits, in order, in one request (or one pipeline)."""
        commits = list(commits)
        for i, commit in enumerate(commits):
            check_commit(commit, f"commit [{i}]")
        if commits:
            self._send(commits)

    def send_checked(self, commits: list[Mapping[str, Any]]) -> None:
        """Hands over commits already checked with `check_commit`, in one
        request; for `BackgroundPublisher`, which checks each one when it is
        queued, where a mistake can still be raised to its author."""
        if commits:
            self._send(commits)

    def close(self) -> None:
        """Closes the connections kept open; a later publish opens new ones."""
        if self._close is not None:
            self._close()


class _HttpSender:
    """Posts commits to `/v1/commits`, reusing kept-alive connections."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        if not isinstance(url, str):
            raise InvalidInput(f"the URL is {shown(url)}; give http://HOST:PORT")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"`{url}` is not an http:// or https:// URL")
        try:
            port = parts.port
        except ValueError as e:
            raise InvalidInput(f"`{url}` has a bad port: {e}") from None
        if token is not None and not isinstance(token, str):
            raise InvalidInput(f"the token must be text, not {type(token).__name__}")
        if token is not None and not (token.isascii() and token.isprintable()):
            # A header's value: http.client would refuse it at the first
            # publish (a line break could forge another header).
            raise InvalidInput("the token holds characters a header cannot carry; give ASCII")
        _check_timeout(timeout)
        self._path = parts.path.rstrip("/") + "/v1/commits"
        self.endpoint = f"{parts.scheme}://{parts.netloc}{self._path}"
        self._host = parts.hostname
        self._port = port
        self._https = parts.scheme == "https"
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        _SENDERS.add(self)

    def _new(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self._timeout)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (and True), or a new one (and False)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def __call__(self, commits: list[Mapping[str, Any]]) -> None:
        body = dumps(commits if len(commits) != 1 else commits[0]).encode()
        while True:
            connection, reused = self._take()
            try:
                connection.request("POST", self._path, body, self._headers)
                answer = connection.getresponse()
                text = answer.read()
            except _STALE as e:
                connection.close()
                if reused:
                    # Closed by the server while idle (or by a proxy): try
                    # the next idle one, or a new connection. A commit sent
                    # twice only invalidates twice.
                    continue
                raise InvalidatorError(f"cannot reach `{self.endpoint}`: {e}") from e
            except (OSError, http.client.HTTPException) as e:
                connection.close()
                raise InvalidatorError(f"cannot reach `{self.endpoint}`: {e!r}") from e
            if answer.will_close:
                connection.close()
            else:
                self._give_back(connection)
            if answer.status >= 300:
                raise _server_error(answer.status, answer.reason, text)
            return

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's sockets are the parent's, and its
        lock may have been held by a thread that does not exist here."""
        self._lock = threading.Lock()
        self._idle = []


_SENDERS: weakref.WeakSet[_HttpSender] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sender in list(_SENDERS):
        sender.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_timeout(timeout: Any) -> None:
    """A publisher's timeout: a positive, finite number of seconds (a bool
    is not one; socket timeouts refuse infinity, and `"30" > 0` would be a
    `TypeError`)."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise InvalidInput(f"the timeout is {shown(timeout)}; give a number of seconds")
    if not 0 < timeout < math.inf:
        raise InvalidInput(
            f"the timeout is {shown(timeout, False)}; give a positive, finite number of seconds"
        )


def _server_error(status: int, reason: str, body: bytes) -> ServerError:
    """The server's `{"error": {"code", "message"}}` answer as an exception."""
    text = body.decode("utf-8", "replace")
    try:
        error = json.loads(text)["error"]
        return ServerError(status, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ServerError(status, "http_error", text or reason)
