//! Typed requests and answers of the Registry Server API. Answers tolerate unknown
//! fields and missing or `null` optional ones; times are kept as the RFC 3339 strings
//! the server sends (offsets and fractions included).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `null` and absence both become the default.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Whole seconds from an integer or a float (Python's `total_seconds()`); negatives become 0.
fn lenient_seconds<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    let number = Option::<serde_json::Number>::deserialize(deserializer)?;
    Ok(number.and_then(|n| {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                // `as` saturates: huge values become u64::MAX, never a panic.
                .map(|f| if f <= 0.0 { 0 } else { f as u64 })
        })
    }))
}

/// A value outside an enumeration, e.g. `production` for [`Environment`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}' (expected one of: {expected})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                    })
            }
        }
    };
}

wire_enum!(
    /// How a model is served.
    ServerType, "server_type" {
        Vllm => "vllm", Sglang => "sglang", Tgi => "tgi", TensorrtLlm => "tensorrt-llm",
        Audio => "audio", Embedding => "embedding", Other => "other",
    }
);
wire_enum!(
    /// Where a model comes from.
    Source, "source" { Huggingface => "huggingface", Internal => "internal", Ceph => "ceph", Other => "other" }
);
wire_enum!(
    /// Local deployment environments (production is not one: it goes through release configs).
    Environment, "environment" { Dev => "dev", Staging => "staging", Testing => "testing" }
);
wire_enum!(
    DeploymentStatus, "deployment status" {
        Pending => "pending", Starting => "starting", Running => "running", Stopped => "stopped", Failed => "failed",
    }
);
wire_enum!(
    BuildStatus, "build status" { Pending => "pending", Building => "building", Success => "success", Failed => "failed" }
);
wire_enum!(
    SearchType, "search type" { Models => "models", Versions => "versions", Deployments => "deployments" }
);

/// One page of a list, with the paging the request used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

impl<T> Page<T> {
    /// Whether items exist beyond this page.
    pub fn has_more(&self) -> bool {
        (u64::from(self.offset)).saturating_add(self.items.len() as u64) < self.total
    }

    /// The `offset` that asks for the next page, if there is one.
    pub fn next_offset(&self) -> Option<u32> {
        self.has_more().then(|| {
            self.offset
                .saturating_add(u32::try_from(self.items.len()).unwrap_or(u32::MAX))
        })
    }
}

/// The wire shape of lists: `{items, total}`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct ListAnswer<T> {
    #[serde(default = "Vec::new", deserialize_with = "nullable")]
    pub items: Vec<T>,
    #[serde(default)]
    pub total: Option<u64>,
}

