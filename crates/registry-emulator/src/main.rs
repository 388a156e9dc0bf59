//! `registry-emulator`: runs the Registry Server emulator for demos and manual testing.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use registry_emulator::{EmulatorConfig, Seed};

/// A local emulator of the Registry Server HTTP API.
#[derive(Debug, Parser)]
#[command(name = "registry-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory with the seed JSON files (default: the compiled-in demo seed).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Directory that storage browsing is confined to. The seed's storage tree is
    /// created in it when it is empty or missing.
    #[arg(long)]
    storage_root: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let seed = match &args.seed {
        Some(dir) => {
            Seed::load(dir).with_context(|| format!("loading seed from {}", dir.display()))?
        }
        None => Seed::demo().context("loading the demo seed")?,
    };
    let empty =
        std::fs::read_dir(&args.storage_root).map_or(true, |mut entries| entries.next().is_none());
    // Key names and roles only: the keys themselves never go to the log.
    let keys: Vec<(String, String)> = seed
        .api_keys
        .iter()
        .map(|k| (k.name.clone(), k.role.to_string()))
        .collect();
    let keys_file = match &args.seed {
        Some(dir) => dir.join("api_keys.json").display().to_string(),
        None => "fixtures/registry/api_keys.json".to_owned(),
    };
    let config = EmulatorConfig {
        seed,
        storage_root: args.storage_root.clone(),
        materialize_storage: empty,
        bind: args.bind,
    };
    let running = registry_emulator::spawn(config)
        .await
        .context("starting the emulator")?;
    eprintln!(
        "registry-emulator listening: REGISTRY_URL={}",
        running.base_url()
    );
    eprintln!("storage root: {}", args.storage_root.display());
    eprintln!("API keys (X-API-Key values are in {keys_file}):");
    for (name, role) in keys {
        eprintln!("  {role:<8} {name}");
    }
    eprintln!(
        "controls: {}/_emulator/faults, {}/_emulator/requests",
        running.root_url(),
        running.root_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.shutdown().await;
    Ok(())
}
