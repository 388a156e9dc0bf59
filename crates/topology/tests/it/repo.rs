//! The Git seam: reading revisions without checkout, mirrors and incremental
//! fetches, ref globs, lazy bounded reads, symbolic links, proposal branches.

use std::collections::BTreeMap;

use tempfile::TempDir;
use topology::repo::{
    Author, ContentId, DirReader, EntryKind, GitAuth, LinkTarget, RefUpdate, RepoError, Repository,
    Snapshot, TreeChange,
};

use crate::support::{Change, FixtureRepo, write_files};

const COMPOSE: &str = "services:\n  vllm:\n    image: vllm/vllm-openai\n";

fn sample_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("machines/gpu-01/machine.yaml", "gpus: 8\n"),
        ("machines/gpu-01/8000/docker-compose.yml", COMPOSE),
        ("machines/gpu-01/8000/.env", "MODEL=llama\n"),
        ("machines/gpu-02/9000/compose.yaml", "services: {}\n"),
        ("templates/vllm.yml.j2", "services: {{ name }}\n"),
        ("release-config.toml", "[rules]\nTP004 = \"off\"\n"),
        ("README.md", "not part of the snapshot\n"),
        ("docs/notes.md", "neither\n"),
    ]
}

/// path -> (kind word, content id) of every entry.
fn listing(snapshot: &Snapshot) -> BTreeMap<String, (&'static str, Option<String>)> {
    snapshot
        .entries()
        .iter()
        .map(|e| {
            (
                e.path.clone(),
                (e.kind.describe(), e.id.map(|id| id.to_string())),
            )
        })
        .collect()
}

fn author() -> Author {
    Author {
        name: "catapult".to_owned(),
        email: "catapult@example.invalid".to_owned(),
    }
}

#[test]
fn blob_id_is_the_git_blob_hash() {
    // `printf 'hello\n' | git hash-object --stdin`
    let id = ContentId::of_bytes(b"hello\n").unwrap();
    assert_eq!(id.to_string(), "ce013625030ba8dba906f756967f9e9ca394464a");
    assert_eq!(
        ContentId::from_hex("ce013625030ba8dba906f756967f9e9ca394464a"),
        Some(id)
    );
    assert_eq!(ContentId::from_hex("ce0136"), None);
}

#[test]
fn reads_a_revision_from_objects_without_checkout() {
    let fixture = FixtureRepo::init();
    let first = fixture.commit_files("main", &sample_files(), "first\n\nbody");
    // The work tree stays empty: everything comes from the object database.
    assert!(!fixture.path().join("machines").exists());

    let repo = Repository::open(fixture.path()).unwrap();
    let snapshot = repo.snapshot("main").unwrap();
    let paths: Vec<&str> = snapshot.entries().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "machines",
            "machines/gpu-01",
            "machines/gpu-01/8000",
            "machines/gpu-01/8000/.env",
            "machines/gpu-01/8000/docker-compose.yml",
            "machines/gpu-01/machine.yaml",
            "machines/gpu-02",
            "machines/gpu-02/9000",
            "machines/gpu-02/9000/compose.yaml",
            "release-config.toml",
            "templates",
            "templates/vllm.yml.j2",
        ]
    );
    let revision = snapshot.revision().unwrap();
    assert_eq!(revision.id.to_string(), first.to_string());
    assert_eq!(revision.short_id, first.to_string()[..12]);
    assert_eq!(revision.summary, "first");
    assert_eq!(revision.ref_name.as_deref(), Some("refs/heads/main"));
    assert_eq!(revision.time, 1_700_000_000);

    let compose = snapshot
        .entry("machines/gpu-01/8000/docker-compose.yml")
        .unwrap();
    assert_eq!(compose.kind, EntryKind::File);
    assert_eq!(compose.size, None, "git listing does not read blobs");
    assert_eq!(snapshot.size(compose).unwrap(), COMPOSE.len() as u64);
    assert_eq!(
        snapshot.read(&compose.path, 1 << 20).unwrap(),
        COMPOSE.as_bytes()
    );
    assert_eq!(
        compose.id,
        Some(ContentId::of_bytes(COMPOSE.as_bytes()).unwrap())
    );
    assert!(snapshot.entry("README.md").is_none());

    let children: Vec<&str> = snapshot
        .children("machines/gpu-01")
        .map(|e| e.name())
        .collect();
    assert_eq!(children, ["8000", "machine.yaml"]);
    let top: Vec<&str> = snapshot.children("").map(|e| e.path.as_str()).collect();
    assert_eq!(top, ["machines", "release-config.toml", "templates"]);
}

#[test]
fn listing_is_sorted_component_wise() {
    let fixture = FixtureRepo::init();
    fixture.commit_files(
        "main",
        &[
            ("machines/a-b/1/compose.yml", "x"),
            ("machines/a/2/compose.yml", "y"),
            ("machines/a.c/3/compose.yml", "z"),
        ],
        "m",
    );
    let snapshot = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();
    let machines: Vec<&str> = snapshot.children("machines").map(|e| e.name()).collect();
    assert_eq!(machines, ["a", "a-b", "a.c"]);
    let under_a: Vec<&str> = snapshot
        .children("machines/a")
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(under_a, ["machines/a/2"]);
}

#[test]
fn older_revisions_by_id_and_expression() {
    let fixture = FixtureRepo::init();
    let first = fixture.commit_files(
        "main",
        &[("machines/a/8000/docker-compose.yml", "v1\n")],
        "one",
    );
    let second = fixture.commit_files(
        "main",
        &[("machines/a/8000/docker-compose.yml", "v2\n")],
        "two",
    );
    let repo = Repository::open(fixture.path()).unwrap();
    let path = "machines/a/8000/docker-compose.yml";
    for (rev, expected, id) in [
        ("main", "v2\n", second),
        ("main~1", "v1\n", first),
        (&first.to_string()[..], "v1\n", first),
        (&first.to_string()[..10], "v1\n", first),
    ] {
        let snapshot = repo.snapshot(rev).unwrap();
        assert_eq!(
            snapshot.read(path, 100).unwrap(),
            expected.as_bytes(),
            "{rev}"
        );
        assert_eq!(
            snapshot.revision().unwrap().id.to_string(),
            id.to_string(),
            "{rev}"
        );
        assert_eq!(
            repo.resolve(rev).unwrap().id.to_string(),
            id.to_string(),
            "{rev}"
        );
    }
    assert_eq!(repo.resolve(&first.to_string()).unwrap().ref_name, None);
}

