//! The registry emulator on 127.0.0.1 and the environment that points the server at it.

use registry_emulator::{EmulatorConfig, RecordedRequest, Role, RunningEmulator, Seed};
use tempfile::TempDir;

pub struct Registry {
    pub emu: RunningEmulator,
    pub seed: Seed,
    _root: TempDir,
}

impl Registry {
    pub async fn start() -> Registry {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = EmulatorConfig::demo(root.path().join("storage"))
            .unwrap_or_else(|e| panic!("demo seed: {e}"));
        let seed = config.seed.clone();
        let emu = registry_emulator::spawn(config)
            .await
            .unwrap_or_else(|e| panic!("emulator: {e}"));
        Registry {
            emu,
            seed,
            _root: root,
        }
    }

    pub fn key(&self, role: Role) -> String {
        self.emu
            .api_key(role)
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no seeded key for {role:?}"))
    }

    /// REGISTRY_URL, the role's key, and no read cache (every call reaches the emulator).
    pub fn env(&self, role: Role) -> Vec<(&'static str, String)> {
        vec![
            ("REGISTRY_URL", self.emu.base_url().to_owned()),
            ("REGISTRY_API_KEY", self.key(role)),
            ("REGISTRY_CACHE_TTL_SECONDS", "0".to_owned()),
        ]
    }

    /// The requests received since the last call, as `METHOD /path`, with the records; without
    /// the server's own lookup of its key's role (`GET /v1/auth/me`, made once in the
    /// background at start-up and tested on its own).
    pub fn take(&self) -> (Vec<String>, Vec<RecordedRequest>) {
        let mut requests = self.emu.requests().snapshot();
        self.emu.requests().clear();
        requests.retain(|r| r.path != "/v1/auth/me");
        let lines = requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        (lines, requests)
    }

    pub fn model_id(&self, name: &str) -> String {
        self.seed
            .models
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.id.clone())
            .unwrap_or_else(|| panic!("no model {name}"))
    }

    pub fn version_id(&self, model: &str, version: &str) -> String {
        self.seed
            .versions
            .iter()
            .find(|v| v.model_name == model && v.version == version)
            .map(|v| v.id.clone())
            .unwrap_or_else(|| panic!("no version {model} {version}"))
    }

    pub fn deployment_id(&self, model: &str, version: &str) -> String {
        self.seed
            .deployments
            .iter()
            .find(|d| d.model_name == model && d.version == version)
            .map(|d| d.id.clone())
            .unwrap_or_else(|| panic!("no deployment {model} {version}"))
    }
}

/// The query string of a recorded request, decoded enough for `contains` checks.
pub fn query(request: &RecordedRequest) -> String {
    request
        .query
        .clone()
        .unwrap_or_default()
        .replace("%2C", ",")
}
