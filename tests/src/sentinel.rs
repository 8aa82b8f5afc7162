//! [`SentinelGroup`]: a Redis primary, one replica and three sentinels
//! watching them as `mymaster`, each a real process on free ports, with
//! the means to cut the replica off, kill the primary and wait for the
//! sentinels to promote the replica.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{REPLICATION_ARGS, RedisServer, free_port, wait_link_up};
use crate::{TlsCerts, fresh_dir, startup::wait_started};

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "mymaster";

/// One `redis-server --sentinel` process.
struct Sentinel {
    child: Child,
    port: u16,
}

/// How a [`SentinelGroup`] is made: plain and open by default.
#[derive(Default, Clone, Copy)]
pub struct SentinelSpec<'a> {
    /// TLS everywhere (clients, replication, sentinels), with these
    /// certificates.
    pub tls: Option<&'a TlsCerts>,
    /// The primary's and the replica's password (default user).
    pub password: Option<&'a str>,
    /// The sentinels' own password.
    pub sentinel_password: Option<&'a str>,
}

/// How the test reaches a sentinel.
#[derive(Clone)]
struct Access {
    tls: Option<redis::TlsCertificates>,
    password: Option<String>,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A primary, a replica and three sentinels.
pub struct SentinelGroup {
    /// The server that was primary at the start.
    pub primary: RedisServer,
    /// The server that was its replica at the start.
    pub replica: RedisServer,
    sentinels: Vec<Sentinel>,
    dir: PathBuf,
    access: Access,
    tls: bool,
    password: Option<String>,
    sentinel_password: Option<String>,
}

impl SentinelGroup {
    /// Starts them and waits until every sentinel knows the replica and
    /// the other sentinels (without which none could be elected to fail
    /// over). Sentinels judge the primary down after 2 s unanswered: 1 s
    /// made them fail over a primary that was only slow, on a loaded
    /// machine.
    pub fn start(name: &str) -> Self {
        Self::with(name, SentinelSpec::default())
    }