#[test]
fn unknown_or_non_commit_revisions_name_the_rev() {
    let fixture = FixtureRepo::init();
    fixture.commit_files("main", &[("release-config.toml", "")], "init");
    let repo = Repository::open(fixture.path()).unwrap();
    let cases = [
        (
            "no-such-branch",
            "no branch, tag, ref or commit of that name",
        ),
        ("origin/pr/12", "no branch, tag, ref or commit of that name"),
        ("main:release-config.toml", "names a blob, not a commit"),
        ("", "empty revision"),
    ];
    for (rev, reason) in cases {
        let error = repo.snapshot(rev).unwrap_err();
        assert!(
            matches!(error, RepoError::UnknownRev { .. }),
            "{rev}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("`{rev}`")), "{message}");
        assert!(message.contains(reason), "{message}");
        assert!(
            message.contains(&fixture.path().display().to_string()),
            "{message}"
        );
    }
}

#[test]
fn open_names_the_path() {
    let dir = TempDir::new().unwrap();
    let error = Repository::open(dir.path()).unwrap_err();
    assert!(matches!(error, RepoError::Open { .. }));
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string())
    );
}

#[test]
fn ref_glob_listing() {
    let fixture = FixtureRepo::init();
    let base = fixture.commit_files("main", &[("release-config.toml", "")], "init");
    let pr1 = fixture.commit_files("pr-1", &[("machines/a/8000/compose.yml", "a")], "pr1");
    let pr12 = fixture.commit_files("pr-12", &[("machines/a/8001/compose.yml", "b")], "pr12");
    fixture.set_ref("refs/pull/1/head", pr1);
    fixture.set_ref("refs/pull/12/head", pr12);
    fixture.set_ref("refs/pull/12/merge", base);
    fixture.set_ref("refs/pull/nested/x/head", base);
    let repo = Repository::open(fixture.path()).unwrap();

    let names = |glob: &str| -> Vec<String> {
        repo.refs_matching(glob)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    assert_eq!(
        names("refs/pull/*/head"),
        ["refs/pull/1/head", "refs/pull/12/head"]
    );
    assert_eq!(
        names("refs/pull/**/head"),
        [
            "refs/pull/1/head",
            "refs/pull/12/head",
            "refs/pull/nested/x/head"
        ]
    );
    assert_eq!(
        names("refs/heads/pr-*"),
        ["refs/heads/pr-1", "refs/heads/pr-12"]
    );
    assert!(names("refs/tags/*").is_empty());
    let targets = repo.refs_matching("refs/pull/1/head").unwrap();
    assert_eq!(targets[0].commit.to_string(), pr1.to_string());

    let error = repo.refs_matching("refs/pull/[").unwrap_err();
    assert!(matches!(error, RepoError::BadGlob { .. }));
    assert!(error.to_string().contains("refs/pull/["), "{error}");
}

#[test]
fn mirror_fetches_incrementally_from_path_and_file_url() {
    let upstream = FixtureRepo::init_bare();
    let first = upstream.commit_files(
        "main",
        &[("machines/a/8000/docker-compose.yml", "v1\n")],
        "one",
    );
    upstream.set_ref("refs/pull/7/head", first);
    let cache = TempDir::new().unwrap();

    let by_path = upstream.path().display().to_string();
    for url in [by_path.clone(), upstream.url()] {
        let mirror = Repository::mirror(&url, cache.path(), &GitAuth::anonymous()).unwrap();
        assert!(
            mirror.git_dir().starts_with(cache.path()),
            "{:?}",
            mirror.git_dir()
        );
        assert!(mirror.work_tree().is_none());
        assert!(mirror.last_fetch_time().is_some());
        assert_eq!(
            mirror.resolve("main").unwrap().id.to_string(),
            first.to_string()
        );
        // A mirror has no remote-tracking refs: `origin/<name>` falls back to `<name>`.
        assert_eq!(
            mirror.resolve("origin/main").unwrap().id.to_string(),
            first.to_string()
        );
        assert_eq!(mirror.refs_matching("refs/pull/*/head").unwrap().len(), 1);
    }
    // Path and file:// URL are different remotes as far as the cache knows.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 2);

    let mirror = Repository::open_mirror(&by_path, cache.path()).unwrap();
    let second = upstream.commit_files(
        "main",
        &[("machines/a/8001/docker-compose.yml", "new\n")],
        "two",
    );
    // Removed upstream: pruned from the mirror on the next fetch.
    upstream
        .repo()
        .find_reference("refs/pull/7/head")
        .unwrap()
        .delete()
        .unwrap();
    assert_eq!(
        mirror.resolve("main").unwrap().id.to_string(),
        first.to_string(),
        "not fetched yet"
    );

    mirror.fetch(&GitAuth::anonymous()).unwrap();
    assert_eq!(
        mirror.resolve("main").unwrap().id.to_string(),
        second.to_string()
    );
    assert!(mirror.refs_matching("refs/pull/*/head").unwrap().is_empty());
    let snapshot = mirror.snapshot("main").unwrap();
    assert_eq!(
        snapshot
            .read("machines/a/8001/docker-compose.yml", 100)
            .unwrap(),
        b"new\n"
    );
    assert_eq!(
        snapshot
            .read("machines/a/8000/docker-compose.yml", 100)
            .unwrap(),
        b"v1\n"
    );
}

#[test]
fn opened_from_a_path_there_is_nothing_to_fetch() {
    let fixture = FixtureRepo::init();
    fixture.commit_files("main", &[("release-config.toml", "")], "init");
    let repo = Repository::open(fixture.path()).unwrap();
    assert!(repo.last_fetch_time().is_none());
    assert!(matches!(
        repo.fetch(&GitAuth::anonymous()),
        Err(RepoError::NoRemote { .. })
    ));
}

#[test]
fn credentials_never_appear_in_errors_or_debug() {
    let cache = TempDir::new().unwrap();
    // Port 1 on loopback: the connection is refused at once, no network involved.
    let url = "https://x-access-token:ghp_urlsecret@127.0.0.1:1/org/repo.git";
    let auth = GitAuth::with_token("ghp_tokensecret");
    let repo = Repository::open_mirror(url, cache.path()).unwrap();
    let error = repo.fetch(&auth).unwrap_err();
    let shown = format!("{error} {error:?} {repo:?} {auth:?}");
    for secret in ["ghp_urlsecret", "ghp_tokensecret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains("https://***@127.0.0.1:1/org/repo.git"),
        "{shown}"
    );
    // Nor in the mirror's files.
    let name = repo.git_dir().display().to_string();
    assert!(!name.contains("secret"), "{name}");
    let config = std::fs::read_to_string(repo.git_dir().join("config")).unwrap();
    assert!(!config.contains("secret"), "{config}");
}

#[test]
fn blob_ids_are_identical_for_directory_and_git_reads() {
    let files = sample_files();
    let fixture = FixtureRepo::init();
    fixture.commit_files("main", &files, "init");
    let from_git = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();

    let dir = TempDir::new().unwrap();
    write_files(dir.path(), &files);
    let from_dir = Snapshot::from_dir(dir.path()).unwrap();
    assert!(from_dir.revision().is_none());
    assert_eq!(listing(&from_dir), listing(&from_git));
    let compose = from_dir
        .entry("machines/gpu-01/8000/docker-compose.yml")
        .unwrap();
    assert_eq!(compose.size, Some(COMPOSE.len() as u64));
}

#[test]
fn reads_are_lazy_bounded_and_typed() {
    let big = "x".repeat(5000);
    let files = [
        ("machines/a/8000/docker-compose.yml", big.as_str()),
        ("release-config.toml", ""),
    ];
    let fixture = FixtureRepo::init();
    fixture.commit_files("main", &files, "init");
    let dir = TempDir::new().unwrap();
    write_files(dir.path(), &files);
    let snapshots = [
        Repository::open(fixture.path())
            .unwrap()
            .snapshot("main")
            .unwrap(),
        Snapshot::from_dir(dir.path()).unwrap(),
    ];
    for snapshot in &snapshots {
        let source = snapshot.describe();
        let path = "machines/a/8000/docker-compose.yml";
        assert_eq!(snapshot.read(path, 5000).unwrap().len(), 5000, "{source}");
        match snapshot.read(path, 4999) {
            Err(RepoError::TooLarge {
                path: p,
                size: 5000,
                limit: 4999,
            }) => assert_eq!(p, path),
            other => panic!("{source}: {other:?}"),
        }
        assert_eq!(
            snapshot.read("release-config.toml", 0).unwrap(),
            b"",
            "{source}"
        );
        match snapshot.read("machines/a", 100) {
            Err(error @ RepoError::NotAFile { .. }) => {
                assert!(error.to_string().contains("machines/a"))
            }
            other => panic!("{source}: {other:?}"),
        }
        match snapshot.read("machines/zzz/compose.yml", 100) {
            Err(error @ RepoError::NotFound { .. }) => {
                assert!(error.to_string().contains("machines/zzz/compose.yml"))
            }
            other => panic!("{source}: {other:?}"),
        }
    }
}

#[test]
fn directory_reader_sees_changes() {
    let dir = TempDir::new().unwrap();
    write_files(
        dir.path(),
        &[
            ("machines/a/8000/docker-compose.yml", "one\n"),
            ("machines/a/8001/compose.yml", "x\n"),
        ],
    );
    let path = dir.path().join("machines/a/8000/docker-compose.yml");
    // Old enough to be cached (see RACY_WINDOW).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();

    let reader = DirReader::new(dir.path()).unwrap();
    let id = |snapshot: &Snapshot| {
        snapshot
            .entry("machines/a/8000/docker-compose.yml")
            .unwrap()
            .id
            .unwrap()
    };
    let before = reader.snapshot().unwrap();
    assert_eq!(id(&before), ContentId::of_bytes(b"one\n").unwrap());
    assert_eq!(id(&reader.snapshot().unwrap()), id(&before));

    // Same size, same mtime: the inode change time still tells.
    std::fs::write(&path, "two\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(
        id(&reader.snapshot().unwrap()),
        ContentId::of_bytes(b"two\n").unwrap()
    );

    std::fs::write(&path, "three, longer\n").unwrap();
    let after = reader.snapshot().unwrap();
    assert_eq!(id(&after), ContentId::of_bytes(b"three, longer\n").unwrap());
    assert_eq!(
        after
            .read("machines/a/8000/docker-compose.yml", 100)
            .unwrap(),
        b"three, longer\n"
    );
    // The snapshot taken before still lists the old id (reads are live for directories).
    assert_eq!(id(&before), ContentId::of_bytes(b"one\n").unwrap());
}

#[test]
fn git_symlinks_inside_are_followed_and_outside_are_not() {
    let fixture = FixtureRepo::init();
    fixture.commit(
        "main",
        &[
            ("machines/a/8000/docker-compose.yml", Change::File(COMPOSE)),
            (
                "machines/a/8001/docker-compose.yml",
                Change::Link("../8000/docker-compose.yml"),
            ),
            (
                "machines/a/8002/docker-compose.yml",
                Change::Link("../../../../etc/passwd"),
            ),
            (
                "machines/a/8003/docker-compose.yml",
                Change::Link("/etc/passwd"),
            ),
            (
                "machines/a/8004/docker-compose.yml",
                Change::Link("../nothing.yml"),
            ),
            ("machines/b", Change::Link("a")),
            (
                "machines/c/8000/docker-compose.yml",
                Change::Link("../../b/8000/docker-compose.yml"),
            ),
        ],
        "links",
    );
    let snapshot = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();
    let compose_id = ContentId::of_bytes(COMPOSE.as_bytes()).unwrap();
    check_links(&snapshot, compose_id);
}

#[cfg(unix)]
#[test]
fn directory_symlinks_inside_are_followed_and_outside_are_not() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new().unwrap();
    write_files(
        dir.path(),
        &[
            ("machines/a/8000/docker-compose.yml", COMPOSE),
            (".git/config", "[secret]\n"),
        ],
    );
    let root = dir.path();
    for (port, target) in [
        ("8001", "../8000/docker-compose.yml"),
        ("8002", "../../../../etc/passwd"),
        ("8003", "/etc/passwd"),
        ("8004", "../nothing.yml"),
        ("8005", "../../../.git/config"),
    ] {
        std::fs::create_dir_all(root.join("machines/a").join(port)).unwrap();
        symlink(
            target,
            root.join("machines/a")
                .join(port)
                .join("docker-compose.yml"),
        )
        .unwrap();
    }
    symlink("a", root.join("machines/b")).unwrap();
    std::fs::create_dir_all(root.join("machines/c/8000")).unwrap();
    symlink(
        "../../b/8000/docker-compose.yml",
        root.join("machines/c/8000/docker-compose.yml"),
    )
    .unwrap();

    let snapshot = Snapshot::from_dir(root).unwrap();
    let compose_id = ContentId::of_bytes(COMPOSE.as_bytes()).unwrap();
    check_links(&snapshot, compose_id);
    let git_dir_link = snapshot
        .entry("machines/a/8005/docker-compose.yml")
        .unwrap();
    assert!(
        matches!(git_dir_link.kind, EntryKind::Symlink { escapes: true, .. }),
        "{git_dir_link:?}"
    );
    assert!(matches!(
        snapshot.read(&git_dir_link.path, 100),
        Err(RepoError::LinkEscapes { .. })
    ));
}

