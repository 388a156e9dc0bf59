//! The emulator's in-memory database and the server's business rules.
//!
//! Lifecycles are advanced by reads, so tests are deterministic: every
//! `GET /v1/deployments/{id}` or `GET /v1/deployments/{id}/status` moves a
//! `pending` deployment to `starting` and a `starting` one to `running` before
//! answering; every `GET /v1/docker/builds/{id}` or `.../logs` moves a build
//! from `pending` to `building` and from `building` to `success`. Lists never
//! advance anything.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::model::{
    ApiKey, Artifact, AuditLog, Benchmark, Build, ComponentHealth, Deployment, LatencyMs, Model,
    Role, SystemSeed, Version,
};
use crate::seed::Seed;
use crate::validate::PageParams;

/// A deployment plus the runtime facts the server keeps beside it.
#[derive(Debug, Clone)]
pub struct DeploymentRecord {
    pub deployment: Deployment,
    pub restart_count: u32,
}

/// The database. Vectors keep insertion order; lists sort newest first.
#[derive(Debug)]
pub struct Db {
    pub models: Vec<Model>,
    pub versions: Vec<Version>,
    pub deployments: Vec<DeploymentRecord>,
    pub builds: Vec<Build>,
    pub benchmarks: Vec<Benchmark>,
    pub artifacts: Vec<Artifact>,
    pub audit_logs: Vec<AuditLog>,
    pub api_keys: Vec<ApiKey>,
    pub system: SystemSeed,
    pub storage_capacity_bytes: u64,
    /// When set, new deployments get this endpoint URL (e.g. a fake model server).
    pub model_endpoint_url: Option<String>,
    next_port: u16,
}

/// Who called: the API key's name and role (never the key).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn to_value<T: Serialize>(value: &T) -> ApiResult<Value> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::internal(format!("serialization failed: {e}")))
}

/// `{items, total}` of `items` sorted newest first (ties: later inserted first).
fn page_of<T: Serialize>(
    mut items: Vec<&T>,
    created: impl Fn(&T) -> OffsetDateTime,
    page: PageParams,
) -> ApiResult<Value> {
    items.reverse();
    items.sort_by_key(|item| std::cmp::Reverse(created(item)));
    let total = items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .map(to_value)
        .collect::<ApiResult<_>>()?;
    Ok(json!({ "items": slice, "total": total }))
}

/// Host ports of new deployments come from `FIRST_HOST_PORT..=65535`.
const FIRST_HOST_PORT: u16 = 9100;

/// The first port at or after `from` (wrapping to [`FIRST_HOST_PORT`]) not in `used`.
fn free_port(used: &HashSet<u16>, from: u16) -> Option<u16> {
    let from = from.max(FIRST_HOST_PORT);
    (from..=u16::MAX)
        .chain(FIRST_HOST_PORT..from)
        .find(|port| !used.contains(port))
}

