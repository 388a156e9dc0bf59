//! Fixture Git repositories, the one way every test binary builds them: in a
//! temporary directory, branch `main`, no system or user Git configuration,
//! and one fixed author, committer and time, so that the same files give the
//! same commit ids on every machine and every run.
//!
//! Two ways to commit, because tests need both: [`FixtureRepo::commit`] and
//! [`FixtureRepo::commit_files`] write objects straight into the database with
//! git2 on any branch (no work tree, no checkout; symbolic links and deletions
//! too), and [`FixtureRepo::commit_work_tree`] runs `git add --all` and `git
//! commit` in the work tree, as a person would. [`FixtureRepo::git`] runs any
//! other `git` command, isolated the same way.

use std::fs;
use std::path::Path;
use std::process::Command;

use git2::{FileMode, Oid, Repository, RepositoryInitOptions, Signature, Time};
use tempfile::TempDir;

/// The fixture identity's name.
pub const NAME: &str = "Fixture";
/// The fixture identity's e-mail address.
pub const EMAIL: &str = "fixture@example.invalid";
/// The time of every fixture commit (seconds since the epoch, UTC).
pub const TIME: i64 = 1_700_000_000;

/// The environment of every `git` process a test starts (and of programs that
/// start `git` themselves): no system or user configuration leaks in, and
/// commits are made by the fixture identity at the fixture time.
pub const ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_AUTHOR_NAME", NAME),
    ("GIT_AUTHOR_EMAIL", EMAIL),
    ("GIT_AUTHOR_DATE", "@1700000000 +0000"),
    ("GIT_COMMITTER_NAME", NAME),
    ("GIT_COMMITTER_EMAIL", EMAIL),
    ("GIT_COMMITTER_DATE", "@1700000000 +0000"),
];

/// The fixture signature, for commits made with git2.
pub fn signature() -> Signature<'static> {
    Signature::new(NAME, EMAIL, &Time::new(TIME, 0))
        .unwrap_or_else(|e| panic!("fixture signature: {e}"))
}

/// Writes `files` (repository-relative path, content) under `root`, creating
/// directories as needed.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
        }
        fs::write(&full, content).unwrap_or_else(|e| panic!("write {full:?}: {e}"));
    }
}

/// A repository with a work tree holding `files`, committed on `main`.
pub fn repo_with(files: &[(&str, &str)]) -> FixtureRepo {
    let repo = FixtureRepo::init();
    repo.commit_work_tree(files, "fixture");
    repo
}