/// The same links give the same answers from Git and from a directory.
fn check_links(snapshot: &Snapshot, compose_id: ContentId) {
    let source = snapshot.describe();
    let link = |path: &str| {
        snapshot
            .entry(path)
            .unwrap_or_else(|| panic!("{source}: no {path}"))
    };

    let inside = link("machines/a/8001/docker-compose.yml");
    assert!(inside.is_file(), "{source}: {inside:?}");
    assert_eq!(inside.id, Some(compose_id), "{source}");
    let EntryKind::Symlink {
        target,
        escapes,
        resolves_to,
    } = &inside.kind
    else {
        panic!("{source}: {inside:?}")
    };
    assert_eq!(
        (target.as_str(), *escapes),
        ("../8000/docker-compose.yml", false)
    );
    assert_eq!(
        *resolves_to,
        LinkTarget::File("machines/a/8000/docker-compose.yml".to_owned())
    );
    assert_eq!(
        snapshot.read(&inside.path, 1000).unwrap(),
        COMPOSE.as_bytes(),
        "{source}"
    );

    for path in [
        "machines/a/8002/docker-compose.yml",
        "machines/a/8003/docker-compose.yml",
    ] {
        let entry = link(path);
        assert!(
            matches!(
                &entry.kind,
                EntryKind::Symlink {
                    escapes: true,
                    resolves_to: LinkTarget::Outside,
                    ..
                }
            ),
            "{source}: {entry:?}"
        );
        assert!(
            !entry.is_file() && entry.id.is_none(),
            "{source}: {entry:?}"
        );
        let error = snapshot.read(path, 1 << 20).unwrap_err();
        assert!(
            matches!(error, RepoError::LinkEscapes { .. }),
            "{source}: {error:?}"
        );
        assert!(error.to_string().contains(path), "{error}");
    }

    let dangling = link("machines/a/8004/docker-compose.yml");
    assert!(
        matches!(
            &dangling.kind,
            EntryKind::Symlink {
                escapes: false,
                resolves_to: LinkTarget::Missing,
                ..
            }
        ),
        "{source}: {dangling:?}"
    );
    assert!(matches!(
        snapshot.read(&dangling.path, 100),
        Err(RepoError::NotAFile { .. })
    ));

    // A linked directory is an entry, not descended into.
    let linked_dir = link("machines/b");
    assert_eq!(
        linked_dir.kind,
        EntryKind::Symlink {
            target: "a".to_owned(),
            escapes: false,
            resolves_to: LinkTarget::Dir("machines/a".to_owned())
        },
        "{source}"
    );
    assert_eq!(snapshot.children("machines/b").count(), 0, "{source}");
    // A link through a linked directory still lands on the file inside.
    let through = link("machines/c/8000/docker-compose.yml");
    assert_eq!(through.id, Some(compose_id), "{source}: {through:?}");
}

