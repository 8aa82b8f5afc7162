//! The `invalidator` command: parses flags and calls the library.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use invalidator::apply::{ApplySummary, apply_events};
use invalidator::cache::Cache;
use invalidator::connection::{Redis, RedisConfig};
use invalidator::diff::diff;
use invalidator::dry_run::dry_run;
use invalidator::escape::escape;
use invalidator::rules::{RuleSet, Runtime, SandboxConfig};
use invalidator::serve::{LogFormat, ServeConfig, serve};
use invalidator::targets::Target;

/// Cache-invalidation rules engine: turns committed transactions into the
/// cache keys, patterns and tags to invalidate, with sandboxed Wasm rules.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// and a Redis stream (`--stream`); invalidations applied to Redis, or
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
    /// Validate rule components and print what they say about themselves.
    Check {
        /// A rule `.wasm` file, or a folder of them.
        path: PathBuf,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
}

/// The flags of `serve`; each overrides the setting of the same name in
/// the configuration.
#[derive(Args)]
struct ServeArgs {
    /// A TOML configuration file (`--print-config` shows every setting).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration (file, environment and flags
    /// merged) as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// The folder of rule `.wasm` files to watch [default: rules].
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// `redis://...` or `redis+cluster://...`; without it, an in-process
    /// store.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Commits, one JSON object per line; `-` for standard input [default:
    /// `-` when there is neither `--listen` nor `--stream`].
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Serve the HTTP API on this address, e.g. `127.0.0.1:8080`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Consume commits from this Redis stream through a consumer group.
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// The consumer group [default: invalidator].
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// This process's name in the group [default: HOSTNAME-PID].
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// Where compiled rules are kept between runs: a folder only this host
    /// writes, outside the rules folder [default: $XDG_CACHE_HOME/invalidator,
    /// else ~/.cache/invalidator].
    #[arg(long, value_name = "DIR")]
    compile_cache: Option<PathBuf>,
    /// Logs as human-readable text or as JSON lines [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Time one rule call may take, in milliseconds [default: 100].
    #[arg(long, value_name = "MS")]
    time_limit_ms: Option<u64>,
    /// Memory one rule instance may use, in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    memory_limit_mib: Option<usize>,
}

impl ServeArgs {
    /// The flags given, in the shape of the configuration file.
    fn overrides(&self) -> serde_json::Value {
        let mut top = serde_json::Map::new();
        let mut http = serde_json::Map::new();
        let mut stream = serde_json::Map::new();
        let mut sandbox = serde_json::Map::new();
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
        set(&mut top, "redis", text(&self.redis));
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
        set(
            &mut sandbox,
            "time_limit_ms",
            self.time_limit_ms.map(Into::into),
        );
        set(
            &mut sandbox,
            "memory_limit_mib",
            self.memory_limit_mib.map(Into::into),
        );
        for (name, section) in [("http", http), ("stream", stream), ("sandbox", sandbox)] {
            if !section.is_empty() {
                top.insert(name.to_owned(), section.into());
            }
        }
        top.into()
    }
}

#[derive(Subcommand)]
enum CacheCommand {
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

/// Where Redis is.
#[derive(Args)]
struct RedisArgs {
    /// `redis://host:port[/db]` for one node, or
    /// `redis+cluster://host:port[,host:port...]` for a cluster.
    #[arg(long, value_name = "URL")]
    redis: String,
}

impl RedisArgs {
    fn open(&self) -> Result<Redis, String> {
        Redis::open(&self.redis, RedisConfig::default()).map_err(|e| e.to_string())
    }
}

/// Limits of every rule call.
#[derive(Args)]
struct SandboxArgs {
    /// Time one rule call may take, in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    time_limit_ms: u64,
    /// Memory one rule instance may use, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    memory_limit_mib: usize,
}

impl SandboxArgs {
    fn config(&self) -> SandboxConfig {
        SandboxConfig {
            time_limit: Duration::from_millis(self.time_limit_ms),
            memory_limit: self.memory_limit_mib << 20,
            ..SandboxConfig::default()
        }
    }

