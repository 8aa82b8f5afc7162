"""The Redis URLs `Cache.from_url` takes, the forms `invalidator serve`
takes, checked and taken apart before anything is sent:

- `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`: one node; `rediss://...`
  the same over TLS;
- `unix://PATH[?db=DB]`: one node on a Unix socket;
- `redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]`: a
  cluster, from one or more of its nodes; `rediss+cluster://...` the same,
  every node over TLS;
- `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]`:
  the primary the sentinels at `HOST:PORT...` name `MASTER`, the credentials
  the primary's; the sentinels' own, if they need some, go in the query as
  `sentinel_username` and `sentinel_password`. `rediss+sentinel://...` the
  same, over TLS to the sentinels and to the primary.

A port left out is 6379 (26379 for a sentinel); an IPv6 address is written
in brackets, `[::1]:6379`. Any other query parameter goes to redis-py as its
own URLs' do (`?socket_timeout=0.5`). Credentials, and the query, never
reach a message: `redact` leaves them out; a `/`, `?` or `#` in them must
be percent-encoded.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import redis.connection

from .errors import InvalidInput

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

#: The query parameters of a Sentinel URL that are ours, not redis-py's:
#: the sentinels' own credentials.
SENTINEL_QUERY = ("sentinel_username", "sentinel_password")

#: Each scheme: what it reaches, and whether over TLS.
_SCHEMES: dict[str, tuple[str, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("unix", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}

#: What a Redis URL looks like, for messages.
GRAMMAR = (
    "redis://[[USER]:PASSWORD@]HOST:PORT[/DB], rediss://... (TLS), unix://PATH, "
    "redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...], rediss+cluster://..., "
    "redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"
    "[?sentinel_username=...&sentinel_password=...] or rediss+sentinel://..."
)

_SENTINEL_FORM = "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"


@dataclass(frozen=True)
class RedisUrl:
    """A Redis URL taken apart (see the module documentation)."""

    #: "single", "unix", "cluster" or "sentinel".
    kind: str
    #: Whether every connection is made over TLS.
    tls: bool
    #: The URL without its credentials or query, to name in messages.
    name: str
    #: The nodes named: the one node, a cluster's seeds, the sentinels
    #: (none for `unix://`).
    nodes: tuple[tuple[str, int], ...]
    #: A `redis://` (or `rediss://`) URL of the first node with the
    #: credentials, database and query (less `SENTINEL_QUERY`), for
    #: redis-py; for `redis://`, `rediss://` and `unix://`, the URL itself.
    node_url: str
    #: What redis-py makes of `node_url`, less the host, port and
    #: connection class: the credentials, database and query options.
    node_options: dict[str, Any] = field(default_factory=dict)
    #: The master's name, of a Sentinel URL.
    master: str | None = None
    #: The sentinels' own credentials, of a Sentinel URL.
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def redact(url: str) -> str:
    """`url` without its credentials or query, to name in logs and errors.

    The credentials end at the last `@` before the query, so that a `/` in
    a password that should have been percent-encoded still hides it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest = rest.partition("#")[0].partition("?")[0]
    rest = rest.rpartition("@")[2]
    return f"{scheme}://{rest}" if sep else rest


def parse(url: str) -> RedisUrl:
    """`url` taken apart, or `InvalidInput` naming it (credentials left
    out) and what is wrong: an unknown scheme, no host, a port that is not
    one, a database that is not a number, a Sentinel URL without a master
    name, a cluster URL with a database."""
    name = redact(url)

    def bad(reason: str) -> InvalidInput:
        return InvalidInput(f"Redis URL `{name}`: {reason}")

    scheme, sep, rest = url.partition("://")
    kind, tls = _SCHEMES.get(scheme.lower(), ("", False)) if sep else ("", False)
    if not kind:
        raise InvalidInput(f"`{name}` is not a Redis URL: give {GRAMMAR}")
    rest, _, query = rest.partition("#")[0].partition("?")
    kept, sentinel = _query(query, kind, bad)
    if kind == "unix":
        return RedisUrl(kind, False, name, (), url, _redis_options(url, bad))
    authority, _, path = rest.partition("/")
    if "@" in path:
        raise bad("the credentials hold a `/`: percent-encode it (%2F), and `?` and `#` too")
    userinfo, at, hosts = authority.rpartition("@")
    default = DEFAULT_SENTINEL_PORT if kind == "sentinel" else DEFAULT_PORT
    nodes = _nodes(hosts, default, kind, bad)
    db, master = _path(path, kind, bad)
    if kind == "cluster" and any(p.startswith("db=") for p in kept):
        raise bad("a cluster has no database number; remove `db` from the query")
    if kind == "single":
        node_url = url
    else:
        host = next(entry.strip() for entry in hosts.split(",") if entry.strip())
        node_url = f"{'rediss' if tls else 'redis'}://{userinfo}{at}{host}"
        node_url += f"/{db}" if db is not None else ""
        node_url += f"?{'&'.join(kept)}" if kept else ""
    return RedisUrl(
        kind,
        tls,
        name,
        tuple(nodes),
        node_url,
        _redis_options(node_url, bad),
        master,
        sentinel.get("sentinel_username") or None,
        sentinel.get("sentinel_password"),
    )


