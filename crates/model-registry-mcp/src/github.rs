//! Pull requests on GitHub (or GitHub Enterprise) through octocrab: the open proposals of this
//! tool, and opening a new one. The token lives in octocrab's own secret type and never reaches
//! a message: errors name the request, the status and GitHub's message only.

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::models::pulls::PullRequest;

use crate::config::{GitHubRepository, Secret};

/// A pull request, as proposals need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRef {
    pub number: u64,
    pub url: String,
    /// The head branch (`catapult/...`).
    pub head_ref: String,
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
        let builder = Octocrab::builder()
            .personal_token(token.expose().to_owned())
            .base_uri(api_url)
            .map_err(|e| format!("REGISTRY_GITHUB_API_URL {api_url:?} is not usable: {e}"))?
            .set_connect_timeout(Some(timeout))
            .set_read_timeout(Some(timeout))
            .set_write_timeout(Some(timeout));
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the GitHub client for {api_url}: {e}"))?;
        Ok(GitHub {
            client,
            repository,
            api_url: api_url.to_owned(),
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

    /// Opens a pull request from `head` into `base`.
    pub async fn create(
        &self,
        title: &str,
        head: &str,
        base: &str,
        body: &str,
    ) -> Result<PullRef, String> {
        let GitHubRepository { owner, name } = &self.repository;
        let what = format!("POST {}/repos/{owner}/{name}/pulls", self.api_url);
        let pr = self
            .client
            .pulls(owner, name)
            .create(title, head, base)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&what, &e))?;
        Ok(pull_ref(&pr))
    }
}

fn pull_ref(pr: &PullRequest) -> PullRef {
    PullRef {
        number: pr.number,
        url: pr
            .html_url
            .as_ref()
            .map_or_else(|| pr.url.clone(), ToString::to_string),
        head_ref: pr.head.ref_field.clone(),
    }
}

/// `what failed: status and GitHub's message` (octocrab's own `Display` of a GitHub error is
/// only the word "GitHub").
fn describe(what: &str, error: &octocrab::Error) -> String {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let mut text = format!(
                "{what} failed: {} {}",
                source.status_code.as_u16(),
                source.message
            );
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
            "{what} failed: {}",
            crate::registry::clip(&other.to_string(), 300)
        ),
    }
}
