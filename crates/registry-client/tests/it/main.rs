//! The client against the real emulator on 127.0.0.1.

// Test helpers may unwrap: a failure there is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache_and_paging;
mod deployments;
mod discover;
mod errors;
mod hardening;
mod models_versions;
mod other_endpoints;
mod retries;

use std::time::Duration;

use registry_client::{ClientConfig, RegistryClient, Secret};
use registry_emulator::{EmulatorConfig, Role, RunningEmulator, Seed};

pub fn must<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

pub struct Env {
    pub emu: RunningEmulator,
    pub seed: Seed,
    pub _root: tempfile::TempDir,
}

impl Env {
    pub async fn start() -> Env {
        let root = must(tempfile::tempdir(), "tempdir");
        let config = must(EmulatorConfig::demo(root.path().join("storage")), "config");
        let seed = config.seed.clone();
        let emu = must(registry_emulator::spawn(config).await, "spawn");
        Env {
            emu,
            seed,
            _root: root,
        }
    }

    pub fn key(&self, role: Role) -> String {
        self.emu
            .api_key(role)
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// Quick timeouts and retries so failure tests stay fast.
    pub fn config(&self, role: Role) -> ClientConfig {
        let mut config = ClientConfig::new(self.emu.base_url(), Some(Secret::new(self.key(role))));
        config.timeout = Duration::from_secs(5);
        config.retry_base_delay = Duration::from_millis(5);
        config.probe_timeout = Duration::from_millis(800);
        config
    }

    pub fn client_with(&self, config: ClientConfig) -> RegistryClient {
        must(RegistryClient::new(config), "client")
    }

    pub fn client(&self, role: Role) -> RegistryClient {
        self.client_with(self.config(role))
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

    /// How many requests with this method and path reached the emulator.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.emu.requests().count(method, path)
    }
}

/// A local port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = must(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
    let port = must(listener.local_addr(), "addr").port();
    drop(listener);
    port
}
