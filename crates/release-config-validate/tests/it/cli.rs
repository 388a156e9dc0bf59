//! Exit statuses and messages of the command line (section 5).

use release_config_validate::{Environment, Exit, Format};

use crate::support::{args, fixtures, validate, validate_in};

#[test]
fn exit_codes() {
    // (fixture, expected exit): 0 no error, 1 an error, warnings alone do not fail.
    let cases = [
        ("release-config", Exit::Clean),
        ("rules/GPU001", Exit::Findings),
        ("rules/TP004", Exit::Clean),
    ];
    for (fixture, expected) in cases {
        let outcome = validate(&args(fixtures().join(fixture), Format::Human));
        assert_eq!(
            outcome.exit, expected,
            "{fixture}: {}{}",
            outcome.stdout, outcome.stderr
        );
    }
}

#[test]
fn unreadable_path_exits_2_naming_it() {
    let outcome = validate(&args("/nonexistent/release-config", Format::Human));
    assert_eq!(outcome.exit, Exit::Failure);
    assert!(outcome.stdout.is_empty());
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("/nonexistent/release-config"),
        "{}",
        outcome.stderr
    );

    let file = fixtures().join("rules/GPU001/machines/m1/machine.yaml");
    let outcome = validate(&args(&file, Format::Json));
    assert_eq!(outcome.exit, Exit::Failure);
    assert!(
        outcome.stderr.contains("not a directory"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn rev_outside_git_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("machines")).unwrap();
    let mut with_rev = args(dir.path(), Format::Human);
    with_rev.rev = Some("main".to_owned());
    let outcome = validate(&with_rev);
    assert_eq!(outcome.exit, Exit::Failure);
    assert!(
        outcome
            .stderr
            .starts_with("error: --rev needs a Git repository"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn git_options_outside_git_exit_2_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("machines")).unwrap();
    let mut with_base = args(dir.path(), Format::Json);
    with_base.base = Some("origin/main".to_owned());
    let mut with_pending = args(dir.path(), Format::Json);
    with_pending.pending = vec!["refs/pull/*/head".to_owned()];
    for (bad, option) in [(with_base, "--base"), (with_pending, "--pending")] {
        let outcome = validate(&bad);
        assert_eq!(outcome.exit, Exit::Failure);
        assert!(outcome.stdout.is_empty());
        assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
        assert!(
            outcome.stderr.starts_with(&format!(
                "error: {option} needs a Git repository, but {}",
                dir.path().display()
            )),
            "{}",
            outcome.stderr
        );
    }
}

#[test]
fn unknown_machine_exits_2() {
    let mut filtered = args(fixtures().join("rules/GPU001"), Format::Human);
    filtered.machine = Some("nope".to_owned());
    let outcome = validate(&filtered);
    assert_eq!(outcome.exit, Exit::Failure);
    assert!(
        outcome.stderr.contains("no machine named `nope`") && outcome.stderr.contains("m1"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    let binary = env!("CARGO_BIN_EXE_release-config-validate");
    let output = std::process::Command::new(binary)
        .args(["--format", "xml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = std::process::Command::new(binary)
        .arg(fixtures().join("rules/GPU001"))
        .args(["--color", "never"])
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("error[GPU001]"));
}

#[test]
fn color_always_and_never() {
    let path = fixtures().join("rules/GPU001");
    let mut coloured = args(&path, Format::Human);
    coloured.color = release_config_validate::ColorChoice::Always;
    assert!(validate(&coloured).stdout.contains("\x1b["));
    let tty = Environment {
        stdout_is_tty: true,
        ..Environment::default()
    };
    let mut auto = args(&path, Format::Human);
    auto.color = release_config_validate::ColorChoice::Auto;
    // validate_in keeps Auto only if we pass it through unchanged: emulate a TTY.
    let outcome = {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        release_config_validate::run(&auto, &tty, &mut out, &mut err);
        String::from_utf8(out).unwrap()
    };
    assert!(outcome.contains("\x1b["));
    let no_color = Environment {
        stdout_is_tty: true,
        no_color: true,
        ..Environment::default()
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    release_config_validate::run(&auto, &no_color, &mut out, &mut err);
    assert!(!String::from_utf8(out).unwrap().contains('\x1b'));
    let _ = validate_in;
}

#[test]
fn github_format_appends_the_step_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let env = Environment {
        step_summary: Some(summary.clone()),
        ..Environment::default()
    };
    let outcome = validate_in(&args(fixtures().join("rules/GPU001"), Format::Github), &env);
    assert_eq!(outcome.exit, Exit::Findings);
    assert!(
        outcome.stdout.starts_with("::error file=machines/m1/"),
        "{}",
        outcome.stdout
    );
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("earlier step\n## Release-config validation failed"),
        "{text}"
    );
    assert!(text.contains("| :x: error | `GPU001` |"), "{text}");
    // A summary file that does not end in a line break gets one first, so
    // that the heading starts a line.
    std::fs::write(&summary, "no newline").unwrap();
    validate_in(&args(fixtures().join("rules/GPU001"), Format::Github), &env);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("no newline\n## Release-config validation failed"),
        "{text}"
    );
    // Other formats leave it alone.
    validate_in(&args(fixtures().join("rules/GPU001"), Format::Json), &env);
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), text);
}

/// The README's usage block of the validator names exactly the flags the command line has.
#[test]
fn the_readme_usage_matches_the_command_line() {
    let command = <release_config_validate::Args as clap::CommandFactory>::command();
    assert_eq!(
        crate::support::readme_usage_flags("cargo xtask validate [PATH]"),
        crate::support::long_flags(&command),
        "README.md's usage block vs the command line"
    );
}
