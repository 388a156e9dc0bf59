//! A GitHub double for proposals and for the validator's action: the two pull-request endpoints
//! `model-registry-mcp` uses and the issue-comment endpoints the action's sticky comment uses, as
//! GitHub answers them (bearer token, `Link` paging, 201 on create, 422 for a head or base branch
//! that does not exist and for a head that already has an open pull request, GitHub's error
//! bodies). Branches are looked up in the real Git repository the pull requests are about. Its
//! contract test is `model-registry-mcp`'s `proposals::the_github_double_answers_as_github_does`,
//! through the server's own GitHub client; GitHub's API cannot be reached from here.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: String,
    pub open: bool,
}

struct Inner {
    token: String,
    owner: String,
    repo: String,
    /// The Git repository whose branches pull requests name.
    origin: PathBuf,
    /// Page size cap (GitHub's is 100; smaller in tests of paging).
    page_cap: usize,
    pulls: Vec<Pull>,
    /// Status of the next create (a GitHub outage), then back to normal.
    fail_next_create: Option<(u16, String)>,
    race_next_create: bool,
    comments: Vec<Comment>,
}

/// A comment on a pull request (GitHub keeps them as issue comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeGitHub {
    /// Serves on a free port of 127.0.0.1 for pull requests of `owner/repo`, whose branches
    /// are those of the Git repository at `origin`; only `token` is let in.
    pub async fn start(
        token: &str,
        owner: &str,
        repo: &str,
        origin: PathBuf,
    ) -> std::io::Result<FakeGitHub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let fake = FakeGitHub {
            url: format!("http://{address}"),
            inner: Arc::new(Mutex::new(Inner {
                token: token.to_owned(),
                owner: owner.to_owned(),
                repo: repo.to_owned(),
                origin,
                page_cap: 100,
                pulls: Vec::new(),
                fail_next_create: None,
                race_next_create: false,
                comments: Vec::new(),
            })),
        };
        let app = axum::Router::new()
            .route("/repos/{owner}/{repo}/pulls", get(list).post(create))
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(list_comments).post(create_comment),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments/{id}",
                axum::routing::patch(update_comment),
            )
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(fake)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.lock().pulls.clone()
    }

    pub fn comments(&self) -> Vec<Comment> {
        self.lock().comments.clone()
    }

    /// A pull request opened by someone else (no branch check: the test made its refs).
    pub fn open_pull(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut inner = self.lock();
        let number = inner.pulls.len() as u64 + 1;
        inner.pulls.push(Pull {
            number,
            title: title.to_owned(),
            head: head.to_owned(),
            base: base.to_owned(),
            body: String::new(),
            open: true,
        });
        number
    }

    pub fn set_page_cap(&self, cap: usize) {
        self.lock().page_cap = cap.max(1);
    }

    pub fn fail_next_create(&self, status: u16) {
        self.fail_next_create_with(status, "Server Error");
    }

    /// The next create answers `status` with GitHub's error body carrying `message`
    /// (GitHub's own words, e.g. "API rate limit exceeded for installation ID 1.").
    pub fn fail_next_create_with(&self, status: u16, message: &str) {
        self.lock().fail_next_create = Some((status, message.to_owned()));
    }

    /// Another agent wins the race: just before the next create, a pull
    /// request for the same head is opened, so GitHub answers that create
    /// with its 422 "A pull request already exists".
    pub fn race_next_create(&self) {
        self.lock().race_next_create = true;
    }

    pub fn close(&self, number: u64) {
        for pull in &mut self.lock().pulls {
            if pull.number == number {
                pull.open = false;
            }
        }
    }

    fn pull_json(&self, inner: &Inner, pull: &Pull) -> Value {
        let sha = branch_sha(&inner.origin, &pull.head).unwrap_or_default();
        let base_sha = branch_sha(&inner.origin, &pull.base).unwrap_or_default();
        json!({
            "id": 1000 + pull.number,
            "number": pull.number,
            "url": format!("{}/repos/{}/{}/pulls/{}", self.url, inner.owner, inner.repo, pull.number),
            "html_url": format!("{}/{}/{}/pull/{}", self.url, inner.owner, inner.repo, pull.number),
            "state": if pull.open { "open" } else { "closed" },
            "title": pull.title,
            "body": pull.body,
            "head": {"label": format!("{}:{}", inner.owner, pull.head), "ref": pull.head, "sha": sha},
            "base": {"label": format!("{}:{}", inner.owner, pull.base), "ref": pull.base, "sha": base_sha},
        })
    }
}

fn branch_sha(origin: &std::path::Path, branch: &str) -> Option<String> {
    let repository = topology::repo::Repository::open(origin).ok()?;
    let revision = repository.resolve(&format!("refs/heads/{branch}")).ok()?;
    Some(revision.id.to_string())
}

fn github_error(status: StatusCode, message: &str, errors: Option<Value>) -> Response {
    let mut body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest/pulls/pulls",
        "status": status.as_u16().to_string(),
    });
    if let Some(errors) = errors {
        body["errors"] = errors;
    }
    (status, Json(body)).into_response()
}

