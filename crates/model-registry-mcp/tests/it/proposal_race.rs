//! Proposals made at the same instant by several agents: two (or three) real server processes,
//! each with its own mirror, and two calls at once within one process, against one bare
//! `file://` remote and the GitHub double. In every round, of the proposals whose GPUs or ports
//! overlap exactly one is accepted (at least one when they only partly overlap), no two accepted
//! proposals share a GPU or a port, and nothing of a refused one is left on the remote.
//!
//! `PROPOSAL_RACE_ROUNDS` sets the number of rounds (default 60).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::service::Peer;
use serde_json::{Value, json};

use crate::support::{FLEET, FixtureRepo, Server, as_refs, call, repo_with, start, text_of};

const TOKEN: &str = "ghp_fake_token_for_race_tests_0123456789";

/// One contender: which server, which port, which GPUs.
struct Contender {
    server: usize,
    port: u16,
    gpus: Vec<u32>,
}

/// A round's contenders; `exclusive` when every pair of them overlaps (exactly one may win).
struct Scenario {
    name: &'static str,
    contenders: Vec<(usize, u16, Vec<u32>)>,
    exclusive: bool,
}

/// Ports are relative to the round's base port.
fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "two servers, the same GPUs",
            contenders: vec![(0, 0, vec![4, 5]), (1, 1, vec![4, 5])],
            exclusive: true,
        },
        Scenario {
            name: "two servers, one GPU in common",
            contenders: vec![(0, 0, vec![4, 5]), (1, 1, vec![5, 6])],
            exclusive: true,
        },
        Scenario {
            name: "two servers, the same port",
            contenders: vec![(0, 0, vec![4]), (1, 0, vec![6])],
            exclusive: true,
        },
        Scenario {
            name: "three contenders, the same GPUs",
            contenders: vec![(0, 0, vec![6, 7]), (1, 1, vec![6, 7]), (2, 2, vec![7, 6])],
            exclusive: true,
        },
        Scenario {
            name: "three contenders, a chain of overlaps",
            contenders: vec![(0, 0, vec![4, 5]), (1, 1, vec![5, 6]), (2, 2, vec![6, 7])],
            exclusive: false,
        },
        Scenario {
            name: "one server, two calls at once",
            contenders: vec![(0, 0, vec![4, 5]), (0, 1, vec![5, 6])],
            exclusive: true,
        },
    ]
}

fn proposal(contender: &Contender, round: usize) -> Value {
    json!({
        "machine": "gpu-a",
        "port": contender.port,
        "template_name": "sglang",
        "model_name": format!("race-model-{round}"),
        "model_path": format!("/models/race-{round}"),
        "gpu_ids": contender.gpus,
        "tensor_parallel": contender.gpus.len(),
        "description": format!("Race round {round}."),
    })
}

struct Outcome {
    accepted: Option<Value>,
    refusal: String,
    took: Duration,
}

async fn propose(client: Peer<RoleClient>, arguments: Value) -> Outcome {
    let started = Instant::now();
    let result = call(&client, "propose_release_config", arguments).await;
    let took = started.elapsed();
    if result.is_error == Some(true) {
        Outcome {
            accepted: None,
            refusal: text_of(&result),
            took,
        }
    } else {
        Outcome {
            accepted: Some(result.structured_content.unwrap_or_default()),
            refusal: String::new(),
            took,
        }
    }
}

fn resources(contender: &Contender) -> BTreeSet<String> {
    std::iter::once(format!("port-{}", contender.port))
        .chain(contender.gpus.iter().map(|gpu| format!("gpu-{gpu}")))
        .collect()
}

