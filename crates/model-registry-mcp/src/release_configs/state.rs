//! The release-config state service: one analysed revision of the production branch, refreshed
//! at most every `REGISTRY_CACHE_TTL_SECONDS`, the last known state served (marked stale, with the
//! reason) when the remote cannot be reached.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;
use topology::proposal::{ClaimRef, Plan, ProposalRequest};

use super::results::ResultCache;
use super::view::{FleetView, SourceInfo};

/// Produces analysed revisions. The real one reads Git through the topology engine
/// ([`super::loader::GitLoader`]); tests can substitute their own.
pub trait FleetLoader: Send + Sync + 'static {
    /// Brings the source up to date and analyses it. `previous` is the state being served, so an
    /// unchanged commit can be answered without analysis. Blocking: runs on a blocking thread.
    fn load(&self, previous: Option<&Arc<FleetView>>) -> LoadOutcome;

    /// Checks and renders a proposal against the newest production branch and the open
    /// proposals (section 6 steps 1-4). Blocking.
    fn prepare_proposal(
        &self,
        _request: &ProposalRequest,
        _pending: &Pending,
    ) -> Result<Prepared, String> {
        Err("this release-config source cannot make proposals".to_owned())
    }

    /// The live claims (an open proposal's, or a young one's), read from what the last fetch
    /// brought, without the network, each with its holder as messages name it.
    fn live_claims(&self, _pending: &Pending) -> Result<Vec<(ClaimRef, String)>, String> {
        Ok(Vec::new())
    }

    /// Commits a prepared proposal, takes its claims on the remote, and pushes its new branch
    /// (create-only). Blocking.
    fn publish_proposal(
        &self,
        _prepared: &Prepared,
        _message: &str,
        _closed: &[String],
    ) -> Result<Published, PublishError> {
        Err(PublishError::Failed(
            "this release-config source cannot make proposals".to_owned(),
        ))
    }
}

/// An open proposal (pull request) to count as allocated.
#[derive(Debug, Clone)]
pub struct PendingRef {
    /// How messages name it: `pull request #12 (https://...)`.
    pub label: String,
    /// Its head branch.
    pub head_ref: String,
    /// The commit GitHub says its head is.
    pub head_commit: String,
}

/// Where the open proposals come from.
#[derive(Debug, Clone)]
pub enum Pending {
    /// The open pull requests GitHub listed.
    PullRequests(Vec<PendingRef>),
    /// Without GitHub (branch-only mode): the remote's `catapult/*` branches not merged into the
    /// production branch.
    Branches,
}

/// A proposal that passed every check, and the production commit it is based on.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: ProposalRequest,
    pub plan: Plan,
    pub base_commit: String,
    pub base_short: String,
    /// The open proposals it was checked against (their claims are alive).
    pub open: Vec<PendingRef>,
    /// Branch-only mode: this very proposal's branch is already on the remote.
    pub branch_exists: bool,
}

/// Why a proposal was not published.
#[derive(Debug, Clone)]
pub enum PublishError {
    /// A claim is held by a proposal without an open pull request, alive only because it is
    /// young: if that branch's pull request was closed, publishing again with it in `closed`
    /// takes the claim over.
    HeldByYoung {
        message: String,
        branch: String,
    },
    Failed(String),
}

impl From<String> for PublishError {
    fn from(message: String) -> PublishError {
        PublishError::Failed(message)
    }
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::HeldByYoung { message, .. } | PublishError::Failed(message) => {
                f.write_str(message)
            }
        }
    }
}

/// What publishing did, beyond pushing the branch and taking its claims.
#[derive(Debug, Clone)]
pub struct Published {
    /// Stale claims (of closed or merged proposals) removed or taken over on the way.
    pub swept: Vec<String>,
}

/// What one load produced.
#[derive(Debug)]
pub struct LoadOutcome {
    /// The state to serve, or why there is none.
    pub view: Result<Arc<FleetView>, String>,
    /// When the source was last brought up to date (the last successful fetch of a remote).
    pub fetched_at: Option<SystemTime>,
    /// The fetch failed, but an older copy could be analysed: serve it marked stale.
    pub fetch_error: Option<String>,
}

/// A state and where it comes from; what every release-config answer is built on.
#[derive(Debug, Clone)]
pub struct Answer {
    pub view: Arc<FleetView>,
    pub source: SourceInfo,
}

struct Current {
    view: Arc<FleetView>,
    fetched_at: SystemTime,
    stale_reason: Option<String>,
}

#[derive(Default)]
struct Cache {
    current: Option<Current>,
    /// When the source was last asked; refreshes wait `ttl` after it.
    checked_at: Option<Instant>,
    /// Why the last load gave nothing, while there is no state at all.
    last_error: Option<String>,
    /// The load running now, and when it started: one at a time, and its result is used even
    /// when the call that started it has answered without it.
    in_flight: Option<(tokio::task::JoinHandle<LoadOutcome>, Instant)>,
}

/// With a state to serve, a call waits this long at most for a refresh; a remote that does not
/// answer then gets the last state, marked stale, at once rather than after the request timeout.
const REFRESH_WAIT: Duration = Duration::from_secs(2);

