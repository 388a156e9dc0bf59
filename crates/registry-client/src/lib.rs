//! Typed client for the Registry Server HTTP API (`shared/spec/registry-api.md`).
//!
//! - One async method per endpoint, typed requests and answers ([`types`]).
//! - `X-API-Key` on every request; the key ([`Secret`]) never appears in `Debug`,
//!   `Display` or errors.
//! - Per-request timeout; GETs retry transport failures and 502/503/504 with
//!   exponential backoff and jitter; writes never retry.
//! - A small read cache for slowly-changing resources (models, versions,
//!   artifacts, benchmarks, storage, search, `auth/me`, disk usage), keyed by path
//!   and query, emptied by every write. Live state (deployments, builds, system
//!   health, audit logs) is never cached: callers poll it.
//! - List `limit`s are clamped to `max_results`; lists come back as [`Page`].

mod discover;
mod error;
mod types;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng as _;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{Endpoint, FieldError, RegistryError, ResourceRef};
pub use secrets::Secret;
pub use types::*;

/// The list size asked for when the caller gives none (the server's default).
pub const DEFAULT_LIMIT: u32 = 50;
/// The server's largest accepted `limit`.
pub const SERVER_MAX_LIMIT: u32 = 500;

/// How to reach the registry and how patient to be. `Debug` hides the key and any
/// password in `base_url`.
#[derive(Clone)]
pub struct ClientConfig {
    /// E.g. `http://localhost/api`; endpoint paths are appended to it.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Whole-request timeout (connect to last body byte).
    pub timeout: Duration,
    /// Zero disables the read cache.
    pub cache_ttl: Duration,
    /// Upper bound for every list `limit`.
    pub max_results: u32,
    /// Extra attempts for idempotent GETs after a transient failure.
    pub retries: u32,
    /// First backoff delay; doubles per attempt, plus up to 50% jitter.
    pub retry_base_delay: Duration,
    /// Timeout of each `discover_api_spec` probe against a deployment.
    pub probe_timeout: Duration,
    /// Bound on a GET's total time across retries: no retry starts once it is spent, and a
    /// retry's timeout is cut to what is left. The first attempt always gets `timeout`, so a
    /// call takes at most `max(timeout, retry_budget)` plus one backoff.
    pub retry_budget: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &secrets::redact_url(&self.base_url))
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("max_results", &self.max_results)
            .field("retries", &self.retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("probe_timeout", &self.probe_timeout)
            .field("retry_budget", &self.retry_budget)
            .finish()
    }
}

impl ClientConfig {
    /// Defaults: 30 s timeout, 60 s cache, 100 results, 2 retries from 200 ms within a 60 s
    /// budget, 3 s probes.
    pub fn new(base_url: impl Into<String>, api_key: Option<Secret>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            timeout: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(60),
            max_results: 100,
            retries: 2,
            retry_base_delay: Duration::from_millis(200),
            probe_timeout: Duration::from_secs(3),
            retry_budget: Duration::from_secs(60),
        }
    }
}

const MAX_CACHE_ENTRIES: usize = 512;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The largest answer body the client reads; a bigger one is refused, not buffered.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Default)]
struct ReadCache {
    entries: HashMap<String, (Instant, Arc<[u8]>)>,
    /// Bumped by every write, so a read that was in flight during a write is not cached.
    generation: u64,
}

impl ReadCache {
    fn invalidate(&mut self) {
        self.entries.clear();
        self.generation = self.generation.wrapping_add(1);
    }

    fn get(&mut self, key: &str, ttl: Duration) -> Option<Arc<[u8]>> {
        match self.entries.get(key) {
            Some((at, bytes)) if at.elapsed() < ttl => Some(Arc::clone(bytes)),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, key: String, bytes: Arc<[u8]>, ttl: Duration) {
        if self.entries.len() >= MAX_CACHE_ENTRIES {
            self.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if self.entries.len() >= MAX_CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (Instant::now(), bytes));
    }
}

/// Whether a read may be served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    Cacheable,
    Live,
}

