//! [`Endpoint`]: where Redis is, parsed from a URL.
//!
//! - `redis://[[user]:password@]host:port[/db]` is one node;
//!   `rediss://` the same over TLS.
//! - `redis+cluster://[[user]:password@]host:port[,host:port...]` is a
//!   cluster: one or more seed nodes, from which the client discovers the
//!   rest; `rediss+cluster://` the same over TLS, to every node.
//! - `redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/db]`
//!   is the primary that the sentinels at those addresses name `MASTER`.
//!   The credentials are the primary's; the sentinels' own, if they have
//!   any, are the query parameters `sentinel_username` and
//!   `sentinel_password`. `rediss+sentinel://` speaks TLS to the sentinels
//!   and to the primary.
//!
//! `redis://` and `rediss://` are the forms every Redis client knows; the
//! `+cluster` and `+sentinel` schemes are ours (the Python client takes
//! them too), because a URL alone cannot tell a cluster or a sentinel from
//! a single node.

use std::fmt;

use percent_encoding::percent_decode_str;

use super::RedisError;

/// A Redis deployment: one node, the seed nodes of a cluster, or a
/// primary found through sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// One Redis server, as a `redis://` or `rediss://` URL.
    Single(String),
    /// A Redis Cluster, as one `redis://` (or `rediss://`) URL per seed
    /// node.
    Cluster(Vec<String>),
    /// A primary that sentinels name.
    Sentinel(SentinelEndpoint),
}

/// A primary found through Redis Sentinel.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelEndpoint {
    /// The sentinels, as `host:port`.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the primary under.
    pub master: String,
    /// Whether the sentinels and the primary speak TLS.
    pub tls: bool,
    /// The primary's user, if not `default`.
    pub username: Option<String>,
    /// The primary's password.
    pub password: Option<String>,
    /// The sentinels' user.
    pub sentinel_username: Option<String>,
    /// The sentinels' password.
    pub sentinel_password: Option<String>,
    /// The database number on the primary.
    pub db: i64,
}

/// Never shows a password.
impl fmt::Debug for SentinelEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

const SCHEMES: &str = "expected `redis://host:port`, `rediss://host:port`, \
    `redis+cluster://host:port[,host:port...]` or \
    `redis+sentinel://host:port[,host:port...]/MASTER_NAME`";

impl Endpoint {
    /// Parses a URL of one of the forms in the [module](self) doc.
    pub fn parse(url: &str) -> Result<Self, RedisError> {
        let bad = |reason: &str| RedisError::Url {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad(SCHEMES))?;
        let endpoint = match scheme {
            "redis" | "rediss" => Endpoint::Single(url.to_owned()),
            "redis+cluster" | "rediss+cluster" => {
                let node_scheme = scheme.trim_end_matches("+cluster");
                let (auth, hosts) = split_auth(rest);
                // A path (database number) makes no sense for a cluster,
                // which has only database 0.
                let hosts = hosts.trim_end_matches('/');
                if hosts.contains('/') {
                    return Err(bad("a cluster has no database number; remove the path"));
                }
                let nodes: Vec<String> = hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{node_scheme}://{auth}{h}"))
                    .collect();
                if nodes.is_empty() {
                    return Err(bad("name at least one node, as `host:port`"));
                }
                Endpoint::Cluster(nodes)
            }
            "redis+sentinel" | "rediss+sentinel" => {
                Endpoint::Sentinel(SentinelEndpoint::parse(scheme, rest).map_err(|r| bad(&r))?)
            }
            _ => return Err(bad(SCHEMES)),
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

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        match self {
            Endpoint::Single(url) => url.starts_with("rediss://"),
            Endpoint::Cluster(nodes) => nodes.iter().any(|n| n.starts_with("rediss://")),
            Endpoint::Sentinel(s) => s.tls,
        }
    }

    /// The node URLs: one for a single node, the seeds for a cluster, none
    /// for sentinels (the primary is only known once they are asked).
    pub fn nodes(&self) -> &[String] {
        match self {
            Endpoint::Single(url) => std::slice::from_ref(url),
            Endpoint::Cluster(nodes) => nodes,
            Endpoint::Sentinel(_) => &[],
        }
    }
}

impl SentinelEndpoint {
    /// `rest` is what follows `scheme://`.
    fn parse(scheme: &str, rest: &str) -> Result<Self, String> {
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, rest) = split_auth(rest);
        let (hosts, path) = rest
            .split_once('/')
            .ok_or("name the primary after the sentinels: `/MASTER_NAME`")?;
        let mut path = path.trim_end_matches('/').split('/');
        let master = decode(path.next().unwrap_or_default());
        if master.is_empty() {
            return Err("name the primary after the sentinels: `/MASTER_NAME`".into());
        }
        let db = match path.next() {
            None => 0,
            Some(db) => db
                .parse()
                .map_err(|_| format!("`{db}` is no database number"))?,
        };
        if path.next().is_some() {
            return Err("the path is `/MASTER_NAME[/DB]`".into());
        }
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let (name, port) = host
                .rsplit_once(':')
                .ok_or_else(|| format!("sentinel `{host}` has no port: write `host:port`"))?;
            let port = port
                .parse()
                .map_err(|_| format!("sentinel `{host}` has no valid port"))?;
            let name = name.trim_start_matches('[').trim_end_matches(']');
            sentinels.push((name.to_owned(), port));
        }
        if sentinels.is_empty() {
            return Err("name at least one sentinel, as `host:port`".into());
        }
        let (username, password) = match auth.trim_end_matches('@').split_once(':') {
            _ if auth.is_empty() => (None, None),
            Some((user, password)) => (non_empty(decode(user)), Some(decode(password))),
            None => (non_empty(decode(auth.trim_end_matches('@'))), None),
        };
        let mut endpoint = Self {
            sentinels,
            master,
            tls: scheme.starts_with("rediss"),
            username,
            password,
            sentinel_username: None,
            sentinel_password: None,
            db,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sentinel_username" => endpoint.sentinel_username = non_empty(decode(value)),
                "sentinel_password" => endpoint.sentinel_password = Some(decode(value)),
                other => {
                    return Err(format!(
                        "unknown parameter `{other}`: expected `sentinel_username` or \
                         `sentinel_password`"
                    ));
                }
            }
        }
        Ok(endpoint)
    }
}