#[test]
fn a_removal_commit_deletes_the_directory_and_changes_since_fork_ignore_main() {
    let upstream = FixtureRepo::init_bare();
    upstream.commit_files("main", &sample_files(), "base");
    let cache = TempDir::new().unwrap();
    let upstream_url = upstream.path().display().to_string();
    let mirror = Repository::mirror(&upstream_url, cache.path(), &GitAuth::anonymous()).unwrap();
    let removal = [TreeChange::Remove {
        path: "machines/gpu-01/8000".to_owned(),
    }];
    mirror
        .commit_changes_on_new_branch(
            "main",
            "catapult/remove-gpu-01-8000",
            &removal,
            "Remove",
            &author(),
        )
        .unwrap();
    let removed = mirror.snapshot("catapult/remove-gpu-01-8000").unwrap();
    let paths: Vec<&str> = removed.entries().iter().map(|e| e.path.as_str()).collect();
    assert!(
        !paths.iter().any(|p| p.starts_with("machines/gpu-01/8000")),
        "{paths:?}"
    );
    assert!(paths.contains(&"machines/gpu-01/machine.yaml"), "{paths:?}");
    assert!(
        paths.contains(&"machines/gpu-02/9000/compose.yaml"),
        "{paths:?}"
    );

    // Removing what is not there is a mistake, not a no-op.
    let nothing = [TreeChange::Remove {
        path: "machines/gpu-01/8009".to_owned(),
    }];
    let error = mirror.commit_changes_on_new_branch(
        "main",
        "catapult/remove-none",
        &nothing,
        "x",
        &author(),
    );
    assert!(matches!(error, Err(RepoError::BadPath { .. })), "{error:?}");

    // Main moves on (another deployment changes): the branch still changed only its own.
    upstream.commit_files(
        "main",
        &[(
            "machines/gpu-02/9000/compose.yaml",
            "services: {x: {image: a}}\n",
        )],
        "main moves",
    );
    mirror.fetch(&GitAuth::anonymous()).unwrap();
    let changed = mirror
        .changed_since_fork("main", "catapult/remove-gpu-01-8000", "machines")
        .unwrap();
    assert_eq!(
        changed,
        [
            "machines/gpu-01/8000/.env",
            "machines/gpu-01/8000/docker-compose.yml"
        ]
    );
}

#[test]
fn proposal_branch_is_committed_without_work_tree_and_pushed_without_force() {
    let upstream = FixtureRepo::init_bare();
    let base = upstream.commit_files("main", &sample_files(), "base");
    let cache = TempDir::new().unwrap();
    let upstream_url = upstream.path().display().to_string();
    let mirror = Repository::mirror(&upstream_url, cache.path(), &GitAuth::anonymous()).unwrap();

    let path = "machines/gpu-02/9001/docker-compose.yml";
    let commit = mirror
        .commit_file_on_new_branch(
            "main",
            "catapult/gpu-02-9001",
            path,
            b"services: {}\n",
            "Add gpu-02:9001",
            &author(),
        )
        .unwrap();
    // main untouched; the branch holds the base tree plus the file.
    assert_eq!(
        mirror.resolve("main").unwrap().id.to_string(),
        base.to_string()
    );
    let proposed = mirror.snapshot("catapult/gpu-02-9001").unwrap();
    assert_eq!(proposed.revision().unwrap().id, commit);
    assert_eq!(proposed.read(path, 100).unwrap(), b"services: {}\n");
    assert_eq!(
        proposed.entries().len(),
        mirror.snapshot("main").unwrap().entries().len() + 2
    );

    mirror
        .push_branch(&upstream_url, "catapult/gpu-02-9001", &GitAuth::anonymous())
        .unwrap();
    assert_eq!(
        upstream
            .ref_target("refs/heads/catapult/gpu-02-9001")
            .unwrap()
            .to_string(),
        commit.to_string()
    );
    assert_eq!(upstream.ref_target("refs/heads/main"), Some(base));

    // Existing branches are never moved, protected ones never written.
    let again = mirror.commit_file_on_new_branch(
        "main",
        "catapult/gpu-02-9001",
        path,
        b"x",
        "again",
        &author(),
    );
    assert!(
        matches!(again, Err(RepoError::BranchExists { .. })),
        "{again:?}"
    );
    for protected in ["main", "master"] {
        let commit =
            mirror.commit_file_on_new_branch("main", protected, path, b"x", "m", &author());
        assert!(
            matches!(commit, Err(RepoError::BadBranch { .. })),
            "{commit:?}"
        );
        let push = mirror.push_branch(&upstream_url, protected, &GitAuth::anonymous());
        assert!(matches!(push, Err(RepoError::BadBranch { .. })), "{push:?}");
    }
    for bad_path in ["../escape.yml", "/abs.yml", ".git/config"] {
        let commit = mirror.commit_file_on_new_branch(
            "main",
            "catapult/bad",
            bad_path,
            b"x",
            "m",
            &author(),
        );
        assert!(
            matches!(commit, Err(RepoError::BadPath { .. })),
            "{bad_path}: {commit:?}"
        );
    }

    // Upstream moved the branch meanwhile: a non-forced push of a diverging
    // commit is refused.
    upstream.commit_files(
        "catapult/other",
        &[("release-config.toml", "upstream\n")],
        "upstream",
    );
    mirror
        .commit_file_on_new_branch("main", "catapult/other", path, b"mine\n", "mine", &author())
        .unwrap();
    let push = mirror.push_branch(&upstream_url, "catapult/other", &GitAuth::anonymous());
    assert!(matches!(push, Err(RepoError::Push { .. })), "{push:?}");
    let error = push.unwrap_err().to_string();
    assert!(error.contains("catapult/other"), "{error}");
    assert!(error.contains("already exists on the remote"), "{error}");
    let missing = mirror.push_branch(
        &upstream_url,
        "catapult/never-created",
        &GitAuth::anonymous(),
    );
    assert!(
        matches!(missing, Err(RepoError::Push { .. })),
        "{missing:?}"
    );
}

