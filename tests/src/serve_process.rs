//! [`ServeProcess`]: an `invalidator serve` process, as an operator runs
//! it, for tests and benchmarks: started with its flags and environment,
//! its HTTP address read from its standard error, stopped by signal.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// A running `invalidator serve`.
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, when it listens.
    pub url: Option<String>,
    stderr: Arc<Mutex<String>>,
}

impl ServeProcess {
    /// Starts `bin serve ARGS` with `envs`. With `--listen`, waits (up to
    /// 60 s) until it says where it listens; panics with its standard
    /// error if it exits first.
    pub fn start(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{bin}`: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        {
            let pipe = BufReader::new(child.stderr.take().expect("piped"));
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                for line in pipe.lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = tx.send(url.to_owned());
                    }
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let listens = args.contains(&"--listen");
        let url = listens.then(|| match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`serve` did not start listening; its log:\n{}",
                    stderr.lock().unwrap()
                )
            }
        });
        Self { child, url, stderr }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url.as_deref().expect("serve listens"))
    }

    /// Posts `commit` to `/v1/commits?wait=true`, with `token` if given,
    /// and panics unless it is applied.
    pub async fn commit(&self, token: Option<&str>, commit: &serde_json::Value) {
        let mut request = reqwest::Client::new()
            .post(self.at("/v1/commits?wait=true"))
            .json(commit);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the request reaches serve");
        let status = response.status();
        assert!(status.is_success(), "{status}: {:?}", response.text().await);
    }

    /// What it wrote to standard error so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Polls `done` until it holds; after `within`, fails naming `what`,
    /// with this process's log.
    #[track_caller]
    pub fn wait_until(&self, what: &str, within: Duration, done: impl FnMut() -> bool) {
        crate::wait::wait_or(what, within, done, || {
            format!("; serve's log:\n{}", self.log())
        });
    }

    /// Waits up to 30 s until `keys()` (what Redis holds) is exactly
    /// `expected`; fails showing both and this process's log.
    #[track_caller]
    pub fn wait_for_keys(
        &self,
        mut keys: impl FnMut() -> BTreeSet<String>,
        expected: &BTreeSet<String>,
    ) {
        // Both closures read the last keys seen: the check sets them, the
        // failure shows them.
        let last = RefCell::new(BTreeSet::new());
        crate::wait::wait_or(
            "Redis holds the expected keys",
            Duration::from_secs(30),
            || {
                *last.borrow_mut() = keys();
                &*last.borrow() == expected
            },
            || {
                format!(
                    ": it holds {:?}, expected {expected:?}; serve's log:\n{}",
                    last.borrow(),
                    self.log()
                )
            },
        );
    }

    /// Sends `signal` (such as `libc::SIGTERM`, `SIGSTOP`, `SIGCONT`).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `kill` has no memory effects; the pid is our own child,
        // not yet reaped (reaping happens only in `wait`, `stop`, `kill`).
        let done = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            done,
            0,
            "kill({pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Sends SIGTERM and waits (up to `within`) for it to exit. Returns its
    /// exit status and the JSON summary it printed last.
    pub fn stop(mut self, within: Duration) -> (ExitStatus, serde_json::Value) {
        self.signal(libc::SIGTERM);
        let status = self.wait(within);
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut out)
            .expect("reading its standard output");
        let last = out.lines().last().unwrap_or_else(|| {
            panic!(
                "`serve` exited ({status}) and printed no summary; its log:\n{}",
                self.log()
            )
        });
        let summary = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("summary `{last}` is not JSON: {e}"));
        (status, summary)
    }

    /// Waits for it to exit, killing it after `within`.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for serve") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`serve` did not exit within {within:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it at once (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a process behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
