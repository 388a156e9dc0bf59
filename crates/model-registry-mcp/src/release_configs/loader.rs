//! Reads the production branch of the release-config repository through `topology::repo` and
//! analyses it with one long-lived engine (which keeps its parse cache between revisions).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use topology::repo::{GitAuth, Repository, Snapshot};

use super::from_engine::{self, EngineSlot};
use super::state::{FleetLoader, LoadOutcome};
use super::view::FleetView;
use crate::config::{RepoLocation, Secret};

pub struct GitLoader {
    location: RepoLocation,
    branch: String,
    cache_dir: PathBuf,
    auth: GitAuth,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    repository: Option<Repository>,
    engine: EngineSlot,
    /// Commit of `previous` analysis, to skip re-analysing an unchanged branch.
    analysed_commit: Option<String>,
}

impl GitLoader {
    pub fn new(
        location: RepoLocation,
        branch: String,
        cache_dir: PathBuf,
        token: Option<&Secret>,
    ) -> GitLoader {
        let auth = token.map_or_else(GitAuth::anonymous, |token| {
            GitAuth::with_token(token.expose())
        });
        GitLoader {
            location,
            branch,
            cache_dir,
            auth,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn load_locked(&self, inner: &mut Inner, previous: Option<&Arc<FleetView>>) -> LoadOutcome {
        // The server keeps its own view of a revision; parsed trees kept for the next revision
        // would only raise its memory peak. Here, not in `new`: the call initialises libgit2
        // (and OpenSSL), which belongs to the first load in the background, not to start-up.
        topology::repo::set_object_cache(false);
        let mut fetch_error = None;
        let mut fetched_at = None;
        match &self.location {
            RepoLocation::Local(path) => {
                // A plain directory (no Git): analyse its files as they are.
                if !path.join(".git").exists() && Repository::open(path).is_err() {
                    let view = Snapshot::from_dir(path)
                        .map_err(|e| {
                            format!(
                                "cannot read release-config directory {}: {e}",
                                path.display()
                            )
                        })
                        .and_then(|snapshot| {
                            from_engine::analyze(&mut inner.engine, snapshot, None)
                        });
                    return LoadOutcome {
                        view: view.map(Arc::new),
                        fetched_at: Some(SystemTime::now()),
                        fetch_error,
                    };
                }
                if inner.repository.is_none() {
                    match Repository::open(path) {
                        Ok(repository) => inner.repository = Some(lean(repository)),
                        Err(e) => {
                            return failed(format!("cannot open release-config repository: {e}"));
                        }
                    }
                }
                fetched_at = Some(SystemTime::now());
            }
            RepoLocation::Remote(url) => {
                if inner.repository.is_none() {
                    match Repository::open_mirror(url, &self.cache_dir) {
                        Ok(repository) => inner.repository = Some(lean(repository)),
                        Err(e) => {
                            return failed(format!(
                                "cannot prepare the mirror of the release-config repository: {e}"
                            ));
                        }
                    }
                }
                if let Some(repository) = &inner.repository {
                    if let Err(e) = repository.fetch(&self.auth) {
                        fetch_error = Some(e.to_string());
                    }
                    fetched_at = repository.last_fetch_time();
                }
            }
        }
        let Some(repository) = &inner.repository else {
            return failed("the release-config repository is not open".to_owned());
        };
        let revision = match repository.resolve(&self.branch) {
            Ok(revision) => revision,
            Err(e) => {
                let reason = match &fetch_error {
                    Some(fetch) => format!(
                        "{fetch}; and no fetched copy of branch `{}` exists ({e})",
                        self.branch
                    ),
                    None => format!(
                        "branch `{}` of the release-config repository cannot be read: {e}",
                        self.branch
                    ),
                };
                return failed(reason);
            }
        };
        let commit = revision.id.to_string();
        if let Some(previous) = previous
            && inner.analysed_commit.as_deref() == Some(commit.as_str())
        {
            return LoadOutcome {
                view: Ok(Arc::clone(previous)),
                fetched_at,
                fetch_error,
            };
        }
        let view = repository
            .snapshot(&commit)
            .map_err(|e| {
                format!(
                    "cannot read commit {} of the release-config repository: {e}",
                    revision.short_id
                )
            })
            .and_then(|snapshot| {
                from_engine::analyze(&mut inner.engine, snapshot, Some(repository.git_dir()))
            });
        if view.is_ok() {
            inner.analysed_commit = Some(commit);
        }
        LoadOutcome {
            view: view.map(Arc::new),
            fetched_at,
            fetch_error,
        }
    }
}

/// A repository that keeps nothing between snapshots (see [`GitLoader::new`]).
fn lean(repository: Repository) -> Repository {
    repository.set_listing_cache(false);
    repository
}

fn failed(reason: String) -> LoadOutcome {
    LoadOutcome {
        view: Err(reason),
        fetched_at: None,
        fetch_error: None,
    }
}

impl FleetLoader for GitLoader {
    fn load(&self, previous: Option<&Arc<FleetView>>) -> LoadOutcome {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.load_locked(&mut inner, previous)
    }
}