fn contains_ci(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

const ACTIVE: [&str; 3] = ["pending", "starting", "running"];

impl Db {
    pub fn from_seed(seed: Seed) -> Self {
        let next_port = seed
            .deployments
            .iter()
            .filter_map(|d| d.host_port)
            .max()
            .map_or(FIRST_HOST_PORT, |p| {
                p.saturating_add(1).max(FIRST_HOST_PORT)
            });
        Self {
            models: seed.models,
            versions: seed.versions,
            deployments: seed
                .deployments
                .into_iter()
                .map(|deployment| DeploymentRecord {
                    deployment,
                    restart_count: 0,
                })
                .collect(),
            builds: seed.builds,
            benchmarks: seed.benchmarks,
            artifacts: seed.artifacts,
            audit_logs: seed.audit_logs,
            api_keys: seed.api_keys,
            system: seed.system,
            storage_capacity_bytes: seed.storage.capacity_bytes,
            model_endpoint_url: None,
            next_port,
        }
    }

    pub fn authenticate(&self, key: &str) -> Option<Caller> {
        self.api_keys.iter().find(|k| k.key == key).map(|k| Caller {
            name: k.name.clone(),
            role: k.role,
        })
    }

    fn audit(
        &mut self,
        actor: &Caller,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        details: Value,
    ) {
        let details = match details {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self.audit_logs.push(AuditLog {
            id: new_id(),
            timestamp: now(),
            actor: actor.name.clone(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: Some(resource_id.to_owned()),
            details,
        });
    }

    // ----- models -----

    pub fn list_models(
        &self,
        search: Option<&str>,
        server_type: Option<&str>,
        source: Option<&str>,
        page: PageParams,
    ) -> ApiResult<Value> {
        let needle = search.map(str::to_lowercase);
        let items = self
            .models
            .iter()
            .filter(|m| server_type.is_none_or(|t| m.server_type == t))
            .filter(|m| source.is_none_or(|s| m.source == s))
            .filter(|m| {
                needle.as_deref().is_none_or(|n| {
                    contains_ci(&m.name, n)
                        || m.description.as_deref().is_some_and(|d| contains_ci(d, n))
                        || m.tags.iter().any(|t| contains_ci(t, n))
                })
            })
            .collect();
        page_of(items, |m| m.created_at, page)
    }

    fn model(&self, id: &str) -> ApiResult<&Model> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ApiError::not_found("model", id))
    }

    fn model_by_name(&self, name: &str) -> ApiResult<&Model> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ApiError::not_found("model", name))
    }

    pub fn get_model(&self, id: &str) -> ApiResult<Value> {
        to_value(self.model(id)?)
    }

    pub fn create_model(&mut self, caller: &Caller, new: NewModel) -> ApiResult<Value> {
        if self.models.iter().any(|m| m.name == new.name) {
            return Err(ApiError::conflict(format!(
                "model '{}' already exists",
                new.name
            )));
        }
        let at = now();
        let model = Model {
            id: new_id(),
            name: new.name,
            storage_path: new.storage_path,
            server_type: new.server_type,
            source: new.source.unwrap_or_else(|| "internal".to_owned()),
            description: new.description,
            tags: new.tags.unwrap_or_default(),
            requires_gpu: new.requires_gpu.unwrap_or(true),
            metadata: Map::new(),
            created_at: at,
            updated_at: at,
        };
        let value = to_value(&model)?;
        self.audit(
            caller,
            "model.create",
            "model",
            &model.id,
            json!({ "name": model.name }),
        );
        self.models.push(model);
        Ok(value)
    }

    pub fn update_model(
        &mut self,
        caller: &Caller,
        id: &str,
        update: ModelUpdate,
    ) -> ApiResult<Value> {
        let model = self
            .models
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or_else(|| ApiError::not_found("model", id))?;
        let mut changed = Vec::new();
        if let Some(description) = update.description {
            model.description = Some(description);
            changed.push("description");
        }
        if let Some(tags) = update.tags {
            model.tags = tags;
            changed.push("tags");
        }
        if let Some(metadata) = update.metadata {
            // Shallow merge, as the server does.
            for (k, v) in metadata {
                model.metadata.insert(k, v);
            }
            changed.push("metadata");
        }
        model.updated_at = now();
        let value = to_value(&*model)?;
        let model_id = model.id.clone();
        self.audit(
            caller,
            "model.update",
            "model",
            &model_id,
            json!({ "fields": changed }),
        );
        Ok(value)
    }

    pub fn delete_model(&mut self, caller: &Caller, id: &str) -> ApiResult<Value> {
        let model = self.model(id)?.clone();
        let version_ids: Vec<String> = self
            .versions
            .iter()
            .filter(|v| v.model_id == model.id)
            .map(|v| v.id.clone())
            .collect();
        let active: Vec<String> = self
            .deployments
            .iter()
            .map(|r| &r.deployment)
            .filter(|d| version_ids.contains(&d.version_id) && ACTIVE.contains(&d.status.as_str()))
            .map(|d| format!("{} ({})", d.id, d.status))
            .collect();
        if !active.is_empty() {
            return Err(ApiError::conflict(format!(
                "model '{}' has active deployments: {}; stop them first",
                model.name,
                active.join(", ")
            )));
        }
        self.versions.retain(|v| v.model_id != model.id);
        self.builds.retain(|b| !version_ids.contains(&b.version_id));
        self.artifacts
            .retain(|a| a.model_id != model.id && !version_ids.contains(&a.version_id));
        self.models.retain(|m| m.id != model.id);
        self.audit(
            caller,
            "model.delete",
            "model",
            &model.id,
            json!({ "name": model.name, "versions_deleted": version_ids.len() }),
        );
        Ok(json!({ "deleted": true, "versions_deleted": version_ids.len() }))
    }

    // ----- versions -----

    pub fn list_versions(
        &self,
        model_name: Option<&str>,
        is_release: Option<bool>,
        page: PageParams,
    ) -> ApiResult<Value> {
        let items = self
            .versions
            .iter()
            .filter(|v| model_name.is_none_or(|n| v.model_name == n))
            .filter(|v| is_release.is_none_or(|r| v.is_release == r))
            .collect();
        page_of(items, |v| v.created_at, page)
    }

    fn version(&self, id: &str) -> ApiResult<&Version> {
        self.versions
            .iter()
            .find(|v| v.id == id)
            .ok_or_else(|| ApiError::not_found("version", id))
    }

    pub fn get_version(&self, id: &str) -> ApiResult<Value> {
        to_value(self.version(id)?)
    }

    pub fn latest_version(&self, model_name: &str) -> ApiResult<Value> {
        let model = self.model_by_name(model_name)?;
        let latest = self
            .versions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.model_id == model.id)
            .max_by_key(|(i, v)| (v.created_at, *i))
            .map(|(_, v)| v)
            .ok_or_else(|| {
                ApiError::Status(
                    axum::http::StatusCode::NOT_FOUND,
                    format!("model '{model_name}' has no versions"),
                )
            })?;
        to_value(latest)
    }

    pub fn create_version(&mut self, caller: &Caller, new: NewVersion) -> ApiResult<Value> {
        let model = self.model_by_name(&new.model_name)?.clone();
        if self
            .versions
            .iter()
            .any(|v| v.model_id == model.id && v.version == new.version)
        {
            return Err(ApiError::conflict(format!(
                "version '{}' of model '{}' already exists",
                new.version, model.name
            )));
        }
        let at = now();
        let version = Version {
            id: new_id(),
            model_id: model.id.clone(),
            model_name: model.name.clone(),
            version: new.version,
            tag: new.tag,
            digest: new.digest,
            ceph_path: new.ceph_path,
            quantization: new.quantization,
            is_release: new.is_release.unwrap_or(false),
            created_at: at,
            promoted_at: new.is_release.unwrap_or(false).then_some(at),
        };
        let mut value = to_value(&version)?;
        let version_id = version.id.clone();
        self.audit(
            caller,
            "version.create",
            "version",
            &version_id,
            json!({ "model_name": model.name, "version": version.version }),
        );
        let image_tag = format!("registry.local/{}:{}", model.name, version.version);
        self.versions.push(version);
        if new.auto_build.unwrap_or(false) {
            let build = self.new_build(caller, &version_id, &model.server_type, Some(image_tag));
            if let Value::Object(map) = &mut value {
                map.insert("build_id".to_owned(), Value::String(build));
            }
        }
        Ok(value)
    }

    pub fn promote_version(
        &mut self,
        caller: &Caller,
        id: &str,
        is_release: bool,
    ) -> ApiResult<Value> {
        let version = self
            .versions
            .iter_mut()
            .find(|v| v.id == id)
            .ok_or_else(|| ApiError::not_found("version", id))?;
        version.is_release = is_release;
        version.promoted_at = is_release.then(now);
        let value = to_value(&*version)?;
        let version_id = version.id.clone();
        self.audit(
            caller,
            "version.promote",
            "version",
            &version_id,
            json!({ "is_release": is_release }),
        );
        Ok(value)
    }

    // ----- deployments -----

    pub fn list_deployments(
        &self,
        status: Option<&str>,
        environment: Option<&str>,
        model_name: Option<&str>,
        page: PageParams,
    ) -> ApiResult<Value> {
        let items = self
            .deployments
            .iter()
            .map(|r| &r.deployment)
            .filter(|d| status.is_none_or(|s| d.status == s))
            .filter(|d| environment.is_none_or(|e| d.environment == e))
            .filter(|d| model_name.is_none_or(|n| d.model_name == n))
            .collect();
        page_of(items, |d| d.created_at, page)
    }

    fn deployment_mut(&mut self, id: &str) -> ApiResult<&mut DeploymentRecord> {
        self.deployments
            .iter_mut()
            .find(|r| r.deployment.id == id)
            .ok_or_else(|| ApiError::not_found("deployment", id))
    }

    pub fn deployment(&self, id: &str) -> ApiResult<&DeploymentRecord> {
        self.deployments
            .iter()
            .find(|r| r.deployment.id == id)
            .ok_or_else(|| ApiError::not_found("deployment", id))
    }

    /// One lifecycle step: pending -> starting -> running.
    pub fn advance_deployment(&mut self, id: &str) -> ApiResult<()> {
        let record = self.deployment_mut(id)?;
        let d = &mut record.deployment;
        match d.status.as_str() {
            "pending" => {
                d.status = "starting".to_owned();
                if d.container_id.is_none() {
                    d.container_id = Some(d.id.replace('-', "").chars().take(12).collect());
                }
            }
            "starting" => {
                d.status = "running".to_owned();
                d.started_at = Some(now());
            }
            _ => {}
        }
        Ok(())
    }

    pub fn get_deployment(&mut self, id: &str) -> ApiResult<Value> {
        self.advance_deployment(id)?;
        to_value(&self.deployment(id)?.deployment)
    }

    pub fn deployment_status(&mut self, id: &str) -> ApiResult<Value> {
        self.advance_deployment(id)?;
        let record = self.deployment(id)?;
        let d = &record.deployment;
        let container_status = match d.status.as_str() {
            "pending" => Value::Null,
            "starting" => json!("created"),
            "running" => json!("running"),
            "stopped" | "failed" => json!("exited"),
            _ => Value::Null,
        };
        let uptime = match (d.status.as_str(), d.started_at) {
            ("running", Some(started)) => json!((now() - started).whole_seconds().max(0)),
            _ => Value::Null,
        };
        Ok(json!({
            "status": d.status,
            "container_status": container_status,
            "uptime_seconds": uptime,
            "restart_count": record.restart_count,
        }))
    }

    pub fn deployment_logs(&self, id: &str, lines: usize) -> ApiResult<Value> {
        let record = self.deployment(id)?;
        let all = deployment_log_lines(record);
        Ok(tail(all, lines))
    }

    pub fn deployment_health(&self, id: &str) -> ApiResult<Value> {
        let d = &self.deployment(id)?.deployment;
        let checked_url = d
            .endpoint_url
            .as_ref()
            .map(|u| format!("{}/health", u.trim_end_matches('/')));
        if d.status == "running" {
            Ok(json!({
                "healthy": true, "status_code": 200, "latency_ms": 4.2,
                "checked_url": checked_url, "error": null,
            }))
        } else {
            Ok(json!({
                "healthy": false, "status_code": null, "latency_ms": null,
                "checked_url": checked_url,
                "error": format!("deployment is {}, not running", d.status),
            }))
        }
    }

    pub fn execute_deployment(&mut self, caller: &Caller, new: NewDeployment) -> ApiResult<Value> {
        let version = self.version(&new.version_id)?.clone();
        let model = self.model(&version.model_id)?.clone();
        if let Some(existing) = self.deployments.iter().map(|r| &r.deployment).find(|d| {
            d.version_id == version.id
                && d.environment == new.environment
                && ACTIVE.contains(&d.status.as_str())
        }) {
            return Err(ApiError::conflict(format!(
                "version '{}' of model '{}' is already deployed in {} (deployment '{}', status {})",
                version.version, model.name, new.environment, existing.id, existing.status
            )));
        }
        let used: HashSet<u16> = self
            .deployments
            .iter()
            .filter_map(|r| r.deployment.host_port)
            .collect();
        let port = free_port(&used, self.next_port).ok_or_else(|| {
            ApiError::Status(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("no free host port left in {FIRST_HOST_PORT}-65535"),
            )
        })?;
        self.next_port = port.checked_add(1).unwrap_or(FIRST_HOST_PORT);
        let id = new_id();
        let short: String = id.replace('-', "").chars().take(6).collect();
        let endpoint_url = self
            .model_endpoint_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let deployment = Deployment {
            id: id.clone(),
            version_id: version.id.clone(),
            model_name: model.name.clone(),
            version: version.version.clone(),
            environment: new.environment.clone(),
            deployment_type: new
                .deployment_type
                .unwrap_or_else(|| model.server_type.clone()),
            status: "pending".to_owned(),
            gpu_enabled: new.gpu_enabled.unwrap_or(model.requires_gpu),
            container_id: None,
            container_name: Some(format!("{}-{}-{short}", model.name, new.environment)),
            host_port: Some(port),
            endpoint_url: Some(endpoint_url),
            created_at: now(),
            started_at: None,
            stopped_at: None,
            error: None,
        };
        let value = to_value(&deployment)?;
        self.audit(
            caller,
            "deployment.execute",
            "deployment",
            &id,
            json!({ "version_id": version.id, "environment": new.environment, "gpu_enabled": deployment.gpu_enabled }),
        );
        self.deployments.push(DeploymentRecord {
            deployment,
            restart_count: 0,
        });
        Ok(value)
    }

    pub fn stop_deployment(&mut self, caller: &Caller, id: &str) -> ApiResult<Value> {
        let record = self.deployment_mut(id)?;
        let d = &mut record.deployment;
        if d.status == "stopped" {
            return Err(ApiError::conflict(format!(
                "deployment '{id}' is already stopped"
            )));
        }
        d.status = "stopped".to_owned();
        d.stopped_at = Some(now());
        let value = to_value(&*d)?;
        self.audit(caller, "deployment.stop", "deployment", id, json!({}));
        Ok(value)
    }

    pub fn start_deployment(&mut self, caller: &Caller, id: &str) -> ApiResult<Value> {
        let record = self.deployment_mut(id)?;
        let d = &mut record.deployment;
        if ACTIVE.contains(&d.status.as_str()) {
            return Err(ApiError::conflict(format!(
                "deployment '{id}' is already {}",
                d.status
            )));
        }
        d.status = "starting".to_owned();
        d.stopped_at = None;
        d.error = None;
        let value = to_value(&*d)?;
        self.audit(caller, "deployment.start", "deployment", id, json!({}));
        Ok(value)
    }

    pub fn restart_deployment(&mut self, caller: &Caller, id: &str) -> ApiResult<Value> {
        let record = self.deployment_mut(id)?;
        let d = &mut record.deployment;
        if matches!(d.status.as_str(), "pending" | "starting") {
            return Err(ApiError::conflict(format!(
                "deployment '{id}' is {}; wait until it is running before restarting",
                d.status
            )));
        }
        d.status = "starting".to_owned();
        d.stopped_at = None;
        d.error = None;
        record.restart_count = record.restart_count.saturating_add(1);
        let value = to_value(&record.deployment)?;
        self.audit(caller, "deployment.restart", "deployment", id, json!({}));
        Ok(value)
    }

    // ----- builds -----

    pub fn list_builds(
        &self,
        version_id: Option<&str>,
        status: Option<&str>,
        page: PageParams,
    ) -> ApiResult<Value> {
        let items = self
            .builds
            .iter()
            .filter(|b| version_id.is_none_or(|v| b.version_id == v))
            .filter(|b| status.is_none_or(|s| b.status == s))
            .collect();
        page_of(items, |b| b.created_at, page)
    }

    /// One lifecycle step: pending -> building -> success.
    pub fn advance_build(&mut self, id: &str) -> ApiResult<()> {
        let build = self
            .builds
            .iter_mut()
            .find(|b| b.id == id)
            .ok_or_else(|| ApiError::not_found("build", id))?;
        match build.status.as_str() {
            "pending" => {
                build.status = "building".to_owned();
                build.started_at = Some(now());
            }
            "building" => {
                build.status = "success".to_owned();
                build.completed_at = Some(now());
            }
            _ => {}
        }
        Ok(())
    }

    fn build(&self, id: &str) -> ApiResult<&Build> {
        self.builds
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| ApiError::not_found("build", id))
    }

    pub fn get_build(&mut self, id: &str) -> ApiResult<Value> {
        self.advance_build(id)?;
        to_value(self.build(id)?)
    }

    pub fn build_logs(&mut self, id: &str, lines: usize) -> ApiResult<Value> {
        self.advance_build(id)?;
        let build = self.build(id)?;
        Ok(tail(build_log_lines(build), lines))
    }

    fn new_build(
        &mut self,
        caller: &Caller,
        version_id: &str,
        build_type: &str,
        image_tag: Option<String>,
    ) -> String {
        let build = Build {
            id: new_id(),
            version_id: version_id.to_owned(),
            build_type: build_type.to_owned(),
            image_tag,
            status: "pending".to_owned(),
            created_at: now(),
            started_at: None,
            completed_at: None,
            error: None,
        };
        let id = build.id.clone();
        self.audit(
            caller,
            "build.trigger",
            "build",
            &id,
            json!({ "version_id": version_id, "build_type": build_type }),
        );
        self.builds.push(build);
        id
    }

    pub fn trigger_build(&mut self, caller: &Caller, new: NewBuild) -> ApiResult<Value> {
        let version = self.version(&new.version_id)?.clone();
        let image_tag = new.image_tag.unwrap_or_else(|| {
            format!("registry.local/{}:{}", version.model_name, version.version)
        });
        let id = self.new_build(caller, &version.id, &new.build_type, Some(image_tag));
        to_value(self.build(&id)?)
    }

    pub fn disk_usage(&self) -> Value {
        let u = &self.system.docker_disk_usage;
        let total = u
            .images_bytes
            .saturating_add(u.containers_bytes)
            .saturating_add(u.volumes_bytes)
            .saturating_add(u.build_cache_bytes);
        json!({
            "images_bytes": u.images_bytes,
            "containers_bytes": u.containers_bytes,
            "volumes_bytes": u.volumes_bytes,
            "build_cache_bytes": u.build_cache_bytes,
            "total_bytes": total,
        })
    }

    // ----- benchmarks -----

    pub fn list_benchmarks(
        &self,
        deployment_id: Option<&str>,
        page: PageParams,
    ) -> ApiResult<Value> {
        let items = self
            .benchmarks
            .iter()
            .filter(|b| deployment_id.is_none_or(|d| b.deployment_id == d))
            .collect();
        page_of(items, |b| b.created_at, page)
    }

    pub fn get_benchmark(&self, id: &str) -> ApiResult<Value> {
        let b = self
            .benchmarks
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| ApiError::not_found("benchmark", id))?;
        to_value(b)
    }

    pub fn run_benchmark(&mut self, caller: &Caller, new: NewBenchmark) -> ApiResult<Value> {
        let d = self.deployment(&new.deployment_id)?.deployment.clone();
        if d.status != "running" {
            return Err(ApiError::conflict(format!(
                "deployment '{}' is not running (status: {})",
                d.id, d.status
            )));
        }
        // Deterministic figures that scale plausibly with concurrency.
        let per_stream_rps = match d.deployment_type.as_str() {
            "embedding" => 60.0,
            "audio" => 0.8,
            _ => 2.5,
        };
        let concurrency = f64::from(new.concurrent_requests);
        let rps = per_stream_rps * concurrency.powf(0.8);
        let p50 = 1000.0 * concurrency / rps;
        let round = |x: f64| (x * 10.0).round() / 10.0;
        let benchmark = Benchmark {
            id: new_id(),
            deployment_id: d.id.clone(),
            endpoint_path: new.endpoint_path,
            concurrent_requests: new.concurrent_requests,
            total_requests: new.total_requests,
            successful_requests: new.total_requests,
            failed_requests: 0,
            requests_per_second: round(rps),
            latency_ms: LatencyMs {
                mean: round(p50 * 1.05),
                p50: round(p50),
                p90: round(p50 * 1.4),
                p95: round(p50 * 1.55),
                p99: round(p50 * 1.9),
            },
            tokens_per_second: matches!(
                d.deployment_type.as_str(),
                "vllm" | "sglang" | "tgi" | "tensorrt-llm"
            )
            .then(|| round(rps * 110.0)),
            status: "completed".to_owned(),
            created_at: now(),
        };
        let value = to_value(&benchmark)?;
        self.audit(
            caller,
            "benchmark.run",
            "benchmark",
            &benchmark.id,
            json!({
                "deployment_id": d.id,
                "concurrent_requests": benchmark.concurrent_requests,
                "total_requests": benchmark.total_requests,
            }),
        );
        self.benchmarks.push(benchmark);
        Ok(value)
    }

    pub fn benchmark_summary(&self, deployment_id: &str) -> ApiResult<Value> {
        self.deployment(deployment_id)?;
        let runs: Vec<&Benchmark> = self
            .benchmarks
            .iter()
            .filter(|b| b.deployment_id == deployment_id)
            .collect();
        let latest = runs
            .iter()
            .enumerate()
            .max_by_key(|(i, b)| (b.created_at, *i))
            .map(|(_, b)| *b);
        let best_rps = runs.iter().map(|b| b.requests_per_second).reduce(f64::max);
        let best_p50 = runs.iter().map(|b| b.latency_ms.p50).reduce(f64::min);
        Ok(json!({
            "latest": latest.map(to_value).transpose()?,
            "runs": runs.len(),
            "best_rps": best_rps,
            "best_p50_ms": best_p50,
        }))
    }

    // ----- artifacts -----

    pub fn list_artifacts(
        &self,
        version_id: Option<&str>,
        model_id: Option<&str>,
        artifact_type: Option<&str>,
        page: PageParams,
    ) -> ApiResult<Value> {
        let items = self
            .artifacts
            .iter()
            .filter(|a| version_id.is_none_or(|v| a.version_id == v))
            .filter(|a| model_id.is_none_or(|m| a.model_id == m))
            .filter(|a| artifact_type.is_none_or(|t| a.artifact_type == t))
            .collect();
        page_of(items, |a| a.created_at, page)
    }

    pub fn get_artifact(&self, id: &str) -> ApiResult<Value> {
        let a = self
            .artifacts
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| ApiError::not_found("artifact", id))?;
        to_value(a)
    }

    // ----- system -----

    pub fn system_health(&self, storage_root_ok: bool) -> Value {
        let mut components = Map::new();
        let mut degraded = false;
        for (name, health) in &self.system.health {
            let mut health = health.clone();
            if name == "storage" && !storage_root_ok {
                health = ComponentHealth {
                    status: "error".to_owned(),
                    detail: Some("storage root is not a readable directory".to_owned()),
                };
            }
            degraded |= health.status != "ok";
            components.insert(
                name.clone(),
                json!({ "status": health.status, "detail": health.detail }),
            );
        }
        json!({ "status": if degraded { "degraded" } else { "ok" }, "components": components })
    }

    pub fn audit_logs(
        &self,
        action: Option<&str>,
        resource_type: Option<&str>,
        page: PageParams,
    ) -> ApiResult<Value> {
        let items = self
            .audit_logs
            .iter()
            .filter(|a| action.is_none_or(|x| a.action == x))
            .filter(|a| resource_type.is_none_or(|x| a.resource_type == x))
            .collect();
        page_of(items, |a| a.timestamp, page)
    }

    pub fn search(&self, q: &str, types: &[String], limit: usize) -> ApiResult<Value> {
        let needle = q.to_lowercase();
        let wants = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        let all = PageParams { limit, offset: 0 };
        let items_of = |v: Value| v.get("items").cloned().unwrap_or(Value::Array(Vec::new()));
        let mut out = Map::new();
        if wants("models") {
            out.insert(
                "models".to_owned(),
                items_of(self.list_models(Some(q), None, None, all)?),
            );
        }
        if wants("versions") {
            let matches = self
                .versions
                .iter()
                .filter(|v| {
                    contains_ci(&v.model_name, &needle)
                        || contains_ci(&v.version, &needle)
                        || v.tag.as_deref().is_some_and(|t| contains_ci(t, &needle))
                })
                .collect();
            out.insert(
                "versions".to_owned(),
                items_of(page_of(matches, |v| v.created_at, all)?),
            );
        }
        if wants("deployments") {
            let matches = self
                .deployments
                .iter()
                .map(|r| &r.deployment)
                .filter(|d| {
                    contains_ci(&d.model_name, &needle)
                        || d.container_name
                            .as_deref()
                            .is_some_and(|c| contains_ci(c, &needle))
                })
                .collect();
            out.insert(
                "deployments".to_owned(),
                items_of(page_of(matches, |d| d.created_at, all)?),
            );
        }
        Ok(Value::Object(out))
    }
}