#[test]
fn a_git_snapshot_outlives_its_repository_and_is_read_from_threads() {
    let fixture = FixtureRepo::init();
    let files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("machines/m{i}/8000/docker-compose.yml"),
                format!("services: {{s{i}: {{}}}}\n"),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    fixture.commit_files("main", &borrowed, "many");
    let snapshot = {
        let repo = Repository::open(fixture.path()).unwrap();
        repo.snapshot("main").unwrap()
    };
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for (path, content) in &files {
                    assert_eq!(snapshot.read(path, 1000).unwrap(), content.as_bytes());
                }
            });
        }
    });
}

#[test]
fn fetch_never_loses_an_unpushed_proposal_and_push_only_creates() {
    let upstream = FixtureRepo::init_bare();
    let base = upstream.commit_files("main", &sample_files(), "base");
    let cache = TempDir::new().unwrap();
    let url = upstream.path().display().to_string();
    let anonymous = GitAuth::anonymous();
    let mirror = Repository::mirror(&url, cache.path(), &anonymous).unwrap();
    let path = "machines/gpu-02/9001/docker-compose.yml";
    let id_of = |rev: &str| mirror.resolve(rev).map(|r| r.id.to_string());

    // Committed, not pushed: upstream does not have it, yet fetches keep it.
    let mine = mirror
        .commit_file_on_new_branch("main", "catapult/a", path, b"a\n", "a", &author())
        .unwrap();
    // Upstream's refs in this tool's namespace are not mirrored over ours.
    upstream.set_ref("refs/catapult/unpushed/catapult/a", base);
    mirror.fetch(&anonymous).unwrap();
    mirror.fetch(&anonymous).unwrap();
    assert_eq!(id_of("catapult/a").unwrap(), mine.to_string());
    assert_eq!(
        id_of("refs/catapult/unpushed/catapult/a").unwrap(),
        mine.to_string()
    );

    // Pushed: upstream holds it, the keep-ref goes; pushing again is a no-op.
    mirror.push_branch(&url, "catapult/a", &anonymous).unwrap();
    assert_eq!(
        upstream.ref_target("refs/heads/catapult/a"),
        Some(git2::Oid::from_str(&mine.to_string()).unwrap())
    );
    assert!(id_of("refs/catapult/unpushed/catapult/a").is_err());
    mirror.push_branch(&url, "catapult/a", &anonymous).unwrap();
    mirror.fetch(&anonymous).unwrap();
    assert_eq!(id_of("catapult/a").unwrap(), mine.to_string());

    // Upstream creates the same name meanwhile, even as an ancestor (a push
    // would fast-forward): the branch follows upstream after a fetch, the
    // proposal's commit is kept, and the push refuses to touch upstream's.
    let theirs_commit = mirror
        .commit_file_on_new_branch("main", "catapult/b", path, b"b\n", "b", &author())
        .unwrap();
    upstream.set_ref("refs/heads/catapult/b", base);
    mirror.fetch(&anonymous).unwrap();
    assert_eq!(id_of("catapult/b").unwrap(), base.to_string());
    assert_eq!(
        id_of("refs/catapult/unpushed/catapult/b").unwrap(),
        theirs_commit.to_string()
    );
    let push = mirror
        .push_branch(&url, "catapult/b", &anonymous)
        .unwrap_err();
    assert!(matches!(push, RepoError::Push { .. }), "{push:?}");
    assert!(
        push.to_string().contains("already exists on the remote"),
        "{push}"
    );
    assert_eq!(upstream.ref_target("refs/heads/catapult/b"), Some(base));
    // The name stays taken locally until someone resolves it.
    let again = mirror.commit_file_on_new_branch("main", "catapult/b", path, b"c", "c", &author());
    assert!(
        matches!(again, Err(RepoError::BranchExists { .. })),
        "{again:?}"
    );

    // Ordinary refs deleted upstream are still pruned.
    upstream.set_ref("refs/pull/3/head", base);
    mirror.fetch(&anonymous).unwrap();
    assert_eq!(mirror.refs_matching("refs/pull/*/head").unwrap().len(), 1);
    upstream
        .repo()
        .find_reference("refs/pull/3/head")
        .unwrap()
        .delete()
        .unwrap();
    mirror.fetch(&anonymous).unwrap();
    assert!(mirror.refs_matching("refs/pull/*/head").unwrap().is_empty());
    assert_eq!(id_of("main").unwrap(), base.to_string());
}

/// Links resolved component by component, from Git and from a directory alike.
#[cfg(unix)]
#[test]
fn link_chains_loops_and_dotdot_after_linked_directories() {
    let links = [
        ("machines/a/root", "../.."),
        ("machines/a/8001/docker-compose.yml", "../../l2"),
        ("machines/l2", "a/8000/docker-compose.yml"),
        ("machines/a/8002/docker-compose.yml", "../../loop1"),
        ("machines/loop1", "loop2"),
        ("machines/loop2", "loop1"),
        // `root/..` climbs above the repository, whatever the text suggests.
        (
            "machines/a/8003/docker-compose.yml",
            "../root/../x/machines/a/8000/docker-compose.yml",
        ),
        (
            "machines/a/8004/docker-compose.yml",
            "../root/machines/a/8000/docker-compose.yml",
        ),
    ];
    let fixture = FixtureRepo::init();
    let mut changes: Vec<(&str, Change<'_>)> =
        vec![("machines/a/8000/docker-compose.yml", Change::File(COMPOSE))];
    changes.extend(
        links
            .iter()
            .map(|(path, target)| (*path, Change::Link(target))),
    );
    fixture.commit("main", &changes, "links");
    let from_git = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();

    let dir = TempDir::new().unwrap();
    write_files(
        dir.path(),
        &[("machines/a/8000/docker-compose.yml", COMPOSE)],
    );
    for (path, target) in links {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, full).unwrap();
    }
    let from_dir = Snapshot::from_dir(dir.path()).unwrap();

    let compose = LinkTarget::File("machines/a/8000/docker-compose.yml".to_owned());
    for snapshot in [&from_git, &from_dir] {
        let source = snapshot.describe();
        let resolved = |path: &str| match &snapshot.entry(path).unwrap().kind {
            EntryKind::Symlink { resolves_to, .. } => resolves_to.clone(),
            other => panic!("{source}: {path} is {other:?}"),
        };
        assert_eq!(
            resolved("machines/a/root"),
            LinkTarget::Dir(String::new()),
            "{source}"
        );
        assert_eq!(
            resolved("machines/a/8001/docker-compose.yml"),
            compose,
            "{source}"
        );
        assert_eq!(
            resolved("machines/a/8002/docker-compose.yml"),
            LinkTarget::Missing,
            "{source}"
        );
        assert_eq!(
            resolved("machines/a/8003/docker-compose.yml"),
            LinkTarget::Outside,
            "{source}"
        );
        assert_eq!(
            resolved("machines/a/8004/docker-compose.yml"),
            compose,
            "{source}"
        );
        assert_eq!(
            snapshot
                .read("machines/a/8004/docker-compose.yml", 1000)
                .unwrap(),
            COMPOSE.as_bytes(),
            "{source}"
        );
    }
    assert_eq!(listing(&from_dir), listing(&from_git));
}

