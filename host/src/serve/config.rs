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
//!
//! Durations are text with a unit (`250ms`, `30s`, `10m`), and the
//! library's own settings, [`SandboxConfig`] and [`PipelineConfig`], are
//! read as they are: one definition of each setting and its default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use super::RedisSettings;
use crate::pipeline::PipelineConfig;
use crate::rules::SandboxConfig;
use crate::source::http::HttpConfig;
use crate::source::mysql::{MysqlConfig, MysqlProblem};
use crate::source::postgres::{PostgresConfig, PostgresProblem, redact};
use crate::source::stream::StreamConfig;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "INVALIDATOR_";

/// The top-level keys, which environment variables must start with.
const KEYS: &[&str] = &[
    "rules",
    "redis",
    "events",
    "compile_cache",
    "log_format",
    "shutdown_timeout",
    "http",
    "stream",
    "postgres",
    "mysql",
    "sandbox",
    "pipeline",
    "explain",
    "feed",
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
    /// Where Redis is and how to reach it; without a URL, the in-process
    /// store.
    pub redis: RedisSettings,
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
    /// before giving up (exit status 1). Default `30s`.
    #[serde(with = "crate::duration::required")]
    pub shutdown_timeout: Duration,
    /// The HTTP API.
    pub http: HttpConfig,
    /// The Redis Streams source.
    pub stream: StreamConfig,
    /// The Postgres source (logical replication).
    pub postgres: PostgresConfig,
    /// The MySQL source (the binary log).
    pub mysql: MysqlConfig,
    /// Limits of each rule call.
    pub sandbox: SandboxConfig,
    /// Batching, bounds and retries.
    pub pipeline: PipelineConfig,
    /// What the explain log keeps.
    pub explain: ExplainConfig,
    /// The invalidation feed: a Redis stream with an entry per applied
    /// batch. Default none.
    pub feed: crate::pipeline::FeedConfig,
}

/// The `[explain]` section: what `GET /v1/explain` and `invalidator
/// explain` can answer from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplainConfig {
    /// Whether applied invalidations are kept for explain. Default off:
    /// keeping them costs about a tenth of the end-to-end throughput
    /// (measured by `cargo xtask bench-redis explain`).
    pub enabled: bool,
    /// How many applied targets, and keys their tags listed, are kept
    /// when enabled. Default 100 000.
    pub capacity: usize,
}

impl ExplainConfig {
    /// The pipeline's explain capacity: 0 when off.
    pub fn pipeline_capacity(&self) -> usize {
        if self.enabled { self.capacity } else { 0 }
    }
}

