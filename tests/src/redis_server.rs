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
}

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
        let dir = std::env::temp_dir().join(format!(
            "invalidator-redis-{}-{}-{port}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the server's folder");
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            "redis.log".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Self {
            child: None,
            port,
            dir,
            args,
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
        let (port, url) = (self.port, self.url());
        let child = self.child.as_mut().expect("just started");
        wait_started(
            child,
            &what,
            &self.dir.join("redis.log"),
            Duration::from_secs(15),
            || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && redis::Client::open(url.as_str())
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

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
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

/// A local Redis Cluster: `n` primaries, no replicas, the 16384 slots
/// split evenly.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` servers in cluster mode and joins them.
    pub fn start(primaries: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..primaries)
            .map(|_| {
                RedisServer::with_args(&[
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
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
        for node in &nodes[1..] {
            let () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .query(&mut first)
                .expect("introducing the nodes");
        }
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().all(|node| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut node.connection())
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
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

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The servers.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// A synchronous cluster connection, for setting up and inspecting.
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        let urls: Vec<String> = self.nodes.iter().map(RedisServer::url).collect();
        redis::cluster::ClusterClient::new(urls)
            .and_then(|c| c.get_connection())
            .expect("connecting to the local cluster")
    }

    /// Every key of every primary, sorted.
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| all_keys(&mut n.connection()))
            .collect();
        keys.sort();
        keys
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
