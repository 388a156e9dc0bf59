//! `discover_api_spec`: probe a deployment's endpoint directly and classify its API.
//!
//! With the deployment's `endpoint_url` (which may carry a path prefix such as
//! `http://host:9002/audio`; probes are joined to it): `GET /openapi.json`, then
//! `GET` each of [`PROBE_PATHS`] concurrently. Any answer but 404 means the path
//! exists (405 included: it exists for another method, named by `Allow`), but a
//! server error (5xx) proves nothing: a deployment answering 5xx to every probe
//! is reported unavailable. The
//! classification is `openai` (models or completions endpoints), else `audio`,
//! else `fastapi` (an OpenAPI document), else `unknown`. Probes never carry the
//! registry API key, follow no redirects and each has a short timeout; a
//! deployment that does not answer is reported in the result.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::types::{ApiDiscovery, ApiType, Deployment, DiscoveredEndpoint, OpenApiInfo};

/// Paths probed after `/openapi.json`.
pub const PROBE_PATHS: [&str; 6] = [
    "/health",
    "/v1/models",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/audio/transcriptions",
];

const OPENAI_PATHS: [&str; 3] = ["/v1/models", "/v1/chat/completions", "/v1/completions"];
const MAX_OPENAPI_BYTES: usize = 4 * 1024 * 1024;

