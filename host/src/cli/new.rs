//! `invalidator new`: writes a ready rule project in Rust, Python or
//! JavaScript: a sample rule, its native test, a fixture for `invalidator
//! test`, and a README whose one-line build command works with no edits.
//!
//! The templates live in `host/templates/`. The Python and JS projects
//! carry their own copy of the SDK (one file each) and of the WIT, so they
//! build anywhere; the Rust one depends on the `invalidator-rules` crate by
//! path.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::args::Language;

/// The interface rules implement, shipped with every Python and JS project.
const WIT: &str = include_str!("../../../wit/rules.wit");

/// The files of a project: their paths and contents, both templates.
type Files = &'static [(&'static str, &'static str)];

/// What every project has.
const COMMON: Files = &[(
    "{{name}}.test.jsonl",
    include_str!("../../templates/fixture.test.jsonl"),
)];

/// A Rust project depends on the SDK crate by path (`{{sdk}}`).
const RUST: Files = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../templates/rust/config.toml"),
    ),
    ("src/lib.rs", include_str!("../../templates/rust/lib.rs")),
    ("README.md", include_str!("../../templates/rust/README.md")),
    (".gitignore", "/target\n*.wasm\n"),
];

/// A Python project carries its SDK and the WIT, so it builds anywhere.
const PYTHON: Files = &[
    (
        "{{name}}.py",
        include_str!("../../templates/python/rule.py"),
    ),
    (
        "test_{{name}}.py",
        include_str!("../../templates/python/test_rule.py"),
    ),
    (
        "pyproject.toml",
        include_str!("../../templates/python/pyproject.toml"),
    ),
    (
        "README.md",
        include_str!("../../templates/python/README.md"),
    ),
    (
        "invalidator_rules.py",
        include_str!("../../../rules-sdk-python/invalidator_rules.py"),
    ),
    ("wit/rules.wit", WIT),
    (".gitignore", ".venv/\n__pycache__/\n*.wasm\n"),
];

/// A JS project carries its SDK, its build script and the WIT.
const JS: Files = &[
    ("{{name}}.js", include_str!("../../templates/js/rule.js")),
    (
        "{{name}}.test.js",
        include_str!("../../templates/js/rule.test.js"),
    ),
    (
        "package.json",
        include_str!("../../templates/js/package.json"),
    ),
    ("README.md", include_str!("../../templates/js/README.md")),
    (
        "invalidator-rules.js",
        include_str!("../../../rules-sdk-js/invalidator-rules.js"),
    ),
    ("build.mjs", include_str!("../../../rules-sdk-js/build.mjs")),
    ("wit/rules.wit", WIT),
    (".gitignore", "node_modules/\n*.wasm\n"),
];

/// Where the Rust SDK was when this binary was built.
const RUST_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules-sdk");

/// Writes the project of rule `name` in `language` to `dir` (default
/// `./NAME`), which must not exist or be empty.
pub(super) fn run(
    name: &str,
    language: Language,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_owned);
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "`{}` already exists and is not empty; choose another with --dir",
            dir.display()
        );
    }
    let (files, sdk) = match language {
        Language::Rust => {
            let sdk = rust_sdk(sdk)?;
            let sdk = sdk
                .to_str()
                .with_context(|| format!("the SDK path `{}` is not UTF-8", sdk.display()))?;
            // A TOML basic string: backslashes and quotes escaped.
            (RUST, sdk.replace('\\', "\\\\").replace('"', "\\\""))
        }
        Language::Python => (PYTHON, String::new()),
        Language::Js => (JS, String::new()),
    };
    let vars = Vars {
        name,
        type_name: &type_name(name),
        sdk: &sdk,
    };
    for (path, text) in COMMON.iter().chain(files) {
        let (path, text) = (vars.fill(path), vars.fill(text));
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    println!(
        "created rule `{name}` ({}) in `{}`; its README.md says how to build and test it",
        match language {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
        },
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A name every language takes as it is: a Rust crate, a Python module, a
/// JS file, a rule name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!(
            "`{}` is not a usable rule name: use lowercase ASCII letters, digits and `_`, \
             starting with a letter (it names a Rust crate, a Python module and a JS file)",
            invalidator::escape::escape(name)
        );
    }
    Ok(())
}

/// `user_profiles` → `UserProfiles`: the name of the rule's type.
fn type_name(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The Rust SDK to depend on: `--sdk`, else the one beside this binary's
/// source, made absolute so the project can live anywhere.
fn rust_sdk(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = given.map_or_else(|| PathBuf::from(RUST_SDK), Path::to_owned);
    let manifest = path.join("Cargo.toml");
    let is_sdk = std::fs::read_to_string(&manifest)
        .is_ok_and(|t| t.contains("name = \"invalidator-rules\""));
    if !is_sdk {
        bail!(
            "`{}` is not the Rust rules SDK (no `Cargo.toml` of package `invalidator-rules`); \
             pass its folder with --sdk",
            path.display()
        );
    }
    std::fs::canonicalize(&path).with_context(|| format!("cannot resolve `{}`", path.display()))
}

/// The placeholders of the templates.
struct Vars<'a> {
    /// `{{name}}`: the rule's name.
    name: &'a str,
    /// `{{type}}`: the rule type's name.
    type_name: &'a str,
    /// `{{sdk}}`: the Rust SDK's folder, escaped for TOML (Rust only).
    sdk: &'a str,
}

impl Vars<'_> {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{{name}}", self.name)
            .replace("{{type}}", self.type_name)
            .replace("{{sdk}}", self.sdk)
    }
}
