//! Build helpers, run as `cargo xtask COMMAND`:
//!
//! - `build-rules [--lang rust|python|js]`: builds the example rules of one
//!   language into components: every crate of `example-rules/` into
//!   `target/rules/NAME.wasm` (the default, needing only cargo), the Python
//!   examples of `rules-sdk-python/examples/` into `target/rules/python/`,
//!   the JavaScript ones of `rules-sdk-js/examples/` into `target/rules/js/`.
//!   The Python and JS toolchains (componentize-py from PyPI,
//!   componentize-js from npm) are installed under `target/toolchains/` on
//!   first use.
//! - `bench-rules`: the rules benchmark (native vs Wasm, ns per write; the
//!   Python and JS rules vs the Rust ones).
//! - `bench-redis`: the Redis benchmark (end to end vs `redis-benchmark`,
//!   and the one-pass pattern sweep); `bench-redis replicas`: the end to
//!   end figure with one replica acknowledging against none; `bench-redis
//!   explain`: the end-to-end and one-write figures with the explain log
//!   on against off; `bench-redis feed`: the same with the invalidation
//!   feed on against off; `bench-redis near`: a near-cache hit of the Python
//!   client against a Redis `GET` (`clients/python/benches/bench_near.py`).
//! - `bench-reload`: rule swap latency under a stream of commits.
//! - `bench-service`: `invalidator serve` over HTTP and a Redis stream
//!   (commits per second, p99 latency), with the release binary.
//! - `bench-cdc`: `invalidator serve --postgres` on a throwaway Postgres
//!   (commit-to-key-gone latency at 1,000 tx/s, and throughput against
//!   `pg_recvlogical`), with the release binary; `bench-cdc --mysql` the
//!   same for `serve --mysql` on a throwaway MariaDB, against
//!   `mariadb-binlog --read-from-remote-server`.
//! - `bench-django`: µs per Django `save()` with nothing, with the Postgres
//!   source, and with the hooks over HTTP and over a stream, interleaved in
//!   one run (`clients/python/benches/bench_django.py`), with the release
//!   binary.
//! - `check-stale`: the read/invalidate race on Postgres, Redis and
//!   `serve`, with leases and with plain get/set: how many cached values
//!   end stale; `check-stale near`: the same race read through the Python
//!   client's near cache (`clients/python/benches/check_stale_near.py`).
//! - `check-warm`: hot keys invalidated under load, read through the
//!   Python client with a `Warmer` and without
//!   (`clients/python/benches/check_warm.py`): the misses after each
//!   invalidation, how long keys stay cold, and stale reads.
//! - `check-failover`: Sentinel failovers after the replica was cut off,
//!   with `serve` asking replica acknowledgements, with the replay alone,
//!   and with neither: how many invalidated keys come back.
//! - `test`: the whole test suite, Rust, Python and JavaScript, after making
//!   sure the toolchain has what it needs (the `wasm32-wasip2` target, the
//!   componentize-py and componentize-js toolchains, a virtual environment
//!   for the Python packages).

