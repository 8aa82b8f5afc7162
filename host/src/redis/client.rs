//! [`Redis`]: one handle on a Redis deployment, single node, cluster or
//! primary found through sentinels, that reconnects by itself, notices a
//! new primary, and waits for replicas when asked to.
//!
//! The handle connects lazily and forgets a connection as soon as it fails
//! at the connection level (refused, dropped, timed out), so the next call
//! connects afresh. Retrying, with backoff, is the caller's decision: the
//! pipeline retries, a one-shot command line tool reports the error.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, ScriptInvocation, ToRedisArgs};

use redis::TlsCertificates;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};

use super::primary::{self, Primaries};
use super::replicas::{Marks, Written};
use super::slot;
use super::{Endpoint, PrimaryChange, RedisConfig, RedisError, SentinelEndpoint, tls};

/// One Redis server of a deployment: a single node, or a cluster primary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    /// Host name or address, as the server reports it.
    pub host: String,
    /// Port.
    pub port: u16,
    /// For a cluster primary, a slot it owns. Commands for the node are
    /// routed by this slot rather than by address, because the address a
    /// node reports may not be the one the client connected to (host
    /// names, NAT).
    pub slot: Option<u16>,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Keys per `UNLINK`: large enough to amortise a round trip, small enough
/// that one command never holds Redis for long.
const UNLINK_CHUNK: usize = 256;
/// `UNLINK` commands sent before waiting for their answers.
const UNLINK_IN_FLIGHT: usize = 32;

#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A Redis deployment, reached through one multiplexed connection (single
/// node, or the primary sentinels name) or one cluster connection (which
/// keeps one per node and routes each key to its slot).
pub struct Redis {
    endpoint: Endpoint,
    config: RedisConfig,
    certificates: Option<TlsCertificates>,
    /// Asks the sentinels for the primary; `None` unless the endpoint is
    /// a sentinel one.
    sentinel: Option<tokio::sync::Mutex<SentinelClient>>,
    conn: Mutex<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
    /// What was deleted since the replicas were last waited for.
    written: Written,
    /// The primaries as last seen, and a change not yet taken.
    primaries: Mutex<Option<Primaries>>,
    change: Mutex<Option<PrimaryChange>>,
}

impl Redis {
    /// A handle on the deployment at `url` (see [`Endpoint::parse`]), with
    /// its TLS files read. Nothing is connected until the first command.
    pub fn open(url: &str, config: RedisConfig) -> Result<Self, RedisError> {
        let endpoint = Endpoint::parse(url)?;
        let certificates = tls::certificates(&config.tls)?;
        let sentinel = match &endpoint {
            Endpoint::Sentinel(s) => Some(tokio::sync::Mutex::new(
                sentinel_client(s, certificates.as_ref()).map_err(|e| RedisError::Url {
                    url: endpoint.to_string(),
                    reason: e.to_string(),
                })?,
            )),
            _ => None,
        };
        Ok(Self {
            endpoint,
            config,
            certificates,
            sentinel,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            written: Written::default(),
            primaries: Mutex::new(None),
            change: Mutex::new(None),
        })
    }