// ----- resources -----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub storage_path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub server_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub requires_gpu: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: Map<String, Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model_id: String,
    #[serde(default, deserialize_with = "nullable")]
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
    #[serde(default, deserialize_with = "nullable")]
    pub is_release: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub promoted_at: Option<String>,
    /// Present on `create_version` answers with `auto_build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub version_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub environment: String,
    #[serde(default)]
    pub deployment_type: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    #[serde(default, deserialize_with = "nullable")]
    pub gpu_enabled: bool,
    #[serde(default)]
    pub container_id: Option<String>,
    #[serde(default)]
    pub container_name: Option<String>,
    #[serde(default)]
    pub host_port: Option<u16>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub stopped_at: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v1/deployments/{id}/status`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatusReport {
    pub status: String,
    #[serde(default)]
    pub container_status: Option<String>,
    /// Whole seconds; a fractional answer is truncated.
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub uptime_seconds: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    pub restart_count: u32,
}

/// Deployment or build logs: the last lines, and whether older ones were cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLines {
    #[serde(default, deserialize_with = "nullable")]
    pub lines: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub truncated: bool,
}

/// `GET /v1/deployments/{id}/health`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentHealth {
    pub healthy: bool,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub checked_url: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub version_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub build_type: String,
    #[serde(default)]
    pub image_tag: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v1/docker/disk-usage`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskUsage {
    #[serde(default, deserialize_with = "nullable")]
    pub images_bytes: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub containers_bytes: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub volumes_bytes: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub build_cache_bytes: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub total_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencyMs {
    #[serde(default, deserialize_with = "nullable")]
    pub mean: f64,
    #[serde(default, deserialize_with = "nullable")]
    pub p50: f64,
    #[serde(default, deserialize_with = "nullable")]
    pub p90: f64,
    #[serde(default, deserialize_with = "nullable")]
    pub p95: f64,
    #[serde(default, deserialize_with = "nullable")]
    pub p99: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub deployment_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub endpoint_path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub concurrent_requests: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub total_requests: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub successful_requests: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub failed_requests: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub requests_per_second: f64,
    #[serde(default, deserialize_with = "nullable")]
    pub latency_ms: LatencyMs,
    #[serde(default)]
    pub tokens_per_second: Option<f64>,
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `GET /v1/deployments/{id}/benchmark-summary`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkSummary {
    #[serde(default)]
    pub latest: Option<Benchmark>,
    #[serde(default, deserialize_with = "nullable")]
    pub runs: u32,
    #[serde(default)]
    pub best_rps: Option<f64>,
    #[serde(default)]
    pub best_p50_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub version_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub artifact_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub file_path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub size_bytes: u64,
    #[serde(default)]
    pub checksum_sha256: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditLog {
    pub id: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub actor: String,
    #[serde(default, deserialize_with = "nullable")]
    pub action: String,
    #[serde(default, deserialize_with = "nullable")]
    pub resource_type: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub details: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub status: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// `GET /v1/system/health`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemHealth {
    /// `ok` or `degraded`.
    pub status: String,
    #[serde(default, deserialize_with = "nullable")]
    pub components: BTreeMap<String, ComponentHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStorage {
    pub path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub size_bytes: u64,
}

/// `GET /v1/system/storage`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageUsage {
    #[serde(default, deserialize_with = "nullable")]
    pub root: String,
    #[serde(default, deserialize_with = "nullable")]
    pub total_bytes: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub used_bytes: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub free_bytes: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub models: Vec<ModelStorage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageEntry {
    pub name: String,
    /// `file` or `directory`.
    #[serde(rename = "type")]
    pub entry_type: String,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub modified_at: Option<String>,
}

/// `GET /v1/system/storage/browse`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageListing {
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub entries: Vec<StorageEntry>,
}

/// `GET /v1/search`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchResults {
    #[serde(default, deserialize_with = "nullable")]
    pub models: Vec<Model>,
    #[serde(default, deserialize_with = "nullable")]
    pub versions: Vec<Version>,
    #[serde(default, deserialize_with = "nullable")]
    pub deployments: Vec<Deployment>,
}

/// `GET /v1/auth/me`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub name: String,
    pub role: String,
}

/// `DELETE /v1/models/{id}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedModel {
    pub deleted: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub versions_deleted: u64,
}