impl Default for ExplainConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            capacity: crate::pipeline::DEFAULT_EXPLAIN_CAPACITY,
        }
    }
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

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            rules: PathBuf::from("rules"),
            redis: RedisSettings::default(),
            events: None,
            compile_cache: None,
            log_format: LogFormat::Text,
            shutdown_timeout: Duration::from_secs(30),
            http: HttpConfig::default(),
            stream: StreamConfig::default(),
            postgres: PostgresConfig::default(),
            mysql: MysqlConfig::default(),
            sandbox: SandboxConfig::default(),
            pipeline: PipelineConfig::default(),
            explain: ExplainConfig::default(),
            feed: crate::pipeline::FeedConfig::default(),
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
    #[error(transparent)]
    Unusable(#[from] Unusable),
    /// An HTTP address reachable from other machines, with no token.
    #[error(transparent)]
    Exposed(#[from] crate::http::ListenError),
    /// The compile cache folder is unusable.
    #[error(transparent)]
    CompileCache(#[from] crate::rules::CacheError),
}

/// Settings that cannot work, alone or together; each message names them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unusable {
    /// A feed with no Redis to write it to.
    #[error(
        "`feed.stream` (flag `--feed`) is `{0}` but no Redis is set: set `redis.url` (flag `--redis`)"
    )]
    FeedWithoutRedis(String),
    /// The feed written where commits are read: each entry would be read
    /// back as a commit.
    #[error(
        "`feed.stream` (flag `--feed`) is `{0}`, the stream commits are read from \
         (`stream.name`): give the feed a stream of its own"
    )]
    FeedIsSource(String),
    /// A feed that keeps nothing.
    #[error("`feed.maxlen` (flag `--feed-maxlen`) is 0: give the entries to keep, at least 1")]
    FeedKeepsNothing,
    /// A stream with no Redis to read it from.
    #[error("`stream.name` is set but no Redis is: set `redis` or `stream.redis` (flag `--redis`)")]
    StreamWithoutRedis,
    /// An empty consumer group.
    #[error("`stream.group` is empty")]
    EmptyGroup,
    /// No delivery allowed.
    #[error("`stream.max_attempts` is 0: give at least 1")]
    NoAttempts,
    /// Nothing could ever be read.
    #[error("`stream.read_count` and `stream.max_in_flight` must be above 0")]
    NoReads,
    /// A token no request could carry.
    #[error("`{key}` is blank: no request could ever carry it; give a real token, or none")]
    BlankToken {
        /// The setting.
        key: &'static str,
    },
    /// A read token that would protect nothing.
    #[error(
        "`http.read_token` is set without `http.token`: with no token, everything is open and \
         a read token protects nothing; set `http.token` too"
    )]
    ReadTokenAlone,
    /// An HTTP bound of zero.
    #[error(
        "`http.max_connections`, `http.header_timeout` and `http.body_timeout` must be above 0"
    )]
    NoHttpBound,
    /// The `[postgres]` section.
    #[error(transparent)]
    Postgres(PostgresProblem),
    /// The `[mysql]` section.
    #[error(transparent)]
    Mysql(MysqlProblem),
    /// A call budget of zero.
    #[error("`sandbox.{name}` is 0: every rule call would fail; give a budget above 0")]
    NoBudget {
        /// The budget's name in `[sandbox]`.
        name: &'static str,
    },
    /// A failure rate that is no fraction.
    #[error("`pipeline.rollback.max_failure_rate` is {rate}: give a fraction from 0 to 1")]
    FailureRate {
        /// The rate given.
        rate: f64,
    },
    /// TLS files for a Redis reached without TLS.
    #[error(
        "`redis.tls_*` files are set but `{url}` is not reached over TLS: use a `rediss://`, \
         `rediss+cluster://` or `rediss+sentinel://` URL, or remove the files"
    )]
    TlsWithoutTls {
        /// The URL, without its password.
        url: String,
    },
    /// A Redis URL that does not parse; the message names it.
    #[error("{0}")]
    RedisUrl(String),
    /// Retry delays that cannot work.
    #[error(
        "`pipeline.retry_min` ({}) must be above zero and at most `pipeline.retry_max` ({})",
        humantime::format_duration(*.min),
        humantime::format_duration(*.max)
    )]
    Retry {
        /// `retry_min`.
        min: Duration,
        /// `retry_max`.
        max: Duration,
    },
}