def _query(query: str, kind: str, bad: Any) -> tuple[list[str], dict[str, str]]:
    """The query's parameters for redis-py, as given, and the sentinels'
    credentials; a `sentinel_` parameter is refused but in a Sentinel URL,
    and there unless it is one of `SENTINEL_QUERY` (a misspelt password
    would be sent to redis-py, which would fail on first use)."""
    kept: list[str] = []
    sentinel: dict[str, str] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        key = urllib.parse.unquote(key)
        if not key.startswith("sentinel_"):
            kept.append(piece)
        elif kind != "sentinel":
            raise bad(
                f"`{key}` is for the sentinels of a redis+sentinel:// URL; this one "
                "names no sentinels"
            )
        elif key not in SENTINEL_QUERY:
            raise bad(
                f"unknown query parameter `{key}`: the sentinels' credentials are "
                f"{' and '.join(SENTINEL_QUERY)}"
            )
        else:
            # Percent-decoded only, as the host does: a `+` is a `+`.
            sentinel[key] = urllib.parse.unquote(value)
    return kept, sentinel


def _nodes(hosts: str, default: int, kind: str, bad: Any) -> list[tuple[str, int]]:
    """The `HOST[:PORT]` entries of `hosts`, comma-separated (one for a
    single node), each checked."""
    entries = [entry.strip() for entry in hosts.split(",")]
    entries = [entry for entry in entries if entry]
    what = {"cluster": "node of the cluster", "sentinel": "sentinel"}.get(kind, "host")
    if not entries:
        raise bad(f"no host: name at least one {what} as HOST:PORT")
    if kind == "single" and len(entries) > 1:
        raise bad(
            "a single node has one host; a cluster is redis+cluster://HOST:PORT,HOST:PORT..., "
            f"a Sentinel deployment {_SENTINEL_FORM}"
        )
    nodes = []
    for entry in entries:
        port_text: str | None
        if entry.startswith("["):
            host, closed, after = entry[1:].partition("]")
            if not closed:
                raise bad(f"`{entry}` opens an IPv6 address with `[` and does not close it")
            if after and not after.startswith(":"):
                raise bad(f"`{entry}`: give [IPV6]:PORT")
            port_text = after[1:] if after else None
        else:
            host, colon, port_text = entry.partition(":")
            if not colon:
                port_text = None
            elif ":" in port_text:
                raise bad(f"`{entry}`: write an IPv6 address in brackets, [IPV6]:PORT")
        host = urllib.parse.unquote(host)
        if not host:
            raise bad(f"no host in `{entry}`: give HOST:PORT")
        if any(c.isspace() or c in "@/?#[]" for c in host):
            raise bad(f"`{host}` is not a host name or address")
        if port_text is None:
            port = default
        elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        else:
            raise bad(f"port `{port_text}` of `{entry}` is not a port number, 1 to 65535")
        nodes.append((host, port))
    return nodes


def _path(path: str, kind: str, bad: Any) -> tuple[str | None, str | None]:
    """The database number (as given) and the master's name in `path`,
    what follows the hosts' `/`."""
    parts = path.rstrip("/").split("/") if path.rstrip("/") else []
    master = None
    if kind == "sentinel":
        if not parts or not parts[0]:
            raise bad(f"no master name: give {_SENTINEL_FORM}")
        master = urllib.parse.unquote(parts.pop(0))
    elif kind == "cluster" and parts:
        raise bad(f"a cluster has no database number; remove the path `/{path}`")
    if len(parts) > 1:
        raise bad(f"`/{path}` is more than {'a master name and ' if master else ''}a database")
    db = parts[0] if parts else None
    if db is not None and not (db.isascii() and db.isdigit()):
        raise bad(f"database `{db}` is not a number")
    return db, master


def _redis_options(node_url: str, bad: Any) -> dict[str, Any]:
    """What redis-py makes of `node_url`, less where it leads; its refusal
    (a query option's value that is not one) as `InvalidInput`."""
    try:
        options = redis.connection.parse_url(node_url)
    except ValueError as e:
        raise bad(str(e)) from None
    for key in ("host", "port", "path", "connection_class"):
        options.pop(key, None)
    return options