/// One change of a commit made with [`FixtureRepo::commit`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A regular file with this content.
    File(&'a str),
    /// A symbolic link with this target text.
    Link(&'a str),
    /// Remove the path.
    Delete,
}

/// A Git repository in a temporary directory whose initial branch is `main`.
pub struct FixtureRepo {
    dir: TempDir,
    repo: Repository,
}

impl FixtureRepo {
    /// An empty repository with a work tree.
    pub fn init() -> FixtureRepo {
        FixtureRepo::init_with(false)
    }

    /// An empty bare repository (an "upstream" for mirror and push tests).
    pub fn init_bare() -> FixtureRepo {
        FixtureRepo::init_with(true)
    }

    fn init_with(bare: bool) -> FixtureRepo {
        let dir = TempDir::new().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut options = RepositoryInitOptions::new();
        options.bare(bare).initial_head("main");
        let repo = Repository::init_opts(dir.path(), &options)
            .unwrap_or_else(|e| panic!("init fixture repository: {e}"));
        FixtureRepo { dir, repo }
    }

    /// The files of directory `tree` (recursively), committed on `main` of a
    /// new repository with a work tree.
    pub fn from_tree(tree: &Path, message: &str) -> FixtureRepo {
        let repo = FixtureRepo::init();
        copy_tree(tree, repo.path());
        repo.git(&["add", "--all"]);
        repo.git(&["commit", "--quiet", "--no-gpg-sign", "-m", message]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The repository's `file://` URL (a remote to clone or mirror).
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// The repository, for reading objects in a test.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Writes `files` into the work tree (nothing is committed).
    pub fn write_files(&self, files: &[(&str, &str)]) {
        write_files(self.path(), files);
    }

    /// Writes one file into the work tree (nothing is committed).
    pub fn write(&self, path: &str, content: &str) {
        write_files(self.path(), &[(path, content)]);
    }

    /// Writes `files` into the work tree and commits everything on the
    /// checked-out branch; returns the commit id.
    pub fn commit_work_tree(&self, files: &[(&str, &str)], message: &str) -> String {
        self.write_files(files);
        self.commit_all(message)
    }

    /// Commits everything in the work tree (an empty commit when nothing
    /// changed) on the checked-out branch; returns the commit id.
    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&[
            "commit",
            "--quiet",
            "--no-gpg-sign",
            "--allow-empty",
            "-m",
            message,
        ]);
        self.rev_parse("HEAD")
    }

    /// Commits `files` on a new branch `branch` forked from `main`, then
    /// checks `main` out again; returns the branch's commit id.
    pub fn commit_on_branch(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        self.git(&["checkout", "--quiet", "-b", branch, "main"]);
        let id = self.commit_work_tree(files, message);
        self.git(&["checkout", "--quiet", "main"]);
        id
    }

    /// Commits `files` as regular files on `branch` (created if missing),
    /// straight into the object database.
    pub fn commit_files(&self, branch: &str, files: &[(&str, &str)], message: &str) -> Oid {
        let changes: Vec<(&str, Change<'_>)> = files
            .iter()
            .map(|(path, content)| (*path, Change::File(content)))
            .collect();
        self.commit(branch, &changes, message)
    }

    /// Applies `changes` to the tip of `branch` (or to an empty tree) and
    /// commits on `branch`, straight into the object database.
    pub fn commit(&self, branch: &str, changes: &[(&str, Change<'_>)], message: &str) -> Oid {
        let git = &self.repo;
        let ref_name = format!("refs/heads/{branch}");
        let parent = git
            .find_reference(&ref_name)
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let base_tree = match &parent {
            Some(commit) => commit.tree(),
            None => git
                .treebuilder(None)
                .and_then(|builder| builder.write())
                .and_then(|empty| git.find_tree(empty)),
        }
        .unwrap_or_else(|e| panic!("base tree of {branch}: {e}"));
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (path, change) in changes {
            let (content, mode) = match change {
                Change::File(content) => (content, FileMode::Blob),
                Change::Link(target) => (target, FileMode::Link),
                Change::Delete => {
                    update.remove(*path);
                    continue;
                }
            };
            let blob = git
                .blob(content.as_bytes())
                .unwrap_or_else(|e| panic!("blob of {path}: {e}"));
            update.upsert(*path, blob, mode);
        }
        let tree = update
            .create_updated(git, &base_tree)
            .and_then(|id| git.find_tree(id))
            .unwrap_or_else(|e| panic!("tree of {branch}: {e}"));
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let signature = signature();
        git.commit(
            Some(&ref_name),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )
        .unwrap_or_else(|e| panic!("commit on {branch}: {e}"))
    }

    /// Points `ref_name` at `target` (e.g. `refs/pull/12/head`).
    pub fn set_ref(&self, ref_name: &str, target: Oid) {
        self.repo
            .reference(ref_name, target, true, "fixture")
            .unwrap_or_else(|e| panic!("set {ref_name}: {e}"));
    }

    /// The commit `ref_name` points to, if any.
    pub fn ref_target(&self, ref_name: &str) -> Option<Oid> {
        self.repo.refname_to_id(ref_name).ok()
    }

    /// The commit id `main` points to.
    pub fn head(&self) -> String {
        self.rev_parse("main")
    }

    /// The commit id of `rev`.
    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev]).trim().to_owned()
    }

    /// A bare clone (a remote that pushes can go to), in a directory of its own.
    pub fn bare_clone(&self) -> FixtureRepo {
        self.clone_with(&["--bare"])
    }

    /// A clone with a work tree, `origin` being this repository.
    pub fn work_clone(&self) -> FixtureRepo {
        self.clone_with(&[])
    }

    fn clone_with(&self, options: &[&str]) -> FixtureRepo {
        let dir = TempDir::new().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let source = self.path().to_string_lossy().into_owned();
        let target = dir.path().to_string_lossy().into_owned();
        let mut args = vec!["clone", "--quiet"];
        args.extend_from_slice(options);
        args.extend([source.as_str(), target.as_str()]);
        self.git(&args);
        let repo =
            Repository::open(dir.path()).unwrap_or_else(|e| panic!("open clone {target}: {e}"));
        FixtureRepo { dir, repo }
    }

    /// Runs `git args` in the repository, isolated ([`ENV`], `HOME` being the
    /// repository); panics with its stderr when it fails; returns its stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .envs(ENV.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
        assert!(
            output.status.success(),
            "git {args:?} in {}: {}",
            self.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// Copies the files of `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    let entries = fs::read_dir(from).unwrap_or_else(|e| panic!("read {from:?}: {e}"));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read {from:?}: {e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            fs::create_dir_all(&target).unwrap_or_else(|e| panic!("mkdir {target:?}: {e}"));
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copy {target:?}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The point of the fixed identity and time: the same files make the same
    /// commit, whichever way they are committed and whoever runs the test.
    #[test]
    fn commit_ids_are_stable_and_the_same_both_ways() {
        let files = [("machines/a/8000/docker-compose.yml", "services: {}\n")];
        let by_cli = FixtureRepo::init();
        let cli_id = by_cli.commit_work_tree(&files, "fixture");
        let by_objects = FixtureRepo::init_bare();
        let object_id = by_objects.commit_files("main", &files, "fixture\n");
        assert_eq!(cli_id, object_id.to_string());
        assert_eq!(repo_with(&files).head(), cli_id);
        let clone = by_cli.bare_clone();
        assert_eq!(clone.head(), cli_id);
    }
}
