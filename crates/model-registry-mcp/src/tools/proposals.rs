//! `propose_release_config`: a production change (add, replace or remove one deployment) as a
//! pull request for human review (spec section 6). Checks and renders through the engine, counts
//! open proposals as allocated, pushes a new branch (never main, never forced) and opens the pull
//! request. The same proposal made twice answers the open pull request instead of making a
//! second one.

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use topology::proposal::{Previous, ProposalAction, ProposalRequest, check_request};

use super::{Render, ToolError, ToolSpec, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::config::{GitHubRepository, RepoLocation};
use crate::context::Ctx;
use crate::github::{CreateError, PullRef};
use crate::release_configs::from_engine::finding_view;
use crate::release_configs::state::{Pending, PendingRef, Prepared, PublishError};
use crate::release_configs::view::FindingView;

/// GitHub refuses pull request bodies longer than this.
const MAX_BODY_CHARS: usize = 60_000;

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[entry(
    "propose_release_config",
    Toolset::ReleaseConfigs,
    ToolClass::Write,
)];

pub fn tools() -> Vec<ToolSpec> {
    vec![tool(
        "propose_release_config",
        "Propose a production change (pull request)",
        "PRODUCTION change as a pull request for human review. action (default add): add \
         (free port), replace (that port's deployment; may reuse its GPUs), remove (machine, \
         port, description only). Validates; refuses taken ports, held GPUs, TP misfits, \
         open-proposal clashes. dry_run first.",
        propose_release_config,
    )]
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeReleaseConfigParams {
    #[serde(default)]
    #[schemars(extend("enum" = ["add", "replace", "remove"]))]
    pub action: Option<String>,
    pub machine: String,
    pub port: u16,
    /// See list_docker_templates.
    #[serde(default)]
    pub template_name: Option<String>,
    #[serde(default)]
    pub model_name: Option<String>,
    #[serde(default)]
    pub model_path: Option<String>,
    /// One host GPU index per TP rank; left out: the best free set.
    #[serde(default)]
    pub gpu_ids: Option<Vec<u32>>,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub tensor_parallel: Option<u32>,
    /// The pull request's text.
    pub description: String,
    /// Check and render only.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProposeReleaseConfigOutput {
    /// `dry_run`, `pending_review`, `branch_pushed` (no GitHub).
    pub status: String,
    pub action: String,
    pub pr_url: Option<String>,
    pub pr_number: Option<u64>,
    pub branch: String,
    /// Already open: no second pull request.
    pub existing: bool,
    pub compose_path: String,
    pub compose_file: String,
    pub findings: Vec<FindingView>,
    /// `before`, `after`: a line per GPU.
    pub gpu_map: GpuMap,
    // Empty for a plain directory (no commit); not described, to keep tools/list small.
    pub base_commit: String,
    pub warnings: Vec<String>,
    // With gpu_ids left out: the set taken and why. Not described (tools/list size).
    pub gpus_chosen: Option<String>,
    // Branch-only mode (no GitHub): where to open the pull request, and what to do. Not
    // described, to keep tools/list small; the text says it all.
    pub compare_url: Option<String>,
    pub next_step: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GpuMap {
    pub before: Vec<String>,
    pub after: Vec<String>,
}

async fn propose_release_config(
    ctx: Ctx,
    params: ProposeReleaseConfigParams,
) -> Result<ProposeReleaseConfigOutput, ToolError> {
    let dry_run = params.dry_run.unwrap_or(false);
    let request = request_of(params)?;
    check_request(&request).map_err(|e| ToolError(e.to_string()))?;

    let mut warnings = Vec::new();
    // Open proposals count as allocated. With GitHub they are its open pull requests; without it
    // (no token or repository: branch-only mode), the remote's unmerged `catapult/*` branches.
    let github = match ctx.github() {
        Ok(github) => Some(github),
        Err(error) => {
            tracing::debug!(%error, "branch-only mode");
            None
        }
    };
    let open: Vec<PullRef> = match github {
        Some(github) => match github.open_proposals().await {
            Ok(open) => open,
            Err(error) if dry_run => {
                warnings.push(format!("open pull requests were not checked: {error}"));
                Vec::new()
            }
            Err(error) => {
                return Err(ToolError(format!(
                    "cannot list the open proposals, so their allocations cannot be counted; \
                     nothing was proposed: {error}"
                )));
            }
        },
        None => Vec::new(),
    };
    let pending = match github {
        Some(_) => pending_of(&open),
        None => Pending::Branches,
    };
    let prepared = ctx
        .release_configs
        .prepare_proposal(request.clone(), pending)
        .await
        .map_err(ToolError)?;
    let branch_only = github.is_none();
    let status = if branch_only {
        "branch_pushed"
    } else {
        "pending_review"
    };
    let existing = open
        .iter()
        .find(|pr| pr.head_ref == prepared.plan.branch)
        .cloned();
    if dry_run {
        let mut output = output(&prepared, "dry_run", None, warnings);
        if let Some(pr) = existing {
            output.warnings.push(format!(
                "this exact proposal is already open as pull request #{} ({})",
                pr.number, pr.url
            ));
        } else if prepared.branch_exists {
            output.warnings.push(format!(
                "this exact proposal is already pushed as branch `{}`",
                prepared.plan.branch
            ));
        }
        if let Err(error) = ctx.github() {
            output.warnings.push(format!(
                "no pull request can be opened ({error}); a real proposal pushes its branch only"
            ));
        }
        return Ok(output);
    }
    if let Some(pr) = existing {
        let mut output = output(&prepared, status, Some(&pr), warnings);
        output.existing = true;
        return Ok(output);
    }
    let existed = prepared.branch_exists;
    // A claim held by a young proposal without an open pull request is alive, unless its pull
    // request was closed: GitHub says, and the claim is then taken over.
    let mut closed: Vec<String> = Vec::new();
    let published = loop {
        let attempt = ctx
            .release_configs
            .publish_proposal(prepared.clone(), commit_message(&prepared), closed.clone())
            .await;
        match attempt {
            Ok(published) => break published,
            Err(PublishError::HeldByYoung { message, branch })
                if github.is_some() && !closed.contains(&branch) && closed.len() < 8 =>
            {
                let was_closed = match github {
                    Some(github) => github.was_closed(&branch).await.map_err(|e| {
                        ToolError(format!(
                            "nothing was proposed: {message}; and asking GitHub whether its pull \
                             request was closed failed: {e}"
                        ))
                    })?,
                    None => false,
                };
                if !was_closed {
                    return Err(ToolError(format!("nothing was proposed: {message}")));
                }
                closed.push(branch);
            }
            Err(error) => return Err(ToolError(format!("nothing was proposed: {error}"))),
        }
    };
    if !published.swept.is_empty() {
        tracing::info!(claims = ?published.swept, "stale claims of closed or merged proposals removed");
    }
    let branch = &prepared.plan.branch;
    let Some(github) = github else {
        let mut output = output(&prepared, status, None, warnings);
        output.existing = existed;
        let reason = ctx.github().as_ref().err().cloned().unwrap_or_default();
        output.compare_url = compare_url(&ctx, branch);
        output.next_step = Some(match &output.compare_url {
            Some(url) => format!(
                "No pull request was opened ({reason}). The branch `{branch}` is on the remote: \
                 open the pull request at {url}"
            ),
            None => format!(
                "No pull request was opened ({reason}). The branch `{branch}` is on the remote: \
                 open a pull request (merge request) from it into `{}` on your forge",
                ctx.settings.release_config_branch
            ),
        });
        return Ok(output);
    };
    let created = github
        .create(
            &title(&prepared),
            branch,
            &ctx.settings.release_config_branch,
            &body(&prepared),
        )
        .await;
    match created {
        Ok(pr) => Ok(output(&prepared, status, Some(&pr), warnings)),
        // Another agent made the same proposal at the same moment and opened
        // it first: that pull request is this proposal's.
        Err(CreateError::AlreadyExists(error)) => {
            let open = github.open_proposals().await.map_err(|e| {
                ToolError(format!(
                    "{error}; and listing the open pull requests to find it failed: {e}"
                ))
            })?;
            let pr = open
                .into_iter()
                .find(|pr| pr.head_ref == *branch)
                .ok_or_else(|| {
                    ToolError(format!(
                        "{error}; but no open pull request has head `{branch}`"
                    ))
                })?;
            let mut output = output(&prepared, status, Some(&pr), warnings);
            output.existing = true;
            Ok(output)
        }
        Err(CreateError::Failed(error)) => {
            let remote = ctx.settings.release_config_repo.as_ref().map_or_else(
                || "the release-config remote".to_owned(),
                RepoLocation::display,
            );
            Err(ToolError(format!(
                "{error}. The branch `{branch}` was pushed to {remote} and is left there, with \
                 its claims on the GPUs and port: make the same proposal again to retry (the \
                 branch is reused), or remove it from a clone of that remote with \
                 `git push origin --delete {branch}`"
            )))
        }
    }
}

/// The open pull requests as the allocations they hold, named as refusals name them.
pub(crate) fn pending_of(open: &[PullRef]) -> Pending {
    Pending::PullRequests(
        open.iter()
            .map(|pr| PendingRef {
                label: format!("pull request #{} ({})", pr.number, pr.url),
                head_ref: pr.head_ref.clone(),
                head_commit: pr.head_sha.clone(),
            })
            .collect(),
    )
}

/// The engine's request: the fields the action needs, all of them, and none it ignores.
fn request_of(params: ProposeReleaseConfigParams) -> Result<ProposalRequest, ToolError> {
    let action = match params.action.as_deref() {
        None => ProposalAction::Add,
        Some(text) => ProposalAction::parse(text).ok_or_else(|| {
            ToolError(format!(
                "invalid proposal: action `{}` is none of add, replace, remove",
                one_line(text, 40)
            ))
        })?,
    };
    // (field, given, needed by an add or replace): without `gpu_ids` the planner chooses.
    let given = [
        ("template_name", params.template_name.is_some(), true),
        ("model_name", params.model_name.is_some(), true),
        ("model_path", params.model_path.is_some(), true),
        ("gpu_ids", params.gpu_ids.is_some(), false),
        ("tensor_parallel", params.tensor_parallel.is_some(), true),
    ];
    let (wrong, what): (Vec<&str>, &str) = match action {
        ProposalAction::Remove => (
            given
                .iter()
                .filter(|(_, is, _)| *is)
                .map(|(name, _, _)| *name)
                .collect(),
            "takes only machine, port and description; leave out",
        ),
        ProposalAction::Add | ProposalAction::Replace => (
            given
                .iter()
                .filter(|(_, is, needed)| !*is && *needed)
                .map(|(name, _, _)| *name)
                .collect(),
            "needs",
        ),
    };
    if !wrong.is_empty() {
        return Err(ToolError(format!(
            "invalid proposal: action `{}` {what} {}",
            action.as_str(),
            wrong.join(", ")
        )));
    }
    Ok(ProposalRequest {
        action,
        machine: params.machine,
        port: params.port,
        template_name: params.template_name.unwrap_or_default(),
        model_name: params.model_name.unwrap_or_default(),
        model_path: params.model_path.unwrap_or_default(),
        gpu_ids: params.gpu_ids.unwrap_or_default(),
        tensor_parallel: params.tensor_parallel.unwrap_or_default(),
        description: params.description,
    })
}

/// Where a human opens the pull request of a branch-only proposal: GitHub's compare page, for a
/// remote on github.com or on the configured GitHub host.
fn compare_url(ctx: &Ctx, branch: &str) -> Option<String> {
    let Some(RepoLocation::Remote(url)) = &ctx.settings.release_config_repo else {
        return None;
    };
    let repository = GitHubRepository::from_git_url(url)?;
    let host = GitHubRepository::url_host(url)?;
    let api_host = GitHubRepository::url_host(&ctx.settings.github_api_url);
    let github_like = host == "github.com"
        || api_host.is_some_and(|api| api == host || api == format!("api.{host}"));
    github_like.then(|| {
        format!(
            "https://{host}/{}/{}/compare/{}...{branch}?expand=1",
            repository.owner, repository.name, ctx.settings.release_config_branch
        )
    })
}

fn output(
    prepared: &Prepared,
    status: &str,
    pr: Option<&PullRef>,
    warnings: Vec<String>,
) -> ProposeReleaseConfigOutput {
    let plan = &prepared.plan;
    let mut warnings = warnings;
    if let (ProposalAction::Remove, Some(previous)) = (plan.action, &plan.previous)
        && previous.other_copies.is_empty()
    {
        warnings.push(last_copy_warning(previous));
    }
    ProposeReleaseConfigOutput {
        status: status.to_owned(),
        action: plan.action.as_str().to_owned(),
        pr_url: pr.map(|pr| pr.url.clone()),
        pr_number: pr.map(|pr| pr.number),
        branch: plan.branch.clone(),
        existing: false,
        compose_path: plan.compose_path.clone(),
        compose_file: plan.rendered.clone(),
        findings: plan.findings.iter().map(finding_view).collect(),
        gpu_map: GpuMap {
            before: plan.gpu_map_before.clone(),
            after: plan.gpu_map_after.clone(),
        },
        base_commit: prepared.base_commit.clone(),
        warnings,
        gpus_chosen: plan.chosen.as_ref().map(|chosen| {
            let gpus: Vec<String> = chosen.gpus.iter().map(u32::to_string).collect();
            format!(
                "GPUs {} (gpu_ids left out: the best free set): {}",
                gpus.join(", "),
                chosen.reasons.join("; ")
            )
        }),
        compare_url: None,
        next_step: None,
    }
}

/// One line of text: control characters (a model name may hold a newline) become spaces.
fn one_line(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    line.trim().to_owned()
}

fn gpus(request: &ProposalRequest) -> String {
    let ids: Vec<String> = request.gpu_ids.iter().map(u32::to_string).collect();
    ids.join(",")
}

/// The replaced or removed deployment's model, as one line.
fn previous_model(prepared: &Prepared) -> String {
    prepared
        .plan
        .previous
        .as_ref()
        .and_then(|p| p.model.as_deref())
        .map_or_else(|| "the deployment".to_owned(), |m| one_line(m, 120))
}

fn last_copy_warning(previous: &Previous) -> String {
    format!(
        "this is the last deployment of `{}` in the fleet: once merged, nothing serves it",
        previous
            .model
            .as_deref()
            .map_or_else(String::new, |m| one_line(m, 200))
    )
}

fn title(prepared: &Prepared) -> String {
    let request = &prepared.request;
    match request.action {
        ProposalAction::Add => format!(
            "Deploy {} on {}:{} (TP {})",
            one_line(&request.model_name, 120),
            request.machine,
            request.port,
            request.tensor_parallel
        ),
        ProposalAction::Replace => format!(
            "Replace {} on {}:{} with {} (TP {})",
            previous_model(prepared),
            request.machine,
            request.port,
            one_line(&request.model_name, 120),
            request.tensor_parallel
        ),
        ProposalAction::Remove => format!(
            "Remove {} from {}:{}",
            previous_model(prepared),
            request.machine,
            request.port
        ),
    }
}

fn commit_message(prepared: &Prepared) -> String {
    let request = &prepared.request;
    let on = match request.action {
        ProposalAction::Remove => String::new(),
        ProposalAction::Add | ProposalAction::Replace => format!(" on GPUs {}", gpus(request)),
    };
    format!(
        "{}{on}\n\n{}\n\nProposed with model-registry-mcp (propose_release_config).\n",
        title(prepared),
        request.description.trim()
    )
}

/// The pull request's text: the description, what changes (the rendered file, or the compose
/// file's diff, or what stops serving), the validation summary, the findings that appear and
/// disappear, and the machine's GPU map before and after.
fn body(prepared: &Prepared) -> String {
    let request = &prepared.request;
    let plan = &prepared.plan;
    let mut body = String::new();
    let _ = writeln!(body, "{}\n", request.description.trim());
    let based = format!(
        "based on `{}` at {}",
        prepared.base_short, prepared.base_commit
    );
    let rendering = |body: &mut String| {
        let _ = write!(
            body,
            "`{}` from `{}`, tensor parallel {} on GPUs {}, template `{}` ({})",
            one_line(&request.model_name, 200),
            one_line(&request.model_path, 300),
            request.tensor_parallel,
            gpus(request),
            request.template_name,
            plan.template_origin,
        );
        if let Some(chosen) = &plan.chosen {
            // Reviewers see why these GPUs: the planner chose them (`gpu_ids` was left out).
            let _ = write!(
                body,
                " (GPUs chosen as the best free set: {})",
                chosen.reasons.join("; ")
            );
        }
    };
    match (plan.action, &plan.previous) {
        (ProposalAction::Remove, Some(previous)) => {
            let _ = writeln!(
                body,
                "## What stops serving\n\n`{}:{}` stops serving `{}` (GPUs {}), {based}. The \
                 GPUs and the port are free once this is merged, not before.\n",
                request.machine,
                request.port,
                previous_model(prepared),
                previous.gpus.join(","),
            );
            if previous.other_copies.is_empty() {
                let _ = writeln!(body, "> **Warning:** {}.\n", last_copy_warning(previous));
            } else {
                let copies: Vec<String> = previous
                    .other_copies
                    .iter()
                    .map(|id| format!("`{id}`"))
                    .collect();
                let _ = writeln!(body, "Still served by {}.\n", copies.join(", "));
            }
            let _ = writeln!(
                body,
                "Deleted with `machines/{}/{}/`:\n",
                request.machine, request.port
            );
            for file in &previous.files {
                let _ = writeln!(body, "- `{file}`");
            }
            let _ = writeln!(body);
        }
        (ProposalAction::Replace, Some(previous)) => {
            let _ = write!(
                body,
                "## Proposed replacement\n\n`{}:{}`: `{}` (GPUs {}) becomes ",
                request.machine,
                request.port,
                previous_model(prepared),
                previous.gpus.join(","),
            );
            rendering(&mut body);
            let _ = writeln!(body, ", {based}.\n");
            let kept: Vec<String> = previous
                .files
                .iter()
                .filter(|f| **f != plan.compose_path)
                .map(|f| format!("`{f}`"))
                .collect();
            if !kept.is_empty() {
                let _ = writeln!(body, "Kept as they are: {}.\n", kept.join(", "));
            }
            let diff =
                topology::repo::unified_diff(&plan.compose_path, &previous.compose, &plan.rendered)
                    .unwrap_or_else(|e| format!("(no diff: {e})\n"));
            let _ = writeln!(body, "## `{}`\n\n```diff\n{diff}```\n", plan.compose_path);
        }
        _ => {
            let _ = write!(
                body,
                "## Proposed deployment\n\n`{}:{}`: ",
                request.machine, request.port
            );
            rendering(&mut body);
            let _ = writeln!(body, ", {based}.\n");
            let _ = writeln!(
                body,
                "## `{}`\n\n```yaml\n{}```\n",
                plan.compose_path, plan.rendered
            );
        }
    }
    let _ = writeln!(body, "## Validation\n");
    if plan.action != ProposalAction::Remove {
        if plan.findings.is_empty() {
            let _ = writeln!(body, "No findings name this deployment.\n");
        } else {
            findings(&mut body, "Findings that name it", &plan.findings);
        }
    }
    if plan.appeared.is_empty() && plan.resolved.is_empty() {
        let _ = writeln!(
            body,
            "No finding on `{}` appears or disappears.\n",
            request.machine
        );
    } else {
        findings(&mut body, "Findings that appear", &plan.appeared);
        findings(&mut body, "Findings that disappear", &plan.resolved);
    }
    if plan.preexisting_errors > 0 {
        let _ = writeln!(
            body,
            "{} error(s) in the tree were already on the base branch.\n",
            plan.preexisting_errors
        );
    }
    let _ = writeln!(
        body,
        "## GPU map of `{}`\n\n| before | after |\n|---|---|",
        request.machine
    );
    let rows = plan.gpu_map_before.len().max(plan.gpu_map_after.len());
    for row in 0..rows {
        let cell = |lines: &[String]| lines.get(row).cloned().unwrap_or_default();
        let _ = writeln!(
            body,
            "| {} | {} |",
            cell(&plan.gpu_map_before),
            cell(&plan.gpu_map_after)
        );
    }
    let _ = writeln!(
        body,
        "\n_Opened by model-registry-mcp. Merging this pull request changes production; review it._"
    );
    if body.chars().count() > MAX_BODY_CHARS {
        body = body.chars().take(MAX_BODY_CHARS).collect();
        body.push_str("\n\n(cut: the full change is in the branch)\n");
    }
    body
}

/// `heading:` and one line per finding; nothing when there is none.
fn findings(body: &mut String, heading: &str, findings: &[topology::Finding]) {
    if findings.is_empty() {
        return;
    }
    let _ = writeln!(body, "{heading}:\n");
    for finding in findings {
        let _ = writeln!(
            body,
            "- {} {} at `{}`: {}",
            finding.severity.as_str(),
            finding.rule,
            finding.location,
            one_line(&finding.message, 500)
        );
    }
    let _ = writeln!(body);
}

impl Render for ProposeReleaseConfigOutput {
    fn render(&self) -> String {
        let mut text = match (&self.pr_url, self.existing) {
            (Some(url), true) => format!(
                "already proposed: pull request #{} {url} (pending review)\n",
                self.pr_number.unwrap_or_default()
            ),
            (Some(url), false) => format!(
                "pull request #{} opened for review: {url}\n",
                self.pr_number.unwrap_or_default()
            ),
            (None, _) if self.status == "branch_pushed" => format!(
                "branch {} pushed; no pull request was opened\n",
                self.branch
            ),
            (None, _) => "dry run: nothing was pushed\n".to_owned(),
        };
        if let Some(next) = &self.next_step {
            let _ = writeln!(text, "{next}");
        }
        let base = if self.base_commit.is_empty() {
            "the working directory"
        } else {
            self.base_commit.as_str()
        };
        let _ = writeln!(text, "branch {} (base {base})", self.branch);
        if let Some(chosen) = &self.gpus_chosen {
            let _ = writeln!(text, "{chosen}");
        }
        for finding in &self.findings {
            let _ = writeln!(
                text,
                "{} {} {}: {}",
                finding.severity, finding.code, finding.location, finding.message
            );
        }
        let _ = writeln!(text, "GPU map after:");
        for line in &self.gpu_map.after {
            let _ = writeln!(text, "  {line}");
        }
        for warning in &self.warnings {
            let _ = writeln!(text, "warning: {warning}");
        }
        if self.action == ProposalAction::Remove.as_str() {
            let directory = self
                .compose_path
                .rsplit_once('/')
                .map_or("", |(dir, _)| dir);
            let _ = write!(
                text,
                "removes {directory}/ ({} and all beside it)",
                self.compose_path
            );
        } else {
            let _ = write!(text, "{}:\n{}", self.compose_path, self.compose_file);
        }
        text
    }
}
