//! Benchmark tools: load tests the registry runs against LOCAL deployments.

use std::fmt::Write as _;

use registry_client::{Benchmark, BenchmarkFilter, BenchmarkSummary, NewBenchmark};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Render, ToolError, ToolSpec, effective_limit, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{JsonMap, Paging, client, failed, fit_page, id, non_blank};

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[
    entry("list_benchmarks", Toolset::Benchmarks, ToolClass::Read),
    entry("get_benchmark", Toolset::Benchmarks, ToolClass::Read),
    entry("run_benchmark", Toolset::Benchmarks, ToolClass::Write),
    entry(
        "get_benchmark_summary",
        Toolset::Benchmarks,
        ToolClass::Read,
    ),
];

pub fn tools() -> Vec<ToolSpec> {
    vec![
        tool(
            "list_benchmarks",
            "List benchmark runs",
            "List benchmark runs (throughput and latency load tests), newest first; filter by \
             `deployment_id`. Best and latest figures at once: get_benchmark_summary.",
            list_benchmarks,
        ),
        tool(
            "get_benchmark",
            "Get a benchmark run",
            "One benchmark run by `benchmark_id`: requests sent, succeeded and failed, requests per \
             second, tokens per second, latency mean/p50/p90/p95/p99 in ms, concurrency used.",
            get_benchmark,
        ),
        tool(
            "run_benchmark",
            "Benchmark a local deployment",
            "Runs a load test against a running LOCAL deployment (write; operator key): \
             `total_requests` requests, `concurrent_requests` at a time, to `endpoint_path` (see \
             discover_api_spec). Never aims at production.",
            run_benchmark,
        ),
        tool(
            "get_benchmark_summary",
            "Benchmark summary of a deployment",
            "Summary of a LOCAL deployment's benchmarks: latest run, number of runs, best requests per \
             second and best p50 latency. Use to compare deployments or versions.",
            get_benchmark_summary,
        ),
    ]
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBenchmarksParams {
    #[serde(default)]
    pub deployment_id: Option<String>,
    // Described once, in the server's instructions.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkIdParams {
    pub benchmark_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBenchmarkParams {
    /// A running local deployment.
    pub deployment_id: String,
    /// Path to load, e.g. /v1/chat/completions (default), /v1/embeddings.
    #[serde(default)]
    pub endpoint_path: Option<String>,
    /// Requests in flight at once, 1-256 (default 4).
    #[serde(default)]
    #[schemars(range(min = 1, max = 256))]
    pub concurrent_requests: Option<u32>,
    /// Requests in all (default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100000))]
    pub total_requests: Option<u32>,
    /// JSON body of each request (default: a small prompt for the endpoint).
    #[serde(default)]
    pub request_body: Option<JsonMap>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentIdParams {
    pub deployment_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListBenchmarksOutput {
    #[schemars(with = "Vec<JsonMap>")]
    pub benchmarks: Vec<Benchmark>,
    #[serde(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BenchmarkOutput {
    /// The benchmark record.
    #[schemars(with = "JsonMap")]
    pub benchmark: Benchmark,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BenchmarkSummaryOutput {
    pub deployment_id: String,
    pub runs: u32,
    pub best_rps: Option<f64>,
    pub best_p50_ms: Option<f64>,
    /// The latest run.
    #[schemars(with = "Option<JsonMap>")]
    pub latest: Option<Benchmark>,
}

async fn list_benchmarks(
    ctx: Ctx,
    params: ListBenchmarksParams,
) -> Result<ListBenchmarksOutput, ToolError> {
    let filter = BenchmarkFilter {
        deployment_id: non_blank(&params.deployment_id),
        limit: Some(effective_limit(params.limit, ctx.settings.max_results) as u32),
        offset: params.offset,
    };
    let page = client(&ctx)?
        .list_benchmarks(&filter)
        .await
        .map_err(failed)?;
    let (benchmarks, paging) = fit_page("list_benchmarks", &params, page);
    Ok(ListBenchmarksOutput { benchmarks, paging })
}

async fn get_benchmark(ctx: Ctx, params: BenchmarkIdParams) -> Result<BenchmarkOutput, ToolError> {
    let benchmark_id = id("benchmark_id", &params.benchmark_id)?;
    let benchmark = client(&ctx)?
        .get_benchmark(benchmark_id)
        .await
        .map_err(failed)?;
    Ok(BenchmarkOutput { benchmark })
}

async fn run_benchmark(ctx: Ctx, params: RunBenchmarkParams) -> Result<BenchmarkOutput, ToolError> {
    let deployment_id = id("deployment_id", &params.deployment_id)?.to_owned();
    let endpoint_path = params
        .endpoint_path
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/v1/chat/completions".to_owned());
    if !endpoint_path.starts_with('/') {
        return Err(ToolError(format!(
            "endpoint_path {endpoint_path:?} must start with '/', e.g. /v1/chat/completions"
        )));
    }
    let new = NewBenchmark {
        deployment_id,
        endpoint_path,
        concurrent_requests: params.concurrent_requests.unwrap_or(4),
        total_requests: params.total_requests.unwrap_or(100),
        request_body: params.request_body,
    };
    let benchmark = client(&ctx)?.run_benchmark(&new).await.map_err(failed)?;
    Ok(BenchmarkOutput { benchmark })
}

async fn get_benchmark_summary(
    ctx: Ctx,
    params: DeploymentIdParams,
) -> Result<BenchmarkSummaryOutput, ToolError> {
    let deployment_id = id("deployment_id", &params.deployment_id)?;
    let BenchmarkSummary {
        latest,
        runs,
        best_rps,
        best_p50_ms,
    } = client(&ctx)?
        .get_benchmark_summary(deployment_id)
        .await
        .map_err(failed)?;
    Ok(BenchmarkSummaryOutput {
        deployment_id: deployment_id.to_owned(),
        runs,
        best_rps,
        best_p50_ms,
        latest,
    })
}

pub fn benchmark_line(b: &Benchmark) -> String {
    let mut line = format!(
        "{} on {} {}: {}/{} ok, {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms",
        b.id,
        b.deployment_id,
        b.endpoint_path,
        b.successful_requests,
        b.total_requests,
        b.requests_per_second,
        b.latency_ms.p50,
        b.latency_ms.p99
    );
    if let Some(tps) = b.tokens_per_second {
        let _ = write!(line, ", {tps:.1} tok/s");
    }
    let _ = write!(
        line,
        " (concurrency {}, {})",
        b.concurrent_requests, b.status
    );
    line
}

impl Render for ListBenchmarksOutput {
    fn render(&self) -> String {
        let mut text = self.paging.line("benchmark runs");
        for b in &self.benchmarks {
            let _ = write!(text, "\n- {}", benchmark_line(b));
        }
        text
    }
}

impl Render for BenchmarkOutput {
    fn render(&self) -> String {
        let b = &self.benchmark;
        format!(
            "benchmark {}\nlatency ms: mean {:.1}, p90 {:.1}, p95 {:.1}; created {}",
            benchmark_line(b),
            b.latency_ms.mean,
            b.latency_ms.p90,
            b.latency_ms.p95,
            b.created_at.as_deref().unwrap_or("-")
        )
    }
}

impl Render for BenchmarkSummaryOutput {
    fn render(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let mut text = format!(
            "deployment {}: {} run(s), best {} req/s, best p50 {} ms",
            self.deployment_id,
            self.runs,
            opt(self.best_rps),
            opt(self.best_p50_ms)
        );
        if let Some(latest) = &self.latest {
            let _ = write!(text, "\nlatest: {}", benchmark_line(latest));
        }
        text
    }
}
