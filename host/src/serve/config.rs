//! [`ServeConfig`]: everything `invalidator serve` can be told, with its
//! documented defaults, and how the layers are merged: defaults, then a
//! TOML file, then `INVALIDATOR_*` environment variables, then flags.
//!
//! Environment variables name a key with its section and a double
//! underscore: `INVALIDATOR_REDIS` sets `redis`, `INVALIDATOR_HTTP__TOKEN`
//! sets `token` in `[http]`. Unknown keys are errors in the file and in a
//! section's variables (`INVALIDATOR_HTTP__LISTN`), so a misspelt setting
//! is never silently ignored. A variable that names no setting at all
//! (`INVALIDATOR_BIN`, another tool's) is left alone, with a warning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::pipeline::{PipelineConfig, RollbackPolicy};
use crate::rules::SandboxConfig;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "INVALIDATOR_";

/// The top-level keys, which environment variables must start with.
const KEYS: &[&str] = &[
    "rules",
    "redis",
    "events",
    "compile_cache",
    "log_format",
    "shutdown_timeout_secs",
    "http",
    "stream",
    "sandbox",
    "pipeline",
];

/// Whether a variable's key (after the prefix; sections split by `__` or
/// by dots, in any case) starts with one of ours.
fn ours(key: &str) -> bool {
    let key = key.to_lowercase().replace("__", ".");
    KEYS.contains(&key.split('.').next().unwrap_or_default())
}

/// The whole configuration of a `serve` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// The folder of rule `.wasm` files to watch. Default `rules`.
    pub rules: PathBuf,
    /// `redis://...` or `redis+cluster://...`; absent: the in-process
    /// store. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub redis: Option<String>,
    /// A JSON Lines file of commits to read, or `-` for standard input.
    /// Default: standard input when there is neither an HTTP listener nor a
    /// stream, else none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PathBuf>,
    /// Where compiled rules are kept: a folder only this host may write,
    /// never inside the rules folder. Default `$XDG_CACHE_HOME/invalidator`,
    /// else `~/.cache/invalidator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile_cache: Option<PathBuf>,
    /// `text` (for people) or `json` (one object per line). Default `text`.
    pub log_format: LogFormat,
    /// On shutdown, how long to wait for the work in flight to be applied
    /// before giving up (exit status 1). Default 30.
    pub shutdown_timeout_secs: u64,
    /// The HTTP API.
    pub http: HttpConfig,
    /// The Redis Streams source.
    pub stream: StreamConfig,
    /// Limits of each rule call.
    pub sandbox: SandboxSettings,
    /// Batching, bounds and retries.
    pub pipeline: PipelineSettings,
}

/// How logs are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[http]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, such as `127.0.0.1:8080` (port 0 picks a free
    /// one). Absent: no HTTP API. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub listen: Option<String>,
    /// Bearer token the mutating endpoints require. Required to listen on
    /// an address other than loopback. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub token: Option<String>,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    pub body_limit_bytes: usize,
    /// How long `?wait=true` waits for the invalidations to be applied
    /// before answering 504. Default 30.
    pub wait_timeout_secs: u64,
}

/// `[stream]`: the Redis Streams source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's key. Absent: no stream source. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub name: Option<String>,
    /// The consumer group shared by every `serve` process. Default
    /// `invalidator`.
    #[serde(deserialize_with = "text::required")]
    pub group: String,
    /// This process's name in the group. Default `HOSTNAME-PID`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub consumer: Option<String>,
    /// The Redis holding the stream. Default: the `redis` setting.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub redis: Option<String>,
    /// Entries another consumer has held unacknowledged this long are
    /// claimed (its process is taken for dead). Default 30000.
    pub claim_idle_ms: u64,
    /// Deliveries after which an entry that is never acknowledged goes to
    /// the dead-letter stream. Default 5.
    pub max_attempts: u64,
    /// The dead-letter stream. Default `NAME:dead`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub dead_letter: Option<String>,
    /// Entries read at a time. Default 256.
    pub read_count: usize,
    /// How long one read waits for new entries. Default 1000.
    pub block_ms: u64,
    /// Entries read and not yet acknowledged, at most: reading pauses at
    /// this bound until the pipeline catches up. Default 10000.
    pub max_in_flight: usize,
}