/// One call: method, path segments (ids unencoded), query and body.
struct Call<'a> {
    method: Method,
    segments: Vec<&'a str>,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    freshness: Freshness,
    resource: Option<ResourceRef>,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: &[&'a str]) -> Self {
        Self {
            method,
            segments: segments.to_vec(),
            query: Vec::new(),
            body: None,
            freshness: Freshness::Live,
            resource: None,
        }
    }

    fn get(segments: &[&'a str]) -> Self {
        Self::new(Method::GET, segments)
    }

    fn cached(mut self) -> Self {
        self.freshness = Freshness::Cacheable;
        self
    }

    fn about(mut self, kind: &'static str, id: &str) -> Self {
        self.resource = Some(ResourceRef {
            kind,
            id: id.to_owned(),
        });
        self
    }

    fn param(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            method: self.method.as_str().to_owned(),
            path: format!("/{}", self.segments.join("/")),
        }
    }
}

/// The Registry Server client. Cheap to clone (shares its connection pool and cache).
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    probe_http: reqwest::Client,
    base: Url,
    /// The `X-API-Key` value, marked sensitive; `None` when the key is not a valid header value.
    api_key_header: Option<HeaderValue>,
    config: Arc<ClientConfig>,
    cache: Arc<Mutex<ReadCache>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base_url", &secrets::redact_url(self.base.as_str()))
            .field("api_key", &self.config.api_key)
            .finish_non_exhaustive()
    }
}

