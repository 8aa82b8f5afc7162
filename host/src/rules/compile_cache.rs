//! [`CompileCache`]: compiled rule components kept on disk, so that a
//! restart with many rules does not compile them all again.
//!
//! A compiled component is native code that runs outside the sandbox:
//! wasmtime can only check that an entry was made by a compatible engine,
//! not that it is the code of the component it claims to be. So the cache
//! trusts nothing it did not write itself:
//!
//! - It lives in a folder the host owns, by default under the platform
//!   cache folder ([`default_dir`]), never inside a rules folder, where
//!   whoever deploys rules could plant entries ([`check_outside`]).
//!   A folder that group or others can write is refused when opened.
//! - Every entry carries a MAC (keyed BLAKE3) keyed by a random secret
//!   kept in the folder with mode 0600. It covers the engine's compatibility
//!   key, the SHA-256 of the component the code was compiled from, and the
//!   compiled bytes. An entry copied from another rule, truncated, damaged,
//!   or written by anyone without the key fails the check, is logged,
//!   counted ([`CompileCache::rejected`]) and rebuilt, and is never handed
//!   to wasmtime.
//! - An entry is read into memory once and the same bytes are checked and
//!   deserialized, so it cannot change between the check and the use.
//!
//! Entries are named after the content hash and the engine's compatibility
//! key, so an entry of another engine is never even looked at. They are
//! written to a temporary file and renamed into place.

use std::fs::{DirBuilder, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use wasmtime::Engine;
use wasmtime::component::Component;

/// The start of every entry: names the format, so a file of another
/// layout is told apart from a forged one in the logs. (Version 1 carried
/// an HMAC-SHA256: checking it took a third of a cached swap of a Python
/// or JS rule, whose compiled code is tens of MB; BLAKE3 is several times
/// faster.)
const MAGIC: &[u8; 8] = b"INVCWv2\n";
/// Bytes of a MAC.
const TAG_LEN: usize = blake3::OUT_LEN;
/// Bytes of the secret key.
const KEY_LEN: usize = 32;
/// The key's file in the cache folder.
const KEY_FILE: &str = "key";

/// Why a folder cannot serve as the compile cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Creating or reading the folder or its key failed.
    #[error("compile cache `{}`: {reason}: {source}", dir.display())]
    Io {
        /// The cache folder.
        dir: PathBuf,
        /// What was being done.
        reason: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The folder or its key could be written or read by others.
    #[error("compile cache `{}` is not safe: {reason}", path.display())]
    Unsafe {
        /// The folder or file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The folder is inside the rules folder.
    #[error(
        "compile cache `{}` is inside the rules folder `{}`: whoever deploys rules could plant \
         compiled code there; use a folder only this host writes",
        cache.display(),
        rules.display()
    )]
    InsideRules {
        /// The cache folder.
        cache: PathBuf,
        /// The rules folder.
        rules: PathBuf,
    },
    /// No folder was given and the platform has no cache folder.
    #[error("no compile cache folder: neither `XDG_CACHE_HOME` nor `HOME` is set")]
    NoDefault,
}

/// The platform's folder for this host's compiled rules:
/// `$XDG_CACHE_HOME/invalidator`, else `$HOME/.cache/invalidator`.
pub fn default_dir() -> Result<PathBuf, CacheError> {
    // The XDG base directory specification ignores relative paths.
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").and_then(absolute) {
        return Ok(dir.join("invalidator"));
    }
    std::env::var_os("HOME")
        .and_then(absolute)
        .map(|home| home.join(".cache").join("invalidator"))
        .ok_or(CacheError::NoDefault)
}

/// Refuses a compile cache folder `cache` inside the rules folder `rules`:
/// anyone who can deploy a rule could then plant compiled code. `rules`
/// may be one rule file: whoever may write the file may write beside it,
/// so the cache may not be its folder nor directly in it (a folder deeper
/// down is only as open as the folders between, which the cache's own
/// checks do not see, but a rule file in a shared folder such as `/tmp`
/// must not refuse every cache below it). Either may not exist yet; links
/// and `..` are resolved as far as the path exists.
pub fn check_outside(cache: &Path, rules: &Path) -> Result<(), CacheError> {
    let inside = if rules.is_file() || rules.extension().is_some_and(|e| e == "wasm") {
        let folder = match rules.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => resolved(parent),
            _ => resolved(Path::new(".")),
        };
        let cache = resolved(cache);
        cache == folder || cache.parent() == Some(folder.as_path())
    } else {
        resolved(cache).starts_with(resolved(rules))
    };
    if inside {
        return Err(CacheError::InsideRules {
            cache: cache.to_owned(),
            rules: rules.to_owned(),
        });
    }
    Ok(())
}

/// `path` made absolute, with its longest existing ancestor canonicalized.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(canonical, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// A folder of compiled components for one engine.
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    key: [u8; KEY_LEN],
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .field("engine_key", &self.engine_key)
            .finish_non_exhaustive()
    }
}

