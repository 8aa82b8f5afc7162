//! [`Runtime`]: the Wasm engine shared by every rule, with the linker that
//! gives rules their (deliberately tiny) set of imports, and the clock that
//! enforces time limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use std::path::Path;

use super::compile_cache::CompileCache;
use super::sandbox::Sandbox;
use super::{LoadError, SandboxConfig};
use crate::bindings::Rule;

/// How often the engine's epoch advances. Time limits are counted in these
/// ticks: epoch checks cost far less than fuel metering on the hot path.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// Bytes of each pooled linear memory kept mapped between calls.
const KEEP_RESIDENT: usize = 1 << 20;

/// The Wasm engine, linker and limits shared by every rule.
///
/// Create one per process and load every rule through it. It is cheap to
/// clone and safe to share across threads.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    compile_cache: Option<CompileCache>,
    linker: Linker<Sandbox>,
    config: SandboxConfig,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Sets up the engine with these limits.
    pub fn new(config: SandboxConfig) -> Result<Self, LoadError> {
        Self::build(config, None)
    }

    /// A runtime that keeps compiled components in `dir`, keyed by content
    /// hash and engine version, so that loading a rule it has seen before
    /// skips compilation (see [`CompileCache`]). `dir` must be a folder only
    /// this host writes: it is refused if group or others can write it.
    pub fn with_compile_cache(config: SandboxConfig, dir: &Path) -> Result<Self, LoadError> {
        Self::build(config, Some(dir))
    }

    fn build(config: SandboxConfig, cache_dir: Option<&Path>) -> Result<Self, LoadError> {
        let engine_err = LoadError::Engine;
        let mut pool = PoolingAllocationConfig::new();
        // A rule instance lives for one call; the pool bounds how many calls
        // run at once and lets instantiation reuse memory instead of mapping
        // it afresh (microseconds instead of tens of them).
        pool.total_component_instances(config.max_instances)
            .total_memories(config.max_instances)
            .total_tables(config.max_instances * 4)
            .total_core_instances(config.max_instances * 8)
            .max_memory_size(config.memory_limit)
            // A fresh instance per call would otherwise pay a page fault for
            // every page it touches, every call: on this kind of workload that
            // is most of the cost. Keeping pages resident and resetting only
            // the dirty ones (found with the PAGEMAP_SCAN ioctl, Linux 6.7+)
            // turns that into a small memcpy.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(engine_err)?;
        let compile_cache = cache_dir
            .map(|dir| CompileCache::open(dir, &engine))
            .transpose()?;

        let mut linker = Linker::new(&engine);
        // Rules built for wasm32-wasip2 with std import WASI even when they
        // never use it. They get a WASI with no capabilities: no files, no
        // network, no environment or arguments, a clock stuck at zero and
        // fixed randomness (see `Sandbox`), so a rule stays a pure function.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
        Rule::add_to_linker::<_, HasSelf<Sandbox>>(&mut linker, |s| s).map_err(engine_err)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("invalidator-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(LoadError::EpochThread)?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                compile_cache,
                linker,
                config,
                stop,
                ticker: Some(ticker),
            }),
        })
    }

    /// The limits every call runs under.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The compile cache, if this runtime has one.
    pub fn compile_cache(&self) -> Option<&CompileCache> {
        self.inner.compile_cache.as_ref()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<Sandbox> {
        &self.inner.linker
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