pub struct ReleaseConfigState {
    repository: Option<String>,
    branch: String,
    ttl: Duration,
    timeout: Duration,
    loader: Option<Arc<dyn FleetLoader>>,
    cache: Mutex<Cache>,
    /// Finished tool results for the state being served.
    pub results: ResultCache,
}

impl ReleaseConfigState {
    /// `repository` is what answers show as the source (a path or a redacted URL); `None` with
    /// `loader` `None` means no repository is configured.
    pub fn new(
        repository: Option<String>,
        branch: String,
        ttl: Duration,
        timeout: Duration,
        loader: Option<Arc<dyn FleetLoader>>,
    ) -> ReleaseConfigState {
        ReleaseConfigState {
            repository,
            branch,
            ttl,
            timeout,
            loader,
            cache: Mutex::new(Cache::default()),
            results: ResultCache::default(),
        }
    }

    /// Starts the first load in the background, so that start-up does not wait for a fetch; the
    /// first call then waits for it (it holds the cache lock).
    pub fn prefetch(self: &Arc<Self>) {
        if self.loader.is_none() {
            return;
        }
        let state = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = state.get().await {
                tracing::warn!(%error, "release-config repository not loaded");
            }
        });
    }

    /// How long the state served now stays the answer: until the next fetch (zero while a fetch
    /// is due or running).
    pub async fn until_next_fetch(&self) -> Duration {
        let cache = self.cache.lock().await;
        match (cache.checked_at, &cache.in_flight) {
            (Some(at), None) => self.ttl.saturating_sub(at.elapsed()),
            _ => Duration::ZERO,
        }
    }

    /// The current state, refreshed when older than the TTL. Err: no state can be served, with
    /// the reason (not configured, unreadable, branch missing).
    pub async fn get(&self) -> Result<Answer, String> {
        let Some(loader) = &self.loader else {
            return Err(
                "no release-config repository is configured: set REGISTRY_RELEASE_CONFIG_REPO \
                        (a Git URL or a local path) to see production deployments"
                    .to_owned(),
            );
        };
        let mut cache = self.cache.lock().await;
        let fresh = cache.checked_at.is_some_and(|at| at.elapsed() < self.ttl);
        if !fresh || cache.in_flight.is_some() {
            self.refresh(&mut cache, loader).await;
        }
        match &cache.current {
            Some(current) => {
                let mut answer = self.answer(current);
                if let Some((_, started)) = &cache.in_flight {
                    answer.source.stale = true;
                    answer.source.stale_reason = Some(format!(
                        "the release-config remote has not answered a fetch for {} s; this is the \
                         state of the last successful fetch",
                        started.elapsed().as_secs()
                    ));
                }
                Ok(answer)
            }
            None => Err(cache.last_error.clone().unwrap_or_else(|| {
                "the release-config repository has not been read yet".to_owned()
            })),
        }
    }

    /// Starts a load unless one is running, and waits for it: up to [`REFRESH_WAIT`] when there
    /// is a state to serve meanwhile, else up to the request timeout. A load that outlives the
    /// wait keeps running; the next call uses its result.
    async fn refresh(&self, cache: &mut Cache, loader: &Arc<dyn FleetLoader>) {
        if cache.in_flight.is_none() {
            let previous = cache
                .current
                .as_ref()
                .map(|current| Arc::clone(&current.view));
            let loader = Arc::clone(loader);
            let task = tokio::task::spawn_blocking(move || loader.load(previous.as_ref()));
            cache.in_flight = Some((task, Instant::now()));
        }
        let Some((task, started)) = cache.in_flight.as_mut() else {
            return;
        };
        let limit = if cache.current.is_some() {
            REFRESH_WAIT.min(self.timeout)
        } else {
            self.timeout
        };
        let left = limit
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let outcome = match tokio::time::timeout(left, &mut *task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join_error)) => LoadOutcome {
                view: Err(format!(
                    "reading the release-config repository failed: {join_error}"
                )),
                fetched_at: None,
                fetch_error: None,
            },
            Err(_) if cache.current.is_some() => return,
            Err(_) => LoadOutcome {
                view: Err(format!(
                    "reading the release-config repository has taken more than {} s \
                     (REGISTRY_REQUEST_TIMEOUT_SECONDS); it goes on in the background",
                    self.timeout.as_secs()
                )),
                fetched_at: None,
                fetch_error: None,
            },
        };
        if outcome.view.is_ok() || task.is_finished() {
            cache.in_flight = None;
        }
        cache.checked_at = Some(Instant::now());
        match outcome.view {
            Ok(view) => {
                let fetched_at = outcome.fetched_at.unwrap_or_else(SystemTime::now);
                if let Some(error) = &outcome.fetch_error {
                    tracing::warn!(%error, "release-config fetch failed; serving the last fetched state");
                }
                cache.current = Some(Current {
                    view,
                    fetched_at,
                    stale_reason: outcome.fetch_error,
                });
                cache.last_error = None;
            }
            Err(error) => match &mut cache.current {
                Some(current) => {
                    tracing::warn!(%error, "release-config refresh failed; serving the last known state");
                    current.stale_reason = Some(error);
                }
                None => {
                    tracing::warn!(%error, "release-config repository could not be read");
                    cache.last_error = Some(error);
                }
            },
        }
    }

    /// [`FleetLoader::prepare_proposal`] on a blocking thread, within the request timeout.
    pub async fn prepare_proposal(
        &self,
        request: ProposalRequest,
        pending: Pending,
    ) -> Result<Prepared, String> {
        let loader = self.proposal_loader()?;
        self.blocking(move || loader.prepare_proposal(&request, &pending))
            .await
    }

    /// [`FleetLoader::live_claims`] on a blocking thread, within the request timeout; none
    /// without a repository.
    pub async fn live_claims(&self, pending: Pending) -> Result<Vec<(ClaimRef, String)>, String> {
        let Some(loader) = self.loader.clone() else {
            return Ok(Vec::new());
        };
        self.blocking(move || loader.live_claims(&pending)).await
    }

    /// [`FleetLoader::publish_proposal`] on a blocking thread, within the request timeout.
    pub async fn publish_proposal(
        &self,
        prepared: Prepared,
        message: String,
        closed: Vec<String>,
    ) -> Result<Published, PublishError> {
        let loader = self.proposal_loader().map_err(PublishError::Failed)?;
        self.blocking(move || Ok(loader.publish_proposal(&prepared, &message, &closed)))
            .await
            .map_err(PublishError::Failed)?
    }

    fn proposal_loader(&self) -> Result<Arc<dyn FleetLoader>, String> {
        self.loader.clone().ok_or_else(|| {
            "no release-config repository is configured: set REGISTRY_RELEASE_CONFIG_REPO \
             to the Git URL of the repository proposals go to"
                .to_owned()
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, tokio::task::spawn_blocking(work)).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(format!("the proposal step failed: {join_error}")),
            Err(_) => Err(format!(
                "the proposal step timed out after {} s (REGISTRY_REQUEST_TIMEOUT_SECONDS); it \
                 may still finish in the background: make the same proposal again, which reuses \
                 its branch if it was pushed",
                self.timeout.as_secs()
            )),
        }
    }

    fn answer(&self, current: &Current) -> Answer {
        let view = Arc::clone(&current.view);
        let source = SourceInfo {
            repository: self.repository.clone().unwrap_or_default(),
            branch: self.branch.clone(),
            commit: view.revision.clone(),
            fetched_at: rfc3339(current.fetched_at),
            stale: current.stale_reason.is_some(),
            stale_reason: current.stale_reason.clone(),
            findings: view.counts,
        };
        Answer { view, source }
    }
}