/// `[sandbox]`: limits of each rule call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Time one rule call may take. Default 100.
    pub time_limit_ms: u64,
    /// Memory one rule instance may use. Default 64.
    pub memory_limit_mib: usize,
    /// Targets one call may return. Default 100,000.
    pub max_targets: usize,
    /// Bytes of all the targets of one call. Default 16 MiB.
    pub max_target_bytes: usize,
    /// Bytes of one target. Default 64 KiB.
    pub max_target_len: usize,
    /// Log lines one call may write. Default 100.
    pub max_log_lines: u32,
}

/// `[pipeline]`: batching, bounds and retries (see [`PipelineConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// Most commits evaluated together. Default 256.
    pub max_batch: usize,
    /// Wait for more commits before evaluating a batch. Default 0.
    pub linger_ms: u64,
    /// Most targets kept pending before collapsing into the fallbacks.
    /// Default 100000.
    pub max_pending: usize,
    /// First retry delay after a Redis error. Default 50.
    pub retry_min_ms: u64,
    /// Longest retry delay. Default 5000.
    pub retry_max_ms: u64,
    /// How often tag indexes are pruned; 0 for never. Default 600.
    pub prune_every_secs: u64,
    /// How long a new rule version is on probation; 0 never rolls back.
    /// Default 60.
    pub rollback_window_secs: u64,
    /// Commits a new version must run on before it is judged. Default 20.
    pub rollback_min_commits: u64,
    /// Failure rate above which a new version is rolled back. Default 0.5.
    pub rollback_max_failure_rate: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            rules: PathBuf::from("rules"),
            redis: None,
            events: None,
            compile_cache: None,
            log_format: LogFormat::Text,
            shutdown_timeout_secs: 30,
            http: HttpConfig::default(),
            stream: StreamConfig::default(),
            sandbox: SandboxSettings::default(),
            pipeline: PipelineSettings::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            body_limit_bytes: 1 << 20,
            wait_timeout_secs: 30,
        }
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: None,
            group: "invalidator".to_owned(),
            consumer: None,
            redis: None,
            claim_idle_ms: 30_000,
            max_attempts: 5,
            dead_letter: None,
            read_count: 256,
            block_ms: 1000,
            max_in_flight: 10_000,
        }
    }
}

impl Default for SandboxSettings {
    fn default() -> Self {
        let d = SandboxConfig::default();
        Self {
            time_limit_ms: d.time_limit.as_millis() as u64,
            memory_limit_mib: d.memory_limit >> 20,
            max_targets: d.max_targets,
            max_target_bytes: d.max_target_bytes,
            max_target_len: d.max_target_len,
            max_log_lines: d.max_log_lines,
        }
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        let d = PipelineConfig::default();
        let r = RollbackPolicy::default();
        Self {
            max_batch: d.max_batch,
            linger_ms: d.linger.as_millis() as u64,
            max_pending: d.max_pending,
            retry_min_ms: d.retry_min.as_millis() as u64,
            retry_max_ms: d.retry_max.as_millis() as u64,
            prune_every_secs: d.prune_every.map_or(0, |p| p.as_secs()),
            rollback_window_secs: r.window.as_secs(),
            rollback_min_commits: r.min_commits,
            rollback_max_failure_rate: r.max_failure_rate,
        }
    }
}

