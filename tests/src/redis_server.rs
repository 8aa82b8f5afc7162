//! Real `redis-server` processes for tests and benchmarks: a single node
//! ([`RedisServer`]) or a local cluster of primaries ([`RedisCluster`]),
//! each on free ports, in a folder of its own, stopped when dropped.
//!
//! Tests start their own servers rather than using one already running, so
//! that they control the configuration and can kill and restart them.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::startup::wait_started;
use crate::tls_certs::TlsCerts;

/// The server binary: `$REDIS_SERVER`, else `redis-server` on the `PATH`.
fn binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A port free on 127.0.0.1, whose cluster bus port (port + 10000) is free
/// too, and never handed out before in this process: a server that is
/// restarted leaves its port free for a moment, and another test running
/// beside it must not be given that port meanwhile.
pub(crate) fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..200 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a local port");
        let port = listener.local_addr().unwrap().port();
        let taken =
            |p: u16| handed_out.contains(&p) || handed_out.contains(&(p.wrapping_sub(10000)));
        if port < 55000
            && !taken(port)
            && !taken(port + 10000)
            && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
        {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port pair (port, port + 10000) found on 127.0.0.1");
}

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    /// The client's certificates, for a TLS-only server.
    tls: Option<redis::TlsCertificates>,
    /// The default user's password, if it has one.
    password: Option<String>,
}

/// Arguments that make a server's replication connect as user `repl`
/// (password `pw`), which [`RedisServer::replication_user`] creates: so
/// that a test can cut a replica off by turning the user off.
pub const REPLICATION_ARGS: [&str; 4] = ["--masteruser", "repl", "--masterauth", "pw"];

static SERIAL: AtomicU32 = AtomicU32::new(0);

impl RedisServer {
    /// A server that keeps nothing on disk.
    pub fn start() -> Self {
        Self::with_args(&["--save", "", "--appendonly", "no"])
    }

