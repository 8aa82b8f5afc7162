//! [`Reloader`]: watches a rule folder and puts each new rule set in
//! service.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, EventKind};
use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache, new_debouncer,
};

use super::{Refresh, RuleFolder};

/// How long the folder must be quiet before a change is acted on: long
/// enough to see a copy through, short enough to keep a swap well under a
/// quarter of a second.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Watches a [`RuleFolder`]'s folder; on every change, refreshes it and hands
/// the next rule set to a callback. Dropping it stops the watching.
pub struct Reloader {
    folder: Arc<Mutex<RuleFolder>>,
    refused: Arc<AtomicU64>,
    looks: Arc<AtomicU64>,
    on_change: Arc<dyn Fn(&Refresh) + Send + Sync>,
    // Held for its `Drop`, which stops the watcher thread.
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// The rules folder cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch `{}`: {source}", dir.display())]
pub struct WatchError {
    /// The folder.
    pub dir: std::path::PathBuf,
    /// Why.
    pub source: notify_debouncer_full::notify::Error,
}

impl Reloader {
    /// Starts watching `folder`'s folder. Each refresh that changed
    /// anything (a new rule set, new shadows) is handed to `on_change`
    /// (which swaps them in), then logged, refused files with their reason.
    pub fn watch(
        folder: RuleFolder,
        on_change: impl Fn(&Refresh) + Send + Sync + 'static,
    ) -> Result<Self, WatchError> {
        let dir = folder.dir().to_owned();
        let folder = Arc::new(Mutex::new(folder));
        let refused = Arc::new(AtomicU64::new(0));
        let looks = Arc::new(AtomicU64::new(0));
        let on_change: Arc<dyn Fn(&Refresh) + Send + Sync> = Arc::new(on_change);
        let shared = folder.clone();
        let counted = refused.clone();
        let looked = looks.clone();
        let changed = on_change.clone();
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            match result {
                Ok(events) if !events.iter().any(changes_a_file) => return,
                Ok(_) => {}
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("watching the rules folder: {e}");
                    }
                    // Something changed that we could not hear about: look.
                }
            }
            looked.fetch_add(1, Relaxed);
            let folder = shared.lock().expect("folder lock");
            settle(folder, &counted, &*changed);
        })
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
        debouncer
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                dir: dir.clone(),
                source,
            })?;
        Ok(Self {
            folder,
            refused,
            looks,
            on_change,
            _debouncer: debouncer,
        })
    }

    /// Refreshes now, without waiting for the watcher, and hands a change
    /// to the callback as the watcher would.
    pub fn refresh(&self) -> Refresh {
        let folder = self.folder.lock().expect("folder lock");
        settle(folder, &self.refused, &*self.on_change)
    }

    /// How many times a change in the folder made the watcher look at it
    /// (refreshes asked for by [`refresh`](Self::refresh) are not counted).
    pub fn looks(&self) -> u64 {
        self.looks.load(Relaxed)
    }

    /// Rule files refused so far (each time a file was looked at and
    /// failed: not a component, a failing fixture, a name clash...).
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

/// Whether `event` may have changed what the folder holds. A file opened
/// or read changes nothing, and must not count: the watcher hears every
/// open in the folder, including the refresh's own reads of the rule
/// files, so each refresh would set off the next one, for ever, reading
/// and hashing every rule file twenty times a second. A file closed after
/// writing does count: its copy is complete.
fn changes_a_file(event: &DebouncedEvent) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Refreshes `folder`, counts the refused files, hands a change to
/// `on_change`, then logs. The folder stays locked until the change is in
/// service, so that two refreshes never hand over their sets out of order.
fn settle(
    mut folder: std::sync::MutexGuard<'_, RuleFolder>,
    refused: &AtomicU64,
    on_change: &(dyn Fn(&Refresh) + Send + Sync),
) -> Refresh {
    let refresh = folder.refresh();
    refused.fetch_add(refresh.rejected.len() as u64, Relaxed);
    // Swap first, log second: once "in service" is logged, the next
    // commit handed over is evaluated by the new set.
    if refresh.set.is_some() || refresh.shadows.is_some() {
        on_change(&refresh);
    }
    drop(folder);
    log(&refresh);
    refresh
}

fn log(refresh: &Refresh) {
    for (path, reason) in &refresh.rejected {
        tracing::error!(file = %path.display(), "rule file refused, the running version stays: {reason}");
    }
    if let Some(set) = &refresh.set {
        for rule in set.rules() {
            tracing::info!(
                rule = rule.name(),
                version = %rule.info().version,
                hash = rule.hash(),
                file = %rule.path().display(),
                "in service"
            );
        }
    }
    if let Some(shadows) = &refresh.shadows {
        for rule in shadows.rules() {
            tracing::info!(
                rule = rule.name(),
                version = %rule.info().version,
                hash = rule.hash(),
                file = %rule.path().display(),
                "shadowing"
            );
        }
    }
}
