//! The shared-service settings of `--transport http`: authentication, timeouts, caps and the
//! rate limit. Flattened into [`crate::config::RawOptions`]; checked like every other setting.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::{ConfigError, parse_number};

/// As given (strings, so that a bad value is named). Not `Debug`, like the rest of the options.
#[derive(Args)]
pub struct RawServiceOptions {
    /// Bearer tokens (stored as SHA-256) and OAuth subject rules, each mapped to its own
    /// registry API key (TOML; see docs/http-service.md). Required to bind beyond loopback.
    #[arg(long, env = "REGISTRY_MCP_AUTH_FILE", global = true)]
    pub auth_file: Option<PathBuf>,
    /// OAuth 2.1 issuer whose JWTs are accepted (its JWKS is discovered from its metadata).
    #[arg(long, env = "REGISTRY_MCP_OAUTH_ISSUER", global = true)]
    pub oauth_issuer: Option<String>,
    /// The URL clients reach `/mcp` at: the JWT audience and the protected resource's name.
    #[arg(long, env = "REGISTRY_MCP_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// PEM certificate chain to serve HTTPS with (with --tls-key).
    #[arg(long, env = "REGISTRY_MCP_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "REGISTRY_MCP_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has to send a request's headers (408 after).
    #[arg(
        long,
        env = "REGISTRY_MCP_HEADER_TIMEOUT_SECONDS",
        default_value = "10",
        global = true
    )]
    pub header_timeout_seconds: String,
    /// Seconds a client has to send a request's body once its headers are in (408 after).
    #[arg(
        long,
        env = "REGISTRY_MCP_BODY_TIMEOUT_SECONDS",
        default_value = "30",
        global = true
    )]
    pub body_timeout_seconds: String,
    /// Most open connections (503 beyond).
    #[arg(
        long,
        env = "REGISTRY_MCP_MAX_CONNECTIONS",
        default_value = "256",
        global = true
    )]
    pub max_connections: String,
    /// Most live MCP sessions; at the cap the session idle longest gives way (503 if none has
    /// been idle long enough).
    #[arg(
        long,
        env = "REGISTRY_MCP_MAX_SESSIONS",
        default_value = "1000",
        global = true
    )]
    pub max_sessions: String,
    /// Seconds without a request after which a session ends.
    #[arg(
        long,
        env = "REGISTRY_MCP_SESSION_IDLE_SECONDS",
        default_value = "600",
        global = true
    )]
    pub session_idle_seconds: String,
    /// Requests per minute per caller (token, JWT subject, or peer address); 0 turns it off.
    #[arg(
        long,
        env = "REGISTRY_MCP_RATE_LIMIT_PER_MINUTE",
        default_value = "600",
        global = true
    )]
    pub rate_limit_per_minute: String,
}

/// Checked.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub auth_file: Option<PathBuf>,
    pub oauth_issuer: Option<String>,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    /// Certificate chain and key, both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_sessions: usize,
    pub session_idle: Duration,
    /// 0: no limit.
    pub rate_limit_per_minute: u32,
}

impl ServiceSettings {
    /// Whether callers must authenticate.
    pub fn authenticates(&self) -> bool {
        self.auth_file.is_some()
    }

    /// Whether bearer tokens travel encrypted: served over TLS here, or behind a proxy that
    /// terminates TLS (an https:// public URL says there is one).
    pub fn encrypted(&self) -> bool {
        self.tls.is_some()
            || self
                .public_url
                .as_deref()
                .is_some_and(|url| url.starts_with("https://"))
    }

