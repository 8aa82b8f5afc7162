//! [`MariadbServer`]: a throwaway MariaDB for tests and benchmarks, made
//! with `mariadb-install-db` in a folder of its own and run on a free port
//! with the binary log a binlog reader needs (`ROW` format, `FULL` row
//! images and row metadata), stopped and removed when dropped.
//!
//! SQL is run with the `mariadb` command line client, as an administrator
//! would: the harness needs no client library of its own, and what it
//! sends is exactly what a person could paste.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::redis_server::free_port;
use crate::startup::wait_started;

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// The server options every test server gets: the binary log as a binlog
/// reader needs it. Options given to [`MariadbServer::start_with`] come
/// after these, and a later option wins.
const BINLOG_OPTIONS: [&str; 5] = [
    "--log-bin=binlog",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--server-id=1",
];

/// Options that let many test servers run at once on a small machine: a
/// small buffer pool, and InnoDB's own I/O threads rather than the
/// kernel's asynchronous I/O contexts, which every server on the machine
/// shares (`fs.aio-max-nr`).
const SMALL: [&str; 2] = ["--innodb-buffer-pool-size=32M", "--innodb-use-native-aio=0"];

/// A running throwaway MariaDB; its `root` has no password.
pub struct MariadbServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: Vec<String>,
}

/// The path of the command `name`, or a panic that says how to get it.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `{name}` found: install MariaDB (Debian: `apt-get install mariadb-server`, \
                 which `.ci/run` does)"
            )
        })
}

impl MariadbServer {
    /// Makes and starts a server with the binary log a reader needs.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`start`](Self::start), with `options` after the defaults (so that
    /// they win): `--binlog-format=STATEMENT` makes a server a reader
    /// must refuse.
    pub fn start_with(options: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "invalidator-mariadb-{}-{}-{port}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the server's folder");
        // Its own temporary folder: servers sharing /tmp removed each
        // other's temporary tables while `mariadb-install-db` ran.
        std::fs::create_dir_all(dir.join("tmp")).expect("creating the server's tmpdir");
        let out = Command::new(binary("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .args(SMALL)
            .output()
            .expect("running mariadb-install-db");
        if !out.status.success() {
            panic!(
                "mariadb-install-db failed in {}:\n{}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let options = BINLOG_OPTIONS
            .iter()
            .chain(options)
            .map(|o| o.to_string())
            .collect();
        let mut server = Self {
            child: None,
            port,
            dir,
            options,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log_path = self.dir.join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("opening the server's log");
        let data = self.dir.join("data");
        let child = Command::new(binary("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
            .args(["--user=root", "--bind-address=127.0.0.1"])
            // Throwaway: no durability asked of the disk.
            .args(["--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"])
            .args(SMALL)
            .args(&self.options)
            .current_dir(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("starting mariadbd");
        self.child = Some(child);
        let what = format!("mariadb on port {}", self.port);
        let port = self.port;
        let child = self.child.as_mut().expect("just started");
        wait_started(child, &what, &log_path, Duration::from_secs(60), || {
            client(port)
                .arg("-e")
                .arg("SELECT 1")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    /// Runs `sql` (any number of statements) as `root`, in database `db`
    /// if given, and returns what the client printed (tab-separated rows,
    /// no header). Panics with the client's error.
    pub fn sql(&self, db: Option<&str>, sql: &str) -> String {
        let mut cmd = client(self.port);
        cmd.args(["--batch", "--skip-column-names"]);
        if let Some(db) = db {
            cmd.arg(format!("--database={db}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the mariadb client");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped");
            stdin.write_all(sql.as_bytes()).expect("sending SQL");
        }
        let out = child.wait_with_output().expect("the mariadb client");
        if !out.status.success() {
            panic!(
                "SQL failed on port {}: {}\n{}",
                self.port,
                String::from_utf8_lossy(&out.stderr).trim(),
                sql.chars().take(500).collect::<String>()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `mysql://root@127.0.0.1:PORT/` (with `db` after the slash).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its folder (the data and the log are there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
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

    /// Kills the server with `SIGKILL`, as a crash would.
    pub fn kill(&mut self) {
        self.end(libc::SIGKILL);
    }

    /// Stops the server as an operator would (`SIGTERM`: a clean
    /// shutdown).
    pub fn stop(&mut self) {
        self.end(libc::SIGTERM);
    }

    /// Starts the server again, on the same port, from the same folder.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

/// The `mariadb` client, as `root` over TCP to `port`.
fn client(port: u16) -> Command {
    let mut cmd = Command::new(binary("mariadb"));
    cmd.args(["--no-defaults", "--protocol=TCP", "-h127.0.0.1", "-uroot"])
        .arg(format!("-P{port}"));
    cmd
}

impl Drop for MariadbServer {
    fn drop(&mut self) {
        self.end(libc::SIGTERM);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
