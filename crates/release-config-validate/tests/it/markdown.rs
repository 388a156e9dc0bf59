//! `--format markdown`: the pull-request comment: each touched machine's GPU map before and
//! after, the new findings first, the pre-existing ones folded away.

use release_config_validate::{Exit, Format};

use crate::support::{GitRepo, INVENTORY, WithBase, args, deployment, validate};

#[test]
fn the_comment_shows_each_touched_machine_before_and_after() {
    let repo = GitRepo::init();
    repo.write("machines/m1/machine.yaml", INVENTORY);
    for (port, gpu) in [(8000, 0), (8001, 1), (8002, 2)] {
        repo.write(
            &format!("machines/m1/{port}/docker-compose.yml"),
            &deployment(port, gpu),
        );
    }
    // An untouched machine with an old finding: not shown.
    repo.write("machines/m2/8000/docker-compose.yml", &deployment(8000, 0));
    repo.commit_all("base");
    repo.git(&["checkout", "--quiet", "-b", "change"]);
    // Removes 8002, moves 8001 from GPU 1 to GPU 3, adds 8003 on GPU 0 (a new conflict).
    repo.git(&["rm", "--quiet", "-r", "machines/m1/8002"]);
    repo.write("machines/m1/8001/docker-compose.yml", &deployment(8001, 3));
    repo.write("machines/m1/8003/docker-compose.yml", &deployment(8003, 0));
    repo.commit_all("change");

    let outcome = validate(&args(repo.path(), Format::Markdown).with_base("main"));
    assert_eq!(outcome.exit, Exit::Findings, "{}", outcome.stdout);
    let text = outcome
        .stdout
        .replace(&repo.rev_parse("HEAD")[..12], "<head>")
        .replace(&repo.rev_parse("main")[..12], "<base>");
    insta::assert_snapshot!("markdown_change", text);
    assert!(!outcome.stdout.contains("`m2`"), "m2 did not change");

    // Without --base: every machine with a finding, as it is now.
    let now = validate(&args(repo.path(), Format::Markdown));
    assert!(
        now.stdout.contains("| GPU | held by |") && now.stdout.contains("`m2`"),
        "{}",
        now.stdout
    );
}
