//! Command line and environment: every setting is an environment variable and a flag
//! (`clap` with `env = ...`). Values arrive as strings and are checked here, so that a bad value
//! stops start-up with one line naming the variable (or flag) and what it accepts.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use secrets::{Secret, redact_url};
use serde::Serialize;

use crate::catalog::{self, Toolset};

/// What the process was asked to do. Not `Debug`: the raw options hold URLs that may carry
/// credentials, and nothing should be able to log them.
#[derive(Parser)]
#[command(
    name = "model-registry-mcp",
    version,
    about = "MCP server for the model registry and its production GPU fleet (release-config repository).",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print the effective settings (secrets masked) and exit.
    #[arg(long, global = true)]
    pub print_config: bool,
    #[command(flatten)]
    pub options: RawOptions,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP (the default).
    Serve,
    /// Print the tool surface (every tool of the catalog, and whether it is enabled) and exit.
    Tools {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a bearer token for the shared HTTP service: prints the token (give it to the agent)
    /// and the `[[token]]` entry for the auth file (which stores its SHA-256 only).
    NewToken {
        /// The caller's name in logs and rate limits.
        name: String,
    },
    /// Print the SHA-256 of a bearer token read from standard input, as the auth file wants it.
    HashToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// JSON-RPC lines on stdin/stdout (what desktop MCP clients spawn).
    Stdio,
    /// Streamable HTTP at `/mcp`.
    Http,
}

/// Settings as given, before checking. Strings, so that the checks below can name what was wrong.
/// Not `Debug` (see [`Cli`]).
#[derive(Args)]
pub struct RawOptions {
    /// Transport to serve on.
    #[arg(
        long,
        value_enum,
        default_value = "stdio",
        env = "REGISTRY_MCP_TRANSPORT",
        global = true
    )]
    pub transport: TransportKind,
    /// Address for `--transport http` (loopback unless you mean it).
    #[arg(
        long,
        default_value = "127.0.0.1:8811",
        env = "REGISTRY_MCP_BIND",
        global = true
    )]
    pub bind: String,
    /// Extra Host names (or host:port) accepted over HTTP besides loopback; their http(s) origins
    /// are accepted too. Comma-separated or repeated.
    #[arg(
        long = "allowed-host",
        env = "REGISTRY_MCP_ALLOWED_HOSTS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_hosts: Vec<String>,
    /// Registry API base URL.
    #[arg(
        long,
        env = "REGISTRY_URL",
        default_value = "http://localhost/api",
        global = true
    )]
    pub registry_url: String,
    /// Registry API key (sent as X-API-Key; never printed).
    #[arg(long, env = "REGISTRY_API_KEY", hide_env_values = true, global = true, value_parser = parse_secret)]
    pub registry_api_key: Option<Secret>,
    /// Turn off every write tool: true or false.
    #[arg(long, env = "REGISTRY_READ_ONLY", default_value = "false", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub read_only: String,
    /// Allow propose_release_config (pull requests to production): true or false.
    #[arg(long, env = "REGISTRY_ALLOW_PRODUCTION_CHANGES", default_value = "true", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub allow_production_changes: String,
    /// Seconds a fetched release-config state (and registry answer) stays fresh.
    #[arg(
        long,
        env = "REGISTRY_CACHE_TTL_SECONDS",
        default_value = "60",
        global = true
    )]
    pub cache_ttl_seconds: String,
    /// Seconds before a registry request or Git fetch is given up.
    #[arg(
        long,
        env = "REGISTRY_REQUEST_TIMEOUT_SECONDS",
        default_value = "30",
        global = true
    )]
    pub request_timeout_seconds: String,
    /// Most log lines a tool returns.
    #[arg(
        long,
        env = "REGISTRY_MAX_LOG_LINES",
        default_value = "5000",
        global = true
    )]
    pub max_log_lines: String,
    /// Most items a list returns.
    #[arg(
        long,
        env = "REGISTRY_MAX_RESULTS",
        default_value = "100",
        global = true
    )]
    pub max_results: String,
    /// The release-config repository: a Git URL or a local path.
    #[arg(long, env = "REGISTRY_RELEASE_CONFIG_REPO", global = true)]
    pub release_config_repo: Option<String>,
    /// Branch of the release-config repository that is production.
    #[arg(
        long,
        env = "REGISTRY_RELEASE_CONFIG_BRANCH",
        default_value = "main",
        global = true
    )]
    pub release_config_branch: String,
    /// Where a remote release-config repository is mirrored.
    #[arg(long, env = "REGISTRY_RELEASE_CONFIG_CACHE_DIR", global = true)]
    pub release_config_cache_dir: Option<PathBuf>,
    /// GitHub token for fetching and proposing (falls back to GITHUB_TOKEN; never printed).
    #[arg(
        long,
        env = "REGISTRY_GITHUB_TOKEN",
        hide_env_values = true,
        global = true,
        value_parser = parse_secret
    )]
    pub github_token: Option<Secret>,
    /// GitHub API base URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(
        long,
        env = "REGISTRY_GITHUB_API_URL",
        default_value = "https://api.github.com",
        global = true
    )]
    pub github_api_url: String,
    /// GitHub repository pull requests are opened against, OWNER/NAME (default: from
    /// REGISTRY_RELEASE_CONFIG_REPO when it is a GitHub-style URL).
    #[arg(long, env = "REGISTRY_GITHUB_REPOSITORY", global = true)]
    pub github_repository: Option<String>,
    /// Toolsets to enable, comma-separated (default: all).
    #[arg(long, env = "REGISTRY_TOOLSETS", value_delimiter = ',', global = true)]
    pub toolsets: Vec<String>,
    /// Individual tools to enable, comma-separated (added to --toolsets).
    #[arg(long, env = "REGISTRY_TOOLS", value_delimiter = ',', global = true)]
    pub tools: Vec<String>,
    /// Tools to switch off, comma-separated.
    #[arg(
        long,
        env = "REGISTRY_EXCLUDE_TOOLS",
        value_delimiter = ',',
        global = true
    )]
    pub exclude_tools: Vec<String>,
    #[command(flatten)]
    pub service: crate::http::settings::RawServiceOptions,
}

