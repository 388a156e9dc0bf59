//! Errors of registry calls. Each message names the request (method and path, which
//! carries the id) and the server's `detail`, e.g.
//! `GET /v1/models/abc: 404: model 'abc' not found`. Never the API key.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The request an error belongs to: `GET /v1/models/abc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub method: String,
    /// The path relative to the base URL, ids unencoded (`/v1/models/abc`).
    pub path: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The resource a 404 refers to, when the call names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    /// `model`, `version`, `deployment`, ...
    pub kind: &'static str,
    pub id: String,
}

/// One entry of a FastAPI 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldError {
    #[serde(default)]
    pub loc: Vec<Value>,
    #[serde(default)]
    pub msg: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl FieldError {
    /// `body.name` / `query.limit`
    pub fn location(&self) -> String {
        self.loc
            .iter()
            .map(|part| match part {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = self.location();
        if loc.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{loc}: {}", self.msg)
        }
    }
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn after_text(after: &Duration) -> String {
    format!("{:.1}s", after.as_secs_f64())
}

/// Names the resource after a 404 detail unless the detail already names its id.
fn not_found_text(resource: &Option<ResourceRef>, detail: &str) -> String {
    match resource {
        Some(r) if !detail.contains(&r.id) => format!(" ({} '{}')", r.kind, r.id),
        _ => String::new(),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("no registry API key configured (set REGISTRY_API_KEY)")]
    MissingApiKey,
    /// The key cannot be sent as an HTTP header (it holds control characters, e.g. a
    /// trailing newline). Nothing was sent.
    #[error(
        "the registry API key is not a valid HTTP header value (it contains control characters such as a newline): check REGISTRY_API_KEY"
    )]
    InvalidApiKey,
    /// An id that cannot be a path segment: empty, `.` or `..` (URL resolution would drop
    /// it and address another endpoint). Nothing was sent.
    #[error("{kind} id '{id}' is not a valid id (empty, '.' and '..' cannot be sent)")]
    InvalidId { kind: &'static str, id: String },
    #[error("invalid registry URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{endpoint}: 400: {detail}")]
    BadRequest { endpoint: Endpoint, detail: String },
    #[error("{endpoint}: 401: {detail}")]
    Unauthorized { endpoint: Endpoint, detail: String },
    #[error("{endpoint}: 403: {detail}")]
    Forbidden {
        endpoint: Endpoint,
        detail: String,
        /// The role the server says is needed (`operator`, `admin`), when it says so.
        required_role: Option<String>,
    },
    #[error("{endpoint}: 404: {detail}{}", not_found_text(.resource, .detail))]
    NotFound {
        endpoint: Endpoint,
        resource: Option<ResourceRef>,
        detail: String,
    },
    #[error("{endpoint}: 409: {detail}")]
    Conflict { endpoint: Endpoint, detail: String },
    #[error("{endpoint}: 422: {}", join_errors(.errors))]
    Validation {
        endpoint: Endpoint,
        errors: Vec<FieldError>,
    },
    #[error("{endpoint}: {status}: {detail}")]
    Server {
        endpoint: Endpoint,
        status: u16,
        detail: String,
    },
    #[error("{endpoint}: timed out after {} waiting for {url}", after_text(.after))]
    Timeout {
        endpoint: Endpoint,
        url: String,
        after: Duration,
    },
    #[error("{endpoint}: cannot reach {url}: {reason}")]
    Connect {
        endpoint: Endpoint,
        url: String,
        reason: String,
    },
    #[error("{endpoint}: unexpected answer from {url}: {msg}")]
    Decode {
        endpoint: Endpoint,
        url: String,
        msg: String,
    },
}

impl RegistryError {
    /// The HTTP status of the answer, for errors that come from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::BadRequest { .. } => Some(400),
            RegistryError::Unauthorized { .. } => Some(401),
            RegistryError::Forbidden { .. } => Some(403),
            RegistryError::NotFound { .. } => Some(404),
            RegistryError::Conflict { .. } => Some(409),
            RegistryError::Validation { .. } => Some(422),
            RegistryError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `detail` (joined for 422), when there is one.
    pub fn detail(&self) -> Option<String> {
        match self {
            RegistryError::BadRequest { detail, .. }
            | RegistryError::Unauthorized { detail, .. }
            | RegistryError::Forbidden { detail, .. }
            | RegistryError::NotFound { detail, .. }
            | RegistryError::Conflict { detail, .. }
            | RegistryError::Server { detail, .. } => Some(detail.clone()),
            RegistryError::Validation { errors, .. } => Some(join_errors(errors)),
            _ => None,
        }
    }

    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            RegistryError::MissingApiKey
            | RegistryError::InvalidApiKey
            | RegistryError::InvalidId { .. }
            | RegistryError::InvalidUrl { .. } => None,
            RegistryError::BadRequest { endpoint, .. }
            | RegistryError::Unauthorized { endpoint, .. }
            | RegistryError::Forbidden { endpoint, .. }
            | RegistryError::NotFound { endpoint, .. }
            | RegistryError::Conflict { endpoint, .. }
            | RegistryError::Validation { endpoint, .. }
            | RegistryError::Server { endpoint, .. }
            | RegistryError::Timeout { endpoint, .. }
            | RegistryError::Connect { endpoint, .. }
            | RegistryError::Decode { endpoint, .. } => Some(endpoint),
        }
    }

    /// Transient failures a GET may retry: transport problems and 502/503/504.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Timeout { .. } | RegistryError::Connect { .. } => true,
            RegistryError::Server { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Replaces every occurrence of `secret` in the error's texts (details, URLs, reasons)
    /// with `<redacted>`. Keys shorter than 4 characters are left alone: replacing them would
    /// garble the message without hiding anything.
    pub(crate) fn redact_secret(self, secret: &str) -> RegistryError {
        if secret.len() < 4 {
            return self;
        }
        let clean = |text: String| {
            if text.contains(secret) {
                text.replace(secret, "<redacted>")
            } else {
                text
            }
        };
        let clean_endpoint = |endpoint: Endpoint| Endpoint {
            method: endpoint.method,
            path: clean(endpoint.path),
        };
        match self {
            RegistryError::MissingApiKey
            | RegistryError::InvalidApiKey
            | RegistryError::InvalidId { .. } => self,
            RegistryError::InvalidUrl { url, reason } => RegistryError::InvalidUrl {
                url: clean(url),
                reason: clean(reason),
            },
            RegistryError::BadRequest { endpoint, detail } => RegistryError::BadRequest {
                endpoint: clean_endpoint(endpoint),
                detail: clean(detail),
            },
            RegistryError::Unauthorized { endpoint, detail } => RegistryError::Unauthorized {
                endpoint: clean_endpoint(endpoint),
                detail: clean(detail),
            },
            RegistryError::Forbidden {
                endpoint,
                detail,
                required_role,
            } => RegistryError::Forbidden {
                endpoint: clean_endpoint(endpoint),
                detail: clean(detail),
                required_role,
            },
            RegistryError::NotFound {
                endpoint,
                resource,
                detail,
            } => RegistryError::NotFound {
                endpoint: clean_endpoint(endpoint),
                resource: resource.map(|r| ResourceRef {
                    kind: r.kind,
                    id: clean(r.id),
                }),
                detail: clean(detail),
            },
            RegistryError::Conflict { endpoint, detail } => RegistryError::Conflict {
                endpoint: clean_endpoint(endpoint),
                detail: clean(detail),
            },
            RegistryError::Validation { endpoint, errors } => RegistryError::Validation {
                endpoint: clean_endpoint(endpoint),
                errors: errors
                    .into_iter()
                    .map(|e| FieldError {
                        loc: e
                            .loc
                            .into_iter()
                            .map(|part| match part {
                                Value::String(s) => Value::String(clean(s)),
                                other => other,
                            })
                            .collect(),
                        msg: clean(e.msg),
                        kind: e.kind,
                    })
                    .collect(),
            },
            RegistryError::Server {
                endpoint,
                status,
                detail,
            } => RegistryError::Server {
                endpoint: clean_endpoint(endpoint),
                status,
                detail: clean(detail),
            },
            RegistryError::Timeout {
                endpoint,
                url,
                after,
            } => RegistryError::Timeout {
                endpoint: clean_endpoint(endpoint),
                url: clean(url),
                after,
            },
            RegistryError::Connect {
                endpoint,
                url,
                reason,
            } => RegistryError::Connect {
                endpoint: clean_endpoint(endpoint),
                url: clean(url),
                reason: clean(reason),
            },
            RegistryError::Decode { endpoint, url, msg } => RegistryError::Decode {
                endpoint: clean_endpoint(endpoint),
                url: clean(url),
                msg: clean(msg),
            },
        }
    }

    /// Builds the error for a non-success answer from its status and body.
    pub(crate) fn from_answer(
        endpoint: Endpoint,
        resource: Option<ResourceRef>,
        status: u16,
        body: &[u8],
    ) -> RegistryError {
        let detail = parse_detail(body);
        let text = || match &detail {
            Detail::Text(t) => t.clone(),
            Detail::Fields(fields) => join_errors(fields),
            Detail::Missing => default_reason(status),
        };
        match status {
            400 => RegistryError::BadRequest {
                endpoint,
                detail: text(),
            },
            401 => RegistryError::Unauthorized {
                endpoint,
                detail: text(),
            },
            403 => {
                let detail = text();
                RegistryError::Forbidden {
                    required_role: required_role(&detail),
                    endpoint,
                    detail,
                }
            }
            404 => RegistryError::NotFound {
                endpoint,
                resource,
                detail: text(),
            },
            409 => RegistryError::Conflict {
                endpoint,
                detail: text(),
            },
            422 => RegistryError::Validation {
                errors: match detail {
                    Detail::Fields(fields) => fields,
                    other => vec![FieldError {
                        loc: Vec::new(),
                        msg: match other {
                            Detail::Text(t) => t,
                            _ => default_reason(status),
                        },
                        kind: "value_error".to_owned(),
                    }],
                },
                endpoint,
            },
            _ => RegistryError::Server {
                endpoint,
                status,
                detail: text(),
            },
        }
    }
}