// ----- requests -----

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelFilter {
    pub search: Option<String>,
    pub server_type: Option<ServerType>,
    pub source: Option<Source>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewModel {
    pub name: String,
    pub storage_path: String,
    pub server_type: ServerType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_gpu: Option<bool>,
}

/// `metadata` is merged shallowly by the server; `tags` replaces the list.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionFilter {
    pub model_name: Option<String>,
    pub is_release: Option<bool>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewVersion {
    pub model_name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceph_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_release: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_build: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentFilter {
    pub status: Option<DeploymentStatus>,
    pub environment: Option<Environment>,
    pub model_name: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewDeployment {
    pub version_id: String,
    pub environment: Environment,
    /// Absent: the server decides from the model (GPU auto-detection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildFilter {
    pub version_id: Option<String>,
    pub status: Option<BuildStatus>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewBuild {
    pub version_id: String,
    pub build_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchmarkFilter {
    pub deployment_id: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewBenchmark {
    pub deployment_id: String,
    pub endpoint_path: String,
    pub concurrent_requests: u32,
    pub total_requests: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArtifactFilter {
    pub version_id: Option<String>,
    pub model_id: Option<String>,
    pub artifact_type: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    pub q: String,
    /// Empty: all types.
    pub types: Vec<SearchType>,
    pub limit: Option<u32>,
}

// ----- API discovery -----

/// What kind of server a deployment runs, as `discover_api_spec` classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiType {
    Openai,
    Audio,
    Fastapi,
    Unknown,
}

impl ApiType {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiType::Openai => "openai",
            ApiType::Audio => "audio",
            ApiType::Fastapi => "fastapi",
            ApiType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ApiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint found on the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredEndpoint {
    /// Relative to the endpoint URL (`/v1/models`).
    pub path: String,
    /// Upper-case methods known to work (`GET`, `POST`).
    pub methods: Vec<String>,
    /// `probe` (answered a request) or `openapi` (listed in the OpenAPI document).
    pub source: String,
    /// The status the probe got, when probed.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenApiInfo {
    pub title: Option<String>,
    pub version: Option<String>,
    pub path_count: usize,
}

/// The result of `discover_api_spec`. An unreachable deployment is reported here, not raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiDiscovery {
    pub deployment_id: String,
    pub endpoint_url: Option<String>,
    pub reachable: bool,
    pub api_type: ApiType,
    pub openapi: Option<OpenApiInfo>,
    pub endpoints: Vec<DiscoveredEndpoint>,
    /// Why the deployment could not be probed, when it could not.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_reject_unknown() {
        assert_eq!(
            "tensorrt-llm".parse::<ServerType>(),
            Ok(ServerType::TensorrtLlm)
        );
        assert_eq!(ServerType::TensorrtLlm.to_string(), "tensorrt-llm");
        let err = "production"
            .parse::<Environment>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown environment 'production' (expected one of: dev, staging, testing)")
        );
    }

    #[test]
    fn page_paging() {
        let check = |len: usize, total: u64, offset: u32, more: bool, next: Option<u32>| {
            let page = Page {
                items: vec![(); len],
                total,
                limit: 10,
                offset,
            };
            assert_eq!(
                (page.has_more(), page.next_offset()),
                (more, next),
                "{len} {total} {offset}"
            );
        };
        check(10, 25, 0, true, Some(10));
        check(10, 25, 10, true, Some(20));
        check(5, 25, 20, false, None);
        check(0, 0, 0, false, None);
        check(0, 25, 40, false, None);
    }

    #[test]
    fn uptime_accepts_integers_and_floats() {
        let check = |json: &str, expected: Option<u64>| {
            let report: Result<DeploymentStatusReport, _> = serde_json::from_str(json);
            assert_eq!(
                report.map(|r| r.uptime_seconds).map_err(|e| e.to_string()),
                Ok(expected),
                "{json}"
            );
        };
        check(r#"{"status":"running","uptime_seconds":42}"#, Some(42));
        check(r#"{"status":"running","uptime_seconds":42.9}"#, Some(42));
        check(r#"{"status":"running","uptime_seconds":-3.5}"#, Some(0));
        check(
            r#"{"status":"running","uptime_seconds":1e300}"#,
            Some(u64::MAX),
        );
        check(r#"{"status":"stopped","uptime_seconds":null}"#, None);
        check(r#"{"status":"stopped"}"#, None);
    }

    #[test]
    fn rfc3339_times_with_offsets_and_fractions_are_kept_verbatim() {
        let times = [
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00.123456Z",
            "2024-05-01T10:00:00.5+02:00",
            "2024-05-01T10:00:00-07:30",
            "2024-05-01t10:00:00.000000001z",
        ];
        for t in times {
            let version =
                format!(r#"{{"id":"v","version":"1","created_at":"{t}","promoted_at":"{t}"}}"#);
            let deployment =
                format!(r#"{{"id":"d","created_at":"{t}","started_at":"{t}","stopped_at":"{t}"}}"#);
            let audit = format!(r#"{{"id":"a","timestamp":"{t}"}}"#);
            let parsed = (
                serde_json::from_str::<Version>(&version).map(|v| (v.created_at, v.promoted_at)),
                serde_json::from_str::<Deployment>(&deployment)
                    .map(|d| (d.created_at, d.stopped_at)),
                serde_json::from_str::<AuditLog>(&audit).map(|a| a.timestamp),
            );
            let some = Some(t.to_owned());
            assert!(
                matches!(&parsed, (Ok((a, b)), Ok((c, d)), Ok(e))
                    if *a == some && *b == some && *c == some && *d == some && *e == some),
                "{t}: {parsed:?}"
            );
        }
    }

    #[test]
    fn answers_tolerate_unknown_and_null_fields() {
        let json = r#"{"id":"m1","name":"x","tags":null,"metadata":null,"requires_gpu":null,
            "brand_new_field":{"a":1},"created_at":"2024-05-01T10:00:00.123456+02:00"}"#;
        let model: Result<Model, _> = serde_json::from_str(json);
        let model = model.map_err(|e| e.to_string());
        assert!(
            matches!(&model, Ok(m) if m.tags.is_empty() && !m.requires_gpu
            && m.created_at.as_deref() == Some("2024-05-01T10:00:00.123456+02:00")),
            "{model:?}"
        );
    }
}
