//! Contract tests of the emulator with plain HTTP: these pin the wire behaviour the
//! client relies on (shared/spec/registry-api.md).

// Test helpers may unwrap: a failure there is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deployments;
mod docker_benchmarks_artifacts;
mod faults;
mod hardening;
mod models;
mod system;
mod versions;

use registry_emulator::{EmulatorConfig, Role, RunningEmulator, Seed};
use serde_json::Value;

pub struct Emu {
    pub emu: RunningEmulator,
    pub seed: Seed,
    pub root: tempfile::TempDir,
    http: reqwest::Client,
}

pub fn must<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

impl Emu {
    pub async fn start() -> Emu {
        let root = must(tempfile::tempdir(), "tempdir");
        let config = must(
            EmulatorConfig::demo(root.path().join("storage")),
            "demo config",
        );
        let seed = config.seed.clone();
        let emu = must(registry_emulator::spawn(config).await, "spawn");
        Emu {
            emu,
            seed,
            root,
            http: reqwest::Client::new(),
        }
    }

    pub fn key(&self, role: Role) -> String {
        self.emu
            .api_key(role)
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// Sends `method path` (relative to the API base) with the role's key; answers (status, JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        role: Option<Role>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.emu.base_url());
        let method = must(reqwest::Method::from_bytes(method.as_bytes()), "method");
        let mut request = self.http.request(method, url);
        if let Some(role) = role {
            request = request.header("X-API-Key", self.key(role));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = must(request.send().await, "send");
        let status = response.status().as_u16();
        let text = must(response.text().await, "body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, Some(Role::Viewer), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(Role::Operator), Some(body))
            .await
    }

    pub fn model_id(&self, name: &str) -> String {
        self.seed
            .models
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.id.clone())
            .unwrap_or_default()
    }

    pub fn version_id(&self, model: &str, version: &str) -> String {
        self.seed
            .versions
            .iter()
            .find(|v| v.model_name == model && v.version == version)
            .map(|v| v.id.clone())
            .unwrap_or_default()
    }

    pub fn deployment_id(&self, model: &str, version: &str) -> String {
        self.seed
            .deployments
            .iter()
            .find(|d| d.model_name == model && d.version == version)
            .map(|d| d.id.clone())
            .unwrap_or_default()
    }
}

/// The `field` of every item of a `{items, total}` answer.
pub fn field_of_items(list: &Value, field: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i[field].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `(loc joined by '.', type)` of every 422 entry.
pub fn validation_errors(body: &Value) -> Vec<(String, String)> {
    body["detail"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let loc = e["loc"]
                        .as_array()
                        .map(|l| {
                            l.iter()
                                .map(|p| {
                                    p.as_str()
                                        .map(str::to_owned)
                                        .unwrap_or_else(|| p.to_string())
                                })
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    (loc, e["type"].as_str().unwrap_or("?").to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}
