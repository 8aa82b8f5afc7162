//! [`Redis`]: one handle on a Redis deployment, single node or cluster,
//! that reconnects by itself.
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

use super::{Endpoint, RedisError};

/// Timeouts for talking to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisConfig {
    /// How long to wait for a connection. Default 1 s.
    pub connect_timeout: Duration,
    /// How long to wait for an answer: a slower Redis counts as failed and
    /// the work is retried. Default 2 s.
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
        }
    }
}

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
/// node) or one cluster connection (which keeps one per node and routes
/// each key to its slot).
pub struct Redis {
    endpoint: Endpoint,
    config: RedisConfig,
    conn: Mutex<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Redis {
    /// A handle on `endpoint`. Nothing is connected until the first command.
    pub fn new(endpoint: Endpoint, config: RedisConfig) -> Self {
        Self {
            endpoint,
            config,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// A handle on the deployment at `url` (see [`Endpoint::parse`]).
    pub fn open(url: &str, config: RedisConfig) -> Result<Self, RedisError> {
        Ok(Self::new(Endpoint::parse(url)?, config))
    }

    /// Where this handle points.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
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
        let conn = self.connect().await.map_err(|e| self.error(e))?;
        *self.conn.lock().expect("connection lock") = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Conn, redis::RedisError> {
        let RedisConfig {
            connect_timeout,
            response_timeout,
        } = self.config;
        match &self.endpoint {
            Endpoint::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Conn::Single(conn))
            }
            Endpoint::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    // Our own retry loop, with backoff, sits above this one;
                    // the client's retries only ride out a slot moving.
                    .retries(2)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
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
        let result = match self.conn().await? {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        };
        result.map_err(|e| self.error(e))
    }

    /// Runs a script; in a cluster, on the node owning its first key (so
    /// every key it names must share one slot).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        let result = match self.conn().await? {
            Conn::Single(mut c) => script.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => script.invoke_async(&mut c).await,
        };
        result.map_err(|e| self.error(e))
    }

    /// Runs one command on one node: how `SCAN` reaches every primary.
    pub async fn query_node<T: FromRedisValue>(
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

    /// The servers that hold data: the node itself, or every cluster
    /// primary that owns slots.
    pub async fn primaries(&self) -> Result<Vec<Node>, RedisError> {
        let Endpoint::Cluster(_) = &self.endpoint else {
            let info = redis::Client::open(self.endpoint.nodes()[0].as_str())
                .map_err(|e| self.error(e))?
                .get_connection_info()
                .addr()
                .to_string();
            let (host, port) = info.rsplit_once(':').unwrap_or((info.as_str(), "6379"));
            return Ok(vec![Node {
                host: host.to_owned(),
                port: port.parse().unwrap_or(6379),
                slot: None,
            }]);
        };
        let text: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        let nodes = parse_cluster_nodes(&text).map_err(|reason| self.protocol_error(reason))?;
        if nodes.is_empty() {
            return Err(self.protocol_error("CLUSTER NODES lists no primary that owns slots"));
        }
        Ok(nodes)
    }

    /// Deletes `keys` with `UNLINK` (the memory is freed off Redis's main
    /// thread), in pipelined chunks; in a cluster each key goes to its slot.
    /// Returns how many keys existed.
    pub async fn unlink<K: ToRedisArgs + Sync>(&self, keys: &[K]) -> Result<u64, RedisError> {
        let mut deleted = 0;
        match self.conn().await? {
            Conn::Single(mut c) => {
                for group in keys.chunks(UNLINK_CHUNK * UNLINK_IN_FLIGHT) {
                    let mut pipe = redis::pipe();
                    for chunk in group.chunks(UNLINK_CHUNK) {
                        pipe.cmd("UNLINK").arg(chunk);
                    }
                    let counts: Vec<u64> =
                        pipe.query_async(&mut c).await.map_err(|e| self.error(e))?;
                    deleted += counts.iter().sum::<u64>();
                }
            }
            Conn::Cluster(c) => {
                // The cluster client splits a multi-key UNLINK by slot and
                // sums the answers; sending chunks together pipelines them
                // on each node's connection.
                for group in keys.chunks(UNLINK_CHUNK * UNLINK_IN_FLIGHT) {
                    let calls = group.chunks(UNLINK_CHUNK).map(|chunk| {
                        let mut c = c.clone();
                        async move {
                            redis::cmd("UNLINK")
                                .arg(chunk)
                                .query_async::<u64>(&mut c)
                                .await
                        }
                    });
                    for count in futures::future::join_all(calls).await {
                        deleted += count.map_err(|e| self.error(e))?;
                    }
                }
            }
        }
        Ok(deleted)
    }
}

/// The primaries that own slots, from the text of `CLUSTER NODES`:
/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch>
/// <link> <slot>...`. A primary that owns slots but is failing (or
/// suspected to be) is an error: sweeping without it would skip its keys,
/// so the caller retries until the cluster has settled.
fn parse_cluster_nodes(text: &str) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 {
            continue; // no slots
        }
        let flags = fields[2];
        if !flags.split(',').any(|f| f == "master") {
            continue;
        }
        // The first slot it owns: `0-5460`, `5461`; skip `[slot->-id]`
        // markers of slots being migrated.
        let Some(slot) = fields[8..]
            .iter()
            .filter(|f| !f.starts_with('['))
            .find_map(|f| f.split('-').next()?.parse::<u16>().ok())
        else {
            continue;
        };
        if flags.split(',').any(|f| f == "fail" || f == "fail?") {
            return Err(format!(
                "primary `{}` owns slots but is marked `{flags}`; retrying until the cluster settles",
                fields[1]
            ));
        }
        let addr = fields[1].split(['@', ',']).next().unwrap_or_default();
        if let Some((host, port)) = addr.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            nodes.push(Node {
                host: host.to_owned(),
                port,
                slot: Some(slot),
            });
        }
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_yields_primaries_with_slots() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 1 2 connected [5460->-a1] 5461-10922
c3 127.0.0.1:7003@17003 slave b2 0 1 2 connected
d4 127.0.0.1:7004@17004 master - 0 1 4 connected
e5 127.0.0.1:7002@17002 master,fail - 0 1 3 connected
";
        let nodes = parse_cluster_nodes(text).unwrap();
        let names: Vec<String> = nodes.iter().map(Node::to_string).collect();
        assert_eq!(names, ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert_eq!(nodes[1].slot, Some(5461));
    }

    #[test]
    fn a_failing_primary_that_owns_slots_is_an_error() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8000
e5 127.0.0.1:7002@17002 master,fail? - 0 1 3 connected 8001-16383
";
        let err = parse_cluster_nodes(text).unwrap_err();
        assert!(err.contains("`127.0.0.1:7002@17002`"), "{err}");
    }
}