/// The last `lines` lines and whether anything was cut.
fn tail(all: Vec<String>, lines: usize) -> Value {
    let total = all.len();
    let skip = total.saturating_sub(lines);
    let kept: Vec<String> = all.into_iter().skip(skip).collect();
    json!({ "lines": kept, "truncated": skip > 0 })
}

fn startup_lines(d: &Deployment) -> Vec<String> {
    let port = d.host_port.unwrap_or(8000);
    let mut lines = vec![
        format!(
            "Pulling image registry.local/{}:{}",
            d.model_name, d.version
        ),
        format!(
            "Starting container {}",
            d.container_name.as_deref().unwrap_or("?")
        ),
    ];
    match d.deployment_type.as_str() {
        "vllm" => lines.extend([
            "INFO 05-02 09:00:01 api_server.py:149] vLLM API server version 0.4.2".to_owned(),
            format!("INFO 05-02 09:00:01 api_server.py:150] args: model='/models/{}/{}'", d.model_name, d.version),
            "INFO 05-02 09:00:09 llm_engine.py:98] Initializing an LLM engine with config: dtype=torch.bfloat16".to_owned(),
            "INFO 05-02 09:03:40 model_runner.py:146] Loading model weights took 65.5 GB".to_owned(),
        ]),
        "sglang" => lines.extend([
            "[2024-10-02 09:00:05] server_args=ServerArgs(tp_size=1, mem_fraction_static=0.88)".to_owned(),
            "[2024-10-02 09:01:20] Load weight end. type=Qwen2ForCausalLM, dtype=torch.bfloat16".to_owned(),
        ]),
        "audio" => lines.push("INFO:     Loading whisper model (fp16) on cuda:0".to_owned()),
        "embedding" => lines.push("INFO:     Loading embedding model on cpu".to_owned()),
        _ => lines.push("INFO:     Loading model".to_owned()),
    }
    lines.push("INFO:     Started server process [1]".to_owned());
    lines.push("INFO:     Waiting for application startup.".to_owned());
    lines.push("INFO:     Application startup complete.".to_owned());
    lines.push(format!(
        "INFO:     Uvicorn running on http://0.0.0.0:{port} (Press CTRL+C to quit)"
    ));
    lines
}