    /// Where this handle points.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How it talks to Redis.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        self.endpoint.is_cluster()
    }

    async fn conn(&self) -> Result<Conn, RedisError> {
        if let Some(c) = self.conn.lock().expect("connection lock").clone() {
            return Ok(c);
        }
        // One connection attempt at a time: concurrent callers wait for it
        // instead of each opening their own.
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.conn.lock().expect("connection lock").clone() {
            return Ok(c);
        }
        let conn = self.connect().await?;
        *self.conn.lock().expect("connection lock") = Some(conn.clone());
        Ok(conn)
    }

    /// A new connection, to a server that is a primary: the one it
    /// reaches is remembered, and a change from the last one noted.
    async fn connect(&self) -> Result<Conn, RedisError> {
        let (conn, node) = match &self.endpoint {
            Endpoint::Single(url) => {
                let client = self.client(url.as_str()).map_err(|e| self.error(e))?;
                (self.single(&client).await?, node_of(&client))
            }
            Endpoint::Cluster(nodes) => {
                let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(self.config.connect_timeout)
                    .response_timeout(self.response_timeout())
                    // Our own retry loop, with backoff, sits above this one;
                    // the client's retries only ride out a slot moving.
                    .retries(2);
                if let Some(certificates) = &self.certificates {
                    builder = builder.certs(certificates.clone());
                }
                let client = builder.build().map_err(|e| self.error(e))?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| self.error(e))?;
                let conn = Conn::Cluster(conn);
                self.observe(&conn, None).await?;
                return Ok(conn);
            }
            Endpoint::Sentinel(_) => {
                let sentinel = self.sentinel.as_ref().expect("a sentinel endpoint has one");
                // The sentinels, then the primary they name (to check its
                // role), each within the connect timeout; bounded as a
                // whole, since a frozen server would otherwise hold it.
                let ask = async { sentinel.lock().await.async_get_client().await };
                let bound = self.config.connect_timeout * 4;
                let client = tokio::time::timeout(bound, ask)
                    .await
                    .unwrap_or_else(|_| {
                        Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "the sentinels did not name a primary in time",
                        )))
                    })
                    .map_err(|e| self.error(e))?;
                (self.single(&client).await?, node_of(&client))
            }
        };
        self.observe(&conn, Some(node)).await?;
        Ok(conn)
    }

    /// A client for one node's URL, with the TLS certificates.
    fn client(&self, url: &str) -> Result<redis::Client, redis::RedisError> {
        match &self.certificates {
            Some(certificates) => redis::Client::build_with_tls(url, certificates.clone()),
            None => redis::Client::open(url),
        }
    }

    async fn single(&self, client: &redis::Client) -> Result<Conn, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.response_timeout()));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Conn::Single(conn))
    }

    /// How long to wait for an answer: long enough for a `WAIT` to time
    /// out by itself, so that a short count is told from a dead server.
    fn response_timeout(&self) -> Duration {
        let wait = self.config.replica_timeout + Duration::from_millis(500);
        if self.config.replicas > 0 {
            self.config.response_timeout.max(wait)
        } else {
            self.config.response_timeout
        }
    }

    /// Reads who the primaries behind `conn` are (`node` is the single
    /// node reached), refuses a server that is no primary, and notes a
    /// change from the last ones seen.
    async fn observe(&self, conn: &Conn, node: Option<Node>) -> Result<Primaries, RedisError> {
        let primaries = match (conn, node) {
            (Conn::Single(c), Some(node)) => {
                let mut c = c.clone();
                // `ROLE` and `INFO` are in the `@dangerous` ACL category,
                // which an application's user often lacks: refused, the
                // role is left to `READONLY` errors to show, and the
                // server is known by its address alone.
                let role: Option<Vec<redis::Value>> =
                    tolerated(redis::cmd("ROLE").query_async(&mut c).await)
                        .map_err(|e| self.error(e))?;
                let role = role.and_then(|r| {
                    r.first()
                        .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                });
                if let Some(role) = role
                    && role != "master"
                {
                    *self.conn.lock().expect("connection lock") = None;
                    return Err(RedisError::NotPrimary {
                        endpoint: self.endpoint.to_string(),
                        node: node.to_string(),
                        role,
                    });
                }
                let info: Option<String> =
                    tolerated(redis::cmd("INFO").arg("server").query_async(&mut c).await)
                        .map_err(|e| self.error(e))?;
                let run_id = match info.as_deref().and_then(primary::run_id) {
                    Some(id) => id,
                    None => {
                        tracing::debug!(node = %node, "no `run_id` (INFO refused): the primary is known by its address");
                        node.to_string()
                    }
                };
                Primaries::single(node, run_id)
            }
            (conn, _) => {
                let text: String = match conn.clone() {
                    Conn::Single(mut c) => {
                        redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await
                    }
                    Conn::Cluster(mut c) => {
                        redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await
                    }
                }
                .map_err(|e| self.error(e))?;
                let owners = primary::parse_cluster_nodes(&text)
                    .map_err(|reason| self.protocol_error(reason))?;
                if owners.is_empty() {
                    return Err(
                        self.protocol_error("CLUSTER NODES lists no primary that owns slots")
                    );
                }
                Primaries::cluster(owners)
            }
        };
        let mut last = self.primaries.lock().expect("primaries lock");
        if let Some(before) = last.as_ref()
            && let Some(change) = primaries.change_from(before)
        {
            tracing::warn!(old = %change.old, new = %change.new, endpoint = %self.endpoint,
                "redis primary changed");
            let mut pending = self.change.lock().expect("change lock");
            // Two changes before the first is taken: one replay serves
            // both, from the oldest primary to the newest.
            *pending = Some(match pending.take() {
                Some(first) => PrimaryChange {
                    old: first.old,
                    new: change.new,
                },
                None => change,
            });
        }
        *last = Some(primaries.clone());
        Ok(primaries)
    }

    /// Looks at who the primaries are now (connecting if need be), so
    /// that a failover is noticed even while nothing is written.
    pub async fn check_primaries(&self) -> Result<(), RedisError> {
        self.bounded("CLUSTER NODES", self.check_primaries_unbounded())
            .await
    }

    async fn check_primaries_unbounded(&self) -> Result<(), RedisError> {
        let conn = self.conn().await?;
        let node = match &conn {
            Conn::Single(_) => self
                .primaries
                .lock()
                .expect("primaries lock")
                .as_ref()
                .and_then(|p| p.nodes().into_iter().next()),
            Conn::Cluster(_) => None,
        };
        if matches!(conn, Conn::Single(_)) && node.is_none() {
            return Ok(());
        }
        self.observe(&conn, node).await.map(drop)
    }

    /// The change of primary noticed since the last call, if any.
    pub fn take_primary_change(&self) -> Option<PrimaryChange> {
        self.change.lock().expect("change lock").take()
    }

    /// Waits for the replicas asked for ([`RedisConfig::replicas`]) to
    /// acknowledge every delete sent since the last wait, on each primary
    /// that received some: `WAIT n timeout`. A short count is
    /// [`RedisError::Unreplicated`], and the deletes stay to be waited
    /// for again.
    pub async fn wait_for_replicas(&self) -> Result<(), RedisError> {
        let wanted = self.config.replicas;
        if wanted == 0 {
            return Ok(());
        }
        let marks = self.written.take();
        if !marks.any {
            return Ok(());
        }
        let result = self.bounded("WAIT", self.wait_marks(&marks, wanted)).await;
        if result.is_err() {
            self.written.restore(&marks);
        }
        result
    }

    async fn wait_marks(&self, marks: &Marks, wanted: u32) -> Result<(), RedisError> {
        let timeout_ms = self.config.replica_timeout.as_millis() as u64;
        let mut wait = redis::cmd("WAIT");
        wait.arg(wanted).arg(timeout_ms);
        let short = |node: String, acked: u64| RedisError::Unreplicated {
            endpoint: self.endpoint.to_string(),
            node,
            acked,
            wanted,
            timeout_ms,
        };
        match self.conn().await? {
            Conn::Single(mut c) => {
                let acked: u64 = wait.query_async(&mut c).await.map_err(|e| self.error(e))?;
                if acked < u64::from(wanted) {
                    let node = self
                        .primaries
                        .lock()
                        .expect("primaries lock")
                        .as_ref()
                        .and_then(|p| p.nodes().into_iter().next())
                        .map_or_else(|| self.endpoint.to_string(), |n| n.to_string());
                    return Err(short(node, acked));
                }
                Ok(())
            }
            Conn::Cluster(c) => {
                let known = self.primaries.lock().expect("primaries lock").clone();
                let primaries = match known {
                    Some(p) => p,
                    None => {
                        self.primaries().await?;
                        self.primaries
                            .lock()
                            .expect("primaries lock")
                            .clone()
                            .ok_or_else(|| {
                                self.protocol_error("the cluster's primaries are unknown")
                            })?
                    }
                };
                // One `WAIT` per primary written to, sent to the address
                // that our own view of the cluster (`CLUSTER NODES`) names
                // as the owner of the slots written, not routed by slot
                // through the client's map: while the client repairs its
                // map after a failover, a command routed by slot can land
                // on another node (seen with redis-rs 1.8), whose replicas
                // say nothing of the owner's. Sent by address, it asks the
                // owner itself; an owner our view still names but that is
                // gone fails the batch, which is applied again.
                let mut by_node: Vec<Node> = Vec::new();
                for slot in marks.slots() {
                    let node = primaries
                        .owner(slot)
                        .map(|o| o.node.clone())
                        .ok_or_else(|| {
                            self.protocol_error(format!("no primary owns slot {slot}"))
                        })?;
                    if !by_node.contains(&node) {
                        by_node.push(node);
                    }
                }
                let waits = by_node.into_iter().map(|node| {
                    let mut c = c.clone();
                    let wait = wait.clone();
                    async move {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: node.host.clone(),
                            port: node.port,
                        });
                        let value = c.route_command(wait, routing).await?;
                        let acked: u64 = redis::from_redis_value(value)?;
                        Ok::<_, redis::RedisError>((node, acked))
                    }
                });
                for result in futures::future::join_all(waits).await {
                    let (node, acked) = result.map_err(|e| self.error(e))?;
                    if acked < u64::from(wanted) {
                        return Err(short(node.to_string(), acked));
                    }
                }
                Ok(())
            }
        }
    }

    /// How long any one call on the handle may take, whatever the client
    /// library does meanwhile (its own timeouts, a cluster client repairing
    /// its slot map in the background): three answers and two connection
    /// attempts.
    fn call_bound(&self) -> std::time::Duration {
        self.response_timeout() * 3 + self.config.connect_timeout * 2
    }

    /// Runs `call` within [`call_bound`](Self::call_bound). A call that
    /// outlives it fails as timed out, and the connection is forgotten, so
    /// that the next call starts afresh: an `await` that never completes
    /// would otherwise hold every invalidation behind it for ever.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        let bound = self.call_bound();
        match tokio::time::timeout(bound, call).await {
            Ok(result) => result,
            Err(_) => {
                *self.conn.lock().expect("connection lock") = None;
                tracing::warn!(endpoint = %self.endpoint, call = what,
                    bound_ms = bound.as_millis() as u64,
                    "a redis call outlived every timeout of the client: dropping the connection");
                Err(RedisError::Redis {
                    endpoint: self.endpoint.to_string(),
                    source: redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("`{what}` had no answer within {} ms", bound.as_millis()),
                    )),
                })
            }
        }
    }

    /// Turns a client error into a [`RedisError`], forgetting the connection
    /// when the error says it is broken.
    pub(crate) fn error(&self, e: redis::RedisError) -> RedisError {
        // READONLY: behind a DNS name or virtual IP, a failover turned the
        // node we are connected to into a replica; a new connection reaches
        // the new primary.
        let read_only = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            || read_only
        {
            *self.conn.lock().expect("connection lock") = None;
        }
        RedisError::Redis {
            endpoint: self.endpoint.to_string(),
            source: e,
        }
    }

    pub(crate) fn protocol_error(&self, reason: impl Into<String>) -> RedisError {
        RedisError::Protocol {
            endpoint: self.endpoint.to_string(),
            reason: reason.into(),
        }
    }

    /// Runs one command; in a cluster, on the node owning its first key.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.bounded("a command", async {
            let result = match self.conn().await? {
                Conn::Single(mut c) => cmd.query_async(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
            };
            result.map_err(|e| self.error(e))
        })
        .await
    }

    /// Notes that `keys` are deleted, for [`wait_for_replicas`]
    /// (only when replicas are waited for: the slots cost a hash each).
    ///
    /// [`wait_for_replicas`]: Self::wait_for_replicas
    fn note_written<K: ToRedisArgs>(&self, conn: &Conn, keys: &[K]) {
        if self.config.replicas == 0 || keys.is_empty() {
            return;
        }
        match conn {
            Conn::Single(_) => self.written.node(),
            Conn::Cluster(_) => {
                let args: Vec<Vec<u8>> = keys.iter().flat_map(ToRedisArgs::to_redis_args).collect();
                self.written.keys(args.iter().map(Vec::as_slice));
            }
        }
    }

    /// Runs a script; in a cluster, on the node owning its first key (so
    /// every key it names must share one slot).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.bounded("a script", async {
            let result = match self.conn().await? {
                Conn::Single(mut c) => {
                    // A script on a single node may delete (a tag's keys):
                    // its writes are waited for with the rest.
                    if self.config.replicas > 0 {
                        self.written.node();
                    }
                    script.invoke_async(&mut c).await
                }
                Conn::Cluster(mut c) => script.invoke_async(&mut c).await,
            };
            result.map_err(|e| self.error(e))
        })
        .await
    }

    /// Runs one command on one node: how `SCAN` reaches every primary.
    pub async fn query_node<T: FromRedisValue>(
        &self,
        node: &Node,
        cmd: Cmd,
    ) -> Result<T, RedisError> {
        self.bounded(
            "a command to one node",
            self.query_node_unbounded(node, cmd),
        )
        .await
    }

    async fn query_node_unbounded<T: FromRedisValue>(
        &self,
        node: &Node,
        cmd: Cmd,
    ) -> Result<T, RedisError> {
        match self.conn().await? {
            Conn::Single(mut c) => cmd.query_async(&mut c).await.map_err(|e| self.error(e)),
            Conn::Cluster(mut c) => {
                let routing = match node.slot {
                    Some(slot) => RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::new(slot, SlotAddr::Master),
                    )),
                    None => RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: node.host.clone(),
                        port: node.port,
                    }),
                };
                let value = c
                    .route_command(cmd, routing)
                    .await
                    .map_err(|e| self.error(e))?;
                redis::from_redis_value(value).map_err(|e| self.error(e.into()))
            }
        }
    }

    /// The servers that hold data: the node itself (the primary, behind
    /// sentinels), or every cluster primary that owns slots.
    pub async fn primaries(&self) -> Result<Vec<Node>, RedisError> {
        self.bounded("CLUSTER NODES", self.primaries_unbounded())
            .await
    }

    async fn primaries_unbounded(&self) -> Result<Vec<Node>, RedisError> {
        let conn = self.conn().await?;
        if let Conn::Cluster(_) = conn {
            return Ok(self.observe(&conn, None).await?.nodes());
        }
        let known = self.primaries.lock().expect("primaries lock").clone();
        Ok(known
            .ok_or_else(|| self.protocol_error("the primary is unknown after connecting"))?
            .nodes())
    }

    /// Deletes `keys` with `UNLINK` (the memory is freed off Redis's main
    /// thread), in pipelined chunks; in a cluster each key goes to its slot.
    /// Returns how many keys existed.
    pub async fn unlink<K: ToRedisArgs + Sync>(&self, keys: &[K]) -> Result<u64, RedisError> {
        let mut deleted = 0;
        let conn = self.bounded("connecting", self.conn()).await?;
        self.note_written(&conn, keys);
        match conn {
            Conn::Single(mut c) => {
                for group in keys.chunks(UNLINK_CHUNK * UNLINK_IN_FLIGHT) {
                    let mut pipe = redis::pipe();
                    for chunk in group.chunks(UNLINK_CHUNK) {
                        pipe.cmd("UNLINK").arg(chunk);
                    }
                    let counts: Vec<u64> = self
                        .bounded("UNLINK", async {
                            pipe.query_async(&mut c).await.map_err(|e| self.error(e))
                        })
                        .await?;
                    deleted += counts.iter().sum::<u64>();
                }
            }
            Conn::Cluster(c) => {
                // One `UNLINK` per slot (and chunk), routed to the slot's
                // primary: never a multi-slot command, whose part for a
                // node the client holds no connection to is silently left
                // out (see `slot`). Sent together, the commands for one
                // node are pipelined on its connection.
                let groups = slot::by_slot(keys);
                let commands: Vec<(u16, &[Vec<u8>])> = groups
                    .iter()
                    .flat_map(|(s, group)| group.chunks(UNLINK_CHUNK).map(move |c| (*s, c)))
                    .collect();
                for window in commands.chunks(UNLINK_CHUNK * UNLINK_IN_FLIGHT) {
                    let calls = window.iter().map(|(s, chunk)| {
                        let mut c = c.clone();
                        let mut unlink = redis::cmd("UNLINK");
                        unlink.arg(*chunk);
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                            Route::new(*s, SlotAddr::Master),
                        ));
                        async move {
                            let value = c.route_command(unlink, route).await?;
                            redis::from_redis_value::<u64>(value).map_err(Into::into)
                        }
                    });
                    let counts = self
                        .bounded("UNLINK", async {
                            Ok(futures::future::join_all(calls).await)
                        })
                        .await?;
                    for count in counts {
                        deleted += count.map_err(|e| self.error(e))?;
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// Unlinks `keys`, one `UNLINK` each, and says which existed: what
    /// the invalidation feed lists as removed. A reply per key costs more
    /// than [`unlink`](Self::unlink)'s one per chunk, so only a caller
    /// that keeps the list asks.
    pub async fn unlink_each<K: ToRedisArgs + Sync>(
        &self,
        keys: &[K],
    ) -> Result<Vec<bool>, RedisError> {
        let mut existed = Vec::with_capacity(keys.len());
        let conn = self.bounded("connecting", self.conn()).await?;
        self.note_written(&conn, keys);
        for group in keys.chunks(UNLINK_CHUNK * UNLINK_IN_FLIGHT) {
            match &conn {
                Conn::Single(c) => {
                    let mut c = c.clone();
                    let mut pipe = redis::pipe();
                    for key in group {
                        pipe.cmd("UNLINK").arg(key);
                    }
                    let counts: Vec<u64> = self
                        .bounded("UNLINK", async {
                            pipe.query_async(&mut c).await.map_err(|e| self.error(e))
                        })
                        .await?;
                    existed.extend(counts.into_iter().map(|n| n > 0));
                }
                Conn::Cluster(c) => {
                    // Each key to its own slot's node; the cluster client
                    // pipelines those sent together on each connection.
                    let calls = group.iter().map(|key| {
                        let mut c = c.clone();
                        async move {
                            redis::cmd("UNLINK")
                                .arg(key)
                                .query_async::<u64>(&mut c)
                                .await
                        }
                    });
                    let counts = self
                        .bounded("UNLINK", async {
                            Ok(futures::future::join_all(calls).await)
                        })
                        .await?;
                    for count in counts {
                        existed.push(count.map_err(|e| self.error(e))? > 0);
                    }
                }
            }
        }
        Ok(existed)
    }
}

/// A command's answer, or `None` when the server refused it with an error
/// of its own (`NOPERM`, an unknown command): only a failure to talk to
/// it is an error.
fn tolerated<T>(answer: redis::RedisResult<T>) -> redis::RedisResult<Option<T>> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The node a single-node client reaches, as `host:port`.
fn node_of(client: &redis::Client) -> Node {
    let addr = client.get_connection_info().addr().to_string();
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "6379"));
    Node {
        host: host.to_owned(),
        port: port.parse().unwrap_or(6379),
        slot: None,
    }
}

/// The client that asks `endpoint`'s sentinels for the primary.
fn sentinel_client(
    endpoint: &SentinelEndpoint,
    certificates: Option<&TlsCertificates>,
) -> Result<SentinelClient, redis::RedisError> {
    let sentinels = endpoint.sentinels.iter().map(|(host, port)| {
        if endpoint.tls {
            redis::ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let mut builder =
        SentinelClientBuilder::new(sentinels, &endpoint.master, SentinelServerType::Master)?
            .set_client_to_redis_db(endpoint.db);
    if let Some(user) = &endpoint.username {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = &endpoint.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(user) = &endpoint.sentinel_username {
        builder = builder.set_client_to_sentinel_username(user);
    }
    if let Some(password) = &endpoint.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if endpoint.tls {
        builder = builder
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        if let Some(certificates) = certificates {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates.clone());
        }
    }
    builder.build()
}
