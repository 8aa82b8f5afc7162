//! The command line: every command and flag, as clap parses them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use invalidator::redis::{Redis, RedisConfig, TlsFiles};
use invalidator::rules::{
    LoadError, Runtime, SandboxConfig, check_compile_cache_outside, default_compile_cache_dir,
};
use invalidator::serve::LogFormat;

/// Cache-invalidation rules engine: turns committed transactions into the
/// cache keys, patterns and tags to invalidate, with sandboxed Wasm rules.
#[derive(Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Dry run: print the targets of each commit of a JSON Lines file.
    Run {
        /// A rule `.wasm` file, or a folder of them.
        #[arg(long)]
        rules: PathBuf,
        /// The commits, one JSON object per line; `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run the commits of a JSON Lines file through the rules and apply
    /// their invalidations to Redis. Prints a JSON summary last.
    Apply {
        /// A rule `.wasm` file, or a folder of them.
        #[arg(long)]
        rules: PathBuf,
        /// The commits, one JSON object per line; `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        #[command(flatten)]
        redis: RedisArgs,
        /// Give up (exit status 1) if the invalidations are not all applied
        /// this many seconds after the last commit was read.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        give_up_after: u64,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run two versions of a rule on the same commits and print the commits
    /// whose targets differ. Exit status 0: none differ; 1: some differ;
    /// 2: trouble (a rule that does not load, a malformed line).
    Diff {
        /// The old version: a rule `.wasm` file (or a folder of rules).
        old: PathBuf,
        /// The new version.
        new: PathBuf,
        /// The commits, one JSON object per line; `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Serve: rules from a watched folder, swapped live when their files
    /// change; commits from a JSON Lines input, an HTTP API (`--listen`)
    /// a Redis stream (`--stream`), Postgres's logical replication
    /// (`--postgres`) and MariaDB's or MySQL's binary log (`--mysql`); invalidations
    /// applied to Redis, or
    /// to an in-process store without `--redis`. Every setting can also come
    /// from a TOML file (`--config`) and `INVALIDATOR_*` variables; flags
    /// win. Stops on SIGTERM or Ctrl-C (or at the end of the input when it
    /// is the only source) and prints a JSON summary last.
    Serve(Box<ServeArgs>),
    /// Read and write the cache as the application does, tags included.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Run a rule on the cases of its fixture file and print each failing
    /// case with the targets the rule added (+) and left out (-). Exit
    /// status 0: every case passed; 1: some failed.
    Test {
        /// The rule `.wasm` file.
        rule: PathBuf,
        /// The cases, one JSON object per line: `{"commit": ..., "expect":
        /// {"keys": [...], "patterns": [...], "tags": [...]}}` [default:
        /// `NAME.test.jsonl` beside `NAME.wasm`].
        #[arg(long, value_name = "FILE")]
        fixtures: Option<PathBuf>,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Start a rule project: the sample rule, a native test, a fixture and
    /// a README with the one-line build command.
    New {
        /// The rule's name: lowercase letters, digits and `_`, starting
        /// with a letter.
        name: String,
        /// The language of the rule.
        #[arg(long, value_enum, default_value_t = Language::Rust)]
        lang: Language,
        /// The folder to make the project in [default: `./NAME`].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The Rust rules SDK (`rules-sdk/`) to depend on, for `--lang
        /// rust` [default: the one this binary was built beside].
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Set up and look after the Postgres source: what the database needs
    /// (as SQL to run), its replication slots.
    Postgres {
        #[command(subcommand)]
        command: PostgresCommand,
    },
    /// Set up the MySQL source: what the server needs (as SQL to run).
    Mysql {
        #[command(subcommand)]
        command: MysqlCommand,
    },
    /// Ask a running `serve` why a key is gone: the recent invalidations
    /// that removed it, newest first, with the target that matched (the
    /// key, a pattern, a tag), the commit, the rule and when. Reads the
    /// token from `--token` or `INVALIDATOR_TOKEN`.
    Explain {
        /// The server's HTTP address, e.g. `http://127.0.0.1:8080`.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The key, as stored in Redis (with any key prefix).
        key: String,
        /// The API token (or the read token).
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// Show at most this many, newest first.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Print the server's JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Validate rule components and print what they say about themselves,
    /// what they import and their size.
    Check {
        /// A rule `.wasm` file, or a folder of them.
        path: PathBuf,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
}

/// The languages `invalidator new` writes rules in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Language {
    /// Rust, with the `invalidator-rules` crate.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

/// The flags of `serve`; each overrides the setting of the same name in
/// the configuration.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// A TOML configuration file (`--print-config` shows every setting).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print the effective configuration (file, environment and flags
    /// merged) as TOML and exit.
    #[arg(long)]
    pub(crate) print_config: bool,
    /// The folder of rule `.wasm` files to watch [default: rules].
    #[arg(long, value_name = "DIR")]
    pub(crate) rules: Option<PathBuf>,
    /// `redis://...`, `rediss://...`, `redis+cluster://...` or
    /// `redis+sentinel://HOST:PORT[,...]/MASTER`; without it, an in-process
    /// store.
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,
    #[command(flatten)]
    pub(crate) redis_tls: RedisTlsArgs,
    /// Replicas that must acknowledge each batch's deletes (`WAIT`) before
    /// it counts as applied [default: 0].
    #[arg(long, value_name = "N")]
    pub(crate) redis_replicas: Option<u32>,
    /// How far back applied invalidations are kept to apply again on a new
    /// primary after a failover, e.g. `2m`; `0s` keeps none [default: 1m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) redis_replay_window: Option<Duration>,
    /// Commits, one JSON object per line; `-` for standard input [default:
    /// `-` when there is no `--listen`, `--stream`, `--postgres` or
    /// `--mysql`].
    #[arg(long, value_name = "FILE")]
    pub(crate) events: Option<PathBuf>,
    /// Serve the HTTP API on this address, e.g. `127.0.0.1:8080`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Consume commits from this Redis stream through a consumer group.
    #[arg(long, value_name = "NAME")]
    pub(crate) stream: Option<String>,
    /// Read commits from this Postgres database's logical replication, e.g.
    /// `postgres://user:password@host:5432/db`.
    #[arg(long, value_name = "URL")]
    pub(crate) postgres: Option<String>,
    /// The publication naming the tables read [default: invalidator].
    #[arg(long, value_name = "NAME")]
    pub(crate) postgres_publication: Option<String>,
    /// The replication slot holding the position [default: invalidator].
    #[arg(long, value_name = "NAME")]
    pub(crate) postgres_slot: Option<String>,
    /// Read commits from this MariaDB (10.5+) or MySQL (8.0+) server's
    /// binary log, e.g.
    /// `mysql://user:password@host:3306/db`.
    #[arg(long, value_name = "URL")]
    pub(crate) mysql: Option<String>,
    /// This reader's replica id, unique among the server's replicas
    /// [default: derived from the host name and the URL].
    #[arg(long, value_name = "ID")]
    pub(crate) mysql_server_id: Option<u32>,
    /// Read from the server's current position whatever is stored, after
    /// invalidating the rules' fallback targets: when the logs the stored
    /// position needs were purged.
    #[arg(long)]
    pub(crate) mysql_resync: bool,
    /// The consumer group [default: invalidator].
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,
    /// This process's name in the group [default: HOSTNAME-PID].
    #[arg(long, value_name = "NAME")]
    pub(crate) consumer: Option<String>,
    /// Where compiled rules are kept between runs: a folder only this host
    /// writes, outside the rules folder [default: $XDG_CACHE_HOME/invalidator,
    /// else ~/.cache/invalidator].
    #[arg(long, value_name = "DIR")]
    pub(crate) compile_cache: Option<PathBuf>,
    /// Logs as human-readable text or as JSON lines [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// CPU time one rule call may use, with its unit, e.g. `250ms`
    /// [default: 100ms].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) time_limit: Option<Duration>,
    /// Memory one rule instance may use, in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    pub(crate) memory_limit_mib: Option<usize>,
    /// Keep applied invalidations for `explain` (`GET /v1/explain`, the
    /// console): off by default, since it costs about a tenth of the
    /// end-to-end throughput.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Applied targets (and keys their tags listed) kept for `explain`
    /// [default: 100000].
    #[arg(long, value_name = "N")]
    pub(crate) explain_capacity: Option<usize>,
    /// Add an entry per applied batch to this Redis stream, the
    /// invalidation feed: its commits, rules, targets and the keys
    /// actually removed (what warmers and near caches build on).
    #[arg(long, value_name = "STREAM")]
    pub(crate) feed: Option<String>,
    /// About how many entries the feed keeps (`MAXLEN ~`) [default: 10000].
    #[arg(long, value_name = "N")]
    pub(crate) feed_maxlen: Option<u64>,
    /// Most keys removed by patterns and tags listed per feed entry
    /// [default: 1000].
    #[arg(long, value_name = "N")]
    pub(crate) feed_keys: Option<usize>,
}

impl ServeArgs {
    /// The flags given, in the shape of the configuration file.
    pub(crate) fn overrides(&self) -> serde_json::Value {
        let mut top = serde_json::Map::new();
        let mut http = serde_json::Map::new();
        let mut stream = serde_json::Map::new();
        let mut sandbox = serde_json::Map::new();
        let mut postgres = serde_json::Map::new();
        let mut mysql = serde_json::Map::new();
        let mut redis = serde_json::Map::new();
        let mut explain = serde_json::Map::new();
        let mut feed = serde_json::Map::new();
        let set = |map: &mut serde_json::Map<String, serde_json::Value>,
                   key: &str,
                   value: Option<serde_json::Value>| {
            if let Some(v) = value {
                map.insert(key.to_owned(), v);
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string().into());
        let text = |t: &Option<String>| t.clone().map(Into::into);
        set(&mut top, "rules", path(&self.rules));
        set(&mut redis, "url", text(&self.redis));
        set(&mut redis, "tls_ca", path(&self.redis_tls.redis_tls_ca));
        set(&mut redis, "tls_cert", path(&self.redis_tls.redis_tls_cert));
        set(&mut redis, "tls_key", path(&self.redis_tls.redis_tls_key));
        set(&mut redis, "replicas", self.redis_replicas.map(Into::into));
        set(
            &mut redis,
            "replay_window",
            self.redis_replay_window
                .map(|d| humantime::format_duration(d).to_string().into()),
        );
        set(&mut top, "events", path(&self.events));
        set(&mut top, "compile_cache", path(&self.compile_cache));
        set(
            &mut top,
            "log_format",
            self.log_format
                .map(|f| serde_json::to_value(f).expect("serializes")),
        );
        set(&mut http, "listen", text(&self.listen));
        set(&mut stream, "name", text(&self.stream));
        set(&mut stream, "group", text(&self.group));
        set(&mut stream, "consumer", text(&self.consumer));
        set(&mut postgres, "url", text(&self.postgres));
        set(
            &mut postgres,
            "publication",
            text(&self.postgres_publication),
        );
        set(&mut postgres, "slot", text(&self.postgres_slot));
        set(&mut mysql, "url", text(&self.mysql));
        set(
            &mut mysql,
            "server_id",
            self.mysql_server_id.map(Into::into),
        );
        set(
            &mut mysql,
            "resync",
            self.mysql_resync.then_some(true.into()),
        );
        set(
            &mut sandbox,
            "time_limit",
            self.time_limit
                .map(|d| humantime::format_duration(d).to_string().into()),
        );
        set(
            &mut sandbox,
            "memory_limit_mib",
            self.memory_limit_mib.map(Into::into),
        );
        set(
            &mut explain,
            "capacity",
            self.explain_capacity.map(Into::into),
        );
        set(&mut explain, "enabled", self.explain.then_some(true.into()));
        set(&mut feed, "stream", text(&self.feed));
        set(&mut feed, "maxlen", self.feed_maxlen.map(Into::into));
        set(&mut feed, "max_keys", self.feed_keys.map(Into::into));
        for (name, section) in [
            ("redis", redis),
            ("http", http),
            ("stream", stream),
            ("postgres", postgres),
            ("mysql", mysql),
            ("sandbox", sandbox),
            ("explain", explain),
            ("feed", feed),
        ] {
            if !section.is_empty() {
                top.insert(name.to_owned(), section.into());
            }
        }
        top.into()
    }
}

#[derive(Subcommand)]
pub(crate) enum MysqlCommand {
    /// Print the SQL that readies the server for `serve --mysql` as the
    /// address's user: the binary log's format, row images and metadata,
    /// and the user's rights. What is not SQL is printed as `--` comments,
    /// so the output can be piped to the `mariadb` or `mysql` client as an
    /// administrator. Exit status 0: nothing to do; 1: statements printed;
    /// 2: trouble.
    Check {
        /// The server, as `serve` will reach it (its user is checked).
        #[arg(long, value_name = "URL")]
        mysql: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum PostgresCommand {
    /// Print the SQL that readies the database for `serve` as the
    /// address's role, for the rules of a folder: the role's rights, the
    /// publication of the rules' tables, their replica identity, and
    /// `wal_level`. What is not SQL is printed as `--` comments, so the
    /// output can be piped to `psql` as a superuser. Exit status 0:
    /// nothing to do; 1: statements printed; 2: trouble.
    Check {
        /// The database, as `serve` will reach it (its role is checked).
        #[arg(long, value_name = "URL")]
        postgres: String,
        /// The rules folder `serve` will load.
        #[arg(long, value_name = "DIR")]
        rules: PathBuf,
        /// The publication [default: `invalidator`].
        #[arg(long, value_name = "NAME")]
        publication: Option<String>,
        /// The replication slot [default: `invalidator`].
        #[arg(long, value_name = "NAME")]
        slot: Option<String>,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// List the server's replication slots: kind, plugin, database, whether
    /// in use, and the WAL each holds back.
    Slots {
        /// The database address.
        #[arg(long, value_name = "URL")]
        postgres: String,
    },
    /// Drop a replication slot nobody uses (a trial run's, say); one in use
    /// is refused.
    DropSlot {
        /// The database address.
        #[arg(long, value_name = "URL")]
        postgres: String,
        /// The slot.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum CacheCommand {
    /// Store a value, with an optional time to live and tags.
    Set {
        #[command(flatten)]
        redis: RedisArgs,
        /// The cache key.
        key: String,
        /// The value.
        value: String,
        /// Expire after this many seconds (default: never).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<f64>,
        /// A tag to register the key under; repeat for more.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// Print a value; exit status 1 when the key does not exist.
    Get {
        #[command(flatten)]
        redis: RedisArgs,
        /// The cache key.
        key: String,
    },
}

/// Where Redis is, and how to reach it.
#[derive(Args)]
pub(crate) struct RedisArgs {
    /// `redis://host:port[/db]` (`rediss://` over TLS) for one node,
    /// `redis+cluster://host:port[,host:port...]` for a cluster,
    /// `redis+sentinel://host:port[,host:port...]/MASTER` for the primary
    /// sentinels name.
    #[arg(long, value_name = "URL")]
    pub(crate) redis: String,
    #[command(flatten)]
    pub(crate) tls: RedisTlsArgs,
    /// Replicas that must acknowledge the deletes (`WAIT`) before they
    /// count as applied.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) redis_replicas: u32,
}

impl RedisArgs {
    pub(crate) fn open(&self) -> anyhow::Result<Redis> {
        let config = RedisConfig {
            tls: self.tls.files(),
            replicas: self.redis_replicas,
            ..RedisConfig::default()
        };
        Ok(Redis::open(&self.redis, config)?)
    }
}

/// The PEM files of a TLS connection to Redis.
#[derive(Args)]
pub(crate) struct RedisTlsArgs {
    /// Trust these certificate authorities (PEM) instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) redis_tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM), for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "redis_tls_key")]
    pub(crate) redis_tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "redis_tls_cert")]
    pub(crate) redis_tls_key: Option<PathBuf>,
}

impl RedisTlsArgs {
    fn files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.redis_tls_ca.clone(),
            cert: self.redis_tls_cert.clone(),
            key: self.redis_tls_key.clone(),
        }
    }
}

/// Limits of every rule call, and where compiled rules are kept.
#[derive(Args)]
pub(crate) struct SandboxArgs {
    /// CPU time one rule call may use, with its unit, e.g. `250ms`.
    #[arg(long, default_value = "100ms", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) time_limit: Duration,
    /// Memory one rule instance may use, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub(crate) memory_limit_mib: usize,
    /// Where compiled rules are kept between runs, as `serve` keeps them,
    /// so a rule is compiled once and not on every run: a folder only this
    /// user writes, outside the rules folder [default:
    /// $XDG_CACHE_HOME/invalidator, else ~/.cache/invalidator].
    #[arg(long, value_name = "DIR")]
    pub(crate) compile_cache: Option<PathBuf>,
    /// Compile every rule afresh and keep nothing on disk.
    #[arg(long, conflicts_with = "compile_cache")]
    pub(crate) no_compile_cache: bool,
}

impl SandboxArgs {
    pub(crate) fn config(&self) -> SandboxConfig {
        SandboxConfig {
            time_limit: self.time_limit,
            memory_limit: self.memory_limit_mib << 20,
            ..SandboxConfig::default()
        }
    }

    /// The runtime to load the rules at `rules` with. It keeps compiled
    /// rules in the compile cache, unless told not to: a Python or JS rule
    /// takes seconds to compile, and a rule author runs `test` again and
    /// again on the same file.
    pub(crate) fn runtime(&self, rules: &[&Path]) -> anyhow::Result<Runtime> {
        let config = self.config();
        if self.no_compile_cache {
            return Ok(Runtime::new(config)?);
        }
        if let Some(dir) = &self.compile_cache {
            // Asked for by name: a folder that cannot serve is an error.
            return Ok(cached(config, dir, rules)?);
        }
        // The default folder is a convenience: when it cannot serve (no
        // home folder, a folder others can write, the rules inside it),
        // compile as before and say why.
        match default_compile_cache_dir()
            .map_err(LoadError::from)
            .and_then(|dir| cached(config.clone(), &dir, rules))
        {
            Ok(runtime) => Ok(runtime),
            Err(LoadError::CompileCache(e)) => {
                eprintln!(
                    "warning: compiled rules are not kept: {e}; name a folder with \
                     --compile-cache DIR, or pass --no-compile-cache"
                );
                Ok(Runtime::new(config)?)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A runtime keeping compiled rules in `dir`, refused inside any of `rules`.
fn cached(config: SandboxConfig, dir: &Path, rules: &[&Path]) -> Result<Runtime, LoadError> {
    for path in rules {
        check_compile_cache_outside(dir, path)?;
    }
    Runtime::with_compile_cache(config, dir)
}
