//! [`CompileCache`]: compiled rule components kept on disk, so that a
//! restart with many rules does not compile them all again.
//!
//! An entry is named after the component's content hash *and* the engine's
//! compatibility key (wasmtime version and every setting that changes the
//! code it emits), so an entry from another engine is never even looked
//! at. One that still fails to load (damaged, truncated) is ignored and
//! replaced. Entries are written to a temporary file and renamed into
//! place: a memory-mapped entry is never overwritten in place.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A folder of compiled components for one engine.
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CompileCache {
    /// The cache in `dir` (created if missing) for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // `DefaultHasher::new()` has fixed keys, so the key is the same in
        // every process built from this source.
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file an entry for content `hash` has with this engine.
    pub fn entry(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.{}.cwasm", self.engine_key))
    }

    /// Components found in the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Relaxed)
    }

    /// Components that had to be compiled so far.
    pub fn misses(&self) -> u64 {
        self.misses.load(Relaxed)
    }

    /// The compiled component for content `hash`, compiling it with
    /// `compile` (and keeping the result) when there is no usable entry.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        hash: &str,
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        let entry = self.entry(hash);
        if entry.is_file() {
            // SAFETY: the entry is a file this cache wrote with
            // `Component::serialize` for an engine with the same
            // compatibility key; wasmtime checks its header again and
            // refuses anything else, which lands in the `Err` arm.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => {
                    self.hits.fetch_add(1, Relaxed);
                    return Ok(component);
                }
                Err(e) => tracing::warn!(
                    entry = %entry.display(),
                    "ignoring a compile cache entry that does not load: {e:#}"
                ),
            }
        }
        self.misses.fetch_add(1, Relaxed);
        let component = compile()?;
        if let Err(e) = self.store(&entry, &component) {
            // The cache only saves time: a rule still loads without it.
            tracing::warn!(entry = %entry.display(), "cannot write the compile cache: {e:#}");
        }
        Ok(component)
    }

    fn store(&self, entry: &Path, component: &Component) -> wasmtime::Result<()> {
        let bytes = component.serialize()?;
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, entry)?;
        Ok(())
    }
}
