//! The layers of DESIGN.md, kept visible in the imports: inside the crate a thing is
//! named by the module that defines it (never through the `lib.rs` facade), a pure module
//! imports no effect or orchestration, and an effect imports no orchestration.

use std::fs;
use std::path::{Path, PathBuf};

/// Pure types: no I/O, no async, no clock reads.
const PURE: &[&str] = &[
    "src/call",
    "src/policy",
    "src/approval",
    "src/token",
    "src/audit/event.rs",
    "src/audit/chain.rs",
    "src/grant.rs",
    "src/identity.rs",
    "src/run.rs",
];

/// Effects behind traits.
const EFFECTS: &[&str] = &["src/store", "src/clock.rs", "src/audit"];

/// Orchestration, which only the layers above it may import.
const ORCHESTRATION: &[&str] = &["gate", "desk", "stats", "export", "observe"];

/// What effects are (for the pure layer's check).
const EFFECT_MODULES: &[&str] = &["store"];

fn files(under: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(under);
    if root.is_file() {
        return vec![root];
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The `use` lines of `path` (code, not doc comments) that import from `crate::<module>`.
fn imports_of(path: &Path, modules: &[&str]) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("use ") || l.starts_with("pub use ") || l.starts_with("pub(crate) use ")
        })
        .filter(|l| {
            modules.iter().any(|m| {
                l.contains(&format!("crate::{m}::")) || l.contains(&format!("crate::{m};"))
            })
        })
        .map(|l| format!("{}: {l}", path.display()))
        .collect()
}

#[test]
fn pure_modules_import_no_effect_or_orchestration() {
    let forbidden: Vec<&str> = ORCHESTRATION
        .iter()
        .chain(EFFECT_MODULES)
        .copied()
        .collect();
    let found: Vec<String> = PURE
        .iter()
        .flat_map(|p| files(p))
        .flat_map(|f| imports_of(&f, &forbidden))
        .collect();
    assert!(
        found.is_empty(),
        "pure modules import effects or orchestration:\n{}",
        found.join("\n")
    );
}

#[test]
fn effects_import_no_orchestration() {
    let found: Vec<String> = EFFECTS
        .iter()
        .flat_map(|p| files(p))
        .flat_map(|f| imports_of(&f, ORCHESTRATION))
        .collect();
    assert!(
        found.is_empty(),
        "effects import orchestration:\n{}",
        found.join("\n")
    );
}

#[test]
fn nothing_inside_the_crate_imports_through_the_facade() {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let found: Vec<String> = files("src")
        .into_iter()
        .filter(|f| *f != lib)
        .flat_map(|f| {
            let text = fs::read_to_string(&f).unwrap();
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("//"))
                .filter(|l| {
                    let Some(rest) = l.split("use crate::").nth(1) else {
                        return false;
                    };
                    // `crate::{` or `crate::Name`: an item of the facade, not a module.
                    rest.starts_with('{') || rest.starts_with(|c: char| c.is_ascii_uppercase())
                })
                .map(|l| format!("{}: {l}", f.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        found.is_empty(),
        "imports through the lib.rs facade:\n{}",
        found.join("\n")
    );
}