fn request_path(d: &Deployment) -> &'static str {
    match d.deployment_type.as_str() {
        "audio" => "/v1/audio/transcriptions",
        "embedding" => "/v1/embeddings",
        _ => "/v1/chat/completions",
    }
}

/// Synthetic but plausible container logs, deterministic per deployment state.
pub fn deployment_log_lines(record: &DeploymentRecord) -> Vec<String> {
    let d = &record.deployment;
    match d.status.as_str() {
        "pending" => Vec::new(),
        "starting" => startup_lines(d).into_iter().take(3).collect(),
        status => {
            let mut lines = startup_lines(d);
            if status == "failed" {
                lines.truncate(4);
                lines.push(format!(
                    "ERROR:    {}",
                    d.error.as_deref().unwrap_or("container exited with code 1")
                ));
                lines.push("Container exited with code 1".to_owned());
                return lines;
            }
            let path = request_path(d);
            for i in 0..240u32 {
                let client_port = 40000 + i;
                if i % 10 == 0 {
                    lines.push(format!(
                        "INFO:     127.0.0.1:{client_port} - \"GET /health HTTP/1.1\" 200 OK"
                    ));
                } else {
                    lines.push(format!(
                        "INFO:     10.0.3.17:{client_port} - \"POST {path} HTTP/1.1\" 200 OK"
                    ));
                }
            }
            for _ in 0..record.restart_count {
                lines.push("INFO:     Shutting down".to_owned());
                lines.extend(startup_lines(d));
            }
            if status == "stopped" {
                lines.push("INFO:     Shutting down".to_owned());
                lines.push("INFO:     Finished server process [1]".to_owned());
            }
            lines
        }
    }
}