enum Detail {
    Text(String),
    Fields(Vec<FieldError>),
    Missing,
}

const MAX_DETAIL_CHARS: usize = 500;

fn clip(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.chars().count() <= MAX_DETAIL_CHARS {
        trimmed.to_owned()
    } else {
        let mut out: String = trimmed.chars().take(MAX_DETAIL_CHARS).collect();
        out.push_str("... (cut)");
        out
    }
}

fn parse_detail(body: &[u8]) -> Detail {
    #[derive(Deserialize)]
    struct Envelope {
        detail: Value,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope {
            detail: Value::String(s),
        }) => Detail::Text(clip(&s)),
        Ok(Envelope {
            detail: Value::Array(items),
        }) => {
            let fields: Vec<FieldError> = items
                .into_iter()
                .map(|item| {
                    serde_json::from_value(item.clone()).unwrap_or(FieldError {
                        loc: Vec::new(),
                        msg: clip(&item.to_string()),
                        kind: "unknown".to_owned(),
                    })
                })
                .collect();
            Detail::Fields(fields)
        }
        Ok(Envelope { detail }) => Detail::Text(clip(&detail.to_string())),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            if text.trim().is_empty() {
                Detail::Missing
            } else {
                Detail::Text(clip(&text))
            }
        }
    }
}