/// `user:password@` (with the `@`) and the rest, or nothing and all.
fn split_auth(rest: &str) -> (String, &str) {
    match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    }
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// Shown without passwords, so that an endpoint can be logged.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Single(url) => f.write_str(&redact(url)),
            Endpoint::Cluster(nodes) => {
                let tls = self.is_tls();
                let hosts: Vec<String> = nodes
                    .iter()
                    .map(|n| {
                        let shown = redact(n);
                        shown
                            .split_once("://")
                            .map(|(_, h)| h)
                            .unwrap_or(&shown)
                            .to_owned()
                    })
                    .collect();
                let scheme = if tls { "rediss" } else { "redis" };
                write!(f, "{scheme}+cluster://{}", hosts.join(","))
            }
            Endpoint::Sentinel(s) => write!(f, "{s}"),
        }
    }
}

impl fmt::Display for SentinelEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = match (&self.username, &self.password) {
            (Some(user), Some(_)) => format!("{user}:***@"),
            (None, Some(_)) => ":***@".to_owned(),
            (Some(user), None) => format!("{user}@"),
            (None, None) => String::new(),
        };
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        write!(
            f,
            "{scheme}+sentinel://{auth}{}/{}",
            hosts.join(","),
            self.master
        )?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

/// `url` with any password replaced by `***`, in the userinfo and in a
/// `sentinel_password` parameter.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let mut shown = match rest.rsplit_once('@') {
        Some((auth, hosts)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}"),
            None => format!("{scheme}://***@{hosts}"),
        },
        None => format!("{scheme}://{rest}"),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.contains("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{shown}?{}", pairs.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_urls_pass_through() {
        let e = Endpoint::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(e, Endpoint::Single("redis://127.0.0.1:6380/2".into()));
        assert!(!e.is_cluster() && !e.is_tls());
        assert!(Endpoint::parse("rediss://h:6380").unwrap().is_tls());
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
        let tls = Endpoint::parse("rediss+cluster://a:7000,b:7001").unwrap();
        assert_eq!(tls.nodes(), ["rediss://a:7000", "rediss://b:7001"]);
        assert_eq!(tls.to_string(), "rediss+cluster://a:7000,b:7001");
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_the_primary_and_both_credentials() {
        let e = Endpoint::parse(
            "rediss+sentinel://app:p%40ss@s1:26379,[::1]:26380/mymaster/3\
             ?sentinel_username=watch&sentinel_password=s3cret",
        )
        .unwrap();
        let Endpoint::Sentinel(s) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            s.sentinels,
            [("s1".to_owned(), 26379), ("::1".to_owned(), 26380)]
        );
        assert_eq!(s.master, "mymaster");
        assert_eq!(s.db, 3);
        assert!(s.tls);
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.sentinel_username.as_deref(), Some("watch"));
        assert_eq!(s.sentinel_password.as_deref(), Some("s3cret"));
        let shown = e.to_string();
        assert!(
            !shown.contains("p@ss") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("mymaster"), "{shown}");
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
        let err = Endpoint::parse("redis+sentinel://:pw@s1:26379")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MASTER_NAME") && !err.contains("pw@"), "{err}");
        let err = Endpoint::parse("redis+sentinel://s1/m")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`s1` has no port"), "{err}");
        let err = Endpoint::parse("redis+sentinel://s1:1/m?sentinel_pasword=x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sentinel_pasword"), "{err}");
    }

    #[test]
    fn passwords_never_reach_the_display() {
        let e = Endpoint::parse("redis://:secret@h:1").unwrap();
        assert!(!e.to_string().contains("secret"));
        assert_eq!(
            redact("redis+sentinel://s:1/m?sentinel_password=secret"),
            "redis+sentinel://s:1/m?sentinel_password=***"
        );
    }
}
