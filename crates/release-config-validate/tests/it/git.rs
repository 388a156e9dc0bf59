//! Git-backed runs: `--rev`, diff-aware `--base`, `--pending`, unknown revisions.

use release_config_validate::{Exit, Format};

use crate::sarif_shape::assert_sarif_shape;
use crate::support::{GitRepo, INVENTORY, WithBase as _, args, deployment, validate};

/// main: m1 with one deployment on GPU 0.
fn base_repo() -> GitRepo {
    let repo = GitRepo::init();
    repo.write("machines/m1/machine.yaml", INVENTORY);
    repo.write("machines/m1/8000/docker-compose.yml", &deployment(8000, 0));
    repo.commit_all("m1:8000 on GPU 0");
    repo
}

#[test]
fn rev_reads_the_revision_not_the_work_tree() {
    let repo = base_repo();
    // Uncommitted: a second deployment on GPU 0.
    repo.write("machines/m1/8001/docker-compose.yml", &deployment(8001, 0));
    let work_tree = validate(&args(repo.path(), Format::Json));
    assert_eq!(work_tree.exit, Exit::Findings);
    assert_eq!(work_tree.codes(), ["GPU001"]);

    let mut at_main = args(repo.path(), Format::Json);
    at_main.rev = Some("main".to_owned());
    let outcome = validate(&at_main);
    assert_eq!(outcome.exit, Exit::Clean, "{}", outcome.stderr);
    let report = outcome.json();
    assert_eq!(report["revision"]["ref"], "main");
    assert_eq!(report["revision"]["commit"], repo.rev_parse("main"));
    assert_eq!(report["summary"]["deployments"], 1);
}

#[test]
fn base_reports_only_the_new_conflict_as_new() {
    let repo = base_repo();
    // main also carries an old conflict on GPU 5 (m1:8100 and m1:8101).
    repo.write("machines/m1/8100/docker-compose.yml", &deployment(8100, 5));
    repo.write("machines/m1/8101/docker-compose.yml", &deployment(8101, 5));
    repo.commit_all("old conflict");
    repo.git(&["checkout", "--quiet", "-b", "feature"]);
    repo.write("machines/m1/8001/docker-compose.yml", &deployment(8001, 0));
    repo.commit_all("new conflict on GPU 0");

    let mut diff = args(repo.path(), Format::Json);
    diff.base = Some("main".to_owned());
    let outcome = validate(&diff);
    assert_eq!(outcome.exit, Exit::Findings, "{}", outcome.stderr);
    let report = outcome.json();
    let findings = report["findings"].as_array().unwrap();
    let new: Vec<_> = findings.iter().filter(|f| f["new"] == true).collect();
    assert_eq!(new.len(), 1, "{findings:#?}");
    assert_eq!(new[0]["code"], "GPU001");
    assert_eq!(
        new[0]["deployments"],
        serde_json::json!(["m1:8000", "m1:8001"])
    );
    assert!(
        findings
            .iter()
            .any(|f| f["new"] == false && f["code"] == "GPU001")
    );
    assert_eq!(report["summary"]["new"]["errors"], 1);
    assert_eq!(report["base"]["ref"], "main");

    let human = validate(&args(repo.path(), Format::Human).with_base("main"));
    assert!(
        human.stdout.contains("pre-existing: also reported at main"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .trim_end()
            .ends_with("validation failed: 2 errors (1 new: 1 error)"),
        "{}",
        human.stdout
    );

    let sarif = validate(&args(repo.path(), Format::Sarif).with_base("main")).json();
    assert_sarif_shape(&sarif);
    let states: Vec<_> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["baselineState"].clone())
        .collect();
    assert!(
        states.contains(&"new".into()) && states.contains(&"unchanged".into()),
        "{states:?}"
    );
}

#[test]
fn base_equal_to_head_with_errors_passes() {
    let repo = base_repo();
    repo.write("machines/m1/8001/docker-compose.yml", &deployment(8001, 0));
    repo.commit_all("conflict on main");
    let plain = validate(&args(repo.path(), Format::Json));
    assert_eq!(plain.exit, Exit::Findings);
    let outcome = validate(&args(repo.path(), Format::Json).with_base("main"));
    assert_eq!(outcome.exit, Exit::Clean, "{}", outcome.stderr);
    let report = outcome.json();
    assert_eq!(report["summary"]["errors"], 1);
    assert_eq!(report["summary"]["new"]["errors"], 0);
    assert_eq!(report["findings"][0]["new"], false);
}

