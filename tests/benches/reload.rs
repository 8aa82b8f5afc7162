//! `cargo xtask bench-reload`: how long a rule file takes to go from its
//! rename into the watched folder to handling commits, while a steady
//! stream of commits runs through the host; and whether any commit was
//! lost or handled twice during the swaps.
//!
//! The folder holds one rule; each swap renames version 1 or version 2 of
//! it over the file (alternately), as a deploy would. The latency is taken
//! from just before the rename until the pipeline's rule set in service is
//! the new build (the next batch of commits uses it). Compiled code is
//! cached on disk, as `serve` does, so only the first swap (to version 2;
//! version 1 compiled at start) compiles: it is reported apart, with how
//! many commits version 1 served meanwhile, and the percentiles are of the
//! cached swaps.
//!
//! Three rules in turn: the Rust turnus (versions 1 and 2), the Python
//! turnus and the JavaScript pos (version 2 being version 1 with a custom
//! section appended: other bytes, the same code). Run with `cargo xtask
//! bench-reload`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use invalidator::commit::{Commit, Op, Value, Write};
use invalidator::pipeline::{Invalidator, PipelineConfig};
use invalidator::reload::{Reloader, RuleFolder};
use invalidator::rules::{Runtime, SandboxConfig, content_hash};
use invalidator::sink::{MemoryStore, Store};
use invalidator_tests::{guests, polyglot};

const SWAPS: usize = 100;
/// One commit every this long, from a thread of its own.
const EVERY: Duration = Duration::from_micros(200);

fn commit(i: u64, table: &str) -> Commit {
    let row = vec![
        ("id".to_owned(), Value::Integer(i as i64)),
        ("turnus_id".to_owned(), Value::Integer((i % 900) as i64)),
        ("shop_id".to_owned(), Value::Integer((i % 50) as i64)),
    ];
    Commit {
        txn: format!("t-{i}"),
        source: None,
        writes: vec![Write {
            table: table.into(),
            op: Op::Insert,
            key: vec![("id".to_owned(), Value::Integer(i as i64))],
            before: None,
            after: Some(row),
        }],
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

/// `bytes` with an empty custom section appended: a valid component with
/// the same code and another hash.
fn with_custom_section(bytes: &[u8]) -> Vec<u8> {
    let name = b"invalidator-bench";
    let mut out = bytes.to_vec();
    // Section id 0 (custom), its size, then the name's size and the name.
    out.extend([0u8, name.len() as u8 + 1, name.len() as u8]);
    out.extend(name);
    out
}

fn main() {
    let read = |p: &Path| std::fs::read(p).expect("the rule file reads");
    let rust = [guests::TURNUS, guests::TURNUS_V2].map(|p| read(Path::new(p)));
    let python = read(&polyglot::python_rule("turnus"));
    let js = read(&polyglot::js_rule("pos"));
    let mut summary = Vec::new();
    for (label, versions, table) in [
        ("rust turnus", rust, "geld"),
        (
            "python turnus",
            [with_custom_section(&python), python],
            "geld",
        ),
        ("js pos", [with_custom_section(&js), js], "products"),
    ] {
        summary.push((label, swaps(label, versions, table)));
    }
    for (label, line) in summary {
        println!("{label}: {line}");
    }
}

/// Runs the swaps of one rule; returns its summary line.
fn swaps(label: &str, versions: [Vec<u8>; 2], table: &'static str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "invalidator-bench-reload-{}-{}",
        std::process::id(),
        label.replace(' ', "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("cache"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rule.wasm");
    let tmp = dir.join(".rule.wasm.tmp");
    let versions = versions.map(|bytes| (content_hash(&bytes), bytes));
    std::fs::write(&file, &versions[0].1).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    // Beside the rules folder, never in it: see the compile cache's docs.
    let rules_runtime =
        Runtime::with_compile_cache(SandboxConfig::default(), &dir.with_extension("cache"))
            .unwrap();
    let mut catalog = RuleFolder::new(rules_runtime, &dir);
    let first = catalog.refresh().set.expect("the first version loads");
    let config = PipelineConfig {
        rollback: None,
        ..PipelineConfig::default()
    };
    let invalidator = Arc::new(Invalidator::start(
        first,
        Store::Memory(Arc::new(MemoryStore::new())),
        config,
    ));
    let reloader = {
        let invalidator = invalidator.clone();
        Reloader::watch(catalog, move |change| {
            if let Some(set) = &change.set {
                invalidator.swap_rules(set.clone());
            }
        })
        .unwrap()
    };

    // The steady stream.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (invalidator, stop) = (invalidator.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                invalidator.after_commit(commit(i, table));
                i += 1;
                let due = start + EVERY * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            i
        })
    };

    let in_service = |inv: &Invalidator| inv.rule_set().rules()[0].hash().to_owned();
    let mut latencies = Vec::with_capacity(SWAPS);
    let mut first = Vec::new();
    for swap in 1..=SWAPS {
        let (hash, bytes) = &versions[swap % 2];
        std::fs::write(&tmp, bytes).unwrap();
        let evaluated = invalidator.stats().evaluated;
        let start = Instant::now();
        std::fs::rename(&tmp, &file).unwrap();
        while in_service(&invalidator) != *hash {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{label}: swap {swap} never happened"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        // Version 1 was compiled at start; the first swap, to version 2, is
        // the one that compiles.
        if swap == 1 {
            let served = invalidator.stats().evaluated - evaluated;
            first.push((ms, served));
        } else {
            latencies.push(ms);
        }
        // Let the stream run on this version for a moment.
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = stream.join().unwrap();
    drop(reloader);
    runtime.block_on(invalidator.flush());
    let stats = invalidator.stats();
    let lost = sent.saturating_sub(stats.evaluated);
    let duplicated = stats.evaluated.saturating_sub(sent);
    latencies.sort_by(f64::total_cmp);
    println!(
        "{label}: {SWAPS} swaps under a stream of {sent} commits ({:.0} commits/s); swaps counted: {}",
        1.0 / EVERY.as_secs_f64(),
        stats.swaps
    );
    for (ms, served) in &first {
        println!(
            "{label}: first swap to version 2: {ms:.0} ms (compiling, off the serving path: \
             {served} commits served meanwhile by version 1)"
        );
    }
    println!(
        "{label}: cached swaps ms: min {:.1}, p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        latencies[0],
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("cache"));
    format!(
        "reload p50 ms: {:.0}, p99 ms: {:.0} (cached), first compile ms: {:.0}, lost: {lost}, duplicated: {duplicated}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        first.iter().map(|f| f.0).fold(0.0, f64::max)
    )
}