mod toolchains;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The target rule components are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-rules") => match args.get(1..).unwrap_or_default() {
            [] => build_rules().map(|_| ()),
            [flag, lang] if flag == "--lang" => match lang.as_str() {
                "rust" => build_rules().map(|_| ()),
                "python" => toolchains::build_python_examples().map(|_| ()),
                "js" => toolchains::build_js_examples().map(|_| ()),
                other => Err(format!(
                    "unknown language `{other}` for --lang: expected rust, python or js"
                )),
            },
            other => Err(format!(
                "unexpected arguments {other:?}: usage: cargo xtask build-rules [--lang rust|python|js]"
            )),
        },
        Some("bench-rules") => toolchains::build_python_examples()
            .and_then(|_| toolchains::build_js_examples())
            .and_then(|_| bench("rules", &args[1..])),
        Some("bench-redis") if args.get(1).map(String::as_str) == Some("near") => {
            python_script("bench_near.py", &args[2..])
        }
        Some("bench-redis") => bench("redis", &args[1..]),
        Some("bench-reload") => toolchains::build_python_examples()
            .and_then(|_| toolchains::build_js_examples())
            .and_then(|_| bench("reload", &args[1..])),
        Some("bench-service") => bench_with_binary("service", &args[1..]),
        Some("bench-cdc") if args[1..].iter().any(|a| a == "--mysql") => {
            bench_with_binary("cdc_mysql", &[])
        }
        Some("bench-cdc") => bench_with_binary("cdc", &args[1..]),
        Some("bench-django") => bench_django(&args[1..]),
        Some("check-stale") => check_stale(&args[1..]),
        Some("check-warm") => check_warm(&args[1..]),
        Some("check-failover") => bench_with_binary("check_failover", &args[1..]),
        Some("test") => test(&args[1..]),
        _ => Err(
            "usage: cargo xtask <build-rules [--lang rust|python|js] | bench-rules | bench-redis [near|explain|feed|replicas] | bench-reload | bench-service | bench-cdc [--mysql] | bench-django | check-stale [near] | check-warm | check-failover | test [cargo test args]>"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// Installs the Wasm target with rustup when the toolchain lacks it.
fn ensure_wasm_target() -> Result<(), String> {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && Path::new(&libdir).exists() {
        return Ok(());
    }
    eprintln!("xtask: installing the {WASM_TARGET} target with rustup");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Builds every example rule and copies it to `target/rules/NAME.wasm`.
fn build_rules() -> Result<Vec<PathBuf>, String> {
    ensure_wasm_target()?;
    let root = root();
    let mut names: Vec<String> = std::fs::read_dir(root.join("example-rules"))
        .map_err(|e| format!("cannot list `example-rules`: {e}"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let wasm_dir = root.join("target/wasm");
    let mut cmd = cargo();
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&wasm_dir);
    for n in &names {
        cmd.args(["-p", n]);
    }
    run(&mut cmd)?;
    let out_dir = root.join("target/rules");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", out_dir.display()))?;
    let mut written = Vec::new();
    for n in &names {
        let built = wasm_dir
            .join(WASM_TARGET)
            .join("release")
            .join(format!("{n}.wasm"));
        let dest = out_dir.join(format!("{n}.wasm"));
        // Write a new file and rename it into place: a host watching the
        // folder, or one that memory-mapped the old file, never sees a
        // half-written rule.
        let tmp = out_dir.join(format!(".{n}.wasm.tmp"));
        std::fs::copy(&built, &tmp)
            .map_err(|e| format!("cannot copy `{}`: {e}", built.display()))?;
        std::fs::rename(&tmp, &dest)
            .map_err(|e| format!("cannot write `{}`: {e}", dest.display()))?;
        println!("{}", dest.display());
        written.push(dest);
    }
    Ok(written)
}

/// Runs a benchmark of the `invalidator-tests` package in release mode.
fn bench(name: &str, args: &[String]) -> Result<(), String> {
    ensure_wasm_target()?;
    run(cargo()
        .current_dir(root())
        .args([
            "bench",
            "--package",
            "invalidator-tests",
            "--bench",
            name,
            "--",
        ])
        .args(args))
}

/// A benchmark that runs the release build of the `invalidator` binary as
/// separate processes (`service`, `cdc`).
fn bench_with_binary(name: &str, args: &[String]) -> Result<(), String> {
    bench_with_binary_env(name, args, &[])
}

/// [`bench_with_binary`], with more environment variables.
fn bench_with_binary_env(
    name: &str,
    args: &[String],
    envs: &[(&str, PathBuf)],
) -> Result<(), String> {
    ensure_wasm_target()?;
    let root = root();
    let bin = release_binary()?;
    run(cargo()
        .current_dir(&root)
        .env("INVALIDATOR_BIN", &bin)
        .envs(envs.iter().map(|(k, v)| (*k, v)))
        .args([
            "bench",
            "--package",
            "invalidator-tests",
            "--bench",
            name,
            "--",
        ])
        .args(args))
}

/// The test suite: the Python and JavaScript rules and test guests built
/// first (the Rust tests load them), then every crate of the workspace,
/// including the example rules natively and the integration tests that
/// build their own Wasm; then, unless `args` narrow the Rust tests down, the
/// Python packages' (ruff and pytest, in a virtual environment of their
/// own) and the JavaScript SDK's (`node --test`).
fn test(args: &[String]) -> Result<(), String> {
    ensure_wasm_target()?;
    let root = root();
    toolchains::build_python_examples()?;
    toolchains::build_js_examples()?;
    toolchains::build_python(
        &root.join("tests/guests-python"),
        &root.join("target/guests/python"),
    )?;
    toolchains::build_js(
        &root.join("tests/guests-js"),
        &root.join("target/guests/js"),
        toolchains::Js::Interpreted,
    )?;
    // The `serve`, `check`, `test` and `run` processes the tests start keep
    // compiled rules in the default compile cache: in the build folder,
    // not in the user's own cache folder.
    run(cargo()
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(args)
        .env("XDG_CACHE_HOME", test_cache()))?;
    if args.is_empty() {
        python_tests()?;
        run(Command::new("node")
            .current_dir(root.join("rules-sdk-js"))
            .args(["--test", "test/"]))?;
    }
    Ok(())
}

/// The Python packages' checks and tests: the client package against the
/// binary and the rule components the Rust build made, and the rules SDK
/// natively. The virtual environment lives in `target/python-venv` and is
/// made (from PyPI) when missing.
fn python_tests() -> Result<(), String> {
    let root = root();
    build_rules()?;
    let bin = python_venv()?;
    let package = root.join("clients/python");
    let sdk = root.join("rules-sdk-python");
    for dir in [&package, &sdk] {
        run(Command::new(bin.join("ruff"))
            .current_dir(dir)
            .args(["check", "."]))?;
        run(Command::new(bin.join("ruff"))
            .current_dir(dir)
            .args(["format", "--check", "."]))?;
    }
    // Plain pytest, no Wasm: as a rule team runs its rule's tests.
    run(Command::new(bin.join("pytest")).current_dir(&sdk).arg("-q"))?;
    run(Command::new(bin.join("pytest"))
        .current_dir(&package)
        .arg("-q")
        .env("INVALIDATOR_BIN", root.join("target/debug/invalidator"))
        .env("INVALIDATOR_RULES", root.join("target/rules"))
        .env("XDG_CACHE_HOME", test_cache()))
}

/// The virtual environment of the Python packages, `target/python-venv`,
/// made (from PyPI) when missing, with the client package installed
/// editable with its test extras; its `bin` folder.
fn python_venv() -> Result<PathBuf, String> {
    let root = root();
    let venv = root.join("target/python-venv");
    let bin = venv.join("bin");
    if !bin.join("python").is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(bin.join("pip"))
        .args(["install", "--quiet", "--editable"])
        .arg(format!("{}[test]", root.join("clients/python").display())))?;
    Ok(bin)
}

/// Builds the release `invalidator` binary; its path.
fn release_binary() -> Result<PathBuf, String> {
    let root = root();
    run(cargo().current_dir(&root).args([
        "build",
        "--release",
        "--package",
        "invalidator",
        "--bin",
        "invalidator",
    ]))?;
    Ok(root.join("target/release/invalidator"))
}

/// `bench-django`: the Django benchmark script, in the Python packages'
/// environment, with the release binary and the example rules.
fn bench_django(args: &[String]) -> Result<(), String> {
    let root = root();
    build_rules()?;
    release_binary()?;
    let bin = python_venv()?;
    run(Command::new(bin.join("python"))
        .current_dir(&root)
        .arg("clients/python/benches/bench_django.py")
        .arg("--bin")
        .arg(root.join("target/release/invalidator"))
        .arg("--rules")
        .arg(root.join("target/rules"))
        .args(args)
        .env("XDG_CACHE_HOME", test_cache()))
}

/// A script of `clients/python/benches/`, in the Python packages'
/// environment (it starts the servers it needs itself).
fn python_script(script: &str, args: &[String]) -> Result<(), String> {
    let root = root();
    let bin = python_venv()?;
    run(Command::new(bin.join("python"))
        .current_dir(&root)
        .arg(root.join("clients/python/benches").join(script))
        .args(args)
        .env("XDG_CACHE_HOME", test_cache()))
}

/// `check-stale [near]`: the race benchmark; its near mode runs the Python
/// client's readers, in the Python packages' environment.
fn check_stale(args: &[String]) -> Result<(), String> {
    let python = python_venv()?.join("python");
    bench_with_binary_env("check_stale", args, &[("INVALIDATOR_PYTHON", python)])
}

/// `check-warm`: the warming script, with the release binary and the
/// example rules.
fn check_warm(args: &[String]) -> Result<(), String> {
    let root = root();
    build_rules()?;
    let invalidator = release_binary()?;
    let mut all = vec![
        "--invalidator".to_owned(),
        invalidator.display().to_string(),
        "--rules".to_owned(),
        root.join("target/rules").display().to_string(),
    ];
    all.extend_from_slice(args);
    python_script("check_warm.py", &all)
}

/// The cache folder the tests' processes use (`XDG_CACHE_HOME`).
fn test_cache() -> PathBuf {
    root().join("target/test-cache")
}