impl CompileCache {
    /// The cache in `dir` for `engine`: created (mode 0700) if missing,
    /// refused if group or others can write it, with its secret key made
    /// on first use.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let io = |reason| {
            move |source| CacheError::Io {
                dir: dir.to_owned(),
                reason,
                source,
            }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("cannot create the folder"))?;
        let meta = std::fs::metadata(dir).map_err(io("cannot read the folder"))?;
        check_private(dir, &meta, 0o022, "group or others can write it")?;
        let key = load_or_make_key(dir)?;
        // `DefaultHasher::new()` has fixed keys, so the key is the same in
        // every process built from this source.
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
            key,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
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

    /// Entries found but refused: damaged, truncated, of another
    /// component, or not written with this cache's key.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
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
        match std::fs::read(&entry) {
            Ok(bytes) => match self.open_entry(hash, &bytes) {
                Ok(code) => {
                    // SAFETY: `Component::deserialize` runs `code` as native
                    // code, so it must be what this host compiled from the
                    // component with content `hash`. `open_entry` checked its
                    // MAC, made with a key only this host's user can read,
                    // over the engine key, `hash` and exactly these bytes
                    // (held in memory, so they cannot change after the
                    // check). Wasmtime then checks its own header for engine
                    // compatibility.
                    match unsafe { Component::deserialize(engine, code) } {
                        Ok(component) => {
                            self.hits.fetch_add(1, Relaxed);
                            return Ok(component);
                        }
                        Err(e) => self.reject(&entry, &format!("{e:#}")),
                    }
                }
                Err(reason) => self.reject(&entry, reason),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.reject(&entry, &format!("cannot read it: {e}")),
        }
        self.misses.fetch_add(1, Relaxed);
        let component = compile()?;
        if let Err(e) = self.store(hash, &entry, &component) {
            // The cache only saves time: a rule still loads without it.
            tracing::warn!(entry = %entry.display(), "cannot write the compile cache: {e:#}");
        }
        Ok(component)
    }

    /// The compiled code of an entry for content `hash`, if its MAC holds.
    fn open_entry<'a>(&self, hash: &str, bytes: &'a [u8]) -> Result<&'a [u8], &'static str> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not an entry of this cache's format")?;
        if rest.len() < TAG_LEN {
            return Err("truncated");
        }
        let (tag, code) = rest.split_at(TAG_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().expect("split at TAG_LEN");
        // `blake3::Hash` compares in constant time.
        if self.mac(hash, code) != blake3::Hash::from_bytes(tag) {
            return Err("its MAC does not match: not written by this host for this component");
        }
        Ok(code)
    }

    /// The MAC of `code` compiled from the component with content `hash`,
    /// by this engine.
    fn mac(&self, hash: &str, code: &[u8]) -> blake3::Hash {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        // Lengths first, so that no two different inputs run together
        // into the same bytes.
        for part in [self.engine_key.as_bytes(), hash.as_bytes()] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.update(code);
        mac.finalize()
    }

    fn reject(&self, entry: &Path, reason: &str) {
        self.rejected.fetch_add(1, Relaxed);
        tracing::warn!(
            entry = %entry.display(),
            "refusing a compile cache entry ({reason}); compiling the rule again"
        );
    }

    fn store(&self, hash: &str, entry: &Path, component: &Component) -> wasmtime::Result<()> {
        let code = component.serialize()?;
        let tag = self.mac(hash, &code);
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        let mut file = create_private(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(tag.as_bytes())?;
        file.write_all(&code)?;
        drop(file);
        std::fs::rename(&tmp, entry)?;
        Ok(())
    }
}

/// Refuses `path` if it is not this user's, or if any of the permission
/// bits in `forbidden` is set.
fn check_private(
    path: &Path,
    meta: &std::fs::Metadata,
    forbidden: u32,
    what: &str,
) -> Result<(), CacheError> {
    let unsafe_because = |reason: String| CacheError::Unsafe {
        path: path.to_owned(),
        reason,
    };
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_because(format!(
            "it belongs to user {}, not to this process's user {me}",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & forbidden != 0 {
        return Err(unsafe_because(format!("{what} (mode {mode:03o})")));
    }
    Ok(())
}

/// The cache's secret key: read from `dir/key`, or made from the
/// operating system's randomness and written with mode 0600.
fn load_or_make_key(dir: &Path) -> Result<[u8; KEY_LEN], CacheError> {
    let path = dir.join(KEY_FILE);
    let io = |reason| {
        let dir = dir.to_owned();
        move |source| CacheError::Io {
            dir,
            reason,
            source,
        }
    };
    if !path.exists() {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| CacheError::Io {
            dir: dir.to_owned(),
            reason: "cannot get random bytes for the key",
            source: std::io::Error::other(e.to_string()),
        })?;
        // Written whole under another name, then linked into place: a
        // second process starting at the same moment either links first
        // (and this one reads its key) or finds the whole key, never a
        // half-written one.
        let tmp = dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
        let mut file = create_private(&tmp).map_err(io("cannot write the key"))?;
        file.write_all(&key).map_err(io("cannot write the key"))?;
        drop(file);
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("cannot write the key")(e)),
        }
    }
    let meta = std::fs::symlink_metadata(&path).map_err(io("cannot read the key"))?;
    if !meta.is_file() {
        return Err(CacheError::Unsafe {
            path,
            reason: "the key is not a plain file".to_owned(),
        });
    }
    check_private(
        &path,
        &meta,
        0o077,
        "others than its owner can read or write the key",
    )?;
    let bytes = std::fs::read(&path).map_err(io("cannot read the key"))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| CacheError::Unsafe {
            path,
            reason: format!("the key has {} bytes, not {KEY_LEN}", bytes.len()),
        })
}

/// Creates (or truncates) `path` for writing, readable by its owner only:
/// entries and the key are the host's alone.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}
