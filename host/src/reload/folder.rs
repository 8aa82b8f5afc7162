//! [`RuleFolder`]: the rules of one folder, file by file, and how a change on
//! disk becomes the next rule set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fixture;
use crate::rules::{LoadedRule, RuleSet, Runtime, content_hash};

/// What one refresh did.
#[derive(Default)]
pub struct Refresh {
    /// The next rule set, when anything changed and it all held together;
    /// `None` when the running set stays.
    pub set: Option<Arc<RuleSet>>,
    /// Files put in service (new or changed).
    pub loaded: Vec<PathBuf>,
    /// Files gone from the folder, whose rules left service.
    pub removed: Vec<PathBuf>,
    /// The next set of shadow rules (`*.shadow.wasm`), when any shadow
    /// file changed; `None` when the running shadows stay.
    pub shadows: Option<Arc<RuleSet>>,
    /// Files refused, with the reason; their running version (if any)
    /// keeps serving.
    pub rejected: Vec<(PathBuf, String)>,
}

/// The rule files of a folder and the version of each in service.
///
/// A file is `NAME.wasm`; `*.shadow.wasm` files and names starting with a
/// dot (temporary files being written) are not rules in service.
pub struct RuleFolder {
    runtime: Runtime,
    dir: PathBuf,
    rules: BTreeMap<PathBuf, LoadedRule>,
    shadows: BTreeMap<PathBuf, LoadedRule>,
}

/// The outcome of looking at one kind of file (rules, or shadows).
struct Pass {
    next: BTreeMap<PathBuf, LoadedRule>,
    loaded: Vec<PathBuf>,
    removed: Vec<PathBuf>,
    rejected: Vec<(PathBuf, String)>,
}

impl RuleFolder {
    /// An empty folder of `dir`; call [`refresh`](Self::refresh) to load.
    pub fn new(runtime: Runtime, dir: &Path) -> Self {
        Self {
            runtime,
            dir: dir.to_owned(),
            rules: BTreeMap::new(),
            shadows: BTreeMap::new(),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rules in service, by file.
    pub fn rules(&self) -> impl Iterator<Item = (&Path, &LoadedRule)> {
        self.rules.iter().map(|(p, r)| (p.as_path(), r))
    }

    /// The shadow rules, by file.
    pub fn shadows(&self) -> impl Iterator<Item = (&Path, &LoadedRule)> {
        self.shadows.iter().map(|(p, r)| (p.as_path(), r))
    }

    fn rule_files(&self, shadows: bool) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".wasm")
                    && name.ends_with(".shadow.wasm") == shadows
                    && !name.starts_with('.')
            })
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Ok(files)
    }

    /// Looks at the folder again: loads each new or changed file (by
    /// content hash), validates it (a component of the contract whose
    /// `describe` answers, and whose fixture, if it ships one, passes), and
    /// builds the next rule set. A file that fails is reported and its
    /// running version stays; if the new files clash on a rule name, the
    /// whole running set stays.
    pub fn refresh(&mut self) -> Refresh {
        let mut refresh = Refresh::default();
        let (files, shadow_files) = match (self.rule_files(false), self.rule_files(true)) {
            (Ok(files), Ok(shadows)) => (files, shadows),
            (Err(e), _) | (_, Err(e)) => {
                refresh
                    .rejected
                    .push((self.dir.clone(), format!("cannot list the folder: {e}")));
                return refresh;
            }
        };
        let rules = self.pass(&files, &self.rules);
        let shadows = self.pass(&shadow_files, &self.shadows);
        refresh.rejected = rules.rejected;
        refresh.rejected.extend(shadows.rejected);
        if !rules.loaded.is_empty() || !rules.removed.is_empty() {
            match RuleSet::new(rules.next.values().cloned().collect()) {
                Ok(set) => {
                    self.rules = rules.next;
                    refresh.set = Some(Arc::new(set));
                    refresh.loaded = rules.loaded;
                    refresh.removed = rules.removed;
                }
                // A name clash: nothing of this refresh goes in service.
                Err(e) => refresh
                    .rejected
                    .extend(rules.loaded.into_iter().map(|p| (p, e.to_string()))),
            }
        }
        if !shadows.loaded.is_empty() || !shadows.removed.is_empty() {
            match RuleSet::new(shadows.next.values().cloned().collect()) {
                Ok(set) => {
                    self.shadows = shadows.next;
                    refresh.shadows = Some(Arc::new(set));
                    refresh.loaded.extend(shadows.loaded);
                    refresh.removed.extend(shadows.removed);
                }
                Err(e) => refresh
                    .rejected
                    .extend(shadows.loaded.into_iter().map(|p| (p, e.to_string()))),
            }
        }
        refresh
    }

    /// Loads and validates the new or changed `files` against the running
    /// versions in `running`.
    fn pass(&self, files: &[PathBuf], running: &BTreeMap<PathBuf, LoadedRule>) -> Pass {
        let mut pass = Pass {
            next: BTreeMap::new(),
            loaded: Vec::new(),
            removed: Vec::new(),
            rejected: Vec::new(),
        };
        for path in files {
            let current = running.get(path);
            let keep = |pass: &mut Pass| {
                if let Some(r) = current {
                    pass.next.insert(path.clone(), r.clone());
                }
            };
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    pass.rejected
                        .push((path.clone(), format!("cannot read it: {e}")));
                    keep(&mut pass);
                    continue;
                }
            };
            let hash = content_hash(&bytes);
            if current.is_some_and(|r| r.hash() == hash) {
                keep(&mut pass);
                continue;
            }
            let candidate = LoadedRule::from_hashed_bytes(&self.runtime, path, &bytes, hash)
                .map_err(|e| e.to_string())
                .and_then(|rule| {
                    fixture::check(&rule)
                        .map(|()| rule)
                        .map_err(|e| e.to_string())
                });
            match candidate {
                Ok(rule) => {
                    pass.loaded.push(path.clone());
                    pass.next.insert(path.clone(), rule);
                }
                Err(reason) => {
                    pass.rejected.push((path.clone(), reason));
                    keep(&mut pass);
                }
            }
        }
        pass.removed = running
            .keys()
            .filter(|p| !pass.next.contains_key(*p))
            .cloned()
            .collect();
        pass
    }
}