/// Secrets are wrapped as soon as clap reads them, so that not even `Cli`'s Debug shows them.
fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

/// Where the release-config repository lives.
#[derive(Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A directory on this machine (a Git work tree or clone, or a plain directory).
    Local(PathBuf),
    /// A Git remote, mirrored into the cache directory.
    Remote(String),
}

/// Debug shows the redacted form: a remote URL may carry a token.
impl fmt::Debug for RepoLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoLocation::Local(path) => f.debug_tuple("Local").field(path).finish(),
            RepoLocation::Remote(url) => f.debug_tuple("Remote").field(&redact_url(url)).finish(),
        }
    }
}

impl RepoLocation {
    /// For display: a remote URL without any user:password part.
    pub fn display(&self) -> String {
        match self {
            RepoLocation::Local(path) => path.display().to_string(),
            RepoLocation::Remote(url) => redact_url(url),
        }
    }
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub transport: TransportKind,
    pub bind: SocketAddr,
    pub allowed_hosts: Vec<String>,
    pub registry_url: String,
    pub registry_api_key: Option<Secret>,
    pub read_only: bool,
    pub allow_production_changes: bool,
    pub cache_ttl: Duration,
    pub request_timeout: Duration,
    pub max_log_lines: u32,
    pub max_results: u32,
    pub release_config_repo: Option<RepoLocation>,
    pub release_config_branch: String,
    pub release_config_cache_dir: PathBuf,
    pub github_token: Option<Secret>,
    pub github_api_url: String,
    /// OWNER/NAME of the repository proposals open pull requests against; `None` when neither
    /// set nor derivable from the release-config URL.
    pub github_repository: Option<GitHubRepository>,
    pub toolsets: Vec<Toolset>,
    pub tools: Vec<&'static str>,
    pub exclude_tools: Vec<&'static str>,
    /// How `--transport http` serves a team: authentication, timeouts, caps.
    pub service: crate::http::settings::ServiceSettings,
}

/// A setting that cannot be used. Displays as one line: `NAME: expected ..., got "..."`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    /// The environment variable, or the flag when the value came from the command line.
    pub name: String,
    pub problem: String,
}

