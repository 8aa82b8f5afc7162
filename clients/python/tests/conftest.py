"""Real servers for the tests, each on free ports, started by the tests
themselves and stopped when done: `redis-server` (a single node, and a
local three-primary cluster) and `invalidator serve`. A missing binary is a
failure with a clear message, never a skip."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A port free on 127.0.0.1 whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55000:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def binary(name: str, env: str, hint: str) -> str:
    path = os.environ.get(env) or shutil.which(name)
    if not path:
        pytest.fail(f"`{name}` not found: {hint} (or set ${env})", pytrace=False)
    return path


class RedisNode:
    """One `redis-server` process in a folder of its own.

    `port`: where it listens (a free port by default; `extra` may move it
    to a TLS port, `--port 0 --tls-port PORT`). `config`: the text of a
    configuration file, written to the folder (where the server may rewrite
    it) and given first, with `--sentinel` when `sentinel`."""

    def __init__(
        self,
        extra: list[str] | None = None,
        port: int | None = None,
        config: str | None = None,
        sentinel: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"invalidator-py-redis-{self.port}-"))
        server = binary(
            "redis-server", "REDIS_SERVER", "install it (Debian: apt-get install redis-server)"
        )
        args = [server]
        if config is not None:
            (self.dir / "redis.conf").write_text(config)
            args.append(str(self.dir / "redis.conf"))
            if sentinel:
                args.append("--sentinel")
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--save", "", "--appendonly", "no", "--logfile", "redis.log", *(extra or [])]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server not ready:\n{self.log()}") from None
                time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return (self.dir / "redis.log").read_text()
        except OSError:
            return ""

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_node() -> Iterator[RedisNode]:
    node = RedisNode()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[str]:
    """A local cluster of three primaries; yields its `redis+cluster://` URL."""
    nodes = [
        RedisNode(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
        for _ in range(3)
    ]
    cli = binary("redis-cli", "REDIS_CLI", "install it (Debian: apt-get install redis-tools)")
    addresses = [f"127.0.0.1:{n.port}" for n in nodes]
    subprocess.run(
        [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 30
    while True:
        info = subprocess.run(
            [cli, "-p", str(nodes[0].port), "cluster", "info"], capture_output=True, text=True
        ).stdout
        if "cluster_state:ok" in info:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster never became ready:\n{info}")
        time.sleep(0.05)
    yield f"redis+cluster://127.0.0.1:{nodes[0].port}"
    for n in nodes:
        n.stop()


def invalidator_bin() -> str:
    """The `invalidator` binary: `$INVALIDATOR_BIN`, else the debug build; a
    missing one fails the test, saying how to build it."""
    path = os.environ.get("INVALIDATOR_BIN") or str(ROOT / "target/debug/invalidator")
    if not Path(path).is_file():
        pytest.fail(
            f"no `invalidator` binary at {path}: build it (`cargo build -p invalidator`, "
            "which `cargo xtask test` does) or set $INVALIDATOR_BIN",
            pytrace=False,
        )
    return path


class Serve:
    """An `invalidator serve` process with the example rules, listening."""

    def __init__(
        self,
        redis_url: str,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        rules: Path | None = None,
    ) -> None:
        """`rules`: the rules folder, by default `$INVALIDATOR_RULES` or
        `target/rules`."""
        bin_path = invalidator_bin()
        if rules is None:
            rules = Path(os.environ.get("INVALIDATOR_RULES") or ROOT / "target/rules")
        if not any(rules.glob("*.wasm")):
            pytest.fail(
                f"no rule components in {rules}: run `cargo xtask build-rules` (which "
                "`cargo xtask test` does) or set $INVALIDATOR_RULES",
                pytrace=False,
            )
        args = [bin_path, "serve", "--rules", str(rules), "--redis", redis_url]
        args += ["--listen", "127.0.0.1:0", *(extra or [])]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stderr is not None
        # What it logged before listening stays in the log, and says why when
        # it exits instead.
        self.log: list[str] = []
        for line in self.process.stderr:
            if line.startswith("listening on "):
                self.url = line.removeprefix("listening on ").strip()
                break
            self.log.append(line)
        else:
            raise RuntimeError("`invalidator serve` exited before listening:\n" + "".join(self.log))
        # Keep reading its log, so that a full pipe never blocks it.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(redis_node: RedisNode) -> Iterator[Serve]:
    service = Serve(redis_node.url)
    yield service
    service.stop()


def wait_until(what: str, done: object, within: float = 30.0) -> None:
    """Polls the callable `done` until it returns true, or fails naming `what`."""
    deadline = time.monotonic() + within
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


class PostgresCluster:
    """A throwaway Postgres cluster (`initdb`, then `postgres` on a free port,
    `wal_level = logical`), run as the `postgres` user under root since
    `initdb` refuses root."""

    def __init__(self) -> None:
        bindir = os.environ.get("PG_BINDIR")
        if not bindir:
            config = shutil.which("pg_config")
            if not config:
                pytest.fail(
                    "`pg_config` not found: install Postgres (Debian: apt-get install "
                    "postgresql libpq-dev, which .ci/run does) or set $PG_BINDIR",
                    pytrace=False,
                )
            bindir = subprocess.run([config, "--bindir"], capture_output=True, text=True).stdout
        self.bindir = Path(bindir.strip())
        self.user = "postgres" if os.geteuid() == 0 else None
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"invalidator-py-pg-{self.port}-"))
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        self._run(
            "initdb", "-D", "data", "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"
        )
        log = open(self.dir / "postgres.log", "ab")  # closed in stop()
        self._log = log
        settings = [
            f"port={self.port}",
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={self.dir}",
            "wal_level=logical",
            "fsync=off",
        ]
        args = [str(self.bindir / "postgres"), "-D", "data"]
        for s in settings:
            args += ["-c", s]
        self.process = subprocess.Popen(
            args, cwd=self.dir, user=self.user, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.log()}")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready:\n{self.log()}")
            time.sleep(0.05)

    def _run(self, name: str, *args: str) -> None:
        out = subprocess.run(
            [str(self.bindir / name), *args], cwd=self.dir, user=self.user, capture_output=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"{name} failed: {out.stdout!r} {out.stderr!r}")

    def url(self, db: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{db}"

    def log(self) -> str:
        return (self.dir / "postgres.log").read_text(errors="replace")

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT: fast shutdown
        self.process.wait(timeout=60)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


class ServeAt(Serve):
    """`Serve` on a fixed port (`Serve` takes a free one), so that a test can
    start it where a client already keeps trying, as after an outage."""

    def __init__(self, redis_url: str, port: int) -> None:
        rules = Path(os.environ.get("INVALIDATOR_RULES") or ROOT / "target/rules")
        args = [invalidator_bin(), "serve", "--rules", str(rules), "--redis", redis_url]
        args += ["--listen", f"127.0.0.1:{port}"]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.log: list[str] = []
        for line in self.process.stderr:
            if line.startswith("listening on "):
                self.url = line.removeprefix("listening on ").strip()
                break
            self.log.append(line)
        else:
            raise RuntimeError("`invalidator serve` exited before listening:\n" + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()


class StalledPort:
    """A port where connections are taken (by the kernel) and never
    answered, as by a `serve` that hangs; `release()` resets them and frees
    the port, for a `ServeAt` to start there."""

    def __init__(self) -> None:
        self.port = free_port()
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", self.port))
        self.socket.listen(64)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def release(self) -> None:
        self.socket.close()
