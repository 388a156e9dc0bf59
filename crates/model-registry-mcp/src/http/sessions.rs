//! Live MCP sessions of the HTTP transport: rmcp's in-memory session manager, with a cap, the
//! owner of each session (a session answers only the caller that opened it) and when it was
//! last used (the one idle longest gives way to a new session at the cap).
//!
//! Invariant: a session is counted from its `initialize` (a [`Reservation`], taken atomically
//! under the table's lock) until it is closed, whoever closes it (DELETE, idle expiry, eviction).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_core::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::{RestoreOutcome, SessionManager};

/// A session idle this long (or half the idle timeout, if shorter) may be closed to make room.
const EVICTABLE_AFTER: Duration = Duration::from_secs(60);

pub struct Sessions {
    inner: LocalSessionManager,
    table: Mutex<Table>,
    max: usize,
    evictable_after: Duration,
}

#[derive(Default)]
struct Table {
    live: HashMap<SessionId, Entry>,
    /// `initialize` requests admitted whose session id is not known yet.
    reserved: usize,
}

struct Entry {
    owner: String,
    last_used: Instant,
}

/// What a request naming a session finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Live,
    /// Never was, ended, or another caller's (not told apart: a session id is not a secret to
    /// probe with).
    NotFound,
}

/// The cap is reached and no session has been idle long enough to give way.
#[derive(Debug, Clone, Copy)]
pub struct Full {
    pub retry_after: Duration,
}

impl Sessions {
    pub fn new(max: usize, idle: Duration) -> Sessions {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        Sessions {
            inner,
            table: Mutex::default(),
            max,
            evictable_after: EVICTABLE_AFTER.min(idle / 2),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Room for one more session of `owner`: counted at once, so that concurrent `initialize`
    /// requests cannot overshoot the cap together. At the cap, the session idle longest is
    /// closed if it has been idle at least a minute (or half the idle timeout).
    pub fn reserve(self: &Arc<Self>, owner: &str) -> Result<Reservation, Full> {
        let mut table = self.table();
        if table.live.len() + table.reserved >= self.max {
            let now = Instant::now();
            let idlest = table
                .live
                .iter()
                .map(|(id, entry)| (now.saturating_duration_since(entry.last_used), id))
                .max_by_key(|(idle, _)| *idle)
                .map(|(idle, id)| (idle, id.clone()));
            match idlest {
                Some((idle, id)) if idle >= self.evictable_after => {
                    table.live.remove(&id);
                    tracing::info!(session = %id, idle_seconds = idle.as_secs(), "session closed to make room at the cap");
                    let sessions = Arc::clone(self);
                    tokio::spawn(async move {
                        let _ = sessions.inner.close_session(&id).await;
                    });
                }
                Some((idle, _)) => {
                    return Err(Full {
                        retry_after: self.evictable_after.saturating_sub(idle),
                    });
                }
                None => {
                    return Err(Full {
                        retry_after: Duration::from_secs(1),
                    });
                }
            }
        }
        table.reserved += 1;
        Ok(Reservation {
            sessions: Arc::clone(self),
            owner: owner.to_owned(),
            done: false,
        })
    }

    /// Whether `id` is a live session of `owner`; if so it counts as used now.
    pub fn touch(&self, id: &str, owner: &str) -> Lookup {
        let mut table = self.table();
        match table.live.get_mut(id) {
            Some(entry) if entry.owner == owner => {
                entry.last_used = Instant::now();
                Lookup::Live
            }
            _ => Lookup::NotFound,
        }
    }
}

/// A counted place for a session being initialized; released unless [`Reservation::commit`]ted.
pub struct Reservation {
    sessions: Arc<Sessions>,
    owner: String,
    done: bool,
}

impl Reservation {
    /// The session exists now, as `id`.
    pub fn commit(mut self, id: &str) {
        let mut table = self.sessions.table();
        table.reserved = table.reserved.saturating_sub(1);
        table.live.insert(
            id.into(),
            Entry {
                owner: std::mem::take(&mut self.owner),
                last_used: Instant::now(),
            },
        );
        self.done = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            let mut table = self.sessions.table();
            table.reserved = table.reserved.saturating_sub(1);
        }
    }
}

impl SessionManager for Sessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    /// Every way a session ends comes here (DELETE, idle expiry, the worker stopping).
    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.table().live.remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        _id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        // Sessions live in this process only: one that is gone stays gone (404).
        Ok(RestoreOutcome::NotSupported)
    }
}