pub fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339_secs(i64::try_from(secs).unwrap_or(i64::MAX))
}

pub fn rfc3339_secs(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Succeeds on the first load, then fails every fetch.
    struct FlakyRemote {
        loads: AtomicUsize,
    }

    impl FleetLoader for FlakyRemote {
        fn load(&self, previous: Option<&Arc<FleetView>>) -> LoadOutcome {
            let n = self.loads.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                LoadOutcome {
                    view: Ok(Arc::new(FleetView::default())),
                    fetched_at: None,
                    fetch_error: None,
                }
            } else {
                LoadOutcome {
                    view: previous.cloned().ok_or_else(|| "nothing".to_owned()),
                    fetched_at: None,
                    fetch_error: Some(
                        "cannot fetch https://example.invalid/repo.git: unreachable".to_owned(),
                    ),
                }
            }
        }
    }

    #[tokio::test]
    async fn serves_the_last_known_state_marked_stale_and_respects_the_ttl() {
        let loader = Arc::new(FlakyRemote {
            loads: AtomicUsize::new(0),
        });
        let state = ReleaseConfigState::new(
            Some("https://example.invalid/repo.git".to_owned()),
            "main".to_owned(),
            Duration::ZERO,
            Duration::from_secs(5),
            Some(loader.clone()),
        );
        let first = state.get().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!first.source.stale);
        let second = state.get().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(second.source.stale);
        assert!(
            second
                .source
                .stale_reason
                .as_deref()
                .is_some_and(|r| r.contains("unreachable"))
        );

        let cached = ReleaseConfigState::new(
            None,
            "main".to_owned(),
            Duration::from_secs(60),
            Duration::from_secs(5),
            Some(loader.clone()),
        );
        let before = loader.loads.load(Ordering::SeqCst);
        for _ in 0..5 {
            let _ = cached.get().await;
        }
        assert_eq!(
            loader.loads.load(Ordering::SeqCst),
            before + 1,
            "one load per TTL"
        );
    }

    #[tokio::test]
    async fn without_a_repository_the_answer_says_what_to_set() {
        let state = ReleaseConfigState::new(
            None,
            "main".to_owned(),
            Duration::ZERO,
            Duration::from_secs(1),
            None,
        );
        let error = state.get().await.err().unwrap_or_default();
        assert!(error.contains("REGISTRY_RELEASE_CONFIG_REPO"), "{error}");
    }
}
