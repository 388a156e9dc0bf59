//! Shared fixtures: release-config repositories built in temporary directories,
//! as plain directories or as Git repositories made with `git2` directly (no
//! `git` CLI, no user or system Git configuration involved).

#![allow(dead_code)] // each test module uses a different part

use std::fs;
use std::path::Path;

use git2::{FileMode, Oid, Repository, RepositoryInitOptions, Signature, Time};
use tempfile::TempDir;

/// One change of a fixture commit.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A regular file with this content.
    File(&'a str),
    /// A symbolic link with this target text.
    Link(&'a str),
    /// Remove the path.
    Delete,
}

/// A fixed signature: fixture commits do not depend on the clock or on config.
pub fn signature() -> Signature<'static> {
    Signature::new(
        "Fixture",
        "fixture@example.invalid",
        &Time::new(1_700_000_000, 0),
    )
    .expect("valid fixture signature")
}

/// Writes `files` (repository-relative path, content) under `root`.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).expect("create fixture directory");
        }
        fs::write(&full, content).expect("write fixture file");
    }
}

/// A Git repository in a temporary directory whose initial branch is `main`.
pub struct FixtureRepo {
    pub dir: TempDir,
    pub git: Repository,
}

impl FixtureRepo {
    /// A repository with a work tree (left empty: commits never check out).
    pub fn init() -> FixtureRepo {
        FixtureRepo::init_with(false)
    }

    /// A bare repository, e.g. an "upstream" for mirror and push tests.
    pub fn init_bare() -> FixtureRepo {
        FixtureRepo::init_with(true)
    }

    fn init_with(bare: bool) -> FixtureRepo {
        let dir = TempDir::new().expect("temp dir");
        let mut options = RepositoryInitOptions::new();
        options.bare(bare).initial_head("main");
        let git = Repository::init_opts(dir.path(), &options).expect("init fixture repository");
        FixtureRepo { dir, git }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `file://` URL of the repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Commits `files` as regular files on `branch` (created if missing).
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
        let ref_name = format!("refs/heads/{branch}");
        let parent = self
            .git
            .find_reference(&ref_name)
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let base_tree = match &parent {
            Some(commit) => commit.tree().expect("parent tree"),
            None => {
                let empty = self
                    .git
                    .treebuilder(None)
                    .expect("tree builder")
                    .write()
                    .expect("empty tree");
                self.git.find_tree(empty).expect("empty tree")
            }
        };
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (path, change) in changes {
            match change {
                Change::File(content) => {
                    let blob = self.git.blob(content.as_bytes()).expect("write blob");
                    update.upsert(*path, blob, FileMode::Blob);
                }
                Change::Link(target) => {
                    let blob = self.git.blob(target.as_bytes()).expect("write link blob");
                    update.upsert(*path, blob, FileMode::Link);
                }
                Change::Delete => {
                    update.remove(*path);
                }
            }
        }
        let tree_id = update
            .create_updated(&self.git, &base_tree)
            .expect("update tree");
        let tree = self.git.find_tree(tree_id).expect("new tree");
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let sig = signature();
        self.git
            .commit(Some(&ref_name), &sig, &sig, message, &tree, &parents)
            .expect("commit")
    }

    /// Points `ref_name` at `target` (e.g. `refs/pull/12/head`).
    pub fn set_ref(&self, ref_name: &str, target: Oid) {
        self.git
            .reference(ref_name, target, true, "fixture")
            .expect("set ref");
    }

    /// The commit `ref_name` points to, if any.
    pub fn ref_target(&self, ref_name: &str) -> Option<Oid> {
        self.git.refname_to_id(ref_name).ok()
    }
}