/// Why a configuration is refused; each names the offending setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file given does not exist.
    #[error("configuration file `{}` not found", .0.display())]
    NotFound(PathBuf),
    /// A layer does not parse, or names an unknown key or a bad value.
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
    /// Settings that cannot work (together).
    #[error("{0}")]
    Unusable(String),
    /// An HTTP address reachable from other machines, with no token.
    #[error(transparent)]
    Exposed(#[from] crate::source::SourceError),
    /// The compile cache folder is unusable.
    #[error(transparent)]
    CompileCache(#[from] crate::rules::CacheError),
}

impl ServeConfig {
    /// Merges the layers: defaults, the TOML file `file` (if given; it must
    /// exist), the `INVALIDATOR_*` environment, then `flags` (a map of the
    /// settings given on the command line, in the file's shape).
    pub fn load(file: Option<&Path>, flags: serde_json::Value) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::NotFound(file.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if let Some(key) = name.strip_prefix(ENV_PREFIX)
                && !ours(key)
            {
                eprintln!("warning: ignoring environment variable `{name}`: it names no setting");
            }
        }
        let env = Env::prefixed(ENV_PREFIX)
            .split("__")
            .filter(|key| ours(key.as_str()));
        let config: Self = figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        config.check()?;
        Ok(config)
    }

    /// Rejects settings that cannot work together, naming them.
    fn check(&self) -> Result<(), ConfigError> {
        let unusable = |m: String| Err(ConfigError::Unusable(m));
        if self.stream.name.is_some() && self.stream_redis().is_none() {
            return unusable(
                "`stream.name` is set but no Redis is: set `redis` or `stream.redis` \
                 (flag `--redis`)"
                    .to_owned(),
            );
        }
        if self.stream.group.is_empty() {
            return unusable("`stream.group` is empty".to_owned());
        }
        if self.stream.max_attempts == 0 {
            return unusable("`stream.max_attempts` is 0: give at least 1".to_owned());
        }
        if self.stream.read_count == 0 || self.stream.max_in_flight == 0 {
            return unusable(
                "`stream.read_count` and `stream.max_in_flight` must be above 0".to_owned(),
            );
        }
        if let Some(addr) = self.http.listen.as_deref().and_then(|l| l.parse().ok()) {
            crate::source::http::check_exposure(addr, self.http.token.as_deref())?;
        }
        if self.http.token.as_deref() == Some("") {
            return unusable("`http.token` is empty: give a token, or none".to_owned());
        }
        let sandbox = &self.sandbox;
        for (name, value) in [
            ("max_targets", sandbox.max_targets),
            ("max_target_bytes", sandbox.max_target_bytes),
            ("max_target_len", sandbox.max_target_len),
        ] {
            if value == 0 {
                return unusable(format!(
                    "`sandbox.{name}` is 0: every rule call would fail; give a budget above 0"
                ));
            }
        }
        let rate = self.pipeline.rollback_max_failure_rate;
        if !(0.0..=1.0).contains(&rate) {
            return unusable(format!(
                "`pipeline.rollback_max_failure_rate` is {rate}: give a fraction from 0 to 1"
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML, the token hidden.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.http.token.is_some() {
            shown.http.token = Some("(hidden)".to_owned());
        }
        toml::to_string_pretty(&shown).expect("the configuration serializes to TOML")
    }

    /// The commits input to read: `events`, else standard input when
    /// there is no other source.
    pub fn events_input(&self) -> Option<PathBuf> {
        self.events.clone().or_else(|| {
            (self.http.listen.is_none() && self.stream.name.is_none()).then(|| PathBuf::from("-"))
        })
    }

    /// The Redis holding the stream: `stream.redis`, else `redis`.
    pub fn stream_redis(&self) -> Option<&str> {
        self.stream.redis.as_deref().or(self.redis.as_deref())
    }

    /// Where compiled rules are kept: the setting, else the platform's
    /// cache folder. Refused inside the rules folder.
    pub fn compile_cache_dir(&self) -> Result<PathBuf, ConfigError> {
        let dir = match &self.compile_cache {
            Some(dir) => dir.clone(),
            None => crate::rules::default_compile_cache_dir()?,
        };
        crate::rules::check_compile_cache_outside(&dir, &self.rules)?;
        Ok(dir)
    }

    /// The sandbox limits.
    pub fn sandbox_config(&self) -> SandboxConfig {
        let s = &self.sandbox;
        SandboxConfig {
            time_limit: Duration::from_millis(s.time_limit_ms),
            memory_limit: s.memory_limit_mib << 20,
            max_targets: s.max_targets,
            max_target_bytes: s.max_target_bytes,
            max_target_len: s.max_target_len,
            max_log_lines: s.max_log_lines,
            ..SandboxConfig::default()
        }
    }

    /// The pipeline settings.
    pub fn pipeline_config(&self) -> PipelineConfig {
        let p = &self.pipeline;
        let ms = Duration::from_millis;
        PipelineConfig {
            max_batch: p.max_batch,
            linger: ms(p.linger_ms),
            max_pending: p.max_pending,
            retry_min: ms(p.retry_min_ms),
            retry_max: ms(p.retry_max_ms),
            prune_every: (p.prune_every_secs > 0).then(|| Duration::from_secs(p.prune_every_secs)),
            rollback: (p.rollback_window_secs > 0).then(|| RollbackPolicy {
                window: Duration::from_secs(p.rollback_window_secs),
                min_commits: p.rollback_min_commits,
                max_failure_rate: p.rollback_max_failure_rate,
            }),
        }
    }

    /// This process's consumer name: the setting, or `HOSTNAME-PID`.
    pub fn consumer_name(&self) -> String {
        self.stream.consumer.clone().unwrap_or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            format!("{host}-{}", std::process::id())
        })
    }

    /// The dead-letter stream: the setting, or `NAME:dead`.
    pub fn dead_letter(&self) -> Option<String> {
        let name = self.stream.name.as_ref()?;
        Some(
            self.stream
                .dead_letter
                .clone()
                .unwrap_or_else(|| format!("{name}:dead")),
        )
    }
}

/// Text settings that also take numbers and booleans: an environment
/// value that looks like a number (a token `12345`, a stream `42`) arrives
/// as a number, and means its digits.
mod text {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Unsigned(u64),
        Signed(i64),
        Float(f64),
        Bool(bool),
    }

    impl Text {
        fn into_string(self) -> String {
            match self {
                Text::String(s) => s,
                Text::Unsigned(n) => n.to_string(),
                Text::Signed(n) => n.to_string(),
                Text::Float(n) => n.to_string(),
                Text::Bool(b) => b.to_string(),
            }
        }
    }

    pub(super) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Text::deserialize(d).map(Text::into_string)
    }

    pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<Text>::deserialize(d).map(|t| t.map(Text::into_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_top_level_key_is_known_to_the_environment_filter() {
        let value = serde_json::to_value(ServeConfig {
            redis: Some(String::new()),
            events: Some(PathBuf::new()),
            compile_cache: Some(PathBuf::new()),
            ..ServeConfig::default()
        })
        .unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut known = KEYS.to_vec();
        keys.sort_unstable();
        known.sort_unstable();
        assert_eq!(keys, known);
        assert!(ours("http.token") && ours("HTTP__TOKEN") && !ours("BIN"));
    }

    #[test]
    fn defaults_survive_a_round_trip_through_toml() {
        let config = ServeConfig::default();
        let text = config.to_toml();
        let back: ServeConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        assert_eq!(config.pipeline_config(), PipelineConfig::default());
        assert_eq!(config.sandbox_config(), SandboxConfig::default());
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_are_named() {
        let dir = std::env::temp_dir().join(format!("inv-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(
            &file,
            "redis = \"redis://a:1\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let flags = serde_json::json!({"http": {"listen": "127.0.0.1:2"}});
        let config = ServeConfig::load(Some(&file), flags).unwrap();
        assert_eq!(config.redis.as_deref(), Some("redis://a:1"));
        assert_eq!(config.http.listen.as_deref(), Some("127.0.0.1:2"));

        std::fs::write(&file, "[http]\nlistn = \"x\"\n").unwrap();
        let err = ServeConfig::load(Some(&file), serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        let err = ServeConfig::load(Some(&dir.join("nope.toml")), serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
