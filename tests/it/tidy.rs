//! Tidy checks of the workspace as a whole (rust-analyzer's `tidy.rs` is the model): facts that
//! live in two places and must not drift apart.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every package of the workspace: `crates/*`, `xtask`, `tests`.
fn packages() -> Vec<PathBuf> {
    let mut packages: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .unwrap_or_else(|e| panic!("crates/: {e}"))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    packages.push(workspace().join("xtask"));
    packages.push(workspace().join("tests"));
    packages.sort();
    packages
}

/// The Rust sources of a package (its own directory, without `target`).
fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "target" && n != "snapshots")
            {
                rust_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

/// The dependency names of a manifest's `[dependencies]`, `[dev-dependencies]` and
/// `[build-dependencies]`.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = matches!(
                line,
                "[dependencies]" | "[dev-dependencies]" | "[build-dependencies]"
            );
            continue;
        }
        if in_dependencies
            && let Some((name, _)) = line.split_once(['=', '.'])
            && !name.trim().is_empty()
            && !line.starts_with('#')
        {
            names.push(name.trim().to_owned());
        }
    }
    names
}

#[test]
fn every_declared_dependency_is_used() {
    let mut unused = Vec::new();
    for package in packages() {
        let manifest = std::fs::read_to_string(package.join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{}: {e}", package.display()));
        let mut sources = String::new();
        rust_sources(&package, &mut sources);
        for name in dependencies(&manifest) {
            let path = name.replace('-', "_");
            let used = sources.match_indices(&path).any(|(at, _)| {
                let before = sources[..at].chars().next_back();
                let after = sources[at + path.len()..].chars().next();
                let boundary =
                    |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                boundary(before) && boundary(after)
            });
            if !used {
                unused.push(format!("{}: {name}", package.display()));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "declared but not used:\n{}",
        unused.join("\n")
    );
}

/// Every file of the workspace, as `/`-separated paths from its top (without `target`).
fn workspace_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "target" || name == ".git" || name == "node_modules" {
            continue;
        }
        let path = format!("{prefix}{name}");
        if entry.path().is_dir() {
            workspace_files(&entry.path(), &format!("{path}/"), out);
        } else {
            out.push(path);
        }
    }
}

/// Every file ARCHITECTURE.md names in backticks with a directory (`repo/mirror.rs`,
/// `tools/conformance/package-lock.json`) is a file of the workspace: the path, or the end of
/// one (names are written relative to the section's crate).
#[test]
fn every_file_architecture_md_names_exists() {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut files = Vec::new();
    workspace_files(&workspace(), "", &mut files);
    let extensions = [
        ".rs", ".md", ".toml", ".yml", ".yaml", ".json", ".txt", ".sh",
    ];
    let mut missing = Vec::new();
    let mut checked = 0;
    for (index, span) in text.split('`').enumerate() {
        // Odd pieces are inside backticks; the design documents outside the workspace are
        // `shared/`.
        let named = index % 2 == 1
            && span.contains('/')
            && extensions.iter().any(|e| span.ends_with(e))
            && !span.contains(['*', '<', ' '])
            && !span.starts_with("shared/");
        if !named {
            continue;
        }
        checked += 1;
        if !files
            .iter()
            .any(|f| f == span || f.ends_with(&format!("/{span}")))
        {
            missing.push(span.to_owned());
        }
    }
    assert!(
        checked > 10,
        "only {checked} file names found in ARCHITECTURE.md"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {missing:?}"
    );
}