impl Settings {
    /// Parses the process's arguments and environment.
    pub fn parse_from<I, T>(args: I) -> Result<(Cli, Settings), CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cli = Cli::try_parse_from(&args).map_err(CliError::Usage)?;
        let settings = Settings::check(&cli.options, &args, &|name| std::env::var_os(name))
            .map_err(CliError::Config)?;
        Ok((cli, settings))
    }

    /// Checks raw options. `args` (the command line) and `env` only decide how a bad value is
    /// named: by its flag when it was given on the command line, else by its variable.
    pub fn check(
        raw: &RawOptions,
        args: &[OsString],
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Settings, ConfigError> {
        let name = |flag: &str, var: &str| -> String {
            let on_command_line = args.iter().any(|arg| {
                arg.to_str().is_some_and(|arg| {
                    arg == flag
                        || arg
                            .strip_prefix(flag)
                            .is_some_and(|rest| rest.starts_with('='))
                })
            });
            if on_command_line {
                flag.to_owned()
            } else {
                var.to_owned()
            }
        };
        let err = |name: String, problem: String| ConfigError { name, problem };

        let bind: SocketAddr = raw.bind.trim().parse().map_err(|_| {
            err(
                name("--bind", "REGISTRY_MCP_BIND"),
                format!(
                    "expected an address like 127.0.0.1:8811, got {:?}",
                    raw.bind
                ),
            )
        })?;
        let mut allowed_hosts = Vec::new();
        for host in &raw.allowed_hosts {
            let host = host.trim();
            if host.is_empty() {
                continue;
            }
            if !valid_host(host) {
                return Err(err(
                    name("--allowed-host", "REGISTRY_MCP_ALLOWED_HOSTS"),
                    format!("expected a host name or host:port, got {host:?}"),
                ));
            }
            allowed_hosts.push(host.to_ascii_lowercase());
        }

        let registry_url = raw.registry_url.trim().trim_end_matches('/').to_owned();
        if !is_http_url(&registry_url) {
            return Err(err(
                name("--registry-url", "REGISTRY_URL"),
                format!(
                    "expected an http:// or https:// URL, got {:?}",
                    redact_url(&raw.registry_url)
                ),
            ));
        }
        let registry_api_key = raw
            .registry_api_key
            .as_ref()
            .map(|key| key.expose().trim())
            .filter(|key| !key.is_empty())
            .map(Secret::new);

        let read_only = parse_bool(&raw.read_only)
            .map_err(|problem| err(name("--read-only", "REGISTRY_READ_ONLY"), problem))?;
        let allow_production_changes =
            parse_bool(&raw.allow_production_changes).map_err(|problem| {
                err(
                    name(
                        "--allow-production-changes",
                        "REGISTRY_ALLOW_PRODUCTION_CHANGES",
                    ),
                    problem,
                )
            })?;
        let cache_ttl = parse_number(
            &raw.cache_ttl_seconds,
            0,
            86_400,
            "a whole number of seconds from 0 to 86400",
        )
        .map_err(|problem| {
            err(
                name("--cache-ttl-seconds", "REGISTRY_CACHE_TTL_SECONDS"),
                problem,
            )
        })?;
        let request_timeout = parse_number(
            &raw.request_timeout_seconds,
            1,
            3_600,
            "a whole number of seconds from 1 to 3600",
        )
        .map_err(|problem| {
            err(
                name(
                    "--request-timeout-seconds",
                    "REGISTRY_REQUEST_TIMEOUT_SECONDS",
                ),
                problem,
            )
        })?;
        let max_log_lines = parse_number(
            &raw.max_log_lines,
            1,
            1_000_000,
            "a whole number from 1 to 1000000",
        )
        .map_err(|problem| err(name("--max-log-lines", "REGISTRY_MAX_LOG_LINES"), problem))?;
        let max_results = parse_number(
            &raw.max_results,
            1,
            10_000,
            "a whole number from 1 to 10000",
        )
        .map_err(|problem| err(name("--max-results", "REGISTRY_MAX_RESULTS"), problem))?;

        let release_config_repo = match raw.release_config_repo.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(value) => Some(parse_repo_location(value).map_err(|problem| {
                err(
                    name("--release-config-repo", "REGISTRY_RELEASE_CONFIG_REPO"),
                    problem,
                )
            })?),
        };
        let release_config_branch = raw.release_config_branch.trim().to_owned();
        if !valid_branch(&release_config_branch) {
            return Err(err(
                name("--release-config-branch", "REGISTRY_RELEASE_CONFIG_BRANCH"),
                format!(
                    "expected a Git branch name, got {:?}",
                    raw.release_config_branch
                ),
            ));
        }
        let release_config_cache_dir = match &raw.release_config_cache_dir {
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(err(
                    name(
                        "--release-config-cache-dir",
                        "REGISTRY_RELEASE_CONFIG_CACHE_DIR",
                    ),
                    "expected a directory path, got \"\"".to_owned(),
                ));
            }
            Some(dir) => dir.clone(),
            None => default_cache_dir(env),
        };

        let github_token = raw
            .github_token
            .as_ref()
            .map(|token| token.expose().to_owned())
            .or_else(|| env("GITHUB_TOKEN").and_then(|token| token.into_string().ok()))
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty())
            .map(Secret::new);
        if let (Some(RepoLocation::Remote(url)), Some(_)) = (&release_config_repo, &github_token)
            && url.to_ascii_lowercase().starts_with("http://")
        {
            return Err(err(
                name("--release-config-repo", "REGISTRY_RELEASE_CONFIG_REPO"),
                format!(
                    "{} is plain HTTP, and a GitHub token is configured: the token is only ever \
                     sent over HTTPS (use an https:// URL, or unset REGISTRY_GITHUB_TOKEN and \
                     GITHUB_TOKEN)",
                    redact_url(url)
                ),
            ));
        }
        let github_api_url = raw.github_api_url.trim().trim_end_matches('/').to_owned();
        if !is_http_url(&github_api_url) {
            return Err(err(
                name("--github-api-url", "REGISTRY_GITHUB_API_URL"),
                format!(
                    "expected an http:// or https:// URL, got {:?}",
                    raw.github_api_url
                ),
            ));
        }

        let github_repository = match raw.github_repository.as_deref().map(str::trim) {
            Some(value) if !value.is_empty() => {
                Some(GitHubRepository::parse(value).ok_or_else(|| {
                    err(
                        name("--github-repository", "REGISTRY_GITHUB_REPOSITORY"),
                        format!("expected OWNER/NAME, got {value:?}"),
                    )
                })?)
            }
            _ => match &release_config_repo {
                Some(RepoLocation::Remote(url)) => GitHubRepository::from_git_url(url),
                _ => None,
            },
        };

        let toolsets = parse_toolsets(&raw.toolsets)
            .map_err(|problem| err(name("--toolsets", "REGISTRY_TOOLSETS"), problem))?;
        let tools = parse_tool_names(&raw.tools)
            .map_err(|problem| err(name("--tools", "REGISTRY_TOOLS"), problem))?;
        let exclude_tools = parse_tool_names(&raw.exclude_tools)
            .map_err(|problem| err(name("--exclude-tools", "REGISTRY_EXCLUDE_TOOLS"), problem))?;

        let service = crate::http::settings::ServiceSettings::check(&raw.service, &name)?;
        if raw.transport == TransportKind::Http
            && !bind.ip().is_loopback()
            && !service.authenticates()
        {
            return Err(err(
                name("--bind", "REGISTRY_MCP_BIND"),
                format!(
                    "{bind} is reachable beyond this machine, and no authentication is \
                     configured: set REGISTRY_MCP_AUTH_FILE (bearer tokens or OAuth rules, each \
                     with its own registry API key), or bind to 127.0.0.1"
                ),
            ));
        }
        if raw.transport == TransportKind::Http && !bind.ip().is_loopback() && !service.encrypted()
        {
            return Err(err(
                name("--bind", "REGISTRY_MCP_BIND"),
                format!(
                    "{bind} is reachable beyond this machine, and bearer tokens must not cross \
                     the network in clear: set REGISTRY_MCP_TLS_CERT and REGISTRY_MCP_TLS_KEY, \
                     or REGISTRY_MCP_PUBLIC_URL=https://... when a proxy in front terminates TLS"
                ),
            ));
        }
        if raw.transport == TransportKind::Http
            && service.authenticates()
            && registry_api_key.is_some()
        {
            return Err(err(
                name("--registry-api-key", "REGISTRY_API_KEY"),
                "is not used when REGISTRY_MCP_AUTH_FILE is set: every caller acts with the \
                 registry API key its token maps to there; unset it"
                    .to_owned(),
            ));
        }

        Ok(Settings {
            transport: raw.transport,
            bind,
            allowed_hosts,
            registry_url,
            registry_api_key,
            read_only,
            allow_production_changes,
            cache_ttl: Duration::from_secs(cache_ttl),
            request_timeout: Duration::from_secs(request_timeout),
            max_log_lines: u32::try_from(max_log_lines).unwrap_or(u32::MAX),
            max_results: u32::try_from(max_results).unwrap_or(u32::MAX),
            release_config_repo,
            release_config_branch,
            release_config_cache_dir,
            github_token,
            github_api_url,
            github_repository,
            toolsets,
            tools,
            exclude_tools,
            service,
        })
    }

    /// The effective settings as `NAME = value` lines, secrets masked (`--print-config`).
    pub fn render(&self) -> String {
        let secret = |value: &Option<Secret>| match value {
            Some(_) => "**** (set)".to_owned(),
            None => "(not set)".to_owned(),
        };
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "(all)".to_owned()
            } else {
                items.join(",")
            }
        };
        let rows: Vec<(&str, String)> = vec![
            (
                "REGISTRY_MCP_TRANSPORT",
                format!("{:?}", self.transport).to_lowercase(),
            ),
            ("REGISTRY_MCP_BIND", self.bind.to_string()),
            (
                "REGISTRY_MCP_ALLOWED_HOSTS",
                if self.allowed_hosts.is_empty() {
                    "(loopback only)".to_owned()
                } else {
                    format!("loopback,{}", self.allowed_hosts.join(","))
                },
            ),
            ("REGISTRY_URL", redact_url(&self.registry_url)),
            ("REGISTRY_API_KEY", secret(&self.registry_api_key)),
            ("REGISTRY_READ_ONLY", self.read_only.to_string()),
            (
                "REGISTRY_ALLOW_PRODUCTION_CHANGES",
                self.allow_production_changes.to_string(),
            ),
            (
                "REGISTRY_CACHE_TTL_SECONDS",
                self.cache_ttl.as_secs().to_string(),
            ),
            (
                "REGISTRY_REQUEST_TIMEOUT_SECONDS",
                self.request_timeout.as_secs().to_string(),
            ),
            ("REGISTRY_MAX_LOG_LINES", self.max_log_lines.to_string()),
            ("REGISTRY_MAX_RESULTS", self.max_results.to_string()),
            (
                "REGISTRY_RELEASE_CONFIG_REPO",
                self.release_config_repo
                    .as_ref()
                    .map_or_else(|| "(not set)".to_owned(), RepoLocation::display),
            ),
            (
                "REGISTRY_RELEASE_CONFIG_BRANCH",
                self.release_config_branch.clone(),
            ),
            (
                "REGISTRY_RELEASE_CONFIG_CACHE_DIR",
                self.release_config_cache_dir.display().to_string(),
            ),
            ("REGISTRY_GITHUB_TOKEN", secret(&self.github_token)),
            ("REGISTRY_GITHUB_API_URL", redact_url(&self.github_api_url)),
            (
                "REGISTRY_GITHUB_REPOSITORY",
                self.github_repository
                    .as_ref()
                    .map_or_else(|| "(not set)".to_owned(), ToString::to_string),
            ),
            (
                "REGISTRY_TOOLSETS",
                list(
                    self.toolsets
                        .iter()
                        .map(|t| t.as_str().to_owned())
                        .collect(),
                ),
            ),
            (
                "REGISTRY_TOOLS",
                list(self.tools.iter().map(|t| (*t).to_owned()).collect()),
            ),
            (
                "REGISTRY_EXCLUDE_TOOLS",
                if self.exclude_tools.is_empty() {
                    "(none)".to_owned()
                } else {
                    self.exclude_tools.join(",")
                },
            ),
        ];
        let mut rows = rows;
        rows.extend(self.service.rows());
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (name, value) in rows {
            out.push_str(&format!("{name:<width$} = {value}\n"));
        }
        out
    }
}

