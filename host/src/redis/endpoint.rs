//! [`Endpoint`]: where Redis is, parsed from a URL.
//!
//! `redis://[user:password@]host:port[/db]` is one node. A cluster is
//! `redis+cluster://[user:password@]host:port[,host:port...]`: one or more
//! seed nodes, from which the client discovers the rest. `redis://` and
//! `rediss://` are the forms every Redis client knows; the `+cluster` scheme
//! is ours, because a URL alone cannot tell a cluster from a single node.

use std::fmt;

use super::RedisError;

/// A Redis deployment: one node, or the seed nodes of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// One Redis server, as a `redis://` URL.
    Single(String),
    /// A Redis Cluster, as one `redis://` URL per seed node.
    Cluster(Vec<String>),
}

const CLUSTER_SCHEME: &str = "redis+cluster://";

impl Endpoint {
    /// Parses a `redis://` or `redis+cluster://` URL.
    pub fn parse(url: &str) -> Result<Self, RedisError> {
        let bad = |reason: &str| RedisError::Url {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let endpoint = if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), rest),
            };
            // A path (database number) makes no sense for a cluster, which
            // has only database 0.
            let hosts = hosts.trim_end_matches('/');
            if hosts.contains('/') {
                return Err(bad("a cluster has no database number; remove the path"));
            }
            let nodes: Vec<String> = hosts
                .split(',')
                .map(|h| h.trim())
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{auth}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(bad("name at least one node, as `host:port`"));
            }
            Endpoint::Cluster(nodes)
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            Endpoint::Single(url.to_owned())
        } else {
            return Err(bad(
                "expected `redis://host:port` or `redis+cluster://host:port[,host:port...]`",
            ));
        };
        for node in endpoint.nodes() {
            redis::Client::open(node.as_str()).map_err(|e| bad(&e.to_string()))?;
        }
        Ok(endpoint)
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Endpoint::Cluster(_))
    }

    /// The node URLs: one for a single node, the seeds for a cluster.
    pub fn nodes(&self) -> &[String] {
        match self {
            Endpoint::Single(url) => std::slice::from_ref(url),
            Endpoint::Cluster(nodes) => nodes,
        }
    }
}

/// Shown without passwords, so that an endpoint can be logged.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Single(url) => f.write_str(&redact(url)),
            Endpoint::Cluster(nodes) => {
                let hosts: Vec<String> = nodes
                    .iter()
                    .map(|n| redact(n).trim_start_matches("redis://").to_owned())
                    .collect();
                write!(f, "{CLUSTER_SCHEME}{}", hosts.join(","))
            }
        }
    }
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((auth, hosts)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}"),
            None => format!("{scheme}://***@{hosts}"),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_urls_pass_through() {
        let e = Endpoint::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(e, Endpoint::Single("redis://127.0.0.1:6380/2".into()));
        assert!(!e.is_cluster());
    }

    #[test]
    fn cluster_urls_list_every_seed_with_the_credentials() {
        let e = Endpoint::parse("redis+cluster://u:pw@a:7000,b:7001/").unwrap();
        assert_eq!(
            e,
            Endpoint::Cluster(vec![
                "redis://u:pw@a:7000".into(),
                "redis://u:pw@b:7001".into()
            ])
        );
        assert_eq!(e.to_string(), "redis+cluster://u:***@a:7000,u:***@b:7001");
    }

    #[test]
    fn bad_urls_are_named_in_the_error() {
        let err = Endpoint::parse("http://x").unwrap_err().to_string();
        assert!(err.contains("`http://x`"), "{err}");
        let err = Endpoint::parse("redis+cluster://").unwrap_err().to_string();
        assert!(err.contains("at least one node"), "{err}");
        let err = Endpoint::parse("redis+cluster://a:1/3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("database"), "{err}");
    }

    #[test]
    fn passwords_never_reach_the_display() {
        let e = Endpoint::parse("redis://:secret@h:1").unwrap();
        assert!(!e.to_string().contains("secret"));
    }
}
