//! The auth file (`REGISTRY_MCP_AUTH_FILE`, TOML): who may call, and the registry API key each
//! acts with. Bearer tokens are stored as their SHA-256 only; the registry keys are named by an
//! environment variable or a file, so the auth file itself holds no secret.
//!
//! ```toml
//! [[token]]
//! name = "planner"                          # names the caller in logs
//! sha256 = "3f9c…"                          # `model-registry-mcp new-token` prints it
//! registry_api_key_env = "PLANNER_REGISTRY_KEY"
//!
//! [[jwt]]                                   # with REGISTRY_MCP_OAUTH_ISSUER
//! name = "fleet-operators"
//! scope = "fleet:operate"                   # or: subject = "agent-7"
//! registry_api_key_file = "/run/secrets/operator-key"
//! ```

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::Secret;

/// Why the auth file cannot be used. Every message names the file, and the entry or line.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read the auth file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {what}: {problem}", path.display())]
    Entry {
        path: PathBuf,
        what: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    token: Vec<RawToken>,
    #[serde(default)]
    jwt: Vec<RawJwtRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    sha256: String,
    registry_api_key_env: Option<String>,
    registry_api_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwtRule {
    name: String,
    subject: Option<String>,
    scope: Option<String>,
    registry_api_key_env: Option<String>,
    registry_api_key_file: Option<PathBuf>,
}

/// A bearer token's hash and the key its caller acts with.
pub struct TokenEntry {
    pub name: String,
    pub sha256: [u8; 32],
    pub registry_api_key: Secret,
}

/// Which JWTs a rule matches (by `sub`, or by one scope of `scope`/`scp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtMatch {
    Subject(String),
    Scope(String),
}

/// A `[[jwt]]` rule (its name only names it in the file's errors).
pub struct JwtRule {
    pub matches: JwtMatch,
    pub registry_api_key: Secret,
}

/// The checked file.
pub struct AuthFile {
    pub tokens: Vec<TokenEntry>,
    /// In file order: the first rule that matches a JWT decides its key.
    pub jwt_rules: Vec<JwtRule>,
}

impl AuthFile {
    /// Reads and checks `path`; `env` reads the variables registry keys are named by.
    pub fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<AuthFile, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        AuthFile::parse(path, &text, env)
    }

    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<AuthFile, AuthFileError> {
        let raw: RawFile = toml::from_str(text).map_err(|error| AuthFileError::Syntax {
            path: path.to_owned(),
            line: error.span().map_or(1, |span| line_of(text, span.start)),
            message: error.message().to_owned(),
        })?;
        let entry = |what: String, problem: String| AuthFileError::Entry {
            path: path.to_owned(),
            what,
            problem,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let mut tokens = Vec::new();
        for token in raw.token {
            let what = format!("[[token]] {:?}", token.name);
            check_name(&token.name, &mut names).map_err(|p| entry(what.clone(), p))?;
            let sha256 = parse_sha256(&token.sha256).map_err(|p| entry(what.clone(), p))?;
            if !hashes.insert(sha256) {
                return Err(entry(
                    what,
                    "the same sha256 as an earlier [[token]]: one token, one caller".to_owned(),
                ));
            }
            let registry_api_key = read_key(
                token.registry_api_key_env,
                token.registry_api_key_file,
                base,
                env,
            )
            .map_err(|p| entry(what, p))?;
            tokens.push(TokenEntry {
                name: token.name,
                sha256,
                registry_api_key,
            });
        }
        let mut jwt_rules = Vec::new();
        for rule in raw.jwt {
            let what = format!("[[jwt]] {:?}", rule.name);
            check_name(&rule.name, &mut names).map_err(|p| entry(what.clone(), p))?;
            let matches = match (rule.subject, rule.scope) {
                (Some(subject), None) if !subject.is_empty() => JwtMatch::Subject(subject),
                (None, Some(scope)) if !scope.is_empty() && !scope.contains(' ') => {
                    JwtMatch::Scope(scope)
                }
                _ => {
                    return Err(entry(
                        what,
                        "needs exactly one of `subject` (a JWT `sub`) or `scope` (one scope, no \
                         spaces)"
                            .to_owned(),
                    ));
                }
            };
            let registry_api_key = read_key(
                rule.registry_api_key_env,
                rule.registry_api_key_file,
                base,
                env,
            )
            .map_err(|p| entry(what, p))?;
            jwt_rules.push(JwtRule {
                matches,
                registry_api_key,
            });
        }
        if tokens.is_empty() && jwt_rules.is_empty() {
            return Err(entry(
                "the file".to_owned(),
                "has no [[token]] and no [[jwt]] entry: nobody could call".to_owned(),
            ));
        }
        Ok(AuthFile { tokens, jwt_rules })
    }
}