/// Why the command line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Clap's own message (also `--help` and `--version`, which are not failures).
    #[error("{0}")]
    Usage(clap::Error),
    #[error("{0}")]
    Config(ConfigError),
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

pub(crate) fn parse_number(value: &str, min: u64, max: u64, accepts: &str) -> Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        _ => Err(format!("expected {accepts}, got {value:?}")),
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        let authority = rest.split('/').next().unwrap_or("");
        !authority.is_empty() && !authority.contains(char::is_whitespace)
    })
}

/// A GitHub repository, `OWNER/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubRepository {
    pub owner: String,
    pub name: String,
}

impl fmt::Display for GitHubRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl GitHubRepository {
    /// `OWNER/NAME`, each of GitHub's characters (letters, digits, `-`, `_`, `.`).
    pub fn parse(value: &str) -> Option<GitHubRepository> {
        let (owner, name) = value.split_once('/')?;
        let name = name.strip_suffix(".git").unwrap_or(name);
        let ok = |part: &str| {
            !part.is_empty()
                && part.len() <= 100
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (ok(owner) && ok(name)).then(|| GitHubRepository {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The repository of a GitHub-style Git URL: `https://HOST/OWNER/NAME(.git)`,
    /// `ssh://git@HOST/OWNER/NAME.git` or `git@HOST:OWNER/NAME.git`. `None` for anything else
    /// (a `file://` URL, a path with more components).
    pub fn from_git_url(url: &str) -> Option<GitHubRepository> {
        let path = if let Some((scheme, rest)) = url.split_once("://") {
            if !matches!(scheme, "https" | "http" | "ssh" | "git") {
                return None;
            }
            let (_, path) = rest.split_once('/')?;
            path
        } else {
            let (_, path) = url.split_once(':')?;
            path
        };
        let path = path.split(['?', '#']).next()?.trim_matches('/');
        GitHubRepository::parse(path)
    }

    /// The host of a Git or API URL, lower-case, without userinfo or port.
    pub fn url_host(url: &str) -> Option<String> {
        let authority = match url.split_once("://") {
            Some((_, rest)) => rest.split('/').next()?,
            None => url.split_once(':')?.0,
        };
        let host = authority.rsplit('@').next()?;
        let host = host.split(':').next()?.to_ascii_lowercase();
        (!host.is_empty()).then_some(host)
    }
}

fn parse_repo_location(value: &str) -> Result<RepoLocation, String> {
    let is_url = ["http://", "https://", "ssh://", "git://", "file://"]
        .iter()
        .any(|p| value.starts_with(p));
    // scp-like syntax: git@github.com:org/repo.git
    let is_scp = !is_url
        && value.split_once(':').is_some_and(|(host, path)| {
            host.contains('@') && !host.contains('/') && !path.is_empty() && !path.starts_with("//")
        });
    if is_url || is_scp {
        if value.contains(char::is_whitespace) {
            return Err(format!("expected a Git URL or a directory, got {value:?}"));
        }
        return Ok(RepoLocation::Remote(value.to_owned()));
    }
    let path = Path::new(value);
    if path.is_dir() {
        Ok(RepoLocation::Local(path.to_path_buf()))
    } else {
        Err(format!(
            "expected a Git URL or an existing directory, got {value:?} (no such directory)"
        ))
    }
}

fn valid_branch(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with(['-', '/'])
        && !branch.ends_with(['/', '.'])
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("@{")
        && !branch.ends_with(".lock")
        && branch
            .chars()
            .all(|c| !c.is_control() && !" ~^:?*[\\".contains(c))
}

fn valid_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => {
            if port.parse::<u16>().is_err() {
                return false;
            }
            name
        }
        _ => host,
    };
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
}

fn default_cache_dir(env: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    let non_empty = |name: &str| {
        env(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return dir.join("model-registry-mcp");
    }
    if let Some(home) = non_empty("HOME") {
        return home.join(".cache").join("model-registry-mcp");
    }
    std::env::temp_dir().join("model-registry-mcp")
}

fn parse_toolsets(names: &[String]) -> Result<Vec<Toolset>, String> {
    let mut toolsets = Vec::new();
    let mut unknown = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match Toolset::from_name(name) {
            Some(toolset) if !toolsets.contains(&toolset) => toolsets.push(toolset),
            Some(_) => {}
            None => unknown.push(name),
        }
    }
    if unknown.is_empty() {
        Ok(toolsets)
    } else {
        let valid: Vec<&str> = Toolset::ALL.iter().map(|t| t.as_str()).collect();
        Err(format!(
            "unknown toolset {}; valid toolsets: {}",
            quoted(&unknown),
            valid.join(", ")
        ))
    }
}

fn parse_tool_names(names: &[String]) -> Result<Vec<&'static str>, String> {
    let mut tools = Vec::new();
    let mut unknown = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match catalog::lookup(name) {
            Some(entry) if !tools.contains(&entry.name) => tools.push(entry.name),
            Some(_) => {}
            None => unknown.push(name),
        }
    }
    if unknown.is_empty() {
        Ok(tools)
    } else {
        let valid: Vec<&str> = catalog::CATALOG.iter().map(|e| e.name).collect();
        Err(format!(
            "unknown tool {}; valid tools: {}",
            quoted(&unknown),
            valid.join(", ")
        ))
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, String> {
        let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        let env_map: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cli = parse_with_env(&argv, &env_map).map_err(|e| e.to_string())?;
        let lookup = |name: &str| env_map.get(name).map(OsString::from);
        Settings::check(&cli.options, &argv, &lookup).map_err(|e| e.to_string())
    }

    #[test]
    fn the_github_repository_comes_from_the_setting_or_the_url() {
        let from_url = |url: &str| GitHubRepository::from_git_url(url).map(|r| r.to_string());
        assert_eq!(
            from_url("https://github.com/acme/release-configs.git").as_deref(),
            Some("acme/release-configs")
        );
        assert_eq!(
            from_url("https://x-access-token:t@ghe.corp/acme/rc").as_deref(),
            Some("acme/rc")
        );
        assert_eq!(
            from_url("git@github.com:acme/rc.git").as_deref(),
            Some("acme/rc")
        );
        assert_eq!(
            from_url("ssh://git@github.com/acme/rc.git").as_deref(),
            Some("acme/rc")
        );
        assert_eq!(from_url("file:///srv/git/rc.git"), None);
        assert_eq!(from_url("https://gitlab.corp/group/sub/rc.git"), None);
        assert_eq!(from_url("https://github.com/../etc"), None);

        let settings = |env: &[(&str, &str)]| check(&["model-registry-mcp"], env);
        let derived = settings(&[(
            "REGISTRY_RELEASE_CONFIG_REPO",
            "https://github.com/acme/release-configs.git",
        )]);
        assert_eq!(
            derived
                .ok()
                .and_then(|s| s.github_repository)
                .map(|r| r.to_string()),
            Some("acme/release-configs".to_owned())
        );
        let set = settings(&[
            (
                "REGISTRY_RELEASE_CONFIG_REPO",
                "https://github.com/acme/release-configs.git",
            ),
            ("REGISTRY_GITHUB_REPOSITORY", "other/rc"),
        ]);
        assert_eq!(
            set.ok()
                .and_then(|s| s.github_repository)
                .map(|r| r.to_string()),
            Some("other/rc".to_owned())
        );
        let bad = settings(&[("REGISTRY_GITHUB_REPOSITORY", "not a repo")])
            .err()
            .unwrap_or_default();
        assert!(
            bad.starts_with("REGISTRY_GITHUB_REPOSITORY: expected OWNER/NAME"),
            "{bad}"
        );
    }

    /// Clap reads `env` from the process; tests pass the variables as flags instead, so that
    /// the test process's own environment never leaks in.
    fn parse_with_env(
        argv: &[OsString],
        env: &std::collections::HashMap<String, String>,
    ) -> Result<Cli, clap::Error> {
        let mut full = argv.to_vec();
        let command = <Cli as clap::CommandFactory>::command();
        for arg in command.get_arguments() {
            if let (Some(var), Some(long)) = (arg.get_env(), arg.get_long())
                && let Some(value) = var.to_str().and_then(|var| env.get(var))
            {
                full.push(OsString::from(format!("--{long}={value}")));
            }
        }
        Cli::try_parse_from(full)
    }

    #[test]
    fn bad_values_name_the_variable_in_one_line() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("REGISTRY_READ_ONLY", "yes please")],
                "expected true or false, got \"yes please\"",
            ),
            (
                &[("REGISTRY_MAX_RESULTS", "0")],
                "expected a whole number from 1 to 10000, got \"0\"",
            ),
            (
                &[("REGISTRY_URL", "localhost")],
                "expected an http:// or https:// URL, got \"localhost\"",
            ),
            (
                &[("REGISTRY_TOOLSETS", "models,gpus")],
                "unknown toolset \"gpus\"; valid toolsets: models, versions",
            ),
            (
                &[("REGISTRY_TOOLS", "get_modle")],
                "unknown tool \"get_modle\"; valid tools: list_models",
            ),
            (
                &[("REGISTRY_RELEASE_CONFIG_BRANCH", "a..b")],
                "expected a Git branch name, got \"a..b\"",
            ),
            (
                &[("REGISTRY_RELEASE_CONFIG_REPO", "/definitely/not/here")],
                "no such directory",
            ),
            (
                &[
                    ("REGISTRY_RELEASE_CONFIG_REPO", "http://git.internal/rc.git"),
                    ("REGISTRY_GITHUB_TOKEN", "ghp_not_over_http"),
                ],
                "is plain HTTP, and a GitHub token is configured: the token is only ever sent \
                 over HTTPS",
            ),
            (
                &[("REGISTRY_MCP_MAX_SESSIONS", "0")],
                "REGISTRY_MCP_MAX_SESSIONS: expected a whole number from 1 to 1000000",
            ),
            (
                &[("REGISTRY_MCP_HEADER_TIMEOUT_SECONDS", "never")],
                "REGISTRY_MCP_HEADER_TIMEOUT_SECONDS: expected a whole number of seconds",
            ),
            (
                &[("REGISTRY_MCP_TLS_CERT", "/etc/mcp/cert.pem")],
                "REGISTRY_MCP_TLS_KEY: required with REGISTRY_MCP_TLS_CERT",
            ),
            (
                &[("REGISTRY_MCP_OAUTH_ISSUER", "https://id.example")],
                "REGISTRY_MCP_PUBLIC_URL: required with an OAuth issuer",
            ),
            (
                &[("REGISTRY_MCP_PUBLIC_URL", "http://mcp.example/mcp")],
                "REGISTRY_MCP_PUBLIC_URL: expected an https:// URL (http:// only for loopback)",
            ),
            (
                &[
                    ("REGISTRY_MCP_OAUTH_ISSUER", "https://id.example"),
                    ("REGISTRY_MCP_PUBLIC_URL", "https://mcp.example/mcp"),
                ],
                "REGISTRY_MCP_AUTH_FILE: required with an OAuth issuer",
            ),
        ];
        for (env, expected) in cases {
            let message = check(&["model-registry-mcp"], env)
                .err()
                .unwrap_or_default();
            // Named by the variable: the test routes values through flags, but `check` is given
            // the original command line, which does not mention them.
            assert!(message.contains(expected), "{env:?}: {message}");
            assert_eq!(message.lines().count(), 1, "{message}");
        }
    }

    #[test]
    fn a_bad_flag_is_named_by_its_flag() {
        let message = check(&["model-registry-mcp", "--read-only=maybe"], &[])
            .err()
            .unwrap_or_default();
        assert_eq!(
            message,
            "--read-only: expected true or false, got \"maybe\""
        );
        let message = check(&["model-registry-mcp", "--max-results", "many"], &[])
            .err()
            .unwrap_or_default();
        assert_eq!(
            message,
            "--max-results: expected a whole number from 1 to 10000, got \"many\""
        );
    }

    #[test]
    fn defaults_and_secrets() {
        let settings = check(
            &["model-registry-mcp"],
            &[("REGISTRY_API_KEY", "sk-very-secret")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.registry_url, "http://localhost/api");
        assert!(!settings.read_only && settings.allow_production_changes);
        assert_eq!(
            (
                settings.cache_ttl.as_secs(),
                settings.request_timeout.as_secs()
            ),
            (60, 30)
        );
        assert_eq!((settings.max_log_lines, settings.max_results), (5000, 100));
        assert_eq!(settings.release_config_branch, "main");
        let rendered = settings.render();
        assert!(!rendered.contains("sk-very-secret"), "{rendered}");
        assert!(!format!("{settings:?}").contains("sk-very-secret"));
        // Not even the parsed command line shows a secret, from a flag or the environment.
        let (cli, settings) = Settings::parse_from([
            "model-registry-mcp",
            "--registry-api-key",
            "sk-flag-secret",
            "--github-token",
            "ghp_flag_secret",
            "--release-config-repo",
            "https://x-access-token:ghp_in_url@github.com/o/r.git",
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        let shown = format!("{settings:?} {}", settings.render());
        assert!(cli.options.registry_api_key.is_some());
        for secret in ["sk-flag-secret", "ghp_flag_secret", "ghp_in_url"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(
            settings.registry_api_key.as_ref().map(Secret::expose),
            Some("sk-flag-secret")
        );
        assert!(rendered.contains("REGISTRY_API_KEY"));
        let flag =
            check(&["model-registry-mcp", "--read-only"], &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(flag.read_only);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:tok@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(
            redact_url("https://github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            parse_repo_location("git@github.com:org/repo.git"),
            Ok(RepoLocation::Remote(
                "git@github.com:org/repo.git".to_owned()
            ))
        );
    }
}