    fn runtime(&self) -> Result<Runtime, String> {
        Runtime::new(self.config()).map_err(|e| e.to_string())
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default: `default`).
fn init_logging(format: LogFormat, default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` reads its log format from its configuration.
    if !matches!(cli.command, Command::Serve(_)) {
        init_logging(LogFormat::Text, "warn");
    }
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Run {
            rules,
            events,
            sandbox,
        } => {
            let runtime = sandbox.runtime()?;
            let rules = RuleSet::load(&runtime, &rules).map_err(|e| e.to_string())?;
            let stdout = io::stdout().lock();
            let summary = dry_run(&rules, open_events(&events)?, stdout, io::stderr())
                .map_err(|e| format!("cannot read `{}`: {e}", events.display()))?;
            Ok(if summary.malformed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Apply {
            rules,
            events,
            redis,
            give_up_after,
            sandbox,
        } => {
            let runtime = sandbox.runtime()?;
            let rules = RuleSet::load(&runtime, &rules).map_err(|e| e.to_string())?;
            let redis = redis.open()?;
            let give_up = Duration::from_secs(give_up_after);
            let summary: ApplySummary = tokio_runtime()?.block_on(async {
                apply_events(rules, redis, open_events(&events)?, give_up, io::stderr())
                    .await
                    .map_err(|e| format!("cannot read `{}`: {e}", events.display()))
            })?;
            println!(
                "{}",
                serde_json::to_string(&summary).expect("summary serializes")
            );
            // A one-shot run that left targets unapplied failed; a service
            // reports them as they happen instead.
            Ok(if summary.complete && summary.unapplied == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Cache { command } => tokio_runtime()?.block_on(cache(command)),
        Command::Serve(args) => {
            let config = ServeConfig::load(args.config.as_deref(), args.overrides())?;
            if args.print_config {
                print!("{}", config.to_toml());
                return Ok(ExitCode::SUCCESS);
            }
            init_logging(config.log_format, "info");
            let input = match config.events_input() {
                Some(events) => Some(open_events(&events)?),
                None => None,
            };
            let rt = tokio_runtime()?;
            let summary = rt.block_on(serve(config, input, |addr| {
                // A fixed line on standard error, whatever the log settings:
                // with port 0 it is how a caller learns the port.
                eprintln!("listening on http://{addr}");
            }));
            // After a signal the thread reading standard input may still be
            // blocked in a read: do not wait for it.
            rt.shutdown_background();
            let summary = summary.map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string(&summary).expect("summary serializes")
            );
            Ok(if summary.applied.complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Diff {
            old,
            new,
            events,
            sandbox,
        } => {
            let trouble = |message: String| {
                eprintln!("error: {message}");
                Ok(ExitCode::from(2))
            };
            let runtime = match sandbox.runtime() {
                Ok(r) => r,
                Err(e) => return trouble(e),
            };
            let (old, new) = match (RuleSet::load(&runtime, &old), RuleSet::load(&runtime, &new)) {
                (Ok(old), Ok(new)) => (old, new),
                (Err(e), _) | (_, Err(e)) => return trouble(e.to_string()),
            };
            let stdout = io::stdout().lock();
            let input = match open_events(&events) {
                Ok(input) => input,
                Err(message) => return trouble(message),
            };
            let summary = match diff(&old, &new, input, stdout, io::stderr()) {
                Ok(s) => s,
                Err(e) => return trouble(format!("cannot read `{}`: {e}", events.display())),
            };
            eprintln!(
                "{} of {} commits differ",
                summary.differing, summary.commits
            );
            Ok(if summary.malformed > 0 {
                ExitCode::from(2)
            } else if summary.differing > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Check { path, sandbox } => {
            let runtime = sandbox.runtime()?;
            let rules = RuleSet::load(&runtime, &path).map_err(|e| e.to_string())?;
            for rule in rules.rules() {
                let info = rule.info();
                println!(
                    "ok: `{}` is rule {} {}",
                    rule.path().display(),
                    info.name,
                    info.version
                );
                // The version is escaped when the rule is loaded, and table
                // names with control characters are refused.
                let tables = if info.tables.is_empty() {
                    "(all)".to_owned()
                } else {
                    info.tables.join(", ")
                };
                println!("  tables:   {tables}");
                let fallback: Vec<String> = info.fallback.iter().map(show_target).collect();
                let fallback = if fallback.is_empty() {
                    "(none)".to_owned()
                } else {
                    fallback.join(", ")
                };
                println!("  fallback: {fallback}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The commits to read: standard input for `-`, else the file.
fn open_events(events: &Path) -> Result<Box<dyn BufRead + Send>, String> {
    if events.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file =
        File::open(events).map_err(|e| format!("cannot open `{}`: {e}", events.display()))?;
    Ok(Box::new(BufReader::new(file)))
}

/// The runtime for commands that talk to Redis: small, since the rules run
/// on a thread of their own.
fn tokio_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

async fn cache(command: CacheCommand) -> Result<ExitCode, String> {
    match command {
        CacheCommand::Set {
            redis,
            key,
            value,
            ttl,
            tags,
        } => {
            let ttl = ttl
                .map(|s| {
                    Duration::try_from_secs_f64(s)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            format!("invalid --ttl `{s}`: give a positive number of seconds")
                        })
                })
                .transpose()?;
            let cache = Cache::new(std::sync::Arc::new(redis.open()?));
            cache
                .set(&key, value.as_bytes(), ttl, &tags)
                .await
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Get { redis, key } => {
            let cache = Cache::new(std::sync::Arc::new(redis.open()?));
            match cache.get(&key).await.map_err(|e| e.to_string())? {
                Some(value) => {
                    use std::io::Write;
                    let mut out = io::stdout().lock();
                    out.write_all(&value)
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(|e| format!("cannot write the value: {e}"))?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("key `{key}` not found");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// A target for people: its text is the rule's, so it is shown escaped.
fn show_target(t: &Target) -> String {
    match t {
        Target::Key(k) => format!("key {}", escape(k)),
        Target::Pattern(p) => format!("pattern {}", escape(p)),
        Target::Tag(t) => format!("tag {}", escape(t)),
    }
}