fn percentile(times: &mut [Duration], p: usize) -> Duration {
    times.sort();
    times
        .get((times.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

fn rounds() -> usize {
    std::env::var("PROPOSAL_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_proposals_made_at_once_exactly_one_gets_each_gpu_and_port() {
    let remote = repo_with(FLEET).bare_clone();
    let url = remote.url();
    race(&remote, url, rounds()).await;
}

/// The same over a network remote (`git daemon`: Git's receive-pack decides each ref update).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_git_protocol_exactly_one_gets_each_gpu_and_port() {
    let remote = repo_with(FLEET).bare_clone();
    let daemon =
        test_support::git_daemon::GitDaemon::serve(remote.path()).unwrap_or_else(|e| panic!("{e}"));
    race(&remote, daemon.url(""), rounds() / 2).await;
}

async fn race(remote: &FixtureRepo, url: String, rounds: usize) {
    let (fake, env) = crate::support::github_double(remote, url.clone(), TOKEN).await;
    let servers: Vec<Server> = vec![
        start(&as_refs(&env), &[]).await,
        start(&as_refs(&env), &[]).await,
        start(&as_refs(&env), &[]).await,
    ];
    let main_before = remote.head();
    let scenarios = scenarios();
    let mut contended = Vec::new();
    let mut alone = Vec::new();
    let mut accepted_per_round = BTreeMap::<usize, usize>::new();
    // How refusals came: at the claims (the race itself) or at the open-pull-request check.
    let mut refused_by_claim = 0;
    let mut refused_by_open_pull = 0;

    for round in 0..rounds {
        let scenario = &scenarios[round % scenarios.len()];
        let base = 8100 + u16::try_from(round * 4).unwrap_or(0);
        let contenders: Vec<Contender> = scenario
            .contenders
            .iter()
            .map(|(server, port, gpus)| Contender {
                server: *server,
                port: base + port,
                gpus: gpus.clone(),
            })
            .collect();
        let calls: Vec<_> = contenders
            .iter()
            .map(|contender| {
                tokio::spawn(propose(
                    servers[contender.server].client.peer().clone(),
                    proposal(contender, round),
                ))
            })
            .collect();
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(call.await.unwrap_or_else(|e| panic!("proposal task: {e}")));
        }

        let what = format!("round {round} ({})", scenario.name);
        let winners: Vec<usize> = (0..outcomes.len())
            .filter(|i| outcomes[*i].accepted.is_some())
            .collect();
        *accepted_per_round.entry(winners.len()).or_default() += 1;
        if scenario.exclusive {
            assert_eq!(
                winners.len(),
                1,
                "{what}: exactly one accepted; refusals: {:?}",
                outcomes.iter().map(|o| &o.refusal).collect::<Vec<_>>()
            );
        } else {
            assert!(!winners.is_empty(), "{what}: at least one accepted");
        }
        // No two accepted share a GPU or a port.
        let mut held = BTreeSet::new();
        for winner in &winners {
            for resource in resources(&contenders[*winner]) {
                assert!(held.insert(resource.clone()), "{what}: {resource} twice");
            }
        }
        // Every refusal names what is held and by whom.
        for outcome in outcomes.iter().filter(|o| o.accepted.is_none()) {
            if outcome.refusal.contains("claimed by") {
                refused_by_claim += 1;
            } else {
                refused_by_open_pull += 1;
            }
            assert!(
                outcome.refusal.contains("claimed by")
                    || outcome.refusal.contains("pull request #"),
                "{what}: {}",
                outcome.refusal
            );
        }
        // The remote holds one branch and one pull request per accepted proposal, and every
        // claim of this round belongs to one of them: nothing of a refused one is left.
        let open: Vec<_> = fake.pulls().into_iter().filter(|p| p.open).collect();
        assert_eq!(open.len(), winners.len(), "{what}: open pull requests");
        let winner_heads: BTreeSet<String> = open
            .iter()
            .map(|pull| remote.git(&["rev-parse", &pull.head]).trim().to_owned())
            .collect();
        let branches = remote.git(&[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/catapult/",
        ]);
        let round_branches: Vec<&str> = branches
            .lines()
            .filter(|branch| {
                contenders
                    .iter()
                    .any(|c| branch.starts_with(&format!("catapult/add-gpu-a-{}-", c.port)))
            })
            .collect();
        assert_eq!(
            round_branches.len(),
            winners.len(),
            "{what}: branches {round_branches:?}"
        );
        for winner in &winners {
            let contender = &contenders[*winner];
            for resource in resources(contender) {
                let claim = format!("refs/catapult/claims/gpu-a/{resource}");
                let holder = remote.git(&["rev-parse", &format!("{claim}^")]);
                assert!(
                    winner_heads.contains(holder.trim()),
                    "{what}: {claim} is held by the accepted proposal"
                );
            }
        }
        for outcome in &outcomes {
            if winners.len() == 1 && scenario.exclusive {
                contended.push(outcome.took);
            }
        }
        // The round's proposals are reviewed and closed: the next round finds the GPUs free
        // (their claims are stale now, and taken over).
        for pull in open {
            fake.close(pull.number);
        }
    }

    // Without contention: one proposal at a time.
    for round in rounds..rounds + 10 {
        let base = 8100 + u16::try_from(round * 4).unwrap_or(0);
        let contender = Contender {
            server: round % 2,
            port: base,
            gpus: vec![4, 5],
        };
        let outcome = propose(
            servers[contender.server].client.peer().clone(),
            proposal(&contender, round),
        )
        .await;
        assert!(outcome.accepted.is_some(), "{}", outcome.refusal);
        alone.push(outcome.took);
        for pull in fake.pulls().into_iter().filter(|p| p.open) {
            fake.close(pull.number);
        }
    }
    assert_eq!(remote.head(), main_before, "main never moves");
    eprintln!(
        "proposal race over {url}: {rounds} rounds, accepted per round {accepted_per_round:?}, refused at \
         the claims {refused_by_claim}, at the open pull requests {refused_by_open_pull}; \
         time per proposal p50 {:?} contended, {:?} alone (p90 {:?} / {:?})",
        percentile(&mut contended, 50),
        percentile(&mut alone, 50),
        percentile(&mut contended, 90),
        percentile(&mut alone, 90),
    );
    for server in servers {
        let _ = server.client.cancel().await;
    }
}
