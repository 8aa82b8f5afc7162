//! The Python and JavaScript rule toolchains: componentize-py in a virtual
//! environment of its own, componentize-js in an npm folder of its own and
//! weval (which compiles JS rules ahead of time), all under
//! `target/toolchains/`, installed from the registries on first use; and
//! the builds of Python and JS rules into components with them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use crate::{cargo, root, run};

/// The componentize-py release rules are built with (`rules-sdk-python`'s
/// `build` extra names the same).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The componentize-js release (`rules-sdk-js/package.json` names the same).
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
/// The weval release (crates.io): componentize-js would download its own
/// from GitHub, which a machine that reaches only the package registries
/// cannot.
const WEVAL: &str = "0.5.1";

/// The `componentize-py` executable, installed into
/// `target/toolchains/python` when missing.
pub(crate) fn componentize_py() -> Result<PathBuf, String> {
    let venv = root().join("target/toolchains/python");
    let exe = venv.join("bin/componentize-py");
    if exe.is_file() && venv.join("bin/pytest").is_file() {
        return Ok(exe);
    }
    install(COMPONENTIZE_PY, &venv, || {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        // pytest too: a rule project's native tests run beside its build.
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            COMPONENTIZE_PY,
            "pytest",
        ]))
    })?;
    Ok(exe)
}

/// The folder whose `node_modules` holds componentize-js, installed into
/// `target/toolchains/js` when missing. `rules-sdk-js/build.mjs` finds it
/// through `INVALIDATOR_COMPONENTIZE_JS`.
pub(crate) fn componentize_js() -> Result<PathBuf, String> {
    let dir = root().join("target/toolchains/js");
    let marker = dir.join("node_modules/@bytecodealliance/componentize-js/package.json");
    if marker.is_file() {
        return Ok(dir);
    }
    install(COMPONENTIZE_JS, &dir, || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        // A package of its own, so npm installs here and not in a parent folder.
        std::fs::write(
            dir.join("package.json"),
            "{\"name\": \"invalidator-js-toolchain\", \"private\": true}\n",
        )
        .map_err(|e| format!("cannot write `{}`: {e}", dir.display()))?;
        run(Command::new("npm").current_dir(&dir).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            COMPONENTIZE_JS,
        ]))
    })?;
    Ok(dir)
}

/// The `weval` executable, built from crates.io into
/// `target/toolchains/weval` when missing (some minutes: it is a Rust
/// program with a Wasm engine inside).
pub(crate) fn weval() -> Result<PathBuf, String> {
    let dir = root().join("target/toolchains/weval");
    let exe = dir.join("bin/weval");
    if exe.is_file() {
        return Ok(exe);
    }
    install(&format!("weval {WEVAL}"), &dir, || {
        run(cargo()
            .args([
                "install",
                "--quiet",
                "--locked",
                "weval",
                "--version",
                WEVAL,
            ])
            .arg("--root")
            .arg(&dir))
    })?;
    Ok(exe)
}

