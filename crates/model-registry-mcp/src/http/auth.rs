//! Who is calling: a bearer token from the auth file (compared by SHA-256), a JWT from the
//! configured OAuth issuer, or, without authentication (loopback only), the peer address.
//! Each authenticated caller acts with the registry API key the auth file maps it to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth_file::{AuthFile, JwtMatch, token_sha256};
use super::oauth::{JwtRefusal, OAuth, metadata_url, resource_metadata};
use crate::context::{Caller, Ctx};

pub struct Authenticator {
    mode: Mode,
}

enum Mode {
    /// No authentication: every caller uses the server's own context.
    Open(Ctx),
    Required {
        tokens: HashMap<[u8; 32], Caller>,
        oauth: Option<Box<OAuthMode>>,
    },
}

struct OAuthMode {
    verifier: OAuth,
    /// In auth-file order: the first rule that matches decides.
    rules: Vec<(JwtMatch, Ctx)>,
    metadata: serde_json::Value,
    metadata_url: String,
}

/// Why a request is not let in; its response says so in the status and `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer the server does not know, or a JWT that does not verify.
    Invalid(String),
    /// A valid JWT whose subject and scopes no rule maps to a registry key.
    NoRule { subject: String },
    /// The issuer's keys cannot be fetched.
    Unavailable(String),
}

impl Authenticator {
    /// From the settings of `base`: open when no auth file is configured. Loads the auth file
    /// and builds one context per distinct registry API key; every message names the file.
    pub fn build(base: &Ctx) -> Result<Authenticator, String> {
        let settings = &base.settings.service;
        let Some(path) = &settings.auth_file else {
            return Ok(Authenticator {
                mode: Mode::Open(Arc::clone(base)),
            });
        };
        let file =
            AuthFile::load(path, &|name| std::env::var_os(name)).map_err(|e| e.to_string())?;
        let mut contexts: HashMap<String, Ctx> = HashMap::new();
        let mut context_for = |key: &crate::config::Secret| -> Ctx {
            Arc::clone(
                contexts
                    .entry(key.expose().to_owned())
                    .or_insert_with(|| Arc::new(base.with_api_key(key.clone()))),
            )
        };
        let mut tokens = HashMap::new();
        for entry in &file.tokens {
            tokens.insert(
                entry.sha256,
                Caller {
                    name: format!("token:{}", entry.name),
                    ctx: context_for(&entry.registry_api_key),
                },
            );
        }
        let oauth = match (&settings.oauth_issuer, &settings.public_url) {
            (Some(issuer), Some(audience)) => {
                if file.jwt_rules.is_empty() {
                    return Err(format!(
                        "{}: REGISTRY_MCP_OAUTH_ISSUER is set, but the file has no [[jwt]] rule \
                         mapping a subject or scope to a registry API key",
                        path.display()
                    ));
                }
                let verifier = OAuth::new(
                    issuer.clone(),
                    audience.clone(),
                    base.settings.request_timeout,
                )?;
                let scopes: Vec<String> = file
                    .jwt_rules
                    .iter()
                    .filter_map(|rule| match &rule.matches {
                        JwtMatch::Scope(scope) => Some(scope.clone()),
                        JwtMatch::Subject(_) => None,
                    })
                    .collect();
                let rules = file
                    .jwt_rules
                    .iter()
                    .map(|rule| (rule.matches.clone(), context_for(&rule.registry_api_key)))
                    .collect();
                Some(Box::new(OAuthMode {
                    metadata: resource_metadata(&verifier, &scopes),
                    metadata_url: metadata_url(audience),
                    verifier,
                    rules,
                }))
            }
            _ => {
                if !file.jwt_rules.is_empty() {
                    tracing::warn!(file = %path.display(), "[[jwt]] rules are unused: REGISTRY_MCP_OAUTH_ISSUER is not set");
                }
                None
            }
        };
        if tokens.is_empty() && oauth.is_none() {
            return Err(format!(
                "{}: no [[token]] entry, and no OAuth issuer: nobody could call",
                path.display()
            ));
        }
        Ok(Authenticator {
            mode: Mode::Required { tokens, oauth },
        })
    }

