//! `model-registry-mcp`: an MCP server for the model registry and its production GPU fleet.
//!
//! - [`config`]: settings from the environment and flags, checked with one-line errors.
//! - [`catalog`] and [`selection`]: every tool of the surface and which are switched on.
//! - [`tools`]: the implemented tool groups, one module each.
//! - [`release_configs`]: the production topology, read from the release-config repository by the
//!   topology engine, cached and refreshed.
//! - [`registry`]: the Registry Server client built from the settings, and what registry tools
//!   share (error messages, paging, size limits, untrusted-log fencing); [`resources`]: the
//!   `model://`, `version://`, `deployment://` and `health://status` resources.
//! - [`server`]: the rmcp handler; [`session`]: what a call knows of its client and how it asks
//!   the user to confirm (elicitation, or a sealed input-required round on 2026-07-28);
//!   [`stdio`] and [`http`]: the transports.
//! - [`bench`]: start-up, `tools/list` size and call latency, measured against the real binary.
//!
//! The public surface is what this list marks as links plus the curated `pub use` below (what
//! the binaries, the bench and the tests use); every other module is crate-private, so that the
//! compiler reports what nothing calls.

use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use serde::Serialize;

pub mod bench;
pub mod catalog;
mod config;
mod context;
mod github;
mod http;
mod prompts;
mod registry;
mod release_configs;
mod resources;
mod selection;
mod server;
mod session;
mod stdio;
mod templates;
mod tools;

pub use config::{Cli, GitHubRepository, Secret};
pub use github::{CreateError, GitHub};
pub use http::MAX_REQUEST_BODY_BYTES;
pub use http::auth_file::token_digest;

/// How many tools this build implements (of the catalog's surface).
pub fn implemented_tools() -> usize {
    tools::all().len()
}

use config::{Command, RepoLocation, Settings, TransportKind};
use context::{Ctx, Shared};
use release_configs::loader::GitLoader;
use release_configs::state::{FleetLoader, ReleaseConfigState};
use server::{McpServer, Surface};

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot serve MCP over HTTP at {bind}: {source}")]
    Http {
        bind: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read standard input: {0}")]
    Stdin(std::io::Error),
    #[error("cannot serve HTTP: {0}")]
    Prepare(String),
    #[error("the MCP session failed: {0}")]
    Session(String),
    #[error("cannot encode the tool list: {0}")]
    Encode(serde_json::Error),
}

/// Does what the command line asks: print the configuration, print the tool surface, or serve.
fn run(cli: &Cli, settings: Settings) -> Result<(), RunError> {
    if cli.print_config {
        print!("{}", settings.render());
        return Ok(());
    }
    match cli.command {
        Some(Command::Tools { json }) => {
            let surface = Surface::new(build_context(settings));
            let text = if json {
                tools_json(&surface).map_err(RunError::Encode)?
            } else {
                tools_table(&surface)
            };
            print!("{text}");
            Ok(())
        }
        Some(Command::NewToken { ref name }) => {
            let token = format!("mrm_{}", http::auth_file::hex(&rand::random::<[u8; 32]>()));
            let sha256 = token_digest(&token);
            print!(
                "{token}\n\n# For REGISTRY_MCP_AUTH_FILE (the token itself is not stored):\n\
                 [[token]]\nname = {name:?}\nsha256 = \"{sha256}\"\n\
                 registry_api_key_env = \"REGISTRY_KEY_{}\"\n",
                name.to_ascii_uppercase().replace(['-', '.'], "_")
            );
            Ok(())
        }
        Some(Command::HashToken) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(RunError::Stdin)?;
            println!("{}", token_digest(line.trim()));
            Ok(())
        }
        Some(Command::Serve) | None => serve(settings),
    }
}

/// Builds the shared context: settings, the release-config state (not loaded yet) and the
/// registry client.
pub(crate) fn build_context(settings: Settings) -> Ctx {
    let loader: Option<Arc<dyn FleetLoader>> =
        settings.release_config_repo.clone().map(|location| {
            Arc::new(GitLoader::new(
                location,
                settings.release_config_branch.clone(),
                settings.release_config_cache_dir.clone(),
                settings.github_token.as_ref(),
                settings.request_timeout,
            )) as Arc<dyn FleetLoader>
        });
    let release_configs = Arc::new(ReleaseConfigState::new(
        settings
            .release_config_repo
            .as_ref()
            .map(RepoLocation::display),
        settings.release_config_branch.clone(),
        settings.cache_ttl,
        settings.request_timeout,
        loader,
    ));
    Arc::new(Shared::new(settings, release_configs))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,model_registry_mcp=info"));
    // stdout carries the protocol: logs go to stderr only.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn serve(settings: Settings) -> Result<(), RunError> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let result = runtime.block_on(async move {
        let transport = settings.transport;
        let bind = settings.bind;
        let ctx = build_context(settings);
        // Load the repository in the background: initialize must not wait for a fetch.
        ctx.release_configs.prefetch();
        match transport {
            TransportKind::Stdio => {
                // And the API key's role, which decides the tools listed.
                let learn = Arc::clone(&ctx);
                tokio::spawn(async move { learn.key_role().await });
                serve_stdio(Arc::new(Surface::new(ctx))).await
            }
            TransportKind::Http => {
                let prepared = http::Prepared::new(&ctx).map_err(RunError::Prepare)?;
                http::auth::learn_roles(&prepared.auth);
                let surface = Arc::new(Surface::new(ctx));
                let cancel = tokio_util::sync::CancellationToken::new();
                let on_signal = cancel.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    on_signal.cancel();
                });
                let contexts = prepared.auth.contexts();
                http::serve(surface, prepared, cancel, move |_| {
                    for ctx in contexts {
                        prewarm(ctx);
                    }
                })
                .await
                .map_err(|source| RunError::Http { bind, source })
            }
        }
    });
    // A blocked stdin read must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