/// Synthetic Docker build output, deterministic per build state.
pub fn build_log_lines(build: &Build) -> Vec<String> {
    let image = build
        .image_tag
        .as_deref()
        .unwrap_or("registry.local/unnamed:latest");
    let steps = [
        "FROM nvidia/cuda:12.1.1-runtime-ubuntu22.04".to_owned(),
        "RUN apt-get update && apt-get install -y python3.10 python3-pip".to_owned(),
        "COPY requirements.txt /app/requirements.txt".to_owned(),
        "RUN pip install --no-cache-dir -r /app/requirements.txt".to_owned(),
        format!(
            "COPY server/ /app/server/  # build_type={}",
            build.build_type
        ),
        "ENV HF_HUB_OFFLINE=1".to_owned(),
        "EXPOSE 8000".to_owned(),
        "CMD [\"python3\", \"-m\", \"server\"]".to_owned(),
    ];
    let total = steps.len();
    let step_lines = |n: usize| -> Vec<String> {
        steps
            .iter()
            .take(n)
            .enumerate()
            .flat_map(|(i, s)| {
                [
                    format!("Step {}/{total} : {s}", i + 1),
                    format!(" ---> Running in {:012x}", (i as u64 + 1) * 0x1f3a_9c07),
                ]
            })
            .collect()
    };
    match build.status.as_str() {
        "pending" => Vec::new(),
        "building" => step_lines(4),
        "failed" => {
            let mut lines = step_lines(4);
            lines.push(format!(
                "ERROR: {}",
                build.error.as_deref().unwrap_or("build failed")
            ));
            lines
        }
        _ => {
            let mut lines = step_lines(total);
            lines.push("Successfully built 4f2a9c1d7e3b".to_owned());
            lines.push(format!("Successfully tagged {image}"));
            lines
        }
    }
}