    /// A group as `spec` says.
    pub fn with(name: &str, spec: SentinelSpec<'_>) -> Self {
        let mut args = vec![
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ];
        args.extend(REPLICATION_ARGS);
        let primary = RedisServer::with_options(spec.tls, spec.password, &args);
        primary.replication_user();
        let primary_port = primary.port().to_string();
        let mut replica_args = args.clone();
        replica_args.extend(["--replicaof", "127.0.0.1", &primary_port]);
        let replica = RedisServer::with_options(spec.tls, spec.password, &replica_args);
        replica.replication_user();
        wait_link_up(&replica);
        let dir = fresh_dir(&format!("sentinel-{name}"));
        let access = Access {
            tls: spec.tls.map(TlsCerts::client),
            password: spec.sentinel_password.map(str::to_owned),
        };
        let sentinels = (0..3)
            .map(|i| start_sentinel(&dir, i, primary.port(), &spec, &access))
            .collect();
        let group = Self {
            primary,
            replica,
            sentinels,
            dir,
            access,
            tls: spec.tls.is_some(),
            password: spec.password.map(str::to_owned),
            sentinel_password: spec.sentinel_password.map(str::to_owned),
        };
        group.wait_known();
        group
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster`,
    /// `rediss+sentinel://` over TLS, with the passwords.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = self
            .password
            .as_ref()
            .map_or(String::new(), |p| format!(":{p}@"));
        let query = self
            .sentinel_password
            .as_ref()
            .map_or(String::new(), |p| format!("?sentinel_password={p}"));
        format!(
            "{scheme}+sentinel://{auth}{}/{MASTER}{query}",
            hosts.join(",")
        )
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The port of the primary a sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let mut conn = sentinel_connection(s.port, &self.access).ok()?;
            let (_, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER)
                .query(&mut conn)
                .ok()?;
            Some(port)
        })
    }

    /// Fails the test if the sentinels no longer name the first primary:
    /// they failed over on their own (a loaded machine), and what the test
    /// set up no longer holds.
    pub fn assert_unchanged(&self) {
        assert_eq!(
            self.primary_port(),
            Some(self.primary.port()),
            "the sentinels failed over on their own; sentinel log:\n{}",
            std::fs::read_to_string(self.dir.join("0/sentinel.log")).unwrap_or_default()
        );
    }

    /// Kills the primary (`SIGKILL`) and waits, up to `within`, for the
    /// sentinels to promote the replica and for it to take writes.
    pub fn fail_over(&mut self, within: Duration) {
        self.assert_unchanged();
        self.primary.kill();
        let deadline = Instant::now() + within;
        while self.primary_port() != Some(self.replica.port()) || self.replica.role() != "master" {
            assert!(
                Instant::now() < deadline,
                "the sentinels did not promote the replica within {within:?}; sentinel log:\n{}",
                std::fs::read_to_string(self.dir.join("0/sentinel.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_known(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for s in &self.sentinels {
            loop {
                let known = sentinel_connection(s.port, &self.access)
                    .ok()
                    .and_then(|mut conn| {
                        let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                            .arg("replicas")
                            .arg(MASTER)
                            .query(&mut conn)
                            .ok()?;
                        let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                            .arg("sentinels")
                            .arg(MASTER)
                            .query(&mut conn)
                            .ok()?;
                        Some(replicas.len() == 1 && others.len() == 2)
                    });
                if known == Some(true) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sentinel on port {} never saw the replica and the other sentinels",
                    s.port
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn sentinel_connection(port: u16, access: &Access) -> redis::RedisResult<redis::Connection> {
    let auth = access
        .password
        .as_ref()
        .map_or(String::new(), |p| format!(":{p}@"));
    let client = match &access.tls {
        Some(certs) => redis::Client::build_with_tls(
            format!("rediss://{auth}127.0.0.1:{port}"),
            certs.clone(),
        )?,
        None => redis::Client::open(format!("redis://{auth}127.0.0.1:{port}"))?,
    };
    client.get_connection_with_timeout(Duration::from_secs(1))
}

/// Sentinel `i`, its configuration (which it rewrites) in a folder of its
/// own.
fn start_sentinel(
    dir: &std::path::Path,
    i: usize,
    primary: u16,
    spec: &SentinelSpec<'_>,
    access: &Access,
) -> Sentinel {
    let port = free_port();
    let dir = dir.join(i.to_string());
    std::fs::create_dir_all(&dir).expect("the sentinel's folder");
    let conf = dir.join("sentinel.conf");
    let mut text = format!(
        "bind 127.0.0.1\ndir {}\nlogfile sentinel.log\n\
         sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {MASTER} 2000\n\
         sentinel failover-timeout {MASTER} 5000\n\
         sentinel parallel-syncs {MASTER} 1\n",
        dir.display()
    );
    match spec.tls {
        Some(certs) => {
            let path = |p: &std::path::Path| p.display().to_string();
            text.push_str(&format!(
                "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                 tls-ca-cert-file {}\ntls-auth-clients yes\ntls-replication yes\n",
                path(&certs.server_cert),
                path(&certs.server_key),
                path(&certs.ca)
            ));
        }
        None => text.push_str(&format!("port {port}\n")),
    }
    if let Some(password) = spec.password {
        text.push_str(&format!("sentinel auth-pass {MASTER} {password}\n"));
    }
    if let Some(password) = spec.sentinel_password {
        text.push_str(&format!(
            "requirepass {password}\nsentinel sentinel-pass {password}\n"
        ));
    }
    std::fs::write(&conf, text).expect("writing sentinel.conf");
    let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    let mut child = Command::new(&binary)
        .arg(&conf)
        .arg("--sentinel")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{binary} --sentinel`: {e}"));
    wait_started(
        &mut child,
        &format!("sentinel on port {port}"),
        &dir.join("sentinel.log"),
        Duration::from_secs(15),
        || sentinel_connection(port, access).is_ok(),
    );
    Sentinel { child, port }
}