/// The line of byte `at`, past any whitespace there (spans can start before a key's line).
fn line_of(text: &str, at: usize) -> usize {
    let rest = text.get(at..).unwrap_or("");
    let at = at + (rest.len() - rest.trim_start().len());
    text.get(..at).unwrap_or(text).matches('\n').count() + 1
}

fn check_name(name: &str, names: &mut HashSet<String>) -> Result<(), String> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !fine {
        return Err("`name` must be 1-64 letters, digits, '-', '_' or '.'".to_owned());
    }
    if !names.insert(name.to_owned()) {
        return Err("the name is used twice; each entry names one caller".to_owned());
    }
    Ok(())
}

fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    let bad = || {
        "`sha256` must be 64 hex digits, the SHA-256 of the token (`model-registry-mcp \
         hash-token` prints it)"
            .to_owned()
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

fn read_key(
    var: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Secret, String> {
    {
        let value = match (var, file) {
            (Some(var), None) => env(&var)
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("registry_api_key_env {var:?} is not set"))?,
            (None, Some(file)) => {
                let file = base.join(file);
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("registry_api_key_file {}: {e}", file.display()))?
            }
            _ => {
                return Err(
                    "needs exactly one of `registry_api_key_env` (a variable holding the \
                            registry API key) or `registry_api_key_file`"
                        .to_owned(),
                );
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err("its registry API key is empty".to_owned());
        }
        Ok(Secret::new(value))
    }
}

/// The SHA-256 of a bearer token, as the auth file stores it.
pub fn token_sha256(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lowercase hex SHA-256 of a bearer token: what an auth file stores instead of the token.
pub fn token_digest(token: &str) -> String {
    hex(&token_sha256(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthFile, String> {
        let env = |name: &str| (name == "KEY_A").then(|| OsString::from("sk-a"));
        AuthFile::parse(Path::new("auth.toml"), text, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn entries_are_checked_and_errors_name_the_file_and_entry() {
        let good = format!(
            "[[token]]\nname = \"a\"\nsha256 = \"{}\"\nregistry_api_key_env = \"KEY_A\"\n",
            hex(&token_sha256("t"))
        );
        let file = parse(&good).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.tokens[0].sha256, token_sha256("t"));
        assert_eq!(file.tokens[0].registry_api_key.expose(), "sk-a");
        let cases = [
            (
                "[[token]]\nname = \"a\"\nsha256 = \"abc\"\nregistry_api_key_env = \"KEY_A\"\n",
                "auth.toml: [[token]] \"a\": `sha256` must be 64 hex digits",
            ),
            (
                "[[token]]\nname = \"a\"\nsha256 = \"00\"\n\nnope = 1\n",
                "auth.toml:5: unknown field `nope`",
            ),
            ("", "has no [[token]] and no [[jwt]] entry"),
            (
                "[[jwt]]\nname = \"j\"\nregistry_api_key_env = \"KEY_A\"\n",
                "needs exactly one of `subject`",
            ),
            (
                "[[jwt]]\nname = \"j\"\nscope = \"s\"\nregistry_api_key_env = \"UNSET\"\n",
                "registry_api_key_env \"UNSET\" is not set",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text:?}"));
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains("sk-a"), "{error}");
        }
        let twice = format!("{good}{}", good.replace("name = \"a\"", "name = \"b\""));
        assert!(
            parse(&twice)
                .err()
                .is_some_and(|e| e.contains("the same sha256"))
        );
    }
}
