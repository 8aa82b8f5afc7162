//! [`PostgresServer`]: a throwaway Postgres cluster for tests and
//! benchmarks, made with `initdb` in a folder of its own and run with
//! `wal_level = logical` on a free port, stopped and removed when dropped.
//!
//! The binaries are found with `pg_config --bindir` (or `$PG_BINDIR`).
//! `initdb` refuses to run as root, so under root the cluster is made and
//! run as the `postgres` user. The server is started directly (not through
//! `pg_ctl`), so that its process id is known and a test can kill it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::redis_server::free_port;
use crate::startup::wait_started;

/// Where the Postgres binaries are: `$PG_BINDIR`, else `pg_config --bindir`.
fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `pg_config` to find the Postgres binaries: {e}. Install Postgres \
                 (Debian: `apt-get install postgresql libpq-dev`, which `.ci/run` does) or set \
                 $PG_BINDIR"
            )
        });
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.join("initdb").is_file() {
        panic!(
            "no `initdb` in `{}` (from `pg_config --bindir`): install the server \
             (Debian: `apt-get install postgresql`, which `.ci/run` does) or set $PG_BINDIR",
            dir.display()
        );
    }
    dir
}

/// The user and group to run as: `postgres` under root, else ourselves.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: `name` is a valid C string; the returned record is read at
    // once, before any other call that could reuse it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        panic!(
            "running as root, and there is no `postgres` user to run `initdb` as (it refuses \
             root): install Debian's `postgresql` package, which creates it"
        );
    }
    // SAFETY: `pw` is non-null and points to a valid passwd record.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// A running throwaway cluster.
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    bindir: PathBuf,
    user: Option<(u32, u32)>,
}

impl PostgresServer {
    /// Makes and starts a cluster; its superuser is `postgres`, trusted.
    pub fn start() -> Self {
        let bindir = bindir();
        let user = run_as();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "invalidator-pg-{}-{}-{port}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the cluster's folder");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("giving the cluster's folder to `postgres`");
        }
        let mut server = Self {
            child: None,
            port,
            dir,
            bindir,
            user,
        };
        let out = server
            .command("initdb")
            .args(["-D", "data", "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .arg("--no-sync")
            .output()
            .expect("running initdb");
        if !out.status.success() {
            panic!(
                "initdb failed in {}:\n{}{}",
                server.dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        server.spawn();
        server
    }

    /// A command of the Postgres binaries, run in the cluster's folder as
    /// the cluster's user.
    fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(name));
        cmd.current_dir(&self.dir);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        cmd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("opening the server's log");
        let socket_dir = self.dir.display().to_string();
        let settings = [
            format!("port={}", self.port),
            "listen_addresses=127.0.0.1".into(),
            format!("unix_socket_directories={socket_dir}"),
            "wal_level=logical".into(),
            "fsync=off".into(),
            "max_wal_senders=20".into(),
            "max_replication_slots=20".into(),
            "max_connections=200".into(),
        ];
        let mut cmd = self.command("postgres");
        cmd.args(["-D", "data"]);
        for s in &settings {
            cmd.args(["-c", s]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let url = self.url("postgres");
        let what = format!("postgres on port {}", self.port);
        let child = self.child.as_mut().expect("just started");
        wait_started(
            child,
            &what,
            &self.dir.join("postgres.log"),
            Duration::from_secs(60),
            || postgres::Client::connect(&url, postgres::NoTls).is_ok(),
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Its folder (the socket is there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A client connected to database `db`.
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url(db)))
    }

    /// The process id of the server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` to the server and waits for it to exit.
    fn end(&mut self, signal: libc::c_int) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions; the id is our
            // child's, not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            let _ = child.wait();
        }
    }

    /// Kills the server with `SIGKILL`, as a crash would (it recovers from
    /// its WAL at the next start).
    pub fn kill(&mut self) {
        self.end(libc::SIGKILL);
    }

    /// Stops the server as an operator would (fast shutdown: clients are
    /// disconnected).
    pub fn stop(&mut self) {
        self.end(libc::SIGINT);
    }

    /// Starts the server again, on the same port, from the same folder.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts a stopped server again.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        self.spawn();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.end(libc::SIGINT);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
