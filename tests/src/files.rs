//! Files for tests: fresh folders, and deploying a rule file the way an
//! operator should (a temporary name, then a rename).

use std::path::{Path, PathBuf};

/// A fresh, empty folder in the system's temporary directory, unique to
/// this process and `name`.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("invalidator-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a test folder");
    dir
}

/// Copies `from` to `to` through a hidden temporary file and a rename, so
/// that a watcher never sees half a file.
pub fn deploy(from: &str, to: &Path) {
    let name = to
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    let tmp = to.with_file_name(format!(".{name}.tmp"));
    std::fs::copy(from, &tmp).expect("copying the rule file");
    std::fs::rename(&tmp, to).expect("renaming the rule file into place");
}
