//! [`Catalog`]: the rules of one folder, file by file, and how a change on
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
    /// Files refused, with the reason; their running version (if any)
    /// keeps serving.
    pub rejected: Vec<(PathBuf, String)>,
}

/// The rule files of a folder and the version of each in service.
///
/// A file is `NAME.wasm`; `*.shadow.wasm` files and names starting with a
/// dot (temporary files being written) are not rules in service.
pub struct Catalog {
    runtime: Runtime,
    dir: PathBuf,
    rules: BTreeMap<PathBuf, LoadedRule>,
}

impl Catalog {
    /// An empty catalog of `dir`; call [`refresh`](Self::refresh) to load.
    pub fn new(runtime: Runtime, dir: &Path) -> Self {
        Self {
            runtime,
            dir: dir.to_owned(),
            rules: BTreeMap::new(),
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

    fn rule_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".wasm") && !name.ends_with(".shadow.wasm") && !name.starts_with('.')
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
        let files = match self.rule_files() {
            Ok(files) => files,
            Err(e) => {
                refresh
                    .rejected
                    .push((self.dir.clone(), format!("cannot list the folder: {e}")));
                return refresh;
            }
        };
        let mut next = BTreeMap::new();
        for path in &files {
            let running = self.rules.get(path);
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    refresh
                        .rejected
                        .push((path.clone(), format!("cannot read it: {e}")));
                    if let Some(r) = running {
                        next.insert(path.clone(), r.clone());
                    }
                    continue;
                }
            };
            if let Some(r) = running
                && r.hash() == content_hash(&bytes)
            {
                next.insert(path.clone(), r.clone());
                continue;
            }
            let candidate = LoadedRule::from_bytes(&self.runtime, path, &bytes)
                .map_err(|e| e.to_string())
                .and_then(|rule| fixture::check(&rule).map(|()| rule));
            match candidate {
                Ok(rule) => {
                    refresh.loaded.push(path.clone());
                    next.insert(path.clone(), rule);
                }
                Err(reason) => {
                    refresh.rejected.push((path.clone(), reason));
                    if let Some(r) = running {
                        next.insert(path.clone(), r.clone());
                    }
                }
            }
        }
        refresh.removed = self
            .rules
            .keys()
            .filter(|p| !next.contains_key(*p))
            .cloned()
            .collect();
        if refresh.loaded.is_empty() && refresh.removed.is_empty() {
            return refresh;
        }
        match RuleSet::new(next.values().cloned().collect()) {
            Ok(set) => {
                self.rules = next;
                refresh.set = Some(Arc::new(set));
            }
            Err(e) => {
                // A name clash: nothing of this refresh goes in service.
                let reason = e.to_string();
                for path in refresh.loaded.drain(..) {
                    refresh.rejected.push((path, reason.clone()));
                }
                refresh.removed.clear();
            }
        }
        refresh
    }
}
