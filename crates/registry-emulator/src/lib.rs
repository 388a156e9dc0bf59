//! A faithful local emulator of the Registry Server HTTP API (see
//! `shared/spec/registry-api.md`), for tests and demos.
//!
//! - Every endpoint of the contract under the base path `/api`, with in-memory
//!   state seeded from `fixtures/registry/*.json` ([`Seed`]).
//! - API keys with roles (`viewer` reads, `operator` also writes except deletes,
//!   `admin` everything), FastAPI-shaped errors and 422 validation lists.
//! - Deterministic lifecycles: each read of a deployment (or its status) moves it
//!   one step `pending -> starting -> running`; each read of a build (or its logs)
//!   one step `pending -> building -> success`. Lists never advance anything.
//! - Switchable faults and a request log, outside `/api`: `GET|POST|DELETE
//!   /_emulator/faults` ([`FaultSpec`]) and `GET|DELETE /_emulator/requests`
//!   ([`RecordedRequest`]), also reachable through [`RunningEmulator`].
//! - Fake model servers for API discovery tests ([`openai_like_router`],
//!   [`audio_like_router`], [`fastapi_like_router`], [`spawn_model_server`]).

mod error;
mod extract;
mod faults;
mod model;
mod model_server;
mod routes;
mod seed;
mod state;
mod storage;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

pub use error::{ApiError, FieldError};
pub use faults::{
    ConnectionKill, FaultSpec, Faults, MAX_LOG_ENTRIES, MAX_RECORDED_BODY, RecordedRequest,
    RequestLog,
};
pub use model::Role;
pub use model_server::{audio_like_router, fastapi_like_router, openai_like_router};
pub use seed::{Seed, SeedError};
pub use state::EmulatorState;
pub use storage::StorageError;

/// The base path of the API, as on the real server (`http://host/api`).
pub const BASE_PATH: &str = "/api";

/// The largest request body accepted (413 beyond it); nothing bigger is ever buffered.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// How long a connection may take to send a request's headers before it is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub seed: Seed,
    /// The directory `browse_model_storage` is confined to.
    pub storage_root: PathBuf,
    /// Create the seed's storage tree (sparse files) under `storage_root` first.
    pub materialize_storage: bool,
    /// Defaults to `127.0.0.1:0` (a free port).
    pub bind: SocketAddr,
}

impl EmulatorConfig {
    /// The demo seed, materialized under `storage_root`, on a free local port.
    pub fn demo(storage_root: impl Into<PathBuf>) -> Result<Self, EmulatorError> {
        Ok(Self {
            seed: Seed::demo()?,
            storage_root: storage_root.into(),
            materialize_storage: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        })
    }
}

/// The whole HTTP application: the API under [`BASE_PATH`] plus the `/_emulator` controls.
pub fn app(state: EmulatorState, faults: Faults, log: RequestLog) -> Router {
    let api = routes::api_router(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(
            (log.clone(), faults.clone(), state),
            faults::record_and_inject,
        ));
    Router::new()
        .nest(BASE_PATH, api)
        .merge(routes::control_router(faults, log))
        .fallback(|| async {
            ApiError::Status(axum::http::StatusCode::NOT_FOUND, "Not Found".to_owned())
        })
}

/// A server running on a background task; stopped on [`RunningEmulator::shutdown`] or drop.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on `listener` until shutdown. Each connection can be dropped by a
/// handler through the [`ConnectionKill`] extension (the `drop_connection` fault).
async fn serve(listener: TcpListener, router: Router, mut shutdown: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let router = router.clone();
                connections.spawn(async move {
                    let kill = ConnectionKill::default();
                    let kill_for_requests = kill.clone();
                    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                        request.extensions_mut().insert(kill_for_requests.clone());
                        router.clone().oneshot(request)
                    });
                    // A client that never finishes its headers does not hold a task forever.
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        result = connection => {
                            if let Err(e) = result {
                                tracing::debug!("connection ended: {e}");
                            }
                        }
                        () = kill.0.notified() => {}
                    }
                });
            }
        }
    }
}

/// Binds `addr` and serves `router` in the background.
pub async fn serve_router(addr: SocketAddr, router: Router) -> Result<Server, EmulatorError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| EmulatorError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind { addr, source })?;
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(serve(listener, router, rx));
    Ok(Server {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// A running emulator and handles to its state, faults and request log.
#[derive(Debug)]
pub struct RunningEmulator {
    base_url: String,
    server: Server,
    state: EmulatorState,
    faults: Faults,
    requests: RequestLog,
    seed_keys: Vec<model::ApiKey>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT/api`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `http://127.0.0.1:PORT` (where `/_emulator/...` lives).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn state(&self) -> &EmulatorState {
        &self.state
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    /// The seeded key with this role (e.g. for building a client in tests).
    pub fn api_key(&self, role: Role) -> Option<&str> {
        self.seed_keys
            .iter()
            .find(|k| k.role == role)
            .map(|k| k.key.as_str())
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Starts an emulator (by default on `127.0.0.1:0`) and returns once it accepts connections.
pub async fn spawn(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    if config.materialize_storage {
        storage::materialize(&config.storage_root, &config.seed.storage)?;
    }
    let seed_keys = config.seed.api_keys.clone();
    let state = EmulatorState::new(state::Db::from_seed(config.seed), config.storage_root);
    let faults = Faults::default();
    let requests = RequestLog::default();
    let server = serve_router(
        config.bind,
        app(state.clone(), faults.clone(), requests.clone()),
    )
    .await?;
    Ok(RunningEmulator {
        base_url: format!("http://{}{BASE_PATH}", server.addr()),
        server,
        state,
        faults,
        requests,
        seed_keys,
    })
}

/// A fake model server on `127.0.0.1:0`, with its own request log.
#[derive(Debug)]
pub struct ModelServer {
    pub server: Server,
    pub requests: RequestLog,
}

impl ModelServer {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}

/// Serves `router` (e.g. [`openai_like_router`]) as a fake model server, recording requests.
pub async fn spawn_model_server(router: Router) -> Result<ModelServer, EmulatorError> {
    let requests = RequestLog::default();
    let router = router.layer(from_fn_with_state(requests.clone(), faults::record_only));
    let server = serve_router(SocketAddr::from(([127, 0, 0, 1], 0)), router).await?;
    Ok(ModelServer { server, requests })
}
