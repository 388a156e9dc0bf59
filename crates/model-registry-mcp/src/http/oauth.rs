//! OAuth 2.1 resource server (the MCP authorization spec): JWTs from one configured issuer,
//! checked against its JWKS (discovered from its metadata, RFC 8414 or OpenID), with the audience
//! bound to this server's public URL. The JWT is only ever checked here: calls reach the
//! registry with the API key an auth-file rule maps the subject to, never with the token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Signature algorithms accepted: asymmetric only (a shared secret cannot come from a JWKS).
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;
/// Keys are fetched again after this long; and at most every [`JWKS_REFETCH_AFTER_MISS`] (after
/// a failure, or when a token names a key id the cached set lacks), so that unknown ids cannot
/// make us hammer the issuer.
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
const JWKS_REFETCH_AFTER_MISS: Duration = Duration::from_secs(30);
/// Largest metadata or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why a bearer JWT is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtRefusal {
    /// The token itself is wrong (401 `invalid_token`).
    #[error("{0}")]
    Invalid(String),
    /// The issuer's keys could not be had (503).
    #[error("{0}")]
    KeysUnavailable(String),
}

/// What a verified token says about its holder.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    /// Some issuers (Azure AD, Okta) send scopes as an array named `scp`.
    #[serde(default)]
    scp: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct IssuerMetadata {
    issuer: String,
    jwks_uri: String,
}

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// Keys without a `kid`, tried when the token names none.
    unnamed: Vec<DecodingKey>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    failure: Option<JwtRefusal>,
    jwks_uri: Option<String>,
}

pub struct OAuth {
    pub issuer: String,
    /// The audience every token must name: this server's public URL.
    pub audience: String,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<KeyCache>,
}