impl ServeConfig {
    /// The `INVALIDATOR_*` variables of the environment that name no
    /// setting (`INVALIDATOR_BIN`, another tool's): [`load`](Self::load)
    /// leaves them alone, and the caller may warn of them.
    pub fn unknown_env_vars() -> Vec<String> {
        std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .filter(|name| name.strip_prefix(ENV_PREFIX).is_some_and(|key| !ours(key)))
            .collect()
    }

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
            // `redis = "URL"`, the form from before `[redis]` was a
            // section, is its `url`: made a table here, so that a later
            // layer's `redis.*` keys merge into it instead of replacing it.
            if let Some(url) = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
                .and_then(|table| table.get("redis")?.as_str().map(str::to_owned))
            {
                figment = figment.merge(Serialized::default("redis.url", url));
            }
        }
        let env = Env::prefixed(ENV_PREFIX)
            .split("__")
            .filter(|key| ours(key.as_str()))
            // `INVALIDATOR_REDIS=URL` sets the URL, as it always has.
            .map(|key| {
                if key == "redis" {
                    "redis.url".into()
                } else {
                    key.into()
                }
            });
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
        self.check_stream()?;
        self.check_feed()?;
        self.check_http()?;
        if let Some(problem) = self.postgres.problem() {
            return Err(Unusable::Postgres(problem).into());
        }
        if let Some(problem) = self.mysql.problem() {
            return Err(Unusable::Mysql(problem).into());
        }
        let sandbox = &self.sandbox;
        for (name, value) in [
            ("max_targets", sandbox.max_targets),
            ("max_target_bytes", sandbox.max_target_bytes),
            ("max_target_len", sandbox.max_target_len),
        ] {
            if value == 0 {
                return Err(Unusable::NoBudget { name }.into());
            }
        }
        if let Some(rollback) = &self.pipeline.rollback {
            let rate = rollback.max_failure_rate;
            if !(0.0..=1.0).contains(&rate) {
                return Err(Unusable::FailureRate { rate }.into());
            }
        }
        self.check_redis()?;
        let (min, max) = (self.pipeline.retry_min, self.pipeline.retry_max);
        if min.is_zero() || min > max {
            return Err(Unusable::Retry { min, max }.into());
        }
        Ok(())
    }

    /// The `[redis]` section: URLs that parse, and TLS files only where
    /// TLS is spoken. (The files are read when Redis is opened, naming
    /// the one that cannot be used.)
    fn check_redis(&self) -> Result<(), Unusable> {
        for url in [self.redis.url.as_deref(), self.stream.redis.as_deref()]
            .into_iter()
            .flatten()
        {
            let endpoint = crate::redis::Endpoint::parse(url)
                .map_err(|e| Unusable::RedisUrl(e.to_string()))?;
            if self.redis.has_tls_files() && !endpoint.is_tls() {
                return Err(Unusable::TlsWithoutTls {
                    url: endpoint.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The `[feed]` section: a Redis to write to, a stream of its own.
    fn check_feed(&self) -> Result<(), Unusable> {
        let feed = &self.feed;
        if !feed.enabled() {
            return Ok(());
        }
        if self.redis.url.is_none() {
            return Err(Unusable::FeedWithoutRedis(feed.stream.clone()));
        }
        let same_redis = self.stream.redis.is_none() || self.stream.redis == self.redis.url;
        if same_redis && self.stream.name.as_deref() == Some(feed.stream.as_str()) {
            return Err(Unusable::FeedIsSource(feed.stream.clone()));
        }
        if feed.maxlen == 0 {
            return Err(Unusable::FeedKeepsNothing);
        }
        Ok(())
    }

    /// The `[stream]` section's settings, with the Redis it needs.
    fn check_stream(&self) -> Result<(), Unusable> {
        let stream = &self.stream;
        if stream.name.is_some() && self.stream_redis().is_none() {
            return Err(Unusable::StreamWithoutRedis);
        }
        if stream.group.is_empty() {
            return Err(Unusable::EmptyGroup);
        }
        if stream.max_attempts == 0 {
            return Err(Unusable::NoAttempts);
        }
        if stream.read_count == 0 || stream.max_in_flight == 0 {
            return Err(Unusable::NoReads);
        }
        Ok(())
    }

    /// The `[http]` section's settings: tokens fit to carry, bounds above
    /// zero, and a token worth the name beyond this machine.
    fn check_http(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        for (key, token) in [
            ("http.token", &http.token),
            ("http.read_token", &http.read_token),
        ] {
            if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(Unusable::BlankToken { key }.into());
            }
        }
        if http.read_token.is_some() && http.token.is_none() {
            return Err(Unusable::ReadTokenAlone.into());
        }
        if http.max_connections == 0 || http.header_timeout.is_zero() || http.body_timeout.is_zero()
        {
            return Err(Unusable::NoHttpBound.into());
        }
        if let Some(addr) = http.listen.as_deref().and_then(|l| l.parse().ok()) {
            crate::http::check_exposure(addr, http.token.as_deref())?;
            if let Some(read) = http.read_token.as_deref() {
                crate::http::check_exposure(addr, Some(read))?;
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, the tokens hidden.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        for token in [&mut shown.http.token, &mut shown.http.read_token] {
            if token.is_some() {
                *token = Some("(hidden)".to_owned());
            }
        }
        shown.postgres.url = shown.postgres.url.as_deref().map(redact);
        shown.mysql.url = shown.mysql.url.as_deref().map(crate::source::mysql::redact);
        shown.redis.url = shown.redis.url.as_deref().map(crate::redis::redact_url);
        shown.stream.redis = shown.stream.redis.as_deref().map(crate::redis::redact_url);
        toml::to_string_pretty(&shown).expect("the configuration serializes to TOML")
    }

    /// The commits input to read: `events`, else standard input when
    /// there is no other source.
    pub fn events_input(&self) -> Option<PathBuf> {
        self.events.clone().or_else(|| {
            let other = self.http.listen.is_some()
                || self.stream.name.is_some()
                || self.postgres.url.is_some()
                || self.mysql.url.is_some();
            (!other).then(|| PathBuf::from("-"))
        })
    }

    /// The Redis holding the stream: `stream.redis`, else `redis`.
    pub fn stream_redis(&self) -> Option<&str> {
        self.stream.redis.as_deref().or(self.redis.url.as_deref())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_top_level_key_is_known_to_the_environment_filter() {
        let value = serde_json::to_value(ServeConfig {
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
        assert_eq!(config.redis.url.as_deref(), Some("redis://a:1"));
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
