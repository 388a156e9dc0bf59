//! Tidy checks of the workspace as a whole (rust-analyzer's `tidy.rs` is the model): facts that
//! live in two places and must not drift apart.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every package of the workspace: `crates/*`, `xtask`, `bench`, `tests`.
fn packages() -> Vec<PathBuf> {
    let mut packages: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .unwrap_or_else(|e| panic!("crates/: {e}"))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    packages.push(workspace().join("xtask"));
    packages.push(workspace().join("bench"));
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

/// The `### ` sections of ARCHITECTURE.md: (header, body).
fn architecture_sections() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sections = Vec::new();
    for chunk in text.split("\n### ").skip(1) {
        let (header, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        // A section ends where the next `## ` part starts.
        let body = body.split("\n## ").next().unwrap_or(body);
        sections.push((header.to_owned(), body.to_owned()));
    }
    sections
}

/// The names written in backticks in `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`')
        .enumerate()
        .filter(|(index, _)| index % 2 == 1)
        .map(|(_, span)| span)
        .collect()
}

/// Every source file of every package is under a module the code map describes: the package's
/// section of ARCHITECTURE.md names the file (`repo/dir.rs`, `engine.rs`), its module
/// (`reference`) or its directory (`tools/`). A new file means a new line in the map.
#[test]
fn every_source_file_is_in_the_code_map() {
    let sections = architecture_sections();
    let mut undocumented = Vec::new();
    for package in packages() {
        let name = package
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "tests" {
            continue; // test code: its files are the tests
        }
        let key = if package.parent().is_some_and(|p| p.ends_with("crates")) {
            format!("crates/{name}")
        } else {
            name.clone()
        };
        let spans: Vec<&str> = sections
            .iter()
            .filter(|(header, _)| backticked(header).contains(&key.as_str()))
            .flat_map(|(_, body)| backticked(body))
            .collect();
        assert!(
            !spans.is_empty(),
            "ARCHITECTURE.md has no section for `{key}`"
        );
        let mut files = Vec::new();
        workspace_files(&package.join("src"), "", &mut files);
        for file in files.iter().filter(|f| f.ends_with(".rs")) {
            if matches!(file.as_str(), "lib.rs" | "main.rs") || file.starts_with("bin/") {
                continue;
            }
            let documented = spans.iter().any(|span| {
                let span = span.strip_prefix("src/").unwrap_or(span);
                span == file
                    || format!("{span}.rs") == *file
                    || file.ends_with(&format!("/{span}")) && span.contains('/')
                    || (span.ends_with('/') && file.starts_with(span))
            });
            if !documented {
                undocumented.push(format!("{key}/src/{file}"));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "source files the code map in ARCHITECTURE.md does not name (name the file or its \
         directory in the package's section): {undocumented:?}"
    );
}

/// The counts of the surface live in their catalogs (`model-registry-mcp`'s `catalog.rs`, the
/// rule catalogue, the prompt and resource lists) and are derived everywhere else: no document
/// or source file outside tests writes "42 tools" or "30 rules" by hand, to go stale when one
/// is added.
#[test]
fn no_count_of_tools_rules_or_prompts_is_written_by_hand() {
    let mut files = Vec::new();
    workspace_files(&workspace(), "", &mut files);
    let nouns = [
        "tools",
        "rules",
        "prompts",
        "resource kinds",
        "resources",
        "toolsets",
    ];
    let mut stray = Vec::new();
    for file in &files {
        let checked = (file.ends_with(".md") && !file.starts_with("fixtures/"))
            || (file.ends_with(".rs") && file.contains("/src/"));
        if !checked {
            continue;
        }
        let text = std::fs::read_to_string(workspace().join(file)).unwrap_or_default();
        // Tests may state the counts they check.
        let text = text.split("#[cfg(test)]").next().unwrap_or(&text);
        for (number, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for pair in words.windows(2) {
                let count = pair[0].trim_start_matches(['(', '"', '`', '*']);
                let rest = line
                    .split_once(pair[0])
                    .map(|(_, rest)| rest.trim_start())
                    .unwrap_or_default();
                let noun = nouns.iter().find(|noun| rest.starts_with(**noun));
                // "2 tools" in prose is not the surface's count; "5 prompts" is.
                let significant = noun.is_some_and(|noun| {
                    count.len() > 1 || !matches!(*noun, "tools" | "rules" | "resources")
                });
                if significant && !count.is_empty() && count.chars().all(|c| c.is_ascii_digit()) {
                    stray.push(format!("{file}:{}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        stray.is_empty(),
        "counts written by hand (derive them from the catalog): {stray:#?}"
    );
}

/// The rule units (`crates/topology/src/rules/<code>.rs`) are declared by generated code,
/// which `cargo fmt` does not follow: they are held to rustfmt here. To format them:
/// `rustfmt --edition 2024 crates/topology/src/rules/*.rs`.
#[test]
fn the_rule_units_are_formatted() {
    let dir = workspace().join("crates/topology/src/rules");
    let mut units: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    units.sort();
    assert!(units.len() > 1, "{}: no rule units", dir.display());
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let output = std::process::Command::new(&rustfmt)
        .args(["--edition", "2024", "--check"])
        .args(&units)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (rustfmt is installed with `rustup component add rustfmt`)",
                rustfmt.to_string_lossy()
            )
        });
    assert!(
        output.status.success(),
        "rule units not formatted (run `rustfmt --edition 2024 crates/topology/src/rules/*.rs`):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `unsafe` is allowed in the two places ARCHITECTURE.md audits and nowhere else: a new
/// `allow(unsafe_code)` must be argued there first.
#[test]
fn unsafe_code_is_allowed_only_where_architecture_md_says() {
    let mut files = Vec::new();
    workspace_files(&workspace(), "", &mut files);
    let mut allowing: Vec<String> = files
        .into_iter()
        .filter(|f| f.ends_with(".rs") && !f.starts_with("tests/"))
        .filter(|f| {
            std::fs::read_to_string(workspace().join(f))
                .unwrap_or_default()
                .contains("allow(unsafe_code)")
        })
        .collect();
    allowing.sort();
    // auth.rs: `set_network_timeouts`; repo/mod.rs: the `uring` module.
    assert_eq!(
        allowing,
        [
            "crates/topology/src/repo/auth.rs",
            "crates/topology/src/repo/mod.rs"
        ]
    );
    let architecture = std::fs::read_to_string(workspace().join("ARCHITECTURE.md"))
        .unwrap_or_else(|e| panic!("{e}"));
    for audited in [
        "topology::repo::set_network_timeouts",
        "topology::repo::uring",
    ] {
        assert!(architecture.contains(audited), "{audited}");
    }
}