/// Open replacements and removals are read as what they change since they forked from main:
/// a replacement claims its new GPUs, a removal claims nothing, and what main changed since
/// the fork is not taken for a claim of the proposal's.
#[test]
fn pending_replacements_and_removals_claim_what_they_change() {
    let repo = base_repo();
    repo.write("machines/m1/8100/docker-compose.yml", &deployment(8100, 5));
    repo.commit_all("m1:8100 on GPU 5");
    // refs/pull/2/head: m1:8000 replaced, onto GPU 2.
    repo.git(&["checkout", "--quiet", "-b", "replace"]);
    repo.write("machines/m1/8000/docker-compose.yml", &deployment(8000, 2));
    let replacement = repo.commit_all("replace m1:8000, on GPU 2");
    repo.git(&["update-ref", "refs/pull/2/head", &replacement]);
    // refs/pull/3/head: m1:8100 removed.
    repo.git(&["checkout", "--quiet", "main"]);
    repo.git(&["checkout", "--quiet", "-b", "remove"]);
    repo.git(&["rm", "-r", "--quiet", "machines/m1/8100"]);
    let removal = repo.commit_all("remove m1:8100");
    repo.git(&["update-ref", "refs/pull/3/head", &removal]);
    repo.git(&["checkout", "--quiet", "main"]);
    // Main moves on: m1:8100 to GPU 6, m1:8101 on GPU 5 (which the proposals' older trees still
    // show m1:8100 holding).
    repo.write("machines/m1/8100/docker-compose.yml", &deployment(8100, 6));
    repo.write("machines/m1/8101/docker-compose.yml", &deployment(8101, 5));
    repo.commit_all("main moves on");
    // This change: m1:8300 on GPU 2, the replacement's new GPU.
    repo.write("machines/m1/8300/docker-compose.yml", &deployment(8300, 2));

    let mut with_pending = args(repo.path(), Format::Json);
    with_pending.pending = vec!["refs/pull/*/head".to_owned()];
    let outcome = validate(&with_pending);
    let report = outcome.json();
    let pending: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["code"] == "PENDING001")
        .collect();
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(
        pending[0]["deployments"],
        serde_json::json!(["m1:8000", "m1:8300"])
    );
    let message = pending[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("GPU 2"), "{message}");
    assert!(message.contains("refs/pull/2/head"), "{message}");
}