    /// Every context calls can run with (to learn each key's role at start-up).
    pub fn contexts(&self) -> Vec<Ctx> {
        let mut all: Vec<Ctx> = match &self.mode {
            Mode::Open(ctx) => vec![Arc::clone(ctx)],
            Mode::Required { tokens, oauth } => tokens
                .values()
                .map(|caller| Arc::clone(&caller.ctx))
                .chain(
                    oauth
                        .iter()
                        .flat_map(|o| o.rules.iter().map(|(_, ctx)| Arc::clone(ctx))),
                )
                .collect(),
        };
        all.sort_by_key(|ctx| Arc::as_ptr(ctx) as usize);
        all.dedup_by_key(|ctx| Arc::as_ptr(ctx) as usize);
        all
    }

    /// The protected resource metadata, when OAuth is configured.
    pub fn resource_metadata(&self) -> Option<&serde_json::Value> {
        match &self.mode {
            Mode::Required {
                oauth: Some(oauth), ..
            } => Some(&oauth.metadata),
            _ => None,
        }
    }

    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<Caller, Refusal> {
        let (tokens, oauth) = match &self.mode {
            Mode::Open(ctx) => {
                return Ok(Caller {
                    name: format!("peer:{}", peer.ip()),
                    ctx: Arc::clone(ctx),
                });
            }
            Mode::Required { tokens, oauth } => (tokens, oauth),
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Refusal::Missing);
        };
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(Refusal::Missing)?;
        if let Some(caller) = tokens.get(&token_sha256(bearer)) {
            return Ok(caller.clone());
        }
        let Some(oauth) = oauth.as_ref().filter(|_| bearer.split('.').count() == 3) else {
            return Err(Refusal::Invalid(
                "the bearer token is not known to this server".to_owned(),
            ));
        };
        let verified = oauth
            .verifier
            .verify(bearer)
            .await
            .map_err(|refusal| match refusal {
                JwtRefusal::Invalid(why) => Refusal::Invalid(why),
                JwtRefusal::KeysUnavailable(why) => Refusal::Unavailable(why),
            })?;
        let rule = oauth.rules.iter().find(|(matches, _)| match matches {
            JwtMatch::Subject(subject) => *subject == verified.subject,
            JwtMatch::Scope(scope) => verified.scopes.iter().any(|s| s == scope),
        });
        match rule {
            Some((_, ctx)) => Ok(Caller {
                name: format!("jwt:{}", verified.subject),
                ctx: Arc::clone(ctx),
            }),
            None => Err(Refusal::NoRule {
                subject: verified.subject,
            }),
        }
    }

    /// The refusal as an HTTP response: 401 (with the challenge the MCP authorization spec asks
    /// for), 403 `insufficient_scope`, or 503.
    pub fn refuse(&self, refusal: &Refusal) -> Response {
        let metadata = match &self.mode {
            Mode::Required {
                oauth: Some(oauth), ..
            } => Some(oauth.metadata_url.as_str()),
            _ => None,
        };
        let challenge = |error: Option<(&str, &str)>| {
            let mut value = "Bearer realm=\"model-registry-mcp\"".to_owned();
            if let Some(url) = metadata {
                value.push_str(&format!(", resource_metadata=\"{url}\""));
            }
            if let Some((code, description)) = error {
                let description: String = description
                    .chars()
                    .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                    .collect();
                value.push_str(&format!(
                    ", error=\"{code}\", error_description=\"{description}\""
                ));
            }
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
        };
        let (status, header_value, message) = match refusal {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                Some(challenge(None)),
                "authentication required: send Authorization: Bearer <token>".to_owned(),
            ),
            Refusal::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                Some(challenge(Some(("invalid_token", why)))),
                format!("the bearer token is refused: {why}"),
            ),
            Refusal::NoRule { subject } => {
                let why = format!(
                    "no [[jwt]] rule of this server maps subject {subject:?} or its scopes to a registry API key"
                );
                (
                    StatusCode::FORBIDDEN,
                    Some(challenge(Some(("insufficient_scope", &why)))),
                    why,
                )
            }
            Refusal::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                format!("tokens cannot be checked now: {why}"),
            ),
        };
        let mut response = (status, message).into_response();
        if let Some(value) = header_value {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        response
    }
}

/// Learns the role of every caller's key in the background (the tools listed depend on it).
pub fn learn_roles(authenticator: &Authenticator) {
    for ctx in authenticator.contexts() {
        tokio::spawn(async move { ctx.key_role().await });
    }
}