#[cfg(target_os = "linux")]
#[test]
fn a_name_that_is_not_utf8_is_listed_not_fatal() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new().unwrap();
    write_files(
        dir.path(),
        &[("machines/a/8000/docker-compose.yml", COMPOSE)],
    );
    let name = std::ffi::OsStr::from_bytes(b"gpu-\xff");
    std::fs::create_dir_all(dir.path().join("machines").join(name).join("8000")).unwrap();
    let snapshot = Snapshot::from_dir(dir.path()).unwrap();
    let odd = snapshot.entry("machines/gpu-\u{fffd}").unwrap();
    assert!(matches!(odd.kind, EntryKind::Other { .. }), "{odd:?}");
    let layout = topology::layout::Layout::read(&snapshot);
    assert_eq!(layout.deployments().count(), 1);
    assert!(
        layout
            .findings
            .iter()
            .any(|f| &*f.location.path == "machines/gpu-\u{fffd}"),
        "{:?}",
        layout.findings
    );
}

/// A file swapped for a link after listing is not read through it.
#[cfg(target_os = "linux")]
#[test]
fn reads_never_follow_a_link_put_in_place_after_listing() {
    let outside = TempDir::new().unwrap();
    write_files(outside.path(), &[("secret.yml", "secret: 1\n")]);
    let dir = TempDir::new().unwrap();
    write_files(
        dir.path(),
        &[("machines/a/8000/docker-compose.yml", COMPOSE)],
    );
    let snapshot = Snapshot::from_dir(dir.path()).unwrap();
    let path = "machines/a/8000/docker-compose.yml";
    std::fs::remove_file(dir.path().join(path)).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.yml"), dir.path().join(path)).unwrap();
    // The listing's bytes (what it hashed), or an error; never the link's target.
    let listed_or_refused = |read: Result<Vec<u8>, RepoError>| match read {
        Ok(bytes) => assert_eq!(bytes, COMPOSE.as_bytes()),
        Err(error) => assert!(matches!(error, RepoError::Io { .. }), "{error:?}"),
    };
    listed_or_refused(snapshot.read(path, 1000));
    // Nor through a directory swapped for a link.
    std::fs::remove_file(dir.path().join(path)).unwrap();
    std::fs::remove_dir(dir.path().join("machines/a/8000")).unwrap();
    write_files(
        outside.path(),
        &[("8000/docker-compose.yml", "secret: 2\n")],
    );
    std::os::unix::fs::symlink(
        outside.path().join("8000"),
        dir.path().join("machines/a/8000"),
    )
    .unwrap();
    listed_or_refused(snapshot.read(path, 1000));

    // A file too large to be kept by the listing is read from the disk, and
    // not through a link put in its place.
    let big = format!("{COMPOSE}#{}\n", "x".repeat(80 << 10));
    write_files(
        dir.path(),
        &[("machines/b/8000/docker-compose.yml", big.as_str())],
    );
    let snapshot = Snapshot::from_dir(dir.path()).unwrap();
    let path = "machines/b/8000/docker-compose.yml";
    assert_eq!(snapshot.read(path, 1 << 20).unwrap(), big.as_bytes());
    std::fs::remove_file(dir.path().join(path)).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.yml"), dir.path().join(path)).unwrap();
    let read = snapshot.read(path, 1 << 20);
    assert!(matches!(read, Err(RepoError::Io { .. })), "{read:?}");
}