#[test]
fn pending_claims_are_reported() {
    let repo = base_repo();
    // An open proposal (refs/pull/1/head) puts m1:8001 on GPU 1 ...
    repo.git(&["checkout", "--quiet", "-b", "proposal"]);
    repo.write("machines/m1/8001/docker-compose.yml", &deployment(8001, 1));
    let proposal = repo.commit_all("propose m1:8001 on GPU 1");
    repo.git(&["update-ref", "refs/pull/1/head", &proposal]);
    repo.git(&["checkout", "--quiet", "main"]);
    repo.git(&["branch", "--quiet", "-D", "proposal"]);
    // ... and this change puts m1:8002 on GPU 1 too.
    repo.write("machines/m1/8002/docker-compose.yml", &deployment(8002, 1));

    let mut with_pending = args(repo.path(), Format::Json);
    with_pending.pending = vec!["refs/pull/*/head".to_owned()];
    let outcome = validate(&with_pending);
    assert_eq!(
        outcome.exit,
        Exit::Clean,
        "PENDING001 is a warning: {}",
        outcome.stderr
    );
    assert_eq!(outcome.codes(), ["PENDING001"]);
    let finding = &outcome.json()["findings"][0];
    assert_eq!(finding["severity"], "warning");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("refs/pull/1/head"),
        "{finding}"
    );

    // The other side is shown from the proposal's files, named `ref:path`.
    let finding = &outcome.json()["findings"][0];
    assert_eq!(finding["related"][0]["ref"], "refs/pull/1/head");
    let mut human = with_pending.clone();
    human.format = Format::Human;
    let text = validate(&human).stdout;
    assert!(
        text.contains("here: refs/pull/1/head:machines/m1/8001/docker-compose.yml:12:28\n"),
        "{text}"
    );
    assert!(
        text.contains("12 |               device_ids: [\"1\"]\n"),
        "{text}"
    );
    let mut sarif = with_pending.clone();
    sarif.format = Format::Sarif;
    assert_sarif_shape(&validate(&sarif).json());

    // Two globs matching the same ref read it once: one finding, not two.
    let mut twice = with_pending.clone();
    twice.pending = vec!["refs/pull/*/head".to_owned(), "refs/pull/**".to_owned()];
    assert_eq!(validate(&twice).codes(), ["PENDING001"]);

    // A proposal made by model-registry-mcp is also seen by its claims (the refs under
    // refs/catapult/claims/ point at a claim commit on the proposal): still one proposal.
    let git = topology::repo::Repository::open(repo.path()).unwrap();
    let proposal_id = topology::repo::CommitId::from_hex(proposal.trim()).unwrap();
    let auth = topology::repo::GitAuth::anonymous();
    let claims = topology::proposal::Claims {
        repository: &git,
        remote_url: "",
        auth: &auth,
        open: &[],
        grace: std::time::Duration::ZERO,
        closed: &[],
    };
    let author = topology::repo::Author {
        name: "model-registry-mcp".to_owned(),
        email: "mcp@example.invalid".to_owned(),
    };
    let claim = claims
        .claim_commit(proposal_id, "catapult/m1-8001", &author)
        .unwrap();
    for wanted in topology::proposal::claim_refs("m1", 8001, &[1]) {
        repo.git(&["update-ref", &wanted.ref_name(), &claim.to_string()]);
    }
    let mut claimed = with_pending.clone();
    claimed.pending = vec!["refs/catapult/claims/**".to_owned()];
    let outcome = validate(&claimed);
    assert_eq!(outcome.codes(), ["PENDING001"], "by its claims");
    assert!(
        outcome.json()["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("refs/catapult/claims/m1/"),
        "{}",
        outcome.stdout
    );
    claimed.pending.push("refs/pull/*/head".to_owned());
    assert_eq!(validate(&claimed).codes(), ["PENDING001"], "by both: once");

    // Without --pending nothing is reported; a glob matching nothing is fine.
    assert!(
        validate(&args(repo.path(), Format::Json))
            .codes()
            .is_empty()
    );
    with_pending.pending = vec!["refs/pull/*/merge".to_owned()];
    assert!(validate(&with_pending).codes().is_empty());
}

#[test]
fn unknown_revisions_exit_2_naming_them() {
    let repo = base_repo();
    for (rev, base) in [(Some("no-such-branch"), None), (None, Some("origin/gone"))] {
        let mut bad = args(repo.path(), Format::Human);
        bad.rev = rev.map(str::to_owned);
        bad.base = base.map(str::to_owned);
        let outcome = validate(&bad);
        assert_eq!(outcome.exit, Exit::Failure);
        let name = rev.or(base).unwrap();
        assert!(
            outcome
                .stderr
                .contains(&format!("unknown revision `{name}`")),
            "{}",
            outcome.stderr
        );
        assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
        assert!(outcome.stdout.is_empty());
    }
}

#[test]
fn bad_pending_glob_exits_2_naming_it() {
    let repo = base_repo();
    let mut bad = args(repo.path(), Format::Human);
    bad.pending = vec!["refs/pull/[/head".to_owned()];
    let outcome = validate(&bad);
    assert_eq!(outcome.exit, Exit::Failure);
    assert!(outcome.stdout.is_empty());
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .starts_with("error: invalid ref glob `refs/pull/[/head`"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn rev_and_base_together() {
    // --rev picks the head from Git, --base compares it with another revision.
    let repo = base_repo();
    repo.git(&["checkout", "--quiet", "-b", "feature"]);
    repo.write("machines/m1/8001/docker-compose.yml", &deployment(8001, 0));
    repo.commit_all("conflict on GPU 0");
    repo.git(&["checkout", "--quiet", "main"]);
    let mut both = args(repo.path(), Format::Json).with_base("main");
    both.rev = Some("feature".to_owned());
    let outcome = validate(&both);
    assert_eq!(outcome.exit, Exit::Findings, "{}", outcome.stderr);
    let report = outcome.json();
    assert_eq!(report["revision"]["ref"], "feature");
    assert_eq!(report["base"]["ref"], "main");
    assert_eq!(report["findings"][0]["new"], true);
}