    /// A server that writes every change to its append-only file before
    /// answering, so that a `SIGKILL` loses nothing it acknowledged.
    pub fn start_persistent() -> Self {
        Self::with_args(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    /// A server with extra `redis-server` arguments.
    pub fn with_args(extra: &[&str]) -> Self {
        let port = free_port();
        let ports = vec!["--port".to_owned(), port.to_string()];
        Self::build(port, ports, extra, None, None)
    }

    /// A TLS-only server (no plain port) that requires a client
    /// certificate signed by `certs`' authority, with extra arguments.
    pub fn with_tls(certs: &TlsCerts, extra: &[&str]) -> Self {
        Self::with_options(Some(certs), None, extra)
    }

    /// A server over TLS (with `tls`, replication over TLS too) or not,
    /// whose default user needs `password` (if given), with extra
    /// arguments.
    pub fn with_options(tls: Option<&TlsCerts>, password: Option<&str>, extra: &[&str]) -> Self {
        let port = free_port();
        let mut args: Vec<String> = match tls {
            Some(certs) => {
                install_tls_provider();
                let mut args = certs.server_args(port);
                args.extend(["--tls-replication".into(), "yes".into()]);
                args
            }
            None => vec!["--port".to_owned(), port.to_string()],
        };
        if let Some(password) = password {
            args.extend(["--requirepass".into(), password.into()]);
        }
        Self::build(
            port,
            args,
            extra,
            tls.map(TlsCerts::client),
            password.map(str::to_owned),
        )
    }

    fn build(
        port: u16,
        ports: Vec<String>,
        extra: &[&str],
        tls: Option<redis::TlsCertificates>,
        password: Option<String>,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "invalidator-redis-{}-{}-{port}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the server's folder");
        let mut args: Vec<String> = ports;
        args.extend([
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            "redis.log".into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Self {
            child: None,
            port,
            dir,
            args,
            tls,
            password,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{}`: {e}. Install it (Debian: `apt-get install redis-server`, \
                     which `.ci/run` does) or point $REDIS_SERVER at it",
                    binary()
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let what = format!("redis-server on port {}", self.port);
        let (port, url, tls) = (self.port, self.url(), self.tls.clone());
        let child = self.child.as_mut().expect("just started");
        wait_started(
            child,
            &what,
            &self.dir.join("redis.log"),
            Duration::from_secs(15),
            || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && open(&url, tls.as_ref())
                        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                        .is_ok_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
            },
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = self
            .password
            .as_ref()
            .map_or(String::new(), |p| format!(":{p}@"));
        format!("{scheme}://{auth}127.0.0.1:{}", self.port)
    }

    /// Creates the user replicas of this server connect as
    /// ([`REPLICATION_ARGS`]).
    pub fn replication_user(&self) {
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("repl")
            .arg("on")
            .arg(">pw")
            .arg("+psync")
            .arg("+replconf")
            .arg("+ping")
            .query(&mut self.connection())
            .expect("creating the replication user");
    }

    /// Cuts this primary's replicas off, as a clean network partition
    /// would: their user is turned off and their links dropped, so they
    /// cannot come back, and nothing written from now on reaches them.
    pub fn cut_off_replicas(&self) {
        let mut conn = self.connection();
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("repl")
            .arg("off")
            .query(&mut conn)
            .expect("turning the replication user off");
        let _: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut conn)
            .expect("dropping the replicas' links");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .unwrap();
            if info.contains("connected_slaves:0") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replicas stay connected: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `role` field of `INFO replication`: `master` or `slave`.
    pub fn role(&self) -> String {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.connection())
            .unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("role:"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Creates ACL user `name` (password `pw`) that may run every command
    /// but touch only the keys matching `keys` (Redis globs); returns its
    /// URL. Any other key is refused with `NOPERM`, an error no retry fixes.
    pub fn limited_user(&self, name: &str, keys: &[&str]) -> String {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(name).arg("on").arg(">pw");
        for pattern in keys {
            cmd.arg(format!("~{pattern}"));
        }
        let () = cmd.arg("+@all").query(&mut self.connection()).unwrap();
        format!("redis://{name}:pw@127.0.0.1:{}", self.port)
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        open(&self.url(), self.tls.as_ref())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// A plain synchronous connection, for setting up and inspecting.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection()
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url()))
    }

    /// Kills the server with `SIGKILL`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the server: `SIGSTOP` freezes it (connections
    /// stay open, nothing answers), `SIGCONT` lets it go on.
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("the server is running");
        // SAFETY: kill has no memory-safety preconditions; the id is our
        // child's, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    }

    /// Starts the server again, on the same port, with the same folder.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client for `url`, with `tls` certificates for a `rediss://` one.
fn open(url: &str, tls: Option<&redis::TlsCertificates>) -> redis::RedisResult<redis::Client> {
    match tls {
        Some(certs) => redis::Client::build_with_tls(url, certs.clone()),
        None => redis::Client::open(url),
    }
}

/// rustls's provider for this process's TLS clients.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A local Redis Cluster: `n` primaries, the 16384 slots split evenly,
/// and optionally a replica for each.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    replicas: Vec<RedisServer>,
    tls: bool,
}

/// How a [`RedisCluster`] is made.
#[derive(Default)]
pub struct ClusterSpec<'a> {
    /// Primaries (3 at least for a failover: a majority must vote).
    pub primaries: usize,
    /// Whether each primary gets a replica.
    pub replicas: bool,
    /// TLS for clients and the cluster bus, with these certificates.
    pub tls: Option<&'a TlsCerts>,
    /// `cluster-node-timeout`, in ms; default 5000.
    pub node_timeout_ms: Option<u64>,
}

impl RedisCluster {
    /// Starts `primaries` servers in cluster mode and joins them.
    pub fn start(primaries: usize) -> Self {
        Self::with(ClusterSpec {
            primaries,
            ..ClusterSpec::default()
        })
    }

    /// Starts a cluster as `spec` says.
    pub fn with(spec: ClusterSpec<'_>) -> Self {
        let timeout = spec.node_timeout_ms.unwrap_or(5000).to_string();
        let mut args = vec![
            "--save",
            "",
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout,
        ];
        args.extend(REPLICATION_ARGS);
        if spec.tls.is_some() {
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        }
        let start = || match spec.tls {
            Some(certs) => RedisServer::with_tls(certs, &args),
            None => RedisServer::with_args(&args),
        };
        let nodes: Vec<RedisServer> = (0..spec.primaries).map(|_| start()).collect();
        let replicas: Vec<RedisServer> = if spec.replicas {
            (0..spec.primaries).map(|_| start()).collect()
        } else {
            Vec::new()
        };
        for node in nodes.iter().chain(&replicas) {
            node.replication_user();
        }
        let n = nodes.len();
        for (i, node) in nodes.iter().enumerate() {
            let (first, last) = (i * 16384 / n, (i + 1) * 16384 / n - 1);
            let () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut node.connection())
                .expect("assigning slots");
        }
        let mut first = nodes[0].connection();
        for node in nodes[1..].iter().chain(&replicas) {
            let () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .query(&mut first)
                .expect("introducing the nodes");
        }
        let cluster = Self {
            nodes,
            replicas,
            tls: spec.tls.is_some(),
        };
        cluster.wait_ok();
        for (primary, replica) in cluster.nodes.iter().zip(&cluster.replicas) {
            let id: String = redis::cmd("CLUSTER")
                .arg("MYID")
                .query(&mut primary.connection())
                .expect("the primary's id");
            // The replica must know the primary first: MEET spreads by
            // gossip, so retry until it does.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let done: redis::RedisResult<()> = redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&id)
                    .query(&mut replica.connection());
                match done {
                    Ok(()) => break,
                    Err(e) => assert!(Instant::now() < deadline, "CLUSTER REPLICATE: {e}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        for replica in &cluster.replicas {
            wait_link_up(replica);
        }
        cluster
    }

    /// The replicas, the `i`th of the `i`th primary.
    pub fn replicas(&self) -> &[RedisServer] {
        &self.replicas
    }

    /// Kills primary `i` (`SIGKILL`).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let total = self.nodes.len() + self.replicas.len();
            let ok = self.nodes.iter().chain(&self.replicas).all(|node| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut node.connection())
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{total}"))
            });
            if ok {
                return;
            }
            if Instant::now() > deadline {
                panic!("the local cluster did not reach cluster_state:ok in 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...` (`rediss+cluster`
    /// over TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}+cluster://{}", hosts.join(","))
    }

    /// The servers.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// A synchronous cluster connection, for setting up and inspecting.
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(RedisServer::url)
            .collect();
        let mut builder = redis::cluster::ClusterClientBuilder::new(urls);
        if let Some(tls) = self.nodes.first().and_then(|n| n.tls.clone()) {
            builder = builder.certs(tls);
        }
        builder
            .build()
            .and_then(|c| c.get_connection())
            .expect("connecting to the local cluster")
    }

    /// Every key of every primary, sorted.
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .nodes
            .iter()
            .chain(&self.replicas)
            .filter(|n| n.child.is_some() && n.role() == "master")
            .flat_map(|n| all_keys(&mut n.connection()))
            .collect();
        keys.sort();
        keys
    }
}

/// Waits until `replica`'s link to its primary is up and in sync.
pub fn wait_link_up(replica: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.connection())
            .unwrap_or_default();
        if info.contains("master_link_status:up") && !info.contains("master_sync_in_progress:1") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica on port {} never caught up: {info}",
            replica.port()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every key on one connection's server, sorted (by `SCAN`; fine for tests).
pub fn all_keys(conn: &mut redis::Connection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .clone()
        .iter(conn)
        .expect("scanning keys")
        .collect::<Result<_, _>>()
        .expect("scanning keys");
    keys.sort();
    keys
}