/// The listing cache: directories unchanged since the last listing are not
/// read again, so every kind of change must show through their stamps.
#[test]
fn directory_reader_sees_added_removed_and_replaced_entries() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    // Enough machines for the walk to go parallel.
    let files: Vec<(String, String)> = (0..80)
        .map(|i| {
            (
                format!("machines/m{i:02}/8000/docker-compose.yml"),
                format!("n: {i}\n"),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_files(root, &borrowed);
    write_files(root, &[("machines/m00/8001/docker-compose.yml", "x\n")]);
    // Directory stamps are trusted only once settled (RACY_WINDOW).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let reader = DirReader::new(root).unwrap();
    let first = reader.snapshot().unwrap();
    assert_eq!(listing(&reader.snapshot().unwrap()), listing(&first));

    write_files(root, &[("machines/m01/8001/docker-compose.yml", "new\n")]);
    std::fs::remove_file(root.join("machines/m02/8000/docker-compose.yml")).unwrap();
    std::fs::remove_file(root.join("machines/m03/8000/docker-compose.yml")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        "../../m00/8001/docker-compose.yml",
        root.join("machines/m03/8000/docker-compose.yml"),
    )
    .unwrap();
    std::fs::write(root.join("machines/m04/8000/docker-compose.yml"), "n: 9\n").unwrap();
    let after = reader.snapshot().unwrap();

    let fresh = Snapshot::from_dir(root).unwrap();
    assert_eq!(listing(&after), listing(&fresh));
    assert!(
        after
            .entry("machines/m01/8001/docker-compose.yml")
            .is_some()
    );
    assert!(
        after
            .entry("machines/m02/8000/docker-compose.yml")
            .is_none()
    );
    assert_eq!(
        after
            .entry("machines/m04/8000/docker-compose.yml")
            .unwrap()
            .id,
        Some(ContentId::of_bytes(b"n: 9\n").unwrap())
    );
    #[cfg(unix)]
    assert!(matches!(
        after
            .entry("machines/m03/8000/docker-compose.yml")
            .unwrap()
            .kind,
        EntryKind::Symlink { .. }
    ));

    // The same tree from Git lists the same, in the same order.
    let fixture = FixtureRepo::init();
    fixture.commit_files("main", &borrowed, "many");
    let from_git = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();
    let copy = TempDir::new().unwrap();
    write_files(copy.path(), &borrowed);
    let paths = |s: &Snapshot| {
        s.entries()
            .iter()
            .map(|e| e.path.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths(&Snapshot::from_dir(copy.path()).unwrap()),
        paths(&from_git)
    );
}

/// The ids a directory listing computes (in memory, in io_uring batches, and
/// in parts for files above the in-memory limit) are the ones the real
/// `git hash-object` gives the same bytes: the oracle is Git, not our hash.
#[test]
fn listed_ids_are_what_git_hash_object_gives() {
    let fixture = FixtureRepo::init();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for len in [
        0,
        1,
        55,
        56,
        63,
        64,
        65,
        4095,
        64 << 10,
        (64 << 10) + 1,
        1 << 20,
        (1 << 20) + 3,
    ] {
        let bytes = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        files.push((format!("machines/m/{len}/docker-compose.yml"), bytes));
    }
    files.push((
        "machines/m/machine.yaml".to_owned(),
        b"gpus: 8\n\0\xff\r\n".to_vec(),
    ));
    for (path, bytes) in &files {
        let full = fixture.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    let mut args = vec!["hash-object", "--no-filters", "--"];
    args.extend(&paths);
    let from_git: Vec<String> = fixture.git(&args).lines().map(str::to_owned).collect();
    let once = Snapshot::from_dir(fixture.path()).unwrap();
    let kept = DirReader::new(fixture.path()).unwrap().snapshot().unwrap();
    for snapshot in [&once, &kept] {
        let listed: Vec<String> = paths
            .iter()
            .map(|path| snapshot.entry(path).unwrap().id.unwrap().to_string())
            .collect();
        assert_eq!(listed, from_git);
    }
    for ((_, bytes), git_id) in files.iter().zip(&from_git) {
        assert_eq!(&ContentId::of_bytes(bytes).unwrap().to_string(), git_id);
    }
}

/// Files above the in-memory limit are hashed in chunks, to the same id.
#[test]
fn a_large_file_gets_its_git_blob_id() {
    let big: String = (0..200_000).map(|i| format!("{i:09}\n")).collect();
    assert!(big.len() > 1 << 20);
    let dir = TempDir::new().unwrap();
    write_files(dir.path(), &[("templates/big.yml.j2", big.as_str())]);
    let snapshot = Snapshot::from_dir(dir.path()).unwrap();
    let entry = snapshot.entry("templates/big.yml.j2").unwrap();
    assert_eq!(entry.id, Some(ContentId::of_bytes(big.as_bytes()).unwrap()));
    assert_eq!(entry.size, Some(big.len() as u64));
}

#[test]
fn snapshots_are_the_same_with_and_without_the_listing_cache() {
    let fixture = FixtureRepo::init();
    fixture.commit_files("main", &sample_files(), "first");
    let first = fixture.repo().head().unwrap().target().unwrap().to_string();
    // The second revision changes one machine and adds one, so a kept listing
    // of gpu-02 is reused and gpu-01's is read anew.
    fixture.commit(
        "main",
        &[
            ("machines/gpu-01/8000/.env", Change::Delete),
            (
                "machines/gpu-01/8001/docker-compose.yml",
                Change::File(COMPOSE),
            ),
            (
                "machines/gpu-03/7000/docker-compose.yml",
                Change::File(COMPOSE),
            ),
        ],
        "second",
    );
    let cached = Repository::open(fixture.path()).unwrap();
    let lean = Repository::open(fixture.path()).unwrap();
    lean.set_listing_cache(false);
    for rev in [first.as_str(), "main", first.as_str()] {
        let expected = listing(&cached.snapshot(rev).unwrap());
        assert_eq!(listing(&lean.snapshot(rev).unwrap()), expected, "{rev}");
        assert!(expected.contains_key("machines/gpu-02/9000/compose.yaml"));
    }
    let head = listing(&lean.snapshot("main").unwrap());
    assert!(head.contains_key("machines/gpu-03/7000/docker-compose.yml"));
    assert!(!head.contains_key("machines/gpu-01/8000/.env"));

    // Switching the cache off later drops what it kept and changes no answer.
    cached.set_listing_cache(false);
    assert_eq!(listing(&cached.snapshot("main").unwrap()), head);
}

/// Claims rely on this: a remote ref changes only from the value the writer
/// expected, over `file://` (written through the ref database) and over a real
/// network remote (`git daemon`, where Git's receive-pack compares), and of
/// writers racing to create one ref exactly one succeeds.
#[test]
fn remote_refs_change_only_from_the_expected_value() {
    let upstream = FixtureRepo::init_bare();
    upstream.commit_files("main", &sample_files(), "base");
    let daemon = test_support::git_daemon::GitDaemon::serve(upstream.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let anonymous = GitAuth::anonymous();
    for (transport, url) in [upstream.url(), daemon.url("")].into_iter().enumerate() {
        let cache = TempDir::new().unwrap();
        let mirror = Repository::mirror(&url, cache.path(), &anonymous)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let main = mirror.resolve("main").unwrap().id;
        let one = mirror.commit_on(main, "one", &author()).unwrap();
        let two = mirror.commit_on(main, "two", &author()).unwrap();
        let name = format!("refs/catapult/claims/gpu-01/gpu-{transport}");
        let update = |new, expected| {
            mirror
                .update_remote_ref(&url, &name, new, expected, &anonymous)
                .unwrap_or_else(|e| panic!("{url}: {e}"))
        };
        let held = |commit| RefUpdate::Mismatch {
            current: Some(commit),
        };
        assert_eq!(update(Some(one), None), RefUpdate::Done, "{url}: created");
        assert_eq!(update(Some(two), None), held(one), "{url}: create-only");
        assert_eq!(update(Some(two), Some(two)), held(one), "{url}: stale CAS");
        assert_eq!(update(Some(two), Some(one)), RefUpdate::Done, "{url}: CAS");
        assert_eq!(update(None, Some(one)), held(two), "{url}: stale delete");
        assert_eq!(
            mirror.remote_ref(&url, &name, &anonymous).unwrap(),
            Some(two),
            "{url}"
        );
        assert_eq!(update(None, Some(two)), RefUpdate::Done, "{url}: deleted");
        assert_eq!(
            update(None, Some(two)),
            RefUpdate::Mismatch { current: None },
            "{url}: gone"
        );
        assert_eq!(upstream.ref_target(&name), None, "{url}");
        let branch = mirror.update_remote_ref(&url, "refs/heads/main", Some(one), None, &anonymous);
        assert!(
            matches!(branch, Err(RepoError::RemoteRef { .. })),
            "{url}: branches are never updated in place: {branch:?}"
        );

        // Eight writers, one ref, at once: one wins, seven see its value.
        let race = format!("{name}-race");
        let commits: Vec<_> = (0..8)
            .map(|i| {
                mirror
                    .commit_on(main, &format!("racer {i}"), &author())
                    .unwrap()
            })
            .collect();
        let results: Vec<RefUpdate> = std::thread::scope(|scope| {
            let handles: Vec<_> = commits
                .iter()
                .map(|commit| {
                    let (url, race, anonymous) = (&url, &race, &anonymous);
                    let cache = cache.path().to_owned();
                    scope.spawn(move || {
                        // Each writer with its own handle, as separate processes would be.
                        let own = Repository::open_mirror(url, cache).unwrap();
                        own.update_remote_ref(url, race, Some(*commit), None, anonymous)
                            .unwrap_or_else(|e| panic!("{url}: {e}"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = (0..8).filter(|i| results[*i] == RefUpdate::Done).collect();
        assert_eq!(winners.len(), 1, "{url}: {results:?}");
        let winner = commits[winners[0]];
        assert!(
            results
                .iter()
                .all(|r| *r == RefUpdate::Done || *r == held(winner)),
            "{url}: {results:?}"
        );
    }
}

/// A plain-HTTP remote that asks for credentials never gets the token: the fetch fails saying
/// where the token goes, and no `Authorization` header ever arrives.
#[test]
fn a_token_is_never_sent_over_plain_http() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    let _ = seen_tx.send(line.clone());
                }
                line.clear();
            }
            let mut stream = stream;
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let token = "ghp_must_not_travel_in_clear_0123456789";
    let url = format!("http://{address}/rc.git");
    let cache = TempDir::new().unwrap();
    let error = Repository::mirror(&url, cache.path(), &GitAuth::with_token(token))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(error.contains("offered only over HTTPS"), "{error}");
    assert!(!error.contains(token), "{error}");
    assert!(
        seen_rx.try_recv().is_err(),
        "an Authorization header was sent over plain HTTP"
    );
}

/// A remote that accepts the connection and never answers: the fetch fails after the read
/// timeout, naming the remote, instead of hanging for as long as the peer stays silent.
#[test]
fn a_silent_remote_fails_the_fetch_within_the_read_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    // Process-wide: generous, so that other tests of this binary on a busy machine never trip it.
    topology::repo::set_network_timeouts(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_secs(5),
    );
    let cache = TempDir::new().unwrap();
    for url in [
        format!("git://{address}/rc.git"),
        format!("http://{address}/rc.git"),
    ] {
        let started = std::time::Instant::now();
        let error = Repository::mirror(&url, cache.path(), &GitAuth::anonymous())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(20), "{url}: {took:?}");
        eprintln!("silent remote {url}: failed after {took:?}");
        assert!(error.contains(&format!("cannot fetch {url}")), "{error}");
    }
}

/// A smart-HTTP remote (`git http-backend`) that answers the pack ten bytes a second: the fetch
/// ends at its deadline, naming the remote and the deadline, instead of lasting as long as the
/// peer keeps trickling; the same remote answering at full speed is fetched.
#[test]
fn a_trickling_remote_fails_the_fetch_at_its_deadline() {
    use test_support::smart_http::{Behaviour, SmartHttp};
    let upstream = FixtureRepo::init_bare();
    upstream.commit_files("main", &sample_files(), "fleet");
    let root = upstream.path().parent().unwrap();
    let name = upstream.path().file_name().unwrap().to_string_lossy();
    let cache = TempDir::new().unwrap();

    let fast = SmartHttp::serve(root, Behaviour::default()).unwrap();
    let mirror = Repository::mirror(&fast.url(&name), cache.path(), &GitAuth::anonymous()).unwrap();
    assert!(mirror.resolve("main").is_ok());

    let slow = SmartHttp::serve(
        root,
        Behaviour {
            trickle_pack: Some(std::time::Duration::from_millis(100)),
            ..Behaviour::default()
        },
    )
    .unwrap();
    let url = slow.url(&name);
    let deadline = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let error = Repository::mirror(
        &url,
        TempDir::new().unwrap().path(),
        &GitAuth::anonymous().with_deadline(deadline),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    let took = started.elapsed();
    eprintln!("trickling remote: failed after {took:?}: {error}");
    // Bounded by the first progress callback after the deadline (seconds here, tens of seconds
    // on a loaded machine); without the deadline the whole pack would trickle for minutes.
    assert!(took < std::time::Duration::from_secs(90), "{took:?}");
    assert!(error.contains(&format!("cannot fetch {url}")), "{error}");
    assert!(error.contains("2 s deadline"), "{error}");
}

/// A listing made once (`Snapshot::from_dir`, every CLI run) reads its files
/// in io_uring batches where the kernel allows; a kept listing
/// (`DirReader::snapshot`) reads them one by one. Both give the same entries,
/// sizes, ids and bytes: across several batches and threads, at the batch's
/// size limit and just past it, empty, and larger than a file read in memory.
#[test]
fn a_listing_made_once_reads_what_a_kept_listing_reads() {
    let dir = TempDir::new().unwrap();
    let limit = 64 << 10;
    let sized = |len: usize| -> String {
        (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect()
    };
    let mut files: Vec<(String, String)> = (0..400)
        .map(|i| {
            (
                format!("machines/m{:03}/{}/docker-compose.yml", i / 3, 8000 + i % 3),
                format!(
                    "services:\n  llm{i}:\n    image: vllm\n{}\n",
                    "#".repeat(i * 7)
                ),
            )
        })
        .collect();
    for (name, len) in [
        ("empty", 0),
        ("at-limit", limit),
        ("past-limit", limit + 1),
        ("large", (1 << 20) + 3),
    ] {
        files.push((format!("machines/sizes/{name}/machine.yaml"), sized(len)));
    }
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_files(dir.path(), &borrowed);

    let once = Snapshot::from_dir(dir.path()).unwrap();
    let kept = DirReader::new(dir.path()).unwrap().snapshot().unwrap();
    let shape = |s: &Snapshot| -> Vec<(String, &'static str, Option<u64>, Option<ContentId>)> {
        s.entries()
            .iter()
            .map(|e| (e.path.clone(), e.kind.describe(), e.size, e.id))
            .collect()
    };
    assert_eq!(shape(&once), shape(&kept));
    for (path, content) in &files {
        let entry = once.entry(path).unwrap();
        assert_eq!(entry.size, Some(content.len() as u64), "{path}");
        assert_eq!(
            entry.id,
            Some(ContentId::of_bytes(content.as_bytes()).unwrap()),
            "{path}"
        );
        assert_eq!(
            once.read(path, 4 << 20).unwrap(),
            content.as_bytes(),
            "{path}"
        );
    }
}

/// A snapshot answers its first lookups by binary search and builds its path
/// index later: every path is found either way, and nothing else is.
#[test]
fn lookups_before_and_after_the_path_index_agree() {
    let fixture = FixtureRepo::init();
    let files: Vec<(String, String)> = (0..150)
        .map(|i| {
            (
                format!("machines/m{i:03}/8000/docker-compose.yml"),
                format!("# {i}\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    fixture.commit_files("main", &refs, "fleet");
    let snapshot = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();
    for round in 0..2 {
        for (path, _) in &files {
            let entry = snapshot
                .entry(path)
                .unwrap_or_else(|| panic!("round {round}: {path}"));
            assert_eq!(&entry.path, path);
            assert!(snapshot.entry(&format!("{path}.missing")).is_none());
        }
        assert_eq!(snapshot.children("machines").count(), 150);
        assert_eq!(
            snapshot
                .children("machines/m042")
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>(),
            ["machines/m042/8000"]
        );
    }
}