impl OAuth {
    pub fn new(issuer: String, audience: String, timeout: Duration) -> Result<OAuth, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the OAuth issuer: {e}"))?;
        Ok(OAuth {
            issuer,
            audience,
            http,
            cache: tokio::sync::Mutex::new(KeyCache {
                keys: HashMap::new(),
                unnamed: Vec::new(),
                fetched: None,
                attempted: None,
                failure: None,
                jwks_uri: None,
            }),
        })
    }

    /// Checks signature, issuer, audience, expiry and not-before.
    pub async fn verify(&self, token: &str) -> Result<Verified, JwtRefusal> {
        let invalid = |why: String| JwtRefusal::Invalid(why);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("not a JWT this server accepts: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid(format!(
                "signed with {:?}; accepted are asymmetric algorithms (RS*, PS*, ES256, ES384, EdDSA)",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut cache = self.cache.lock().await;
        if cache.fetched.is_none_or(|at| at.elapsed() > JWKS_MAX_AGE) {
            self.refresh_if_due(&mut cache).await?;
        }
        let mut keys = candidates(&cache, header.kid.as_deref());
        if keys.is_empty() {
            // A key id we do not know: the issuer may have rotated its keys.
            self.refresh_if_due(&mut cache).await?;
            keys = candidates(&cache, header.kid.as_deref());
        }
        if keys.is_empty() {
            return Err(invalid(match &header.kid {
                Some(kid) => format!("signed with key {kid:?}, which the issuer does not publish"),
                None => "names no key id, and the issuer publishes none without one".to_owned(),
            }));
        }
        let mut last = None;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    let mut scopes: Vec<String> = data
                        .claims
                        .scope
                        .as_deref()
                        .unwrap_or("")
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    scopes.extend(data.claims.scp.unwrap_or_default());
                    return Ok(Verified {
                        subject: data.claims.sub,
                        scopes,
                    });
                }
                Err(error) => last = Some(error),
            }
        }
        Err(invalid(
            match last.as_ref().map(jsonwebtoken::errors::Error::kind) {
                Some(jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    "the token has expired".to_owned()
                }
                Some(jsonwebtoken::errors::ErrorKind::ImmatureSignature) => {
                    "the token is not valid yet (nbf)".to_owned()
                }
                Some(jsonwebtoken::errors::ErrorKind::InvalidAudience) => {
                    format!("the token's audience is not {}", self.audience)
                }
                Some(jsonwebtoken::errors::ErrorKind::InvalidIssuer) => {
                    format!("the token's issuer is not {}", self.issuer)
                }
                Some(jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    "the signature does not verify".to_owned()
                }
                Some(jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim)) => {
                    format!("the token has no `{claim}` claim")
                }
                Some(other) => format!("the token is refused: {other:?}"),
                None => "the token is refused".to_owned(),
            },
        ))
    }

    /// Fetches the keys unless an attempt was made in the last [`JWKS_REFETCH_AFTER_MISS`]. A
    /// failure with keys in hand keeps them (the issuer being down must not lock everyone out);
    /// without any it is the caller's answer.
    async fn refresh_if_due(&self, cache: &mut KeyCache) -> Result<(), JwtRefusal> {
        let due = cache
            .attempted
            .is_none_or(|at| at.elapsed() > JWKS_REFETCH_AFTER_MISS);
        if due {
            cache.attempted = Some(Instant::now());
            match self.refresh(cache).await {
                Ok(()) => cache.failure = None,
                Err(error) => {
                    tracing::warn!(%error, "the OAuth issuer's keys were not refreshed");
                    cache.failure = Some(error);
                }
            }
        }
        match &cache.failure {
            Some(error) if cache.fetched.is_none() => Err(error.clone()),
            _ => Ok(()),
        }
    }

    async fn refresh(&self, cache: &mut KeyCache) -> Result<(), JwtRefusal> {
        let jwks_uri = match &cache.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                cache.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        cache.keys.clear();
        cache.unnamed.clear();
        for jwk in &set.keys {
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                tracing::warn!(kid = ?jwk.common.key_id, "a key of the issuer's JWKS cannot be read; skipped");
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    cache.keys.insert(kid.clone(), key);
                }
                None => cache.unnamed.push(key),
            }
        }
        cache.fetched = Some(Instant::now());
        Ok(())
    }

    /// The JWKS URL from the issuer's metadata: RFC 8414 first, OpenID Connect discovery second.
    async fn discover(&self) -> Result<String, JwtRefusal> {
        let (origin, path) = split_origin(&self.issuer);
        let candidates = [
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{}/.well-known/openid-configuration", self.issuer),
        ];
        let mut problems = Vec::new();
        for url in candidates {
            match self.get_json::<IssuerMetadata>(&url).await {
                Ok(metadata) if metadata.issuer.trim_end_matches('/') != self.issuer => {
                    return Err(JwtRefusal::KeysUnavailable(format!(
                        "the metadata at {url} names issuer {:?}, not {}",
                        metadata.issuer, self.issuer
                    )));
                }
                Ok(metadata) if !super::settings::secure_url(&metadata.jwks_uri) => {
                    return Err(JwtRefusal::KeysUnavailable(format!(
                        "the issuer's jwks_uri {:?} is not https://",
                        metadata.jwks_uri
                    )));
                }
                Ok(metadata) => return Ok(metadata.jwks_uri),
                Err(JwtRefusal::KeysUnavailable(problem) | JwtRefusal::Invalid(problem)) => {
                    problems.push(problem);
                }
            }
        }
        Err(JwtRefusal::KeysUnavailable(format!(
            "the OAuth issuer's metadata could not be read: {}",
            problems.join("; ")
        )))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, JwtRefusal> {
        let unavailable = |why: String| JwtRefusal::KeysUnavailable(format!("GET {url} {why}"));
        let mut response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                unavailable(if e.is_timeout() {
                    "got no answer in time".to_owned()
                } else {
                    format!("failed: {}", secrets::redact_text(&e.to_string()))
                })
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("answered {}", status.as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(format!("broke off: {e}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(unavailable(format!(
                    "answered more than {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
        }
        serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("answered unreadable JSON: {e}")))
    }
}

fn candidates<'a>(cache: &'a KeyCache, kid: Option<&str>) -> Vec<&'a DecodingKey> {
    match kid {
        Some(kid) => cache.keys.get(kid).into_iter().collect(),
        None => cache.unnamed.iter().chain(cache.keys.values()).collect(),
    }
}

/// `https://host/tenant` → (`https://host`, `/tenant`).
pub fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => url.split_at(after_scheme + slash),
        None => (url, ""),
    }
}

/// Protected resource metadata (RFC 9728) for this server.
pub fn resource_metadata(oauth: &OAuth, scopes: &[String]) -> serde_json::Value {
    serde_json::json!({
        "resource": oauth.audience,
        "authorization_servers": [oauth.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes,
        "resource_name": "model-registry-mcp",
    })
}

/// Where the metadata is served for `resource` (RFC 9728 section 3.1: the well-known prefix
/// inserted before the resource's path).
pub fn metadata_url(resource: &str) -> String {
    let (origin, path) = split_origin(resource);
    format!("{origin}/.well-known/oauth-protected-resource{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_insert_the_well_known_prefix() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8811"),
            "http://127.0.0.1:8811/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            split_origin("https://id.example.com/tenant/a"),
            ("https://id.example.com", "/tenant/a")
        );
    }
}
