//! The Python and JavaScript components and toolchains the tests use.
//! `cargo xtask test` builds them before the Rust tests run (with
//! componentize-py and componentize-js, under `target/toolchains/`); a test
//! that finds one missing fails and says how to make it, rather than
//! skipping.

use std::path::PathBuf;

/// The workspace's `target` folder.
fn target() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
}

fn existing(path: PathBuf, how: &str) -> PathBuf {
    assert!(
        path.exists(),
        "`{}` is missing: {how} (`cargo xtask test` does this before the Rust tests)",
        path.display()
    );
    path
}

/// `target/FOLDER/NAME.wasm`, which `how` makes.
fn component(folder: &str, name: &str, how: &str) -> PathBuf {
    existing(target().join(format!("{folder}/{name}.wasm")), how)
}

/// An example rule in Python: `target/rules/python/NAME.wasm`.
pub fn python_rule(name: &str) -> PathBuf {
    component(
        "rules/python",
        name,
        "run `cargo xtask build-rules --lang python`",
    )
}

/// An example rule in JavaScript: `target/rules/js/NAME.wasm`.
pub fn js_rule(name: &str) -> PathBuf {
    component("rules/js", name, "run `cargo xtask build-rules --lang js`")
}

/// A test rule of `tests/guests-python/`: `target/guests/python/NAME.wasm`.
pub fn python_guest(name: &str) -> PathBuf {
    component(
        "guests/python",
        name,
        "`cargo xtask test` builds `tests/guests-python/`",
    )
}

/// A test rule of `tests/guests-js/`: `target/guests/js/NAME.wasm`.
pub fn js_guest(name: &str) -> PathBuf {
    component(
        "guests/js",
        name,
        "`cargo xtask test` builds `tests/guests-js/`",
    )
}

/// The folder holding the `componentize-py` executable.
pub fn componentize_py_bin() -> PathBuf {
    existing(
        target().join("toolchains/python/bin"),
        "run `cargo xtask build-rules --lang python`, which installs componentize-py",
    )
}

/// The folder whose `node_modules` holds componentize-js.
pub fn componentize_js_dir() -> PathBuf {
    existing(
        target().join("toolchains/js/node_modules/@bytecodealliance/componentize-js"),
        "run `cargo xtask build-rules --lang js`, which installs componentize-js",
    );
    target().join("toolchains/js")
}
