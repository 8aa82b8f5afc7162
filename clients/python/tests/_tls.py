"""Throwaway TLS material, made with the `openssl` command: a certificate
authority, a server certificate for 127.0.0.1 and localhost that it signed,
and a client certificate; and TLS-only `redis-server` processes (a single
node, a cluster) that require clients to present a certificate. A missing
`openssl` is a failure with a clear message, never a skip."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RedisNode, binary, free_port


def openssl(command: str, *args: str, cwd: Path) -> None:
    """Runs `openssl` with the words of `command`, then `args`, in `cwd`."""
    path = binary("openssl", "OPENSSL", "install it (Debian: apt-get install openssl)")
    run = subprocess.run([path, *command.split(), *args], cwd=cwd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"openssl {command} {args} failed:\n{run.stdout}{run.stderr}")


def new_key(name: str, folder: Path) -> None:
    """An EC P-256 key, `NAME.key`: quicker to make than RSA."""
    openssl(f"genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {name}.key", cwd=folder)


def new_ca(name: str, folder: Path) -> Path:
    """A self-signed authority, `NAME.crt` and `NAME.key`; its certificate."""
    new_key(name, folder)
    subject = f"/CN=invalidator test {name}"
    openssl(f"req -x509 -new -key {name}.key -out {name}.crt -days 2 -subj", subject, cwd=folder)
    return folder / f"{name}.crt"


def signed(name: str, ca: str, folder: Path, san: str | None) -> None:
    """`NAME.crt` and `NAME.key`, signed by the authority `CA`, with the
    subject alternative names `san`. No extended key usage: the server's
    certificate is also what a replica or a sentinel presents to a server."""
    new_key(name, folder)
    subject = f"/CN=invalidator test {name}"
    openssl(f"req -new -key {name}.key -out {name}.csr -subj", subject, cwd=folder)
    extensions = []
    if san:
        (folder / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extensions = ["-extfile", f"{name}.ext"]
    openssl(
        f"x509 -req -in {name}.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial "
        f"-out {name}.crt -days 2",
        *extensions,
        cwd=folder,
    )


@dataclass(frozen=True)
class Certs:
    """A CA, a server certificate and a client certificate, in `folder`."""

    folder: Path

    @classmethod
    def make(cls, folder: Path) -> Certs:
        new_ca("ca", folder)
        signed("server", "ca", folder, "IP:127.0.0.1,DNS:localhost")
        signed("client", "ca", folder, None)
        return cls(folder)

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    def server_args(self) -> list[str]:
        """`redis-server`'s TLS options: this certificate, clients must
        present one signed by the CA, replication over TLS too."""
        return [
            "--tls-cert-file",
            str(self.folder / "server.crt"),
            "--tls-key-file",
            str(self.folder / "server.key"),
            "--tls-ca-cert-file",
            str(self.ca),
            "--tls-auth-clients",
            "yes",
            "--tls-replication",
            "yes",
        ]

    def options(self) -> dict[str, str]:
        """redis-py's (and so `Cache.from_url`'s) TLS options with the
        client certificate."""
        return {
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.folder / "client.crt"),
            "ssl_keyfile": str(self.folder / "client.key"),
        }

    def cli_args(self) -> list[str]:
        """`redis-cli`'s."""
        return [
            "--tls",
            "--cacert",
            str(self.ca),
            "--cert",
            str(self.folder / "client.crt"),
            "--key",
            str(self.folder / "client.key"),
        ]


def tls_node(certs: Certs, extra: list[str] | None = None) -> RedisNode:
    """A `redis-server` that listens on a TLS port only (`node.port`)."""
    port = free_port()
    tls = ["--port", "0", "--tls-port", str(port), *certs.server_args()]
    return RedisNode([*tls, *(extra or [])], port=port)


def tls_cluster(certs: Certs) -> list[RedisNode]:
    """A cluster of three primaries over TLS, its bus too; ready. Every
    node started is stopped if it does not become one."""
    cluster = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    nodes: list[RedisNode] = []
    try:
        for _ in range(3):
            nodes.append(tls_node(certs, [*cluster, "--tls-cluster", "yes"]))
        cli = binary("redis-cli", "REDIS_CLI", "install it (Debian: apt-get install redis-tools)")
        cli_tls = [cli, *certs.cli_args()]
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        created = subprocess.run(
            [
                *cli_tls,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}"
            )
        deadline = time.monotonic() + 30
        while True:
            info = subprocess.run(
                [*cli_tls, "-p", str(nodes[0].port), "cluster", "info"],
                capture_output=True,
                text=True,
            ).stdout
            if "cluster_state:ok" in info:
                return nodes
            if time.monotonic() > deadline:
                pytest.fail(f"the TLS cluster never became ready:\n{info}")
            time.sleep(0.05)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