    /// `name(flag, variable)` names a setting the way the user gave it.
    pub fn check(
        raw: &RawServiceOptions,
        name: &dyn Fn(&str, &str) -> String,
    ) -> Result<ServiceSettings, ConfigError> {
        let err = |flag: &str, var: &str, problem: String| ConfigError {
            name: name(flag, var),
            problem,
        };
        let seconds = |value: &str, flag: &str, var: &str| {
            parse_number(value, 1, 3_600, "a whole number of seconds from 1 to 3600")
                .map(Duration::from_secs)
                .map_err(|problem| err(flag, var, problem))
        };
        let count = |value: &str, flag: &str, var: &str| {
            parse_number(value, 1, 1_000_000, "a whole number from 1 to 1000000")
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .map_err(|problem| err(flag, var, problem))
        };
        let auth_file = raw
            .auth_file
            .clone()
            .filter(|path| !path.as_os_str().is_empty());
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| v.trim_end_matches('/').to_owned())
        };
        let oauth_issuer = text(&raw.oauth_issuer);
        let public_url = text(&raw.public_url);
        for (value, flag, var) in [
            (&oauth_issuer, "--oauth-issuer", "REGISTRY_MCP_OAUTH_ISSUER"),
            (&public_url, "--public-url", "REGISTRY_MCP_PUBLIC_URL"),
        ] {
            if let Some(url) = value
                && !secure_url(url)
            {
                return Err(err(
                    flag,
                    var,
                    format!("expected an https:// URL (http:// only for loopback), got {url:?}"),
                ));
            }
        }
        if oauth_issuer.is_some() {
            if public_url.is_none() {
                return Err(err(
                    "--public-url",
                    "REGISTRY_MCP_PUBLIC_URL",
                    "required with an OAuth issuer: it is the audience a JWT must name \
                     (the URL clients reach /mcp at)"
                        .to_owned(),
                ));
            }
            if auth_file.is_none() {
                return Err(err(
                    "--auth-file",
                    "REGISTRY_MCP_AUTH_FILE",
                    "required with an OAuth issuer: its [[jwt]] rules say which registry API key \
                     each subject acts with (the JWT itself never reaches the registry)"
                        .to_owned(),
                ));
            }
        }
        let path = |value: &Option<PathBuf>| value.clone().filter(|p| !p.as_os_str().is_empty());
        let tls = match (path(&raw.tls_cert), path(&raw.tls_key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(err(
                    "--tls-key",
                    "REGISTRY_MCP_TLS_KEY",
                    "required with REGISTRY_MCP_TLS_CERT: the certificate's private key (PEM)"
                        .to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "--tls-cert",
                    "REGISTRY_MCP_TLS_CERT",
                    "required with REGISTRY_MCP_TLS_KEY: the certificate chain (PEM)".to_owned(),
                ));
            }
        };
        Ok(ServiceSettings {
            auth_file,
            oauth_issuer,
            public_url,
            tls,
            header_timeout: seconds(
                &raw.header_timeout_seconds,
                "--header-timeout-seconds",
                "REGISTRY_MCP_HEADER_TIMEOUT_SECONDS",
            )?,
            body_timeout: seconds(
                &raw.body_timeout_seconds,
                "--body-timeout-seconds",
                "REGISTRY_MCP_BODY_TIMEOUT_SECONDS",
            )?,
            max_connections: count(
                &raw.max_connections,
                "--max-connections",
                "REGISTRY_MCP_MAX_CONNECTIONS",
            )?,
            max_sessions: count(
                &raw.max_sessions,
                "--max-sessions",
                "REGISTRY_MCP_MAX_SESSIONS",
            )?,
            session_idle: parse_number(
                &raw.session_idle_seconds,
                1,
                86_400,
                "a whole number of seconds from 1 to 86400",
            )
            .map(Duration::from_secs)
            .map_err(|problem| {
                err(
                    "--session-idle-seconds",
                    "REGISTRY_MCP_SESSION_IDLE_SECONDS",
                    problem,
                )
            })?,
            rate_limit_per_minute: parse_number(
                &raw.rate_limit_per_minute,
                0,
                1_000_000,
                "a whole number from 0 (no limit) to 1000000",
            )
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .map_err(|problem| {
                err(
                    "--rate-limit-per-minute",
                    "REGISTRY_MCP_RATE_LIMIT_PER_MINUTE",
                    problem,
                )
            })?,
        })
    }

    /// `NAME = value` rows for `--print-config`.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let or_unset = |value: &Option<String>| value.clone().unwrap_or_else(|| "(not set)".into());
        vec![
            (
                "REGISTRY_MCP_AUTH_FILE",
                self.auth_file.as_ref().map_or_else(
                    || "(not set: no authentication, loopback only)".to_owned(),
                    |path| path.display().to_string(),
                ),
            ),
            ("REGISTRY_MCP_OAUTH_ISSUER", or_unset(&self.oauth_issuer)),
            ("REGISTRY_MCP_PUBLIC_URL", or_unset(&self.public_url)),
            (
                "REGISTRY_MCP_TLS_CERT",
                self.tls.as_ref().map_or_else(
                    || "(not set: plain HTTP)".to_owned(),
                    |(cert, _)| cert.display().to_string(),
                ),
            ),
            (
                "REGISTRY_MCP_TLS_KEY",
                self.tls.as_ref().map_or_else(
                    || "(not set)".to_owned(),
                    |(_, key)| key.display().to_string(),
                ),
            ),
            (
                "REGISTRY_MCP_HEADER_TIMEOUT_SECONDS",
                self.header_timeout.as_secs().to_string(),
            ),
            (
                "REGISTRY_MCP_BODY_TIMEOUT_SECONDS",
                self.body_timeout.as_secs().to_string(),
            ),
            (
                "REGISTRY_MCP_MAX_CONNECTIONS",
                self.max_connections.to_string(),
            ),
            ("REGISTRY_MCP_MAX_SESSIONS", self.max_sessions.to_string()),
            (
                "REGISTRY_MCP_SESSION_IDLE_SECONDS",
                self.session_idle.as_secs().to_string(),
            ),
            (
                "REGISTRY_MCP_RATE_LIMIT_PER_MINUTE",
                match self.rate_limit_per_minute {
                    0 => "0 (no limit)".to_owned(),
                    n => n.to_string(),
                },
            ),
        ]
    }
}

/// https://, or http:// to a loopback host (tests, a local issuer).
pub fn secure_url(url: &str) -> bool {
    if url.starts_with("https://") && url.len() > "https://".len() {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}