enum ProbeOutcome {
    Answered {
        status: u16,
        allow: Option<String>,
        body: Vec<u8>,
    },
    Failed(String),
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

async fn probe_one(
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    keep_body: bool,
) -> ProbeOutcome {
    match client.get(&url).send().await {
        Err(e) if e.is_timeout() => ProbeOutcome::Failed(format!(
            "{url}: no answer within {:.1}s",
            timeout.as_secs_f64()
        )),
        Err(e) => ProbeOutcome::Failed(format!("{url}: {}", crate::transport_reason(e))),
        Ok(response) => {
            let status = response.status().as_u16();
            let allow = response
                .headers()
                .get(reqwest::header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // A huge OpenAPI document is dropped without being buffered whole.
            let body = if keep_body && status == 200 {
                match crate::read_capped(response, MAX_OPENAPI_BYTES).await {
                    Ok(Ok(body)) => body,
                    _ => Vec::new(),
                }
            } else {
                Vec::new()
            };
            ProbeOutcome::Answered {
                status,
                allow,
                body,
            }
        }
    }
}

fn methods_from_allow(allow: Option<&str>) -> Vec<String> {
    let mut methods: Vec<String> = allow
        .unwrap_or("")
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty() && m != "HEAD" && m != "OPTIONS")
        .collect();
    methods.sort();
    methods.dedup();
    if methods.is_empty() {
        // FastAPI does not always send Allow; these endpoints are POST-only by convention.
        methods.push("POST".to_owned());
    }
    methods
}

/// A path of an OpenAPI document with its upper-case methods.
type OpenApiPath = (String, Vec<String>);

fn parse_openapi(body: &[u8]) -> Option<(OpenApiInfo, Vec<OpenApiPath>)> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let paths = doc.get("paths")?.as_object()?;
    let info = doc.get("info");
    let text = |key: &str| {
        info.and_then(|i| i.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut endpoints = Vec::with_capacity(paths.len());
    for (path, item) in paths {
        let mut methods: Vec<String> = item
            .as_object()
            .map(|ops| {
                ops.keys()
                    .map(|m| m.to_ascii_uppercase())
                    .filter(|m| matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE"))
                    .collect()
            })
            .unwrap_or_default();
        methods.sort();
        endpoints.push((path.clone(), methods));
    }
    Some((
        OpenApiInfo {
            title: text("title"),
            version: text("version"),
            path_count: paths.len(),
        },
        endpoints,
    ))
}

fn classify(endpoints: &[DiscoveredEndpoint], has_openapi: bool) -> ApiType {
    let exists = |p: &str| endpoints.iter().any(|e| e.path == p);
    if OPENAI_PATHS.iter().any(|p| exists(p)) {
        ApiType::Openai
    } else if endpoints.iter().any(|e| e.path.contains("/audio/")) {
        ApiType::Audio
    } else if has_openapi {
        ApiType::Fastapi
    } else {
        ApiType::Unknown
    }
}

fn unreachable(deployment: &Deployment, error: String) -> ApiDiscovery {
    ApiDiscovery {
        deployment_id: deployment.id.clone(),
        endpoint_url: deployment.endpoint_url.clone(),
        reachable: false,
        api_type: ApiType::Unknown,
        openapi: None,
        endpoints: Vec::new(),
        error: Some(error),
    }
}

/// Probes `deployment.endpoint_url` with `client` (which must carry no credentials).
pub async fn probe(
    client: &reqwest::Client,
    deployment: &Deployment,
    timeout: Duration,
) -> ApiDiscovery {
    let Some(base) = deployment
        .endpoint_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    else {
        return unreachable(
            deployment,
            format!(
                "deployment '{}' has no endpoint_url (status: {})",
                deployment.id, deployment.status
            ),
        );
    };
    match Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        Ok(_) => return unreachable(deployment, format!("endpoint_url '{base}' is not http(s)")),
        Err(e) => return unreachable(deployment, format!("endpoint_url '{base}' is invalid: {e}")),
    }
    let base = base.split(['?', '#']).next().unwrap_or(base);

    let mut endpoints: BTreeMap<String, DiscoveredEndpoint> = BTreeMap::new();
    // Paths that answered with a server error: that proves nothing about them.
    let mut server_errors: Vec<(&str, u16)> = Vec::new();
    let openapi = match probe_one(client.clone(), join(base, "/openapi.json"), timeout, true).await
    {
        // Nothing answers: report and skip the other probes (they would wait just as long).
        ProbeOutcome::Failed(reason) => return unreachable(deployment, reason),
        ProbeOutcome::Answered {
            status: 200, body, ..
        } => parse_openapi(&body),
        ProbeOutcome::Answered { status, .. } => {
            if status >= 500 {
                server_errors.push(("/openapi.json", status));
            }
            None
        }
    };
    let openapi_info = openapi.map(|(info, paths)| {
        for (path, methods) in paths {
            endpoints.insert(
                path.clone(),
                DiscoveredEndpoint {
                    path,
                    methods,
                    source: "openapi".to_owned(),
                    status: None,
                },
            );
        }
        info
    });

    let mut probes = JoinSet::new();
    for path in PROBE_PATHS {
        let client = client.clone();
        let url = join(base, path);
        probes.spawn(async move { (path, probe_one(client, url, timeout, false).await) });
    }
    let mut failures = Vec::new();
    while let Some(joined) = probes.join_next().await {
        let Ok((path, outcome)) = joined else {
            continue;
        };
        match outcome {
            ProbeOutcome::Failed(reason) => failures.push(reason),
            ProbeOutcome::Answered { status: 404, .. } => {}
            ProbeOutcome::Answered { status, .. } if status >= 500 => {
                server_errors.push((path, status));
            }
            ProbeOutcome::Answered { status, allow, .. } => {
                let methods = if status == 405 {
                    methods_from_allow(allow.as_deref())
                } else {
                    vec!["GET".to_owned()]
                };
                let entry =
                    endpoints
                        .entry(path.to_owned())
                        .or_insert_with(|| DiscoveredEndpoint {
                            path: path.to_owned(),
                            methods: Vec::new(),
                            source: "probe".to_owned(),
                            status: None,
                        });
                entry.status = Some(status);
                entry.source = "probe".to_owned();
                for m in methods {
                    if !entry.methods.contains(&m) {
                        entry.methods.push(m);
                    }
                }
                entry.methods.sort();
            }
        }
    }
    failures.sort();
    server_errors.sort_unstable();
    let endpoints: Vec<DiscoveredEndpoint> = endpoints.into_values().collect();
    if endpoints.is_empty() && server_errors.len() == PROBE_PATHS.len() + 1 {
        let mut statuses: Vec<u16> = server_errors.iter().map(|(_, status)| *status).collect();
        statuses.dedup();
        let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
        return unreachable(
            deployment,
            format!(
                "{base} is unavailable: every probe got a server error ({}); the server is up \
                 but not serving (still loading the model, or failing)",
                statuses.join(", ")
            ),
        );
    }
    if !server_errors.is_empty() {
        failures.push(format!(
            "server errors (not listed as found): {}",
            server_errors
                .iter()
                .map(|(path, status)| format!("{path} {status}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    ApiDiscovery {
        deployment_id: deployment.id.clone(),
        endpoint_url: deployment.endpoint_url.clone(),
        reachable: true,
        api_type: classify(&endpoints, openapi_info.is_some()),
        openapi: openapi_info,
        endpoints,
        error: (!failures.is_empty())
            .then(|| format!("some probes failed: {}", failures.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(path: &str) -> DiscoveredEndpoint {
        DiscoveredEndpoint {
            path: path.to_owned(),
            methods: vec!["GET".to_owned()],
            source: "probe".to_owned(),
            status: Some(200),
        }
    }

    #[test]
    fn classification_order() {
        let cases: [(&[&str], bool, ApiType); 6] = [
            (&["/health", "/v1/models"], false, ApiType::Openai),
            (
                &["/v1/completions", "/v1/audio/transcriptions"],
                true,
                ApiType::Openai,
            ),
            (
                &["/health", "/v1/audio/transcriptions"],
                true,
                ApiType::Audio,
            ),
            (&["/health", "/predict"], true, ApiType::Fastapi),
            (&["/health"], false, ApiType::Unknown),
            (&[], false, ApiType::Unknown),
        ];
        for (paths, openapi, expected) in cases {
            let endpoints: Vec<_> = paths.iter().map(|p| endpoint(p)).collect();
            assert_eq!(classify(&endpoints, openapi), expected, "{paths:?}");
        }
    }

    #[test]
    fn allow_header_methods() {
        assert_eq!(methods_from_allow(Some("POST")), ["POST"]);
        assert_eq!(methods_from_allow(Some("post, HEAD, get")), ["GET", "POST"]);
        assert_eq!(methods_from_allow(None), ["POST"]);
    }

    #[test]
    fn joins_keep_the_prefix() {
        assert_eq!(
            join("http://h:9002/audio/", "/health"),
            "http://h:9002/audio/health"
        );
        assert_eq!(
            join("http://h:9002", "/v1/models"),
            "http://h:9002/v1/models"
        );
    }
}
