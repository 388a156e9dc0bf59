//! What every tool and resource handler gets: the settings and the services built from them.

use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Instant;

use rmcp::RoleServer;
use rmcp::service::{Peer, SubscriptionContext, SubscriptionSink};

use registry_client::RegistryClient;

use crate::catalog::KeyRole;
use crate::config::{Secret, Settings};
use crate::github::GitHub;
use crate::release_configs::state::ReleaseConfigState;

/// Shared by every session and request; cheap to clone.
pub type Ctx = Arc<Shared>;

pub struct Shared {
    pub settings: Settings,
    /// Production topology from the release-config repository.
    pub release_configs: Arc<ReleaseConfigState>,
    /// The Registry Server client, built on first use: building it (TLS roots, connection pools)
    /// costs milliseconds that must not delay the `initialize` answer.
    registry: OnceLock<Result<RegistryClient, String>>,
    /// The GitHub client for proposals, built on first use (as the registry client).
    github: OnceLock<Result<GitHub, String>>,
    /// The API key's role, as `GET /v1/auth/me` said.
    key_role: tokio::sync::Mutex<KeyRoleLookup>,
    /// Sessions (on the `initialize` revisions) that were listed every tool while the role was
    /// unknown: told `notifications/tools/list_changed` once it is learned.
    listed_without_role: std::sync::Mutex<Vec<Peer<RoleServer>>>,
    /// Open `subscriptions/listen` streams (2026-07-28), by a number of their own.
    listeners: std::sync::Mutex<Vec<(u64, SubscriptionSink)>>,
}

/// Who is calling over HTTP, as the transport authenticated them: a name for logs and limits,
/// and the context (registry API key, its role, its caches) their calls run with. Put into the
/// HTTP request's extensions; absent on stdio and on unauthenticated loopback HTTP, where the
/// server's own context is used.
#[derive(Clone)]
pub struct Caller {
    /// `token:NAME`, `jwt:SUBJECT`, or `peer:ADDRESS` (no authentication).
    pub name: String,
    pub ctx: Ctx,
}

/// At most this many sessions are remembered for a `tools/list_changed` (closed ones go first).
const MAX_REMEMBERED_SESSIONS: usize = 1024;

/// What is known of the API key's role.
#[derive(Default)]
enum KeyRoleLookup {
    #[default]
    NotAsked,
    /// The key's name and role.
    Known(String, KeyRole),
    /// The last lookup failed (registry down, unknown role): every tool is listed meanwhile.
    Failed(Instant),
}

impl Shared {
    pub fn new(settings: Settings, release_configs: Arc<ReleaseConfigState>) -> Shared {
        Shared {
            settings,
            release_configs,
            registry: OnceLock::new(),
            github: OnceLock::new(),
            key_role: tokio::sync::Mutex::default(),
            listed_without_role: std::sync::Mutex::default(),
            listeners: std::sync::Mutex::default(),
        }
    }

    /// The same server acting with another registry API key (a caller of the shared HTTP
    /// service): the release-config state is shared; the registry client, its caches and the
    /// key's role are the key's own.
    pub fn with_api_key(&self, key: Secret) -> Shared {
        let mut settings = self.settings.clone();
        settings.registry_api_key = Some(key);
        Shared::new(settings, Arc::clone(&self.release_configs))
    }

    /// The GitHub client proposals open pull requests with, or what is missing for one.
    pub fn github(&self) -> &Result<GitHub, String> {
        self.github.get_or_init(|| {
            let settings = &self.settings;
            let token = settings.github_token.as_ref().ok_or_else(|| {
                "opening a pull request needs a GitHub token: set REGISTRY_GITHUB_TOKEN (or \
                 GITHUB_TOKEN); without one a proposal pushes its branch only"
                    .to_owned()
            })?;
            let repository = settings.github_repository.clone().ok_or_else(|| {
                "opening a pull request needs the GitHub repository: set \
                 REGISTRY_GITHUB_REPOSITORY=OWNER/NAME (REGISTRY_RELEASE_CONFIG_REPO is not a \
                 GitHub URL it can be read from)"
                    .to_owned()
            })?;
            GitHub::new(
                &settings.github_api_url,
                token,
                repository,
                settings.request_timeout,
            )
        })
    }

