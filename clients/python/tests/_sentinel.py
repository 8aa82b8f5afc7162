"""A Sentinel deployment for the tests: a primary, one replica and three
sentinels (`redis-server sentinel.conf --sentinel`) watching them as
`mymaster`, quorum 2, a primary considered down after 1 s; in plain TCP,
or over TLS throughout (clients, replication, the sentinels' own links),
and with passwords, the data nodes' and the sentinels' own, if given.
Ready once every sentinel sees the replica and the two other sentinels, so
that a failover can start at once."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import redis
from _tls import Certs
from conftest import RedisNode, free_port

MASTER = "mymaster"


class SentinelGroup:
    def __init__(
        self,
        certs: Certs | None = None,
        password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        self.certs = certs
        self.password = password
        self.sentinel_password = sentinel_password
        self.nodes: list[RedisNode] = []
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        # No delay before a full sync (the default waits 5 s for more replicas).
        password = self.password
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.primary = self._node([*auth, "--repl-diskless-sync-delay", "0"])
        self.replica = self._node([*auth, "--replicaof", "127.0.0.1", str(self.primary.port)])
        self.wait(
            "the replica is in sync with the primary",
            lambda: (
                self.client(self.replica.port).info("replication")["master_link_status"] == "up"
            ),
        )
        ports: list[int] = []
        while len(ports) < 3:
            port = free_port()
            if port not in ports and port not in (self.primary.port, self.replica.port):
                ports.append(port)
        ids = [secrets.token_hex(20) for _ in ports]
        self.sentinels = []
        for port, own in zip(ports, ids, strict=True):
            config = [
                f"port {port}",
                f"sentinel myid {own}",
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2",
                f"sentinel down-after-milliseconds {MASTER} 1000",
                f"sentinel failover-timeout {MASTER} 5000",
            ]
            if self.password:
                config.append(f"sentinel auth-pass {MASTER} {self.password}")
            if self.sentinel_password:
                config.append(f"requirepass {self.sentinel_password}")
                config.append(f"sentinel sentinel-pass {self.sentinel_password}")
            # The other sentinels, known from the start rather than found
            # by their hello messages, every 2 s.
            config += [
                f"sentinel known-sentinel {MASTER} 127.0.0.1 {p} {i}"
                for p, i in zip(ports, ids, strict=True)
                if p != port
            ]
            self.sentinels.append(
                self._node([], port=port, config="\n".join(config) + "\n", sentinel=True)
            )

        def ready() -> bool:
            for s in self.sentinels:
                sentinel = self.client(s.port, sentinel=True)
                replicas = sentinel.sentinel_slaves(MASTER)
                seen = [r for r in replicas if r["port"] == self.replica.port]
                if not seen or seen[0]["is_sdown"] or seen[0]["is_disconnected"]:
                    return False
                if len(sentinel.sentinel_sentinels(MASTER)) < 2:
                    return False
            return True

        self.wait("every sentinel sees the replica and the other sentinels", ready)

    def _node(
        self, extra: list[str], port: int | None = None, config: str | None = None, **kw: Any
    ) -> RedisNode:
        port = port or free_port()
        if self.certs is not None:
            extra = ["--port", "0", "--tls-port", str(port), *self.certs.server_args(), *extra]
        node = RedisNode(extra, port=port, config=config, **kw)
        self.nodes.append(node)
        return node

    def client(self, port: int, sentinel: bool = False) -> redis.Redis:
        """A plain redis-py client of the node (or `sentinel`) at `port`."""
        options: dict[str, Any] = self.certs.options() if self.certs else {}
        if self.certs:
            options["ssl"] = True
        password = self.sentinel_password if sentinel else self.password
        return redis.Redis("127.0.0.1", port, password=password, socket_timeout=2, **options)

    def url(self) -> str:
        """The `redis+sentinel://` (with TLS `rediss+sentinel://`) URL of
        the primary, with the passwords."""
        scheme = "rediss+sentinel" if self.certs else "redis+sentinel"
        auth = f":{self.password}@" if self.password else ""
        sentinels = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"{scheme}://{auth}{sentinels}/{MASTER}{query}"

    def master_port(self) -> int | None:
        """The primary's port, as the first sentinel that answers says."""
        for s in self.sentinels:
            try:
                sentinel = self.client(s.port, sentinel=True)
                address = sentinel.sentinel_get_master_addr_by_name(MASTER)
            except redis.exceptions.ConnectionError:
                continue
            if address:
                return int(address[1])
        return None

    def serves(self, port: int) -> bool:
        """Whether a sentinel gives the node at `port` as the primary, up,
        in `SENTINEL MASTERS`, where redis-py looks for it: during a
        failover `SENTINEL get-master-addr-by-name` names the promoted
        replica a little earlier, while the former primary, down, is still
        the one listed, and redis-py finds no primary."""
        for s in self.sentinels:
            try:
                state = self.client(s.port, sentinel=True).sentinel_masters()[MASTER]
            except redis.exceptions.ConnectionError:
                continue
            if state["port"] == port and not (state["is_sdown"] or state["is_odown"]):
                return True
        return False

    def failover(self) -> None:
        """Has the sentinels hand the primary's role to the replica
        (`SENTINEL FAILOVER`), once the replica has every write the primary
        has taken. Replication is asynchronous, and a write the replica
        lacks is lost in the failover, for good: the old primary, made a
        replica of the new one, resyncs from it. Right after the group is
        ready that is the common case, not a rare one: once a replica has
        loaded the primary's data, the primary streams its writes to it
        only from the replica's next `REPLCONF ACK` (one a second), and
        writes made meanwhile (measured: up to 0.9 s) are not on it."""
        primary = self.client(self.primary.port)
        replica = self.client(self.replica.port)
        written = primary.info("replication")["master_repl_offset"]
        self.wait(
            "the replica has every write of the primary",
            lambda: replica.info("replication")["master_repl_offset"] >= written,
        )
        sentinel = self.client(self.sentinels[0].port, sentinel=True)
        sentinel.execute_command("SENTINEL", "FAILOVER", MASTER)

    @staticmethod
    def wait(what: str, done: Any, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                if done():
                    return
            except redis.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting until {what}")
            time.sleep(0.02)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