/// Validated create/update inputs.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub name: String,
    pub storage_path: String,
    pub server_type: String,
    pub source: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub requires_gpu: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct ModelUpdate {
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct NewVersion {
    pub model_name: String,
    pub version: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub ceph_path: Option<String>,
    pub quantization: Option<String>,
    pub is_release: Option<bool>,
    pub auto_build: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub version_id: String,
    pub environment: String,
    pub gpu_enabled: Option<bool>,
    pub deployment_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewBuild {
    pub version_id: String,
    pub build_type: String,
    pub image_tag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewBenchmark {
    pub deployment_id: String,
    pub endpoint_path: String,
    pub concurrent_requests: u32,
    pub total_requests: u32,
}

/// Shared handle to the emulator's state, for handlers and for tests (the Rust API).
#[derive(Clone)]
pub struct EmulatorState {
    db: Arc<Mutex<Db>>,
    storage_root: Arc<PathBuf>,
}

impl std::fmt::Debug for EmulatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorState")
            .field("storage_root", &self.storage_root)
            .finish_non_exhaustive()
    }
}

impl EmulatorState {
    pub fn new(db: Db, storage_root: PathBuf) -> Self {
        Self {
            db: Arc::new(Mutex::new(db)),
            storage_root: Arc::new(storage_root),
        }
    }

    /// Locks the database; a poisoned lock is recovered (state stays usable for later tests).
    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn storage_root(&self) -> &Path {
        &self.storage_root
    }

    /// Sets a deployment's status directly (tests: e.g. force `running`).
    pub fn set_deployment_status(&self, id: &str, status: &str) -> Result<(), ApiError> {
        let mut db = self.db();
        let record = db.deployment_mut(id)?;
        record.deployment.status = status.to_owned();
        if status == "running" && record.deployment.started_at.is_none() {
            record.deployment.started_at = Some(now());
        }
        Ok(())
    }

    /// Points a deployment at another endpoint (tests: a fake model server).
    pub fn set_endpoint_url(&self, id: &str, url: Option<&str>) -> Result<(), ApiError> {
        let mut db = self.db();
        db.deployment_mut(id)?.deployment.endpoint_url = url.map(str::to_owned);
        Ok(())
    }

    /// New deployments get this endpoint URL instead of `http://127.0.0.1:{host_port}`.
    pub fn set_model_endpoint_url(&self, url: Option<&str>) {
        self.db().model_endpoint_url = url.map(str::to_owned);
    }

    /// Overrides one component of `GET /v1/system/health`.
    pub fn set_component_health(&self, component: &str, status: &str, detail: Option<&str>) {
        self.db().system.health.insert(
            component.to_owned(),
            ComponentHealth {
                status: status.to_owned(),
                detail: detail.map(str::to_owned),
            },
        );
    }

    pub fn deployment(&self, id: &str) -> Option<Deployment> {
        self.db().deployment(id).ok().map(|r| r.deployment.clone())
    }

    pub fn audit_log(&self) -> Vec<AuditLog> {
        self.db().audit_logs.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_wrap_and_run_out_without_looping() {
        let used = |ports: &[u16]| ports.iter().copied().collect::<HashSet<u16>>();
        let cases: [(HashSet<u16>, u16, Option<u16>); 5] = [
            (used(&[]), 9100, Some(9100)),
            (used(&[9100, 9101]), 9100, Some(9102)),
            (used(&[65535]), 65535, Some(9100)),
            (used(&[]), 80, Some(9100)),
            ((FIRST_HOST_PORT..=u16::MAX).collect(), 9500, None),
        ];
        for (used, from, expected) in cases {
            assert_eq!(free_port(&used, from), expected, "from {from}");
        }
    }
}
