//! Builds every guest the tests use (the example rules and the hostile rules
//! of `tests/guests/`) into Wasm components, and generates one constant per
//! guest holding its path, so tests never depend on committed binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// A guest crate: package name and folder.
type Guest = (String, PathBuf);

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_owned();
    let mut guests = crates_in(&root.join("example-rules"));
    guests.extend(crates_in(&manifest.join("guests")));
    for dir in ["example-rules", "tests/guests", "rules-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    // A target directory of its own: the outer build holds the lock on
    // `target/debug`. `target/wasm` is shared with `cargo xtask build-rules`.
    let target_dir = root.join("target/wasm");
    // Guests that turn on the SDK's `std` feature are built apart: in one
    // build, cargo would turn it on for every guest, and the `#![no_std]`
    // ones would lose the SDK's allocator and panic handler.
    let (with_std, without_std): (Vec<&Guest>, Vec<&Guest>) =
        guests.iter().partition(|(_, dir)| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("\"std\""))
        });
    for group in [without_std, with_std] {
        if !group.is_empty() {
            build(&root, &target_dir, &group);
        }
    }
    write_consts(&target_dir, &guests);
}

/// Builds one group of guests in one cargo invocation.
fn build(root: &Path, target_dir: &Path, group: &[&Guest]) {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(target_dir);
    for (name, _) in group {
        cmd.args(["-p", name]);
    }
    // Guests are small: whole-program optimisation is cheap and makes the
    // rules faster. Set here so the host's own release build is unaffected.
    cmd.env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
    // Flags meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the test guests");
    if !status.success() {
        panic!(
            "building the Wasm test guests failed ({status}). Is the `{TARGET}` target \
             installed? `rustup target add {TARGET}` (or `cargo xtask test`) installs it."
        );
    }
}

/// Writes `guests.rs`: one constant per guest with its component's path.
fn write_consts(target_dir: &Path, guests: &[Guest]) {
    let mut consts = String::new();
    let mut all =
        String::from("/// Every guest, by crate name.\npub const ALL: &[(&str, &str)] = &[\n");
    for (name, _) in guests {
        let file = name.replace('-', "_");
        let path = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{file}.wasm"));
        assert!(
            path.is_file(),
            "the guest build did not produce `{}`",
            path.display()
        );
        let ident = file.to_uppercase();
        consts.push_str(&format!(
            "/// The `{name}` guest component.\npub const {ident}: &str = {:?};\n",
            path.display().to_string()
        ));
        all.push_str(&format!("    ({name:?}, {ident}),\n"));
    }
    all.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(out, consts + &all).expect("cannot write guests.rs");
}

/// The crates directly inside `dir`.
fn crates_in(dir: &Path) -> Vec<Guest> {
    let mut found: Vec<Guest> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    found.sort();
    found
}