pub(crate) fn transport_reason(error: reqwest::Error) -> String {
    // The innermost cause says most ("Connection refused", "connection closed before message
    // completed"); the URL is dropped because callers show a redacted one themselves.
    let error = error.without_url();
    let mut last = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// Reads a body of at most `max` bytes, refusing larger ones before buffering them.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Result<Vec<u8>, usize>, reqwest::Error> {
    let declared = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok());
    if let Some(n) = declared.filter(|n| *n > max) {
        return Ok(Err(n));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        if body.len().saturating_add(chunk.len()) > max {
            return Ok(Err(body.len().saturating_add(chunk.len())));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

impl RegistryClient {
    pub fn new(config: ClientConfig) -> Result<Self, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidUrl {
            url: secrets::redact_url(&config.base_url),
            reason,
        };
        let mut base = Url::parse(config.base_url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("only http and https are supported".to_owned()));
        }
        if base.cannot_be_a_base() {
            return Err(invalid("not a base URL".to_owned()));
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| invalid(format!("cannot build HTTP client: {e}")))?;
        // Probes go to deployments, not the registry: no API key, no redirects.
        let probe_http = reqwest::Client::builder()
            .timeout(config.probe_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot build HTTP client: {e}")))?;
        let api_key_header = config
            .api_key
            .as_ref()
            .and_then(|key| HeaderValue::from_str(key.expose()).ok())
            .map(|mut value| {
                // Kept out of `Debug` of requests and never indexed by HTTP/2 header compression.
                value.set_sensitive(true);
                value
            });
        Ok(Self {
            http,
            probe_http,
            base,
            api_key_header,
            config: Arc::new(config),
            cache: Arc::new(Mutex::new(ReadCache::default())),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Forgets every cached read.
    pub fn clear_cache(&self) {
        self.lock_cache().invalidate();
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ReadCache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `limit` as sent: the caller's or the default, within `1..=max_results`.
    pub fn effective_limit(&self, requested: Option<u32>) -> u32 {
        let cap = self.config.max_results.clamp(1, SERVER_MAX_LIMIT);
        requested.unwrap_or(DEFAULT_LIMIT).clamp(1, cap)
    }

    fn url_for(&self, call: &Call<'_>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            for segment in &call.segments {
                segments.push(segment);
            }
        }
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &call.query {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        url: &Url,
        key: &HeaderValue,
        timeout: Duration,
    ) -> Result<Vec<u8>, RegistryError> {
        let endpoint = call.endpoint();
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .timeout(timeout)
            .header("X-API-Key", key.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let shown_url = secrets::redact_url(url.as_str());
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                RegistryError::Timeout {
                    endpoint: endpoint.clone(),
                    url: shown_url.clone(),
                    after: timeout,
                }
            } else {
                RegistryError::Connect {
                    endpoint: endpoint.clone(),
                    url: shown_url.clone(),
                    reason: transport_reason(e),
                }
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = read_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(transport)?
            .map_err(|size| RegistryError::Decode {
                endpoint: endpoint.clone(),
                url: shown_url.clone(),
                msg: format!(
                    "answer of {size} bytes or more exceeds the client's limit of {MAX_RESPONSE_BYTES} bytes"
                ),
            })?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(RegistryError::from_answer(
                endpoint,
                call.resource.clone(),
                status.as_u16(),
                &body,
            ))
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .config
            .retry_base_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(MAX_BACKOFF);
        let jitter_ms = u64::try_from(base.as_millis() / 2).unwrap_or(0);
        let jitter = if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        };
        base.saturating_add(Duration::from_millis(jitter))
    }

    /// Sends a call: cache for cacheable GETs, retries for GETs, invalidation after writes.
    async fn execute(&self, call: Call<'_>) -> Result<Arc<[u8]>, RegistryError> {
        self.config
            .api_key
            .as_ref()
            .filter(|k| !k.is_empty())
            .ok_or(RegistryError::MissingApiKey)?;
        let header = self
            .api_key_header
            .as_ref()
            .ok_or(RegistryError::InvalidApiKey)?;
        // The URL library drops `.`/`..` segments, so such an id would address another endpoint.
        if let Some(bad) = call
            .segments
            .iter()
            .find(|s| matches!(**s, "" | "." | ".."))
        {
            return Err(RegistryError::InvalidId {
                kind: call.resource.as_ref().map_or("path", |r| r.kind),
                id: (*bad).to_owned(),
            });
        }
        let url = self.url_for(&call);
        let is_get = call.method == Method::GET;
        let use_cache =
            is_get && call.freshness == Freshness::Cacheable && !self.config.cache_ttl.is_zero();
        let cache_key = url.as_str().to_owned();
        let generation = {
            let mut cache = self.lock_cache();
            if use_cache && let Some(hit) = cache.get(&cache_key, self.config.cache_ttl) {
                return Ok(hit);
            }
            cache.generation
        };
        if !is_get {
            let result = self
                .attempt(&call, &url, header, self.config.timeout)
                .await
                .map_err(|e| self.redact(e));
            // Any write attempt may have changed state (even one that timed out).
            self.clear_cache();
            return result.map(Arc::from);
        }
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut timeout = self.config.timeout;
        loop {
            match self
                .attempt(&call, &url, header, timeout)
                .await
                .map_err(|e| self.redact(e))
            {
                Ok(bytes) => {
                    let bytes: Arc<[u8]> = Arc::from(bytes);
                    let mut cache = self.lock_cache();
                    // A write finished while this read was in flight: its answer may predate it.
                    if use_cache && cache.generation == generation {
                        cache.put(cache_key, Arc::clone(&bytes), self.config.cache_ttl);
                    }
                    return Ok(bytes);
                }
                Err(e) if e.is_transient() && attempt < self.config.retries => {
                    let delay = self.backoff(attempt);
                    let left = self
                        .config
                        .retry_budget
                        .saturating_sub(started.elapsed())
                        .saturating_sub(delay);
                    if left.is_zero() {
                        tracing::debug!("{e}; retry budget spent, giving up");
                        return Err(e);
                    }
                    tracing::debug!("{e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    timeout = self.config.timeout.min(left);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, RegistryError> {
        let endpoint = call.endpoint();
        let url = secrets::redact_url(self.url_for(&call).as_str());
        let result = match self.execute(call).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::Decode {
                endpoint,
                url,
                msg: e.to_string(),
            }),
            Err(e) => Err(e),
        };
        result.map_err(|e| self.redact(e))
    }

    /// A server that echoes the key (in a detail or a malformed answer) must not leak it into
    /// errors or the retry log.
    fn redact(&self, error: RegistryError) -> RegistryError {
        match &self.config.api_key {
            Some(key) => error.redact_secret(key.expose()),
            None => error,
        }
    }

    async fn fetch_page<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<Page<T>, RegistryError> {
        let limit = self.effective_limit(limit);
        let offset = offset.unwrap_or(0);
        let call = call
            .param("limit", Some(limit))
            .param("offset", Some(offset));
        let answer: ListAnswer<T> = self.fetch(call).await?;
        let total = answer
            .total
            .unwrap_or_else(|| u64::from(offset).saturating_add(answer.items.len() as u64));
        Ok(Page {
            items: answer.items,
            total,
            limit,
            offset,
        })
    }

    fn with_body<'a, B: Serialize>(call: Call<'a>, body: &B) -> Result<Call<'a>, RegistryError> {
        let endpoint = call.endpoint();
        let value = serde_json::to_value(body).map_err(|e| RegistryError::Decode {
            endpoint,
            url: String::new(),
            msg: format!("cannot encode request body: {e}"),
        })?;
        Ok(Call {
            body: Some(value),
            ..call
        })
    }

    // ----- auth -----

    /// `GET /v1/auth/me`: the key's name and role.
    pub async fn me(&self) -> Result<Me, RegistryError> {
        self.fetch(Call::get(&["v1", "auth", "me"]).cached()).await
    }

    // ----- models -----

    pub async fn list_models(&self, filter: &ModelFilter) -> Result<Page<Model>, RegistryError> {
        let call = Call::get(&["v1", "models"])
            .cached()
            .param("search", filter.search.as_deref())
            .param("server_type", filter.server_type)
            .param("source", filter.source);
        self.fetch_page(call, filter.limit, filter.offset).await
    }

    pub async fn get_model(&self, model_id: &str) -> Result<Model, RegistryError> {
        self.fetch(
            Call::get(&["v1", "models", model_id])
                .cached()
                .about("model", model_id),
        )
        .await
    }

    pub async fn create_model(&self, model: &NewModel) -> Result<Model, RegistryError> {
        let call = Self::with_body(Call::new(Method::POST, &["v1", "models"]), model)?;
        self.fetch(call).await
    }

    pub async fn update_model(
        &self,
        model_id: &str,
        update: &ModelUpdate,
    ) -> Result<Model, RegistryError> {
        let call = Call::new(Method::PATCH, &["v1", "models", model_id]).about("model", model_id);
        self.fetch(Self::with_body(call, update)?).await
    }

    /// Deletes the model with its versions, builds and artifacts (admin; 409 while deployed).
    pub async fn delete_model(&self, model_id: &str) -> Result<DeletedModel, RegistryError> {
        self.fetch(Call::new(Method::DELETE, &["v1", "models", model_id]).about("model", model_id))
            .await
    }

    // ----- versions -----

    pub async fn list_versions(
        &self,
        filter: &VersionFilter,
    ) -> Result<Page<Version>, RegistryError> {
        let call = Call::get(&["v1", "versions"])
            .cached()
            .param("model_name", filter.model_name.as_deref())
            .param("is_release", filter.is_release);
        self.fetch_page(call, filter.limit, filter.offset).await
    }

    pub async fn get_version(&self, version_id: &str) -> Result<Version, RegistryError> {
        self.fetch(
            Call::get(&["v1", "versions", version_id])
                .cached()
                .about("version", version_id),
        )
        .await
    }

    /// The newest version by `created_at`, release or not.
    pub async fn get_latest_version(&self, model_name: &str) -> Result<Version, RegistryError> {
        let call = Call::get(&["v1", "models", "by-name", model_name, "versions", "latest"])
            .cached()
            .about("model", model_name);
        self.fetch(call).await
    }

    /// Creates a version; with `auto_build` the answer carries `build_id`.
    pub async fn create_version(&self, version: &NewVersion) -> Result<Version, RegistryError> {
        let call = Self::with_body(Call::new(Method::POST, &["v1", "versions"]), version)?;
        self.fetch(call).await
    }

    pub async fn promote_version(
        &self,
        version_id: &str,
        is_release: bool,
    ) -> Result<Version, RegistryError> {
        let call = Call::new(Method::POST, &["v1", "versions", version_id, "promote"])
            .about("version", version_id);
        self.fetch(Self::with_body(
            call,
            &serde_json::json!({ "is_release": is_release }),
        )?)
        .await
    }

    // ----- deployments -----

    pub async fn list_deployments(
        &self,
        filter: &DeploymentFilter,
    ) -> Result<Page<Deployment>, RegistryError> {
        let call = Call::get(&["v1", "deployments"])
            .param("status", filter.status)
            .param("environment", filter.environment)
            .param("model_name", filter.model_name.as_deref());
        self.fetch_page(call, filter.limit, filter.offset).await
    }

    pub async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, RegistryError> {
        self.fetch(
            Call::get(&["v1", "deployments", deployment_id]).about("deployment", deployment_id),
        )
        .await
    }

    pub async fn get_deployment_status(
        &self,
        deployment_id: &str,
    ) -> Result<DeploymentStatusReport, RegistryError> {
        let call = Call::get(&["v1", "deployments", deployment_id, "status"])
            .about("deployment", deployment_id);
        self.fetch(call).await
    }

    /// The last `lines` log lines (server default when `None`).
    pub async fn get_deployment_logs(
        &self,
        deployment_id: &str,
        lines: Option<u32>,
    ) -> Result<LogLines, RegistryError> {
        let call = Call::get(&["v1", "deployments", deployment_id, "logs"])
            .about("deployment", deployment_id)
            .param("lines", lines);
        self.fetch(call).await
    }

    /// The server's active health check; a deployment that is not running is `healthy: false`.
    pub async fn get_deployment_health(
        &self,
        deployment_id: &str,
    ) -> Result<DeploymentHealth, RegistryError> {
        let call = Call::get(&["v1", "deployments", deployment_id, "health"])
            .about("deployment", deployment_id);
        self.fetch(call).await
    }

    /// Starts a local deployment; answers `pending`, poll the status.
    pub async fn execute_deployment(
        &self,
        deployment: &NewDeployment,
    ) -> Result<Deployment, RegistryError> {
        let call = Self::with_body(Call::new(Method::POST, &["v1", "deployments"]), deployment)?;
        self.fetch(call).await
    }

    pub async fn stop_deployment(&self, deployment_id: &str) -> Result<Deployment, RegistryError> {
        self.deployment_action(deployment_id, "stop").await
    }

    pub async fn start_deployment(&self, deployment_id: &str) -> Result<Deployment, RegistryError> {
        self.deployment_action(deployment_id, "start").await
    }

    pub async fn restart_deployment(
        &self,
        deployment_id: &str,
    ) -> Result<Deployment, RegistryError> {
        self.deployment_action(deployment_id, "restart").await
    }

    async fn deployment_action(
        &self,
        deployment_id: &str,
        action: &'static str,
    ) -> Result<Deployment, RegistryError> {
        let call = Call::new(Method::POST, &["v1", "deployments", deployment_id, action])
            .about("deployment", deployment_id);
        self.fetch(call).await
    }

    // ----- docker -----

    pub async fn list_docker_builds(
        &self,
        filter: &BuildFilter,
    ) -> Result<Page<Build>, RegistryError> {
        let call = Call::get(&["v1", "docker", "builds"])
            .param("version_id", filter.version_id.as_deref())
            .param("status", filter.status);
        self.fetch_page(call, filter.limit, filter.offset).await
    }

    pub async fn get_docker_build(&self, build_id: &str) -> Result<Build, RegistryError> {
        self.fetch(Call::get(&["v1", "docker", "builds", build_id]).about("build", build_id))
            .await
    }

    pub async fn get_docker_build_logs(
        &self,
        build_id: &str,
        lines: Option<u32>,
    ) -> Result<LogLines, RegistryError> {
        let call = Call::get(&["v1", "docker", "builds", build_id, "logs"])
            .about("build", build_id)
            .param("lines", lines);
        self.fetch(call).await
    }

    pub async fn trigger_docker_build(&self, build: &NewBuild) -> Result<Build, RegistryError> {
        let call = Self::with_body(Call::new(Method::POST, &["v1", "docker", "builds"]), build)?;
        self.fetch(call).await
    }

    pub async fn get_docker_disk_usage(&self) -> Result<DiskUsage, RegistryError> {
        self.fetch(Call::get(&["v1", "docker", "disk-usage"]).cached())
            .await
    }

    // ----- benchmarks -----

    pub async fn list_benchmarks(
        &self,
        filter: &BenchmarkFilter,
    ) -> Result<Page<Benchmark>, RegistryError> {
        let call = Call::get(&["v1", "benchmarks"])
            .cached()
            .param("deployment_id", filter.deployment_id.as_deref());
        self.fetch_page(call, filter.limit, filter.offset).await
    }

    pub async fn get_benchmark(&self, benchmark_id: &str) -> Result<Benchmark, RegistryError> {
        self.fetch(
            Call::get(&["v1", "benchmarks", benchmark_id])
                .cached()
                .about("benchmark", benchmark_id),
        )
        .await
    }

    pub async fn run_benchmark(
        &self,
        benchmark: &NewBenchmark,
    ) -> Result<Benchmark, RegistryError> {
        let call = Self::with_body(Call::new(Method::POST, &["v1", "benchmarks"]), benchmark)?;
        self.fetch(call).await
    }

    pub async fn get_benchmark_summary(
        &self,
        deployment_id: &str,
    ) -> Result<BenchmarkSummary, RegistryError> {
        let call = Call::get(&["v1", "deployments", deployment_id, "benchmark-summary"])
            .cached()
            .about("deployment", deployment_id);
        self.fetch(call).await
    }

    // ----- artifacts -----

    pub async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
    ) -> Result<Page<Artifact>, RegistryError> {
        let call = Call::get(&["v1", "artifacts"])
            .cached()
            .param("version_id", filter.version_id.as_deref())
            .param("model_id", filter.model_id.as_deref())
            .param("artifact_type", filter.artifact_type.as_deref());
        self.fetch_page(call, filter.limit, filter.offset).await
    }

    pub async fn get_artifact(&self, artifact_id: &str) -> Result<Artifact, RegistryError> {
        self.fetch(
            Call::get(&["v1", "artifacts", artifact_id])
                .cached()
                .about("artifact", artifact_id),
        )
        .await
    }

    // ----- system -----

    pub async fn health_check(&self) -> Result<SystemHealth, RegistryError> {
        self.fetch(Call::get(&["v1", "system", "health"])).await
    }

    pub async fn get_audit_logs(
        &self,
        filter: &AuditFilter,
    ) -> Result<Page<AuditLog>, RegistryError> {
        let call = Call::get(&["v1", "system", "audit-logs"])
            .param("action", filter.action.as_deref())
            .param("resource_type", filter.resource_type.as_deref());
        self.fetch_page(call, filter.limit, filter.offset).await
    }

    pub async fn get_storage_usage(&self) -> Result<StorageUsage, RegistryError> {
        self.fetch(Call::get(&["v1", "system", "storage"]).cached())
            .await
    }

    /// Lists a directory under the storage root. Leading `/` are stripped (the path is
    /// always relative); the server answers 400 for paths escaping its root.
    pub async fn browse_model_storage(
        &self,
        relative_path: &str,
    ) -> Result<StorageListing, RegistryError> {
        let path = relative_path.trim_start_matches('/');
        let call = Call::get(&["v1", "system", "storage", "browse"])
            .cached()
            .param("path", Some(path));
        self.fetch(call).await
    }

    pub async fn search(&self, query: &SearchQuery) -> Result<SearchResults, RegistryError> {
        let types = (!query.types.is_empty()).then(|| {
            query
                .types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(",")
        });
        let call = Call::get(&["v1", "search"])
            .cached()
            .param("q", Some(&query.q))
            .param("types", types)
            .param("limit", Some(self.effective_limit(query.limit)));
        self.fetch(call).await
    }

    /// Probes a deployment's endpoint to classify its API; see [`discover`].
    pub async fn discover_api_spec(
        &self,
        deployment_id: &str,
    ) -> Result<ApiDiscovery, RegistryError> {
        let deployment = self.get_deployment(deployment_id).await?;
        Ok(discover::probe(&self.probe_http, &deployment, self.config.probe_timeout).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_urls_lose_their_userinfo() {
        let cases = [
            ("http://user:hunter2@host/api", "http://***@host/api"),
            (
                "http://hunter2@host:99999/api?x=1",
                "http://***@host:99999/api?x=1",
            ),
            ("https://host/api/a@b", "https://host/api/a@b"),
            ("http://host/api", "http://host/api"),
            ("not a url", "not a url"),
            ("http://u:p@", "http://***@"),
        ];
        for (raw, expected) in cases {
            assert_eq!(secrets::redact_url(raw), expected, "{raw}");
        }
    }

    #[test]
    fn config_debug_hides_key_and_url_password() {
        let config = ClientConfig::new(
            "http://svc:hunter2@registry.local/api",
            Some(Secret::new("cat_live_abcdef")),
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("cat_live_abcdef"), "{shown}");
        assert!(shown.contains("registry.local/api"), "{shown}");
        let invalid =
            RegistryClient::new(ClientConfig::new("http://svc:hunter2@host:99999/api", None))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(
            invalid.starts_with("invalid registry URL 'http://***@host:99999/api'"),
            "{invalid}"
        );
    }
}
