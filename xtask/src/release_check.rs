//! `cargo xtask release-check`: prove that a plain
//! `cargo build --workspace --release` ships no part of the bug catalog.
//!
//! The catalog's names are not written here (xtask is itself one of the
//! artifacts checked): they come at run time from the loom cell runner,
//! which is built with `--cfg wsdrain_bugs`. Each kebab-case name
//! (`some-bug-name`) and its variant identifier (`SomeBugName`) is then
//! searched for in every file the release build produced (binaries, rlibs,
//! rmeta). The cell runner itself is the positive control: it must contain
//! every name, or the search proves nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wsdrain_loom_tests::cell::Checker;

use crate::matrix::{build_cell, catalog, workspace_root};

/// `some-bug-name` -> `SomeBugName`.
fn identifier(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The files `cargo build --workspace --release` produced (or found fresh).
fn release_artifacts(root: &Path) -> Result<Vec<PathBuf>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building the workspace as it ships (cargo build --workspace --release) ...");
    let output = Command::new(cargo)
        .current_dir(root)
        // The production form: no cfg from the environment.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .args([
            "build",
            "--workspace",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err("cargo build --workspace --release failed".into());
    }
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(names) = message["filenames"].as_array() {
            files.extend(names.iter().filter_map(|f| f.as_str()).map(PathBuf::from));
        }
        if let Some(executable) = message["executable"].as_str() {
            files.push(PathBuf::from(executable));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Run the check; `Ok(false)` if any artifact carries a catalog name.
pub fn run() -> Result<bool, String> {
    let root = workspace_root();
    let cell = build_cell(Checker::Loom)?;
    let catalog = catalog(&cell)?;
    let needles: Vec<String> = catalog
        .bugs
        .iter()
        .flat_map(|bug| [bug.name.clone(), identifier(&bug.name)])
        .collect();
    if needles.is_empty() {
        return Err("the cell runner reported an empty catalog".into());
    }
    let control = std::fs::read(&cell).map_err(|e| format!("read {}: {e}", cell.display()))?;
    let missing: Vec<&String> = catalog
        .bugs
        .iter()
        .map(|bug| &bug.name)
        .filter(|name| !contains(&control, name.as_bytes()))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "positive control failed: the catalog build {} does not contain {missing:?}",
            cell.display()
        ));
    }

    let files = release_artifacts(&root)?;
    let mut found = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
        for needle in &needles {
            if contains(&bytes, needle.as_bytes()) {
                found.push(format!("{} contains {needle:?}", file.display()));
            }
        }
    }
    if found.is_empty() {
        eprintln!(
            "release check: OK: none of {} catalog names in the {} artifacts of `cargo build --workspace --release`",
            needles.len(),
            files.len()
        );
        Ok(true)
    } else {
        eprintln!("release check: FAILED: the release build carries the bug catalog:");
        for line in &found {
            eprintln!("  {line}");
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_of_names() {
        assert_eq!(identifier("a-bc-def"), "ABcDef");
        assert_eq!(identifier("x"), "X");
    }

    #[test]
    fn search() {
        assert!(contains(b"..abc..", b"abc"));
        assert!(!contains(b"ab", b"abc"));
    }
}