/// Builds the registry client off the request path once the server is answering: it costs
/// 7-20 ms (TLS roots), which would otherwise delay `initialize` or the first registry call.
fn prewarm(ctx: Ctx) {
    tokio::task::spawn_blocking(move || {
        let _ = ctx.registry();
    });
}

async fn serve_stdio(surface: Arc<Surface>) -> Result<(), RunError> {
    let (transport, written) = stdio::LineTransport::new(
        tokio::io::stdin(),
        tokio::io::stdout(),
        stdio::MAX_LINE_BYTES,
    );
    let ctx = Arc::clone(surface.ctx());
    match McpServer::new(surface).serve(transport).await {
        Ok(running) => {
            prewarm(ctx);
            let reason = running
                .waiting()
                .await
                .map_err(|e| RunError::Session(e.to_string()))?;
            tracing::debug!(?reason, "session ended");
        }
        // The client went away before initializing: nothing to serve, not an error.
        Err(error) => tracing::info!(%error, "no MCP session"),
    }
    written.wait().await;
    Ok(())
}

#[derive(Serialize)]
struct ToolRow {
    name: &'static str,
    toolset: catalog::Toolset,
    class: catalog::ToolClass,
    idempotent: bool,
    open_world: bool,
    enabled: bool,
    /// Why it is off (None when enabled).
    disabled: Option<selection::Disabled>,
    reason: Option<String>,
    /// The MCP definition, for implemented tools.
    definition: Option<rmcp::model::Tool>,
}

fn tool_rows(surface: &Surface) -> Vec<ToolRow> {
    let all = tools::all();
    selection::table(&surface.ctx().settings, |name| surface.is_implemented(name))
        .into_iter()
        .map(|(entry, decision)| ToolRow {
            name: entry.name,
            toolset: entry.toolset,
            class: entry.class,
            idempotent: entry.idempotent,
            open_world: entry.open_world,
            enabled: decision.is_ok(),
            disabled: decision.err(),
            reason: decision.err().map(|d| d.explain(entry)),
            definition: all
                .iter()
                .find(|spec| spec.name() == entry.name)
                .map(|spec| spec.tool.clone()),
        })
        .collect()
}

/// `model-registry-mcp tools --json`.
fn tools_json(surface: &Surface) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&tool_rows(surface)).map(|text| text + "\n")
}

/// `model-registry-mcp tools`.
fn tools_table(surface: &Surface) -> String {
    let rows = tool_rows(surface);
    let mut out = format!(
        "{:<26} {:<16} {:<5} {:<10} {:<10} {}\n",
        "TOOL", "TOOLSET", "CLASS", "IDEMPOTENT", "OPEN_WORLD", "STATUS"
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    for row in &rows {
        let status = match row.disabled {
            None => "enabled".to_owned(),
            Some(reason) => format!("off ({reason})"),
        };
        out.push_str(&format!(
            "{:<26} {:<16} {:<5} {:<10} {:<10} {}\n",
            row.name,
            row.toolset.as_str(),
            row.class.letter(),
            yes(row.idempotent),
            yes(row.open_world),
            status
        ));
    }
    let enabled = rows.iter().filter(|r| r.enabled).count();
    out.push_str(&format!("{enabled} of {} tools enabled\n", rows.len()));
    out
}

/// The process edge shared by the `model-registry-mcp` binary and the end-to-end
/// tests' copy of it: parse the command line, run, map failures to exit codes
/// (0 done, 1 the server failed, 2 unusable command line or setting).
pub fn process_main() -> std::process::ExitCode {
    use config::CliError;
    let (cli, settings) = match Settings::parse_from(std::env::args_os()) {
        Ok(parsed) => parsed,
        // Clap prints usage, --help and --version itself, with its own exit code.
        Err(CliError::Usage(error)) => error.exit(),
        Err(CliError::Config(error)) => {
            eprintln!("model-registry-mcp: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&cli, settings) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("model-registry-mcp: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
