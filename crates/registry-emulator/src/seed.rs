//! Seed data: the JSON files in `fixtures/registry/` that the emulator starts from.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::model::{
    ApiKey, Artifact, AuditLog, BUILD_STATUSES, Benchmark, Build, DEPLOYMENT_STATUSES, Deployment,
    ENVIRONMENTS, Model, SERVER_TYPES, SOURCES, StorageSeed, SystemSeed, Version,
};

/// Everything the emulator's in-memory state starts from.
#[derive(Debug, Clone)]
pub struct Seed {
    pub models: Vec<Model>,
    pub versions: Vec<Version>,
    pub deployments: Vec<Deployment>,
    pub builds: Vec<Build>,
    pub benchmarks: Vec<Benchmark>,
    pub artifacts: Vec<Artifact>,
    pub audit_logs: Vec<AuditLog>,
    pub api_keys: Vec<ApiKey>,
    pub storage: StorageSeed,
    pub system: SystemSeed,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("seed file {file}: line {line}, column {column}: {msg}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("seed data is inconsistent:\n  {}", .0.join("\n  "))]
    Inconsistent(Vec<String>),
}

const SEED_FILES: [&str; 10] = [
    "models",
    "versions",
    "deployments",
    "builds",
    "benchmarks",
    "artifacts",
    "audit_logs",
    "api_keys",
    "storage",
    "system",
];

/// The demo seed compiled in from `fixtures/registry/`, so tests in any crate can use it.
const DEMO: [(&str, &str); 10] = [
    (
        "models",
        include_str!("../../../fixtures/registry/models.json"),
    ),
    (
        "versions",
        include_str!("../../../fixtures/registry/versions.json"),
    ),
    (
        "deployments",
        include_str!("../../../fixtures/registry/deployments.json"),
    ),
    (
        "builds",
        include_str!("../../../fixtures/registry/builds.json"),
    ),
    (
        "benchmarks",
        include_str!("../../../fixtures/registry/benchmarks.json"),
    ),
    (
        "artifacts",
        include_str!("../../../fixtures/registry/artifacts.json"),
    ),
    (
        "audit_logs",
        include_str!("../../../fixtures/registry/audit_logs.json"),
    ),
    (
        "api_keys",
        include_str!("../../../fixtures/registry/api_keys.json"),
    ),
    (
        "storage",
        include_str!("../../../fixtures/registry/storage.json"),
    ),
    (
        "system",
        include_str!("../../../fixtures/registry/system.json"),
    ),
];

fn parse<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, SeedError> {
    serde_json::from_str(text).map_err(|e| SeedError::Parse {
        file: file.to_owned(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })
}

impl Seed {
    /// The demo data set (the files in `fixtures/registry/`, compiled in).
    pub fn demo() -> Result<Seed, SeedError> {
        Self::from_texts(|name| {
            DEMO.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(|| SeedError::Read {
                    path: PathBuf::from(format!("{name}.json")),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
        })
    }

    /// Loads `<dir>/{models,versions,...}.json`.
    pub fn load(dir: &Path) -> Result<Seed, SeedError> {
        Self::from_texts(|name| {
            let path = dir.join(format!("{name}.json"));
            std::fs::read_to_string(&path).map_err(|source| SeedError::Read { path, source })
        })
    }

    fn from_texts(
        mut read: impl FnMut(&str) -> Result<String, SeedError>,
    ) -> Result<Seed, SeedError> {
        let mut texts = Vec::with_capacity(SEED_FILES.len());
        for name in SEED_FILES {
            texts.push((format!("{name}.json"), read(name)?));
        }
        let text = |i: usize| -> (&str, &str) {
            texts
                .get(i)
                .map(|(f, t)| (f.as_str(), t.as_str()))
                .unwrap_or(("?", ""))
        };
        let seed = Seed {
            models: parse(text(0).0, text(0).1)?,
            versions: parse(text(1).0, text(1).1)?,
            deployments: parse(text(2).0, text(2).1)?,
            builds: parse(text(3).0, text(3).1)?,
            benchmarks: parse(text(4).0, text(4).1)?,
            artifacts: parse(text(5).0, text(5).1)?,
            audit_logs: parse(text(6).0, text(6).1)?,
            api_keys: parse(text(7).0, text(7).1)?,
            storage: parse(text(8).0, text(8).1)?,
            system: parse(text(9).0, text(9).1)?,
        };
        let problems = seed.check();
        if problems.is_empty() {
            Ok(seed)
        } else {
            Err(SeedError::Inconsistent(problems))
        }
    }

    /// Referential integrity and enum values; returns every problem found.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut ids = HashSet::new();
        let mut dup = |kind: &str, id: &str, problems: &mut Vec<String>| {
            if !ids.insert(id.to_owned()) {
                problems.push(format!("{kind} '{id}': duplicate id"));
            }
        };
        let mut names = HashSet::new();
        for m in &self.models {
            dup("model", &m.id, &mut problems);
            if !names.insert(m.name.as_str()) {
                problems.push(format!("model '{}': duplicate name '{}'", m.id, m.name));
            }
            if !SERVER_TYPES.contains(&m.server_type.as_str()) {
                problems.push(format!(
                    "model '{}': unknown server_type '{}'",
                    m.id, m.server_type
                ));
            }
            if !SOURCES.contains(&m.source.as_str()) {
                problems.push(format!("model '{}': unknown source '{}'", m.id, m.source));
            }
        }
        for v in &self.versions {
            dup("version", &v.id, &mut problems);
            match self.models.iter().find(|m| m.id == v.model_id) {
                None => problems.push(format!(
                    "version '{}': unknown model_id '{}'",
                    v.id, v.model_id
                )),
                Some(m) if m.name != v.model_name => problems.push(format!(
                    "version '{}': model_name '{}' does not match model '{}'",
                    v.id, v.model_name, m.name
                )),
                Some(_) => {}
            }
        }
        let version_ids: HashSet<&str> = self.versions.iter().map(|v| v.id.as_str()).collect();
        for d in &self.deployments {
            dup("deployment", &d.id, &mut problems);
            if !version_ids.contains(d.version_id.as_str()) {
                problems.push(format!(
                    "deployment '{}': unknown version_id '{}'",
                    d.id, d.version_id
                ));
            }
            if !ENVIRONMENTS.contains(&d.environment.as_str()) {
                problems.push(format!(
                    "deployment '{}': unknown environment '{}'",
                    d.id, d.environment
                ));
            }
            if !DEPLOYMENT_STATUSES.contains(&d.status.as_str()) {
                problems.push(format!(
                    "deployment '{}': unknown status '{}'",
                    d.id, d.status
                ));
            }
        }
        for b in &self.builds {
            dup("build", &b.id, &mut problems);
            if !version_ids.contains(b.version_id.as_str()) {
                problems.push(format!(
                    "build '{}': unknown version_id '{}'",
                    b.id, b.version_id
                ));
            }
            if !BUILD_STATUSES.contains(&b.status.as_str()) {
                problems.push(format!("build '{}': unknown status '{}'", b.id, b.status));
            }
        }
        for b in &self.benchmarks {
            dup("benchmark", &b.id, &mut problems);
            if !self.deployments.iter().any(|d| d.id == b.deployment_id) {
                problems.push(format!(
                    "benchmark '{}': unknown deployment_id '{}'",
                    b.id, b.deployment_id
                ));
            }
        }
        for a in &self.artifacts {
            dup("artifact", &a.id, &mut problems);
            if !version_ids.contains(a.version_id.as_str()) {
                problems.push(format!(
                    "artifact '{}': unknown version_id '{}'",
                    a.id, a.version_id
                ));
            }
        }
        for a in &self.audit_logs {
            dup("audit log", &a.id, &mut problems);
        }
        let mut keys = HashSet::new();
        for k in &self.api_keys {
            if !keys.insert(k.key.as_str()) {
                problems.push(format!("api key '{}': duplicate key value", k.name));
            }
        }
        for f in &self.storage.tree {
            let p = Path::new(&f.path);
            if p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                problems.push(format!(
                    "storage tree: path '{}' must be relative without '..'",
                    f.path
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_seed_is_consistent() {
        let seed = Seed::demo().map_err(|e| e.to_string());
        assert!(seed.is_ok(), "{seed:?}");
    }

    #[test]
    fn inconsistent_seed_reports_every_problem() {
        let Ok(mut seed) = Seed::demo() else {
            panic!("demo seed must load")
        };
        if let Some(v) = seed.versions.first_mut() {
            v.model_id = "nope".into();
        }
        if let Some(d) = seed.deployments.first_mut() {
            d.environment = "production".into();
        }
        let problems = seed.check();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown model_id 'nope'"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown environment 'production'"))
        );
    }

    #[test]
    fn parse_error_names_file_and_line() {
        let err = parse::<Vec<Model>>("models.json", "[\n  {\"id\": 3}\n]").err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("seed file models.json: line 2"), "{msg}");
    }
}
