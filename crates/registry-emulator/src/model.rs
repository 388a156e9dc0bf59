//! Resource types exactly as the Registry Server serializes them (snake_case JSON).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Accepted values of the enumerated fields, in the order the server lists them in 422 messages.
pub const SERVER_TYPES: &[&str] = &[
    "vllm",
    "sglang",
    "tgi",
    "tensorrt-llm",
    "audio",
    "embedding",
    "other",
];
pub const SOURCES: &[&str] = &["huggingface", "internal", "ceph", "other"];
pub const ENVIRONMENTS: &[&str] = &["dev", "staging", "testing"];
pub const DEPLOYMENT_STATUSES: &[&str] = &["pending", "starting", "running", "stopped", "failed"];
pub const BUILD_STATUSES: &[&str] = &["pending", "building", "success", "failed"];
pub const SEARCH_TYPES: &[&str] = &["models", "versions", "deployments"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub storage_path: String,
    pub server_type: String,
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub requires_gpu: bool,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub model_id: String,
    pub model_name: String,
    pub version: String,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub ceph_path: Option<String>,
    #[serde(default)]
    pub quantization: Option<String>,
    pub is_release: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub promoted_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub version_id: String,
    pub model_name: String,
    pub version: String,
    pub environment: String,
    pub deployment_type: String,
    pub status: String,
    pub gpu_enabled: bool,
    #[serde(default)]
    pub container_id: Option<String>,
    #[serde(default)]
    pub container_name: Option<String>,
    #[serde(default)]
    pub host_port: Option<u16>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    pub id: String,
    pub version_id: String,
    pub build_type: String,
    #[serde(default)]
    pub image_tag: Option<String>,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LatencyMs {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Benchmark {
    pub id: String,
    pub deployment_id: String,
    pub endpoint_path: String,
    pub concurrent_requests: u32,
    pub total_requests: u32,
    pub successful_requests: u32,
    pub failed_requests: u32,
    pub requests_per_second: f64,
    pub latency_ms: LatencyMs,
    #[serde(default)]
    pub tokens_per_second: Option<f64>,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    pub version_id: String,
    pub model_id: String,
    pub name: String,
    pub artifact_type: String,
    pub file_path: String,
    pub size_bytes: u64,
    #[serde(default)]
    pub checksum_sha256: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditLog {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub details: Map<String, Value>,
}

/// The role an API key carries. Ordered: a higher role may do everything a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key as seeded. The key itself is only ever compared, never logged or echoed.
#[derive(Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub name: String,
    pub key: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub status: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerDiskUsage {
    pub images_bytes: u64,
    pub containers_bytes: u64,
    pub volumes_bytes: u64,
    pub build_cache_bytes: u64,
}

/// `system.json`: component health and Docker disk usage as the server would report them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemSeed {
    pub health: std::collections::BTreeMap<String, ComponentHealth>,
    pub docker_disk_usage: DockerDiskUsage,
}

/// One file of the storage tree the emulator materializes under its storage root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageFile {
    pub path: String,
    pub size_bytes: u64,
}

/// `storage.json`: the storage tree description plus the volume capacity to report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageSeed {
    pub capacity_bytes: u64,
    #[serde(default)]
    pub tree: Vec<StorageFile>,
}