    /// The Registry Server client, or why it could not be built (a URL the client refuses).
    pub fn registry(&self) -> &Result<RegistryClient, String> {
        self.registry
            .get_or_init(|| crate::registry::build_client(&self.settings))
    }

    /// The API key's name and role (`GET /v1/auth/me`, asked once; after a failure again at
    /// most every 30 s), or `None` when it cannot be learned: no key, or the registry did not say.
    pub async fn key_role(&self) -> Option<(String, KeyRole)> {
        self.settings.registry_api_key.as_ref()?;
        let mut lookup = self.key_role.lock().await;
        match &*lookup {
            KeyRoleLookup::Known(name, role) => return Some((name.clone(), *role)),
            // Asked again once a registry answer would be stale.
            KeyRoleLookup::Failed(at) if at.elapsed() < self.settings.cache_ttl => return None,
            _ => {}
        }
        let client = self.registry().as_ref().ok()?;
        let answer = tokio::time::timeout(self.settings.request_timeout, client.me()).await;
        match answer {
            Ok(Ok(me)) => match KeyRole::parse(&me.role) {
                Some(role) => {
                    *lookup = KeyRoleLookup::Known(me.name.clone(), role);
                    drop(lookup);
                    self.tell_listed_sessions();
                    return Some((me.name, role));
                }
                None => tracing::warn!(role = %me.role, "unknown API key role: every tool listed"),
            },
            Ok(Err(error)) => tracing::warn!(%error, "API key role not learned: every tool listed"),
            Err(_) => tracing::warn!("API key role not learned in time: every tool listed"),
        }
        *lookup = KeyRoleLookup::Failed(Instant::now());
        None
    }

    /// Remembers a session that was listed every tool because the role was not known yet.
    pub fn listed_without_role(&self, peer: Peer<RoleServer>) {
        let mut peers = self
            .listed_without_role
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        peers.retain(|peer| !peer.is_transport_closed());
        if peers.len() < MAX_REMEMBERED_SESSIONS {
            peers.push(peer);
        }
    }

    /// Keeps a `subscriptions/listen` stream open until its client cancels it; it is told
    /// `tools/list_changed` when the key's role is learned.
    pub async fn listen(&self, subscription: SubscriptionContext) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((number, subscription.sink().clone()));
        subscription.cancelled().await;
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(n, _)| *n != number);
    }

    /// The role is known now: the sessions listed without it and the open listen streams get
    /// `tools/list_changed`.
    fn tell_listed_sessions(&self) {
        let sinks: Vec<SubscriptionSink> = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, sink)| sink.clone())
            .collect();
        for sink in sinks {
            tokio::spawn(async move {
                if let Err(error) = sink.notify_tool_list_changed().await {
                    tracing::debug!(%error, "tools/list_changed not delivered to a listen stream");
                }
            });
        }
        let peers = std::mem::take(
            &mut *self
                .listed_without_role
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for peer in peers {
            tokio::spawn(async move {
                if let Err(error) = peer.notify_tool_list_changed().await {
                    tracing::debug!(%error, "tools/list_changed not delivered");
                }
            });
        }
    }

    /// Whether the registry client has been built yet (start-up tests).
    #[cfg(test)]
    pub fn registry_built(&self) -> bool {
        self.registry.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    /// The registry client (TLS roots: milliseconds) is not built before it is needed, so that
    /// nothing slow happens before the `initialize` answer.
    #[test]
    fn the_registry_client_is_built_on_first_use() {
        let (_cli, settings) =
            Settings::parse_from(["model-registry-mcp", "--registry-api-key", "sk-test"])
                .unwrap_or_else(|e| panic!("{e:?}"));
        let surface = crate::server::Surface::new(crate::build_context(settings));
        assert!(!surface.listed_tools().is_empty());
        assert!(!surface.ctx().registry_built());
        assert!(surface.ctx().registry().is_ok());
        assert!(surface.ctx().registry_built());
    }
}