/// Runs `steps`, which install the toolchain `what` into `into`, saying so
/// and how long it took: the first run of a fresh machine waits on these.
fn install(
    what: &str,
    into: &Path,
    steps: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("xtask: installing {what} into `{}`", into.display());
    steps()?;
    eprintln!(
        "xtask: installed {what} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How a JavaScript rule is built.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Js {
    /// Interpreted: the engine runs the rule's bytecode.
    Interpreted,
    /// Compiled ahead of time with weval: several times slower to build,
    /// faster to run. The example rules, which the benchmark measures.
    Aot,
}

/// The `.py` or `.js` files of `dir`, sorted.
fn sources(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    Ok(found)
}

/// Whether `out` is at least as new as every file of `inputs` (folders are
/// walked one level deep).
fn fresh(out: &Path, inputs: &[PathBuf]) -> bool {
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(built) = modified(out) else {
        return false;
    };
    let mut newest = SystemTime::UNIX_EPOCH;
    for input in inputs {
        let mut files = vec![input.clone()];
        if input.is_dir() {
            files = std::fs::read_dir(input)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
        }
        for f in files {
            newest = newest.max(modified(&f).unwrap_or(SystemTime::now()));
        }
    }
    newest <= built
}

/// Builds each rule of `dir` whose file name ends in `.EXT` into
/// `out/NAME.wasm` with `build(source, name, temporary output)`, unless the
/// component is newer than the source and every file of `inputs`.
fn build_each(
    dir: &Path,
    ext: &str,
    out: &Path,
    inputs: &[PathBuf],
    build: impl Fn(&Path, &str, &Path) -> Result<(), String>,
) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for source in sources(dir, ext)? {
        let name = stem(&source)?;
        let dest = out.join(format!("{name}.wasm"));
        let mut all = inputs.to_vec();
        all.push(source.clone());
        if !fresh(&dest, &all) {
            let tmp = temp_beside(&dest)?;
            build(&source, &name, &tmp)?;
            rename(&tmp, &dest)?;
        }
        println!("{}", dest.display());
        written.push(dest);
    }
    Ok(written)
}

/// Builds each Python rule of `dir` into `out/NAME.wasm`.
pub(crate) fn build_python(dir: &Path, out: &Path) -> Result<Vec<PathBuf>, String> {
    let root = root();
    let sdk = root.join("rules-sdk-python");
    let wit = root.join("wit");
    let inputs = [sdk.join("invalidator_rules.py"), wit.clone()];
    build_each(dir, "py", out, &inputs, |_, name, tmp| {
        run(Command::new(componentize_py()?)
            .arg("--quiet")
            .arg("-d")
            .arg(&wit)
            .args(["-w", "rule", "componentize", "--stub-wasi", name, "-p"])
            .arg(dir)
            .arg("-p")
            .arg(&sdk)
            .arg("-o")
            .arg(tmp))
    })
}

/// Builds each JavaScript rule of `dir` into `out/NAME.wasm`.
pub(crate) fn build_js(dir: &Path, out: &Path, how: Js) -> Result<Vec<PathBuf>, String> {
    let root = root();
    let sdk = root.join("rules-sdk-js");
    let inputs = [sdk.clone(), root.join("wit")];
    build_each(dir, "js", out, &inputs, |source, _, tmp| {
        let mut node = Command::new("node");
        node.env("INVALIDATOR_COMPONENTIZE_JS", componentize_js()?)
            .arg(sdk.join("build.mjs"))
            .arg(source)
            .arg("-o")
            .arg(tmp);
        if how == Js::Aot {
            node.arg("--aot").arg(weval()?);
        }
        run(&mut node)
    })
}

/// `cargo xtask build-rules --lang python`.
pub(crate) fn build_python_examples() -> Result<Vec<PathBuf>, String> {
    let root = root();
    build_python(
        &root.join("rules-sdk-python/examples"),
        &root.join("target/rules/python"),
    )
}

/// `cargo xtask build-rules --lang js`.
pub(crate) fn build_js_examples() -> Result<Vec<PathBuf>, String> {
    let root = root();
    build_js(
        &root.join("rules-sdk-js/examples"),
        &root.join("target/rules/js"),
        Js::Aot,
    )
}

fn stem(source: &Path) -> Result<String, String> {
    source
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("`{}` has no usable file name", source.display()))
}

/// A temporary path in `dest`'s folder (made if missing): a rule is written
/// there and renamed into place, so a host watching the folder never sees a
/// half-written file.
fn temp_beside(dest: &Path) -> Result<PathBuf, String> {
    let dir = dest.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let name = dest.file_name().expect("a file name").to_string_lossy();
    Ok(dir.join(format!(".{name}.tmp")))
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to).map_err(|e| format!("cannot write `{}`: {e}", to.display()))
}