/// GitHub's checks before any endpoint: the bearer token, then the repository.
fn check(inner: &Inner, headers: &HeaderMap, owner: &str, repo: &str) -> Option<Response> {
    let expected = format!("Bearer {}", inner.token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return Some(github_error(
            StatusCode::UNAUTHORIZED,
            "Bad credentials",
            None,
        ));
    }
    if owner != inner.owner || repo != inner.repo {
        return Some(github_error(StatusCode::NOT_FOUND, "Not Found", None));
    }
    None
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    /// GitHub's `head=owner:branch` filter.
    head: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

async fn list(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let inner = fake.lock();
    if let Some(refused) = check(&inner, &headers, &owner, &repo) {
        return refused;
    }
    let state = query.state.unwrap_or_else(|| "open".to_owned());
    let matching: Vec<&Pull> = inner
        .pulls
        .iter()
        .filter(|p| match state.as_str() {
            "open" => p.open,
            "closed" => !p.open,
            _ => true,
        })
        .filter(|p| {
            query
                .head
                .as_deref()
                .is_none_or(|head| head == format!("{}:{}", inner.owner, p.head))
        })
        .collect();
    let per_page = query.per_page.unwrap_or(30).clamp(1, inner.page_cap);
    let page = query.page.unwrap_or(1).max(1);
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| fake.pull_json(&inner, p))
        .collect();
    let mut response = Json(Value::Array(items)).into_response();
    if page * per_page < matching.len() {
        let next = format!(
            "<{}/repos/{owner}/{repo}/pulls?state={state}&per_page={per_page}&page={}>; rel=\"next\"",
            fake.url,
            page + 1
        );
        if let Ok(value) = HeaderValue::from_str(&next) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

#[derive(Deserialize)]
struct CreateBody {
    title: String,
    head: String,
    base: String,
    body: Option<String>,
}

async fn create(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(request): Json<CreateBody>,
) -> Response {
    let mut inner = fake.lock();
    if let Some(refused) = check(&inner, &headers, &owner, &repo) {
        return refused;
    }
    if std::mem::take(&mut inner.race_next_create) {
        let number = inner.pulls.len() as u64 + 1;
        inner.pulls.push(Pull {
            number,
            title: format!("{} (the other agent's)", request.title),
            head: request.head.clone(),
            base: request.base.clone(),
            body: String::new(),
            open: true,
        });
    }
    if let Some((status, message)) = inner.fail_next_create.take() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        return github_error(status, &message, None);
    }
    let invalid = |field: &str| {
        github_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            Some(json!([{"resource": "PullRequest", "field": field, "code": "invalid"}])),
        )
    };
    if branch_sha(&inner.origin, &request.head).is_none() {
        return invalid("head");
    }
    if branch_sha(&inner.origin, &request.base).is_none() {
        return invalid("base");
    }
    if inner.pulls.iter().any(|p| p.open && p.head == request.head) {
        let message = format!(
            "A pull request already exists for {}:{}.",
            inner.owner, request.head
        );
        return github_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            Some(json!([{"resource": "PullRequest", "code": "custom", "message": message}])),
        );
    }
    let pull = Pull {
        number: inner.pulls.len() as u64 + 1,
        title: request.title,
        head: request.head,
        base: request.base,
        body: request.body.unwrap_or_default(),
        open: true,
    };
    let body = fake.pull_json(&inner, &pull);
    inner.pulls.push(pull);
    (StatusCode::CREATED, Json(body)).into_response()
}

fn comment_json(fake: &FakeGitHub, inner: &Inner, comment: &Comment) -> Value {
    json!({
        "id": comment.id,
        "url": format!("{}/repos/{}/{}/issues/comments/{}", fake.url, inner.owner, inner.repo, comment.id),
        "issue_url": format!("{}/repos/{}/{}/issues/{}", fake.url, inner.owner, inner.repo, comment.issue),
        "body": comment.body,
        "user": {"login": "github-actions[bot]", "type": "Bot"},
    })
}

/// [`check`], then that pull request `number` exists (404 as GitHub answers otherwise).
fn check_pull(
    inner: &Inner,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    number: u64,
) -> Option<Response> {
    check(inner, headers, owner, repo).or_else(|| {
        (!inner.pulls.iter().any(|p| p.number == number))
            .then(|| github_error(StatusCode::NOT_FOUND, "Not Found", None))
    })
}

#[derive(Deserialize)]
struct CommentBody {
    body: String,
}

#[derive(Deserialize)]
struct PageQuery {
    per_page: Option<usize>,
    page: Option<usize>,
}

async fn list_comments(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let inner = fake.lock();
    if let Some(refused) = check_pull(&inner, &headers, &owner, &repo, number) {
        return refused;
    }
    let per_page = query.per_page.unwrap_or(30).clamp(1, inner.page_cap);
    let page = query.page.unwrap_or(1).max(1);
    let items: Vec<Value> = inner
        .comments
        .iter()
        .filter(|c| c.issue == number)
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|c| comment_json(&fake, &inner, c))
        .collect();
    Json(Value::Array(items)).into_response()
}

async fn create_comment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(request): Json<CommentBody>,
) -> Response {
    let mut inner = fake.lock();
    if let Some(refused) = check_pull(&inner, &headers, &owner, &repo, number) {
        return refused;
    }
    let comment = Comment {
        id: 5000 + inner.comments.len() as u64,
        issue: number,
        body: request.body,
    };
    let body = comment_json(&fake, &inner, &comment);
    inner.comments.push(comment);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn update_comment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(request): Json<CommentBody>,
) -> Response {
    let mut inner = fake.lock();
    if let Some(refused) = check(&inner, &headers, &owner, &repo) {
        return refused;
    }
    let Some(index) = inner.comments.iter().position(|c| c.id == id) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found", None);
    };
    inner.comments[index].body = request.body;
    let body = comment_json(&fake, &inner, &inner.comments[index]);
    Json(body).into_response()
}
