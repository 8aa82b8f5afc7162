"""`Publisher`: hands commits to `invalidator serve`, over its HTTP API or
through a Redis stream it consumes. Every commit is checked before
anything is sent (`check_commit`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from .commit import check_commit
from .errors import InvalidatorError, ServerError


class Publisher:
    """Where commits go; make one with `Publisher.http` or `Publisher.stream`."""

    def __init__(self, send: Any, describe: str) -> None:
        self._send = send
        self._describe = describe

    def __repr__(self) -> str:
        return f"Publisher({self._describe})"

    @classmethod
    def http(cls, url: str, token: str | None = None, timeout: float = 30.0) -> Publisher:
        """Posts to `serve`'s HTTP API at `url` (`http://127.0.0.1:8080`), with
        the bearer `token` its mutating endpoints require when it has one."""
        endpoint = url.rstrip("/") + "/v1/commits"

        def send(commits: list[Mapping[str, Any]]) -> None:
            body = json.dumps(commits if len(commits) != 1 else commits[0]).encode()
            request = urllib.request.Request(endpoint, data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            if token is not None:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as answer:
                    answer.read()
            except urllib.error.HTTPError as e:
                raise _server_error(e) from None
            except (urllib.error.URLError, OSError) as e:
                raise InvalidatorError(f"cannot reach `{endpoint}`: {e}") from e

        return cls(send, endpoint)

    @classmethod
    def stream(cls, redis_url: str, stream: str = "commits") -> Publisher:
        """Adds each commit to the Redis stream `stream` (field `commit`), which
        `serve --stream` consumes."""
        client = redis.Redis.from_url(redis_url)

        def send(commits: list[Mapping[str, Any]]) -> None:
            pipe = client.pipeline(transaction=False)
            for commit in commits:
                pipe.xadd(stream, {"commit": json.dumps(commit)})
            pipe.execute()

        return cls(send, f"{redis_url} stream {stream}")

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


def _server_error(e: urllib.error.HTTPError) -> ServerError:
    """The server's `{"error": {"code", "message"}}` answer as an exception."""
    text = e.read().decode("utf-8", "replace")
    try:
        error = json.loads(text)["error"]
        return ServerError(e.code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ServerError(e.code, "http_error", text or str(e.reason))