fn default_reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no detail given")
        .to_owned()
}

/// Finds `requires role 'operator'` (or `requires 'operator'`, `requires operator`) in a 403 detail.
fn required_role(detail: &str) -> Option<String> {
    let lower = detail.to_lowercase();
    let start = lower.find("requires")? + "requires".len();
    let rest = lower.get(start..)?.trim_start();
    let rest = rest.strip_prefix("role").unwrap_or(rest).trim_start();
    let rest = rest.trim_start_matches(['\'', '"', ':', ' ']);
    let role: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!role.is_empty()).then_some(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            method: "GET".into(),
            path: "/v1/models/abc".into(),
        }
    }

    #[test]
    fn required_role_is_parsed() {
        let cases = [
            (
                "Insufficient permissions: requires role 'operator' (API key 'x' has role 'viewer')",
                Some("operator"),
            ),
            ("requires admin", Some("admin")),
            ("Requires role: \"admin\"", Some("admin")),
            ("forbidden", None),
        ];
        for (detail, expected) in cases {
            assert_eq!(required_role(detail).as_deref(), expected, "{detail}");
        }
    }

    #[test]
    fn answers_map_to_variants_with_messages() {
        let cases: [(u16, &str, &str); 7] = [
            (
                404,
                r#"{"detail":"model 'abc' not found"}"#,
                "GET /v1/models/abc: 404: model 'abc' not found",
            ),
            (
                409,
                r#"{"detail":"already running"}"#,
                "GET /v1/models/abc: 409: already running",
            ),
            (
                422,
                r#"{"detail":[{"loc":["body","name"],"msg":"Field required","type":"missing"},{"loc":["query","limit"],"msg":"too big","type":"x"}]}"#,
                "GET /v1/models/abc: 422: body.name: Field required; query.limit: too big",
            ),
            (
                500,
                "Internal Server Error",
                "GET /v1/models/abc: 500: Internal Server Error",
            ),
            (503, "", "GET /v1/models/abc: 503: Service Unavailable"),
            (
                401,
                r#"{"detail":"Invalid API key"}"#,
                "GET /v1/models/abc: 401: Invalid API key",
            ),
            (
                400,
                r#"{"detail":{"why":"x"}}"#,
                r#"GET /v1/models/abc: 400: {"why":"x"}"#,
            ),
        ];
        for (status, body, expected) in cases {
            let err = RegistryError::from_answer(endpoint(), None, status, body.as_bytes());
            assert_eq!(err.to_string(), expected);
            assert_eq!(err.status(), Some(status));
        }
    }

    #[test]
    fn not_found_names_the_resource() {
        let err = RegistryError::from_answer(
            endpoint(),
            Some(ResourceRef {
                kind: "model",
                id: "abc".into(),
            }),
            404,
            br#"{"detail":"Not Found"}"#,
        );
        assert_eq!(
            err.to_string(),
            "GET /v1/models/abc: 404: Not Found (model 'abc')"
        );
    }

    #[test]
    fn long_details_are_cut() {
        let body = format!(r#"{{"detail":"{}"}}"#, "x".repeat(2000));
        let err = RegistryError::from_answer(endpoint(), None, 500, body.as_bytes());
        assert!(err.to_string().len() < 600);
        assert!(err.to_string().ends_with("... (cut)"));
    }

    #[test]
    fn echoed_secrets_are_redacted_everywhere() {
        let key = "cat_live_abcdef";
        let answers: [(u16, String); 4] = [
            (401, format!(r#"{{"detail":"Invalid API key '{key}'"}}"#)),
            (
                422,
                format!(
                    r#"{{"detail":[{{"loc":["header","{key}"],"msg":"bad {key}","type":"x"}}]}}"#
                ),
            ),
            (500, format!("<html>key={key}</html>")),
            (404, format!(r#"{{"detail":"no {key}"}}"#)),
        ];
        for (status, body) in answers {
            let resource = Some(ResourceRef {
                kind: "model",
                id: key.to_owned(),
            });
            let err = RegistryError::from_answer(endpoint(), resource, status, body.as_bytes())
                .redact_secret(key);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(key), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let decode = RegistryError::Decode {
            endpoint: endpoint(),
            url: "http://h/api".into(),
            msg: format!("invalid type: string \"{key}\""),
        }
        .redact_secret(key);
        assert!(!decode.to_string().contains(key));
        // Too short to redact meaningfully: left alone rather than garbling the text.
        let short = RegistryError::from_answer(endpoint(), None, 404, br#"{"detail":"abc"}"#)
            .redact_secret("ab");
        assert_eq!(short.detail().as_deref(), Some("abc"));
    }

    #[test]
    fn transient_errors() {
        let server = |status| RegistryError::Server {
            endpoint: endpoint(),
            status,
            detail: String::new(),
        };
        assert!(server(502).is_transient());
        assert!(server(503).is_transient());
        assert!(server(504).is_transient());
        assert!(!server(500).is_transient());
        assert!(!RegistryError::MissingApiKey.is_transient());
        assert!(!RegistryError::InvalidApiKey.is_transient());
    }
}
