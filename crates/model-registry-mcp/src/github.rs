//! Pull requests on GitHub (or GitHub Enterprise) through octocrab: the open proposals of this
//! tool, and opening a new one. The token lives in octocrab's own secret type and never reaches
//! a message: errors name the request, the status and GitHub's message only.

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::models::pulls::PullRequest;

use crate::config::{GitHubRepository, Secret, redact_url};

/// A pull request, as proposals need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRef {
    pub number: u64,
    pub url: String,
    /// The head branch (`catapult/...`).
    pub head_ref: String,
    /// The commit the head branch holds.
    pub head_sha: String,
}

/// The pull requests of one repository.
pub struct GitHub {
    client: Octocrab,
    repository: GitHubRepository,
    /// The API base, for messages.
    api_url: String,
}

impl GitHub {
    pub fn new(
        api_url: &str,
        token: &Secret,
        repository: GitHubRepository,
        timeout: Duration,
    ) -> Result<GitHub, String> {
        // GitHub authenticates by the token: credentials in the URL are dropped before the HTTP
        // stack sees it (hyper's connection pool logs the authority at trace level).
        let base = secrets::without_userinfo(api_url);
        let builder = Octocrab::builder()
            .personal_token(token.expose().to_owned())
            .base_uri(base.as_str())
            .map_err(|e| {
                format!(
                    "REGISTRY_GITHUB_API_URL {:?} is not usable: {}",
                    redact_url(api_url),
                    secrets::redact_text(&e.to_string())
                )
            })?
            .set_connect_timeout(Some(timeout))
            .set_read_timeout(Some(timeout))
            .set_write_timeout(Some(timeout));
        let client = builder.build().map_err(|e| {
            format!(
                "cannot build the GitHub client for {}: {}",
                redact_url(api_url),
                secrets::redact_text(&e.to_string())
            )
        })?;
        Ok(GitHub {
            client,
            repository,
            // Only ever shown: without credentials.
            api_url: redact_url(api_url),
        })
    }

    /// Every open pull request of the repository whose head is a branch of this tool
    /// (`catapult/...`) in the repository itself (not a fork).
    pub async fn open_proposals(&self) -> Result<Vec<PullRef>, String> {
        let GitHubRepository { owner, name } = &self.repository;
        let what = format!("GET {}/repos/{owner}/{name}/pulls?state=open", self.api_url);
        let first = self
            .client
            .pulls(owner, name)
            .list()
            .state(octocrab::params::State::Open)
            .per_page(100u8)
            .send()
            .await
            .map_err(|e| describe(&what, &e))?;
        let all = self
            .client
            .all_pages(first)
            .await
            .map_err(|e| describe(&what, &e))?;
        let own_label = format!("{owner}:");
        Ok(all
            .iter()
            .filter(|pr| {
                pr.head
                    .ref_field
                    .starts_with(topology::proposal::BRANCH_PREFIX)
            })
            .filter(|pr| {
                pr.head
                    .label
                    .as_deref()
                    .is_none_or(|label| label.starts_with(&own_label))
            })
            .map(pull_ref)
            .collect())
    }

    /// Whether branch `head` had a pull request that was closed (or merged) and has no open
    /// one: its claims are then stale, however young.
    pub async fn was_closed(&self, head: &str) -> Result<bool, String> {
        let GitHubRepository { owner, name } = &self.repository;
        let what = format!(
            "GET {}/repos/{owner}/{name}/pulls?state=all&head={owner}:{head}",
            self.api_url
        );
        let page = self
            .client
            .pulls(owner, name)
            .list()
            .state(octocrab::params::State::All)
            .head(format!("{owner}:{head}"))
            .per_page(100u8)
            .send()
            .await
            .map_err(|e| describe(&what, &e))?;
        let mut closed = false;
        for pr in &page.items {
            if pr.head.ref_field != head {
                continue;
            }
            if pr.state == Some(octocrab::models::IssueState::Open) {
                return Ok(false);
            }
            closed = true;
        }
        Ok(closed)
    }

    /// Opens a pull request from `head` into `base`.
    pub async fn create(
        &self,
        title: &str,
        head: &str,
        base: &str,
        body: &str,
    ) -> Result<PullRef, CreateError> {
        let GitHubRepository { owner, name } = &self.repository;
        let what = format!("POST {}/repos/{owner}/{name}/pulls", self.api_url);
        match self
            .client
            .pulls(owner, name)
            .create(title, head, base)
            .body(body)
            .send()
            .await
        {
            Ok(pr) => Ok(pull_ref(&pr)),
            Err(e) if already_exists(&e) => Err(CreateError::AlreadyExists(describe(&what, &e))),
            Err(e) => Err(CreateError::Failed(describe(&what, &e))),
        }
    }
}

/// Why a pull request was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// GitHub's 422 "A pull request already exists": another agent opened
    /// the same proposal first.
    AlreadyExists(String),
    Failed(String),
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreateError::AlreadyExists(message) | CreateError::Failed(message) => {
                f.write_str(message)
            }
        }
    }
}

fn already_exists(error: &octocrab::Error) -> bool {
    let octocrab::Error::GitHub { source, .. } = error else {
        return false;
    };
    source.status_code.as_u16() == 422
        && source.errors.iter().flatten().any(|e| {
            e.get("message")
                .and_then(|m| m.as_str())
                .is_some_and(|m| m.contains("already exists"))
        })
}

fn pull_ref(pr: &PullRequest) -> PullRef {
    PullRef {
        number: pr.number,
        url: pr
            .html_url
            .as_ref()
            .map_or_else(|| pr.url.clone(), ToString::to_string),
        head_ref: pr.head.ref_field.clone(),
        head_sha: pr.head.sha.clone(),
    }
}

/// `GitHub answered <status> to <request>: <GitHub's message>` (octocrab's own `Display` of a
/// GitHub error is only the word "GitHub"); a failure to reach GitHub says so.
fn describe(what: &str, error: &octocrab::Error) -> String {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let mut text = format!("GitHub answered {status} to {what}: {}", source.message);
            let limited = source.message.to_ascii_lowercase().contains("rate limit");
            if limited || status == 429 {
                text.push_str(" (GitHub's rate limit: retry once it resets, within the hour)");
            } else if status == 401 {
                text.push_str(" (REGISTRY_GITHUB_TOKEN is missing, expired or revoked)");
            } else if status == 403 || status == 404 {
                text.push_str(
                    " (the token cannot reach this repository, or lacks `pull_requests: write`)",
                );
            }
            if let Some(errors) = &source.errors {
                let details: Vec<String> = errors
                    .iter()
                    .filter_map(|e| e.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                    .collect();
                if !details.is_empty() {
                    text.push_str(" (");
                    text.push_str(&details.join("; "));
                    text.push(')');
                }
            }
            text
        }
        other => format!(
            "GitHub could not be reached for {what}: {}",
            crate::registry::clip(&secrets::redact_text(&other.to_string()), 300)
        ),
    }
}
