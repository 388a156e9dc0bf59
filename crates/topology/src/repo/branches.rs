//! Proposal branches: a commit built from a tree plus changed files (no work
//! tree, never on `main`), and its create-only push.

#[allow(clippy::wildcard_imports)]
use super::*;

/// One change a proposal commit makes to its base tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeChange {
    /// Set the file at `path` to `contents` (creating directories on the way).
    Write { path: String, contents: Vec<u8> },
    /// Delete the file or the whole directory at `path`; it must exist in
    /// the base tree (a change that changes nothing is a mistake).
    Remove { path: String },
}

impl TreeChange {
    pub fn path(&self) -> &str {
        match self {
            TreeChange::Write { path, .. } | TreeChange::Remove { path } => path,
        }
    }
}

impl Repository {
    /// Builds a commit whose tree is `base_rev`'s with `path` set to `contents`,
    /// and creates branch `branch` on it. No work tree or index is touched;
    /// `branch` must be new and not a protected name (`main`, `master`).
    pub fn commit_file_on_new_branch(
        &self,
        base_rev: &str,
        branch: &str,
        path: &str,
        contents: &[u8],
        message: &str,
        author: &Author,
    ) -> Result<CommitId, RepoError> {
        let change = TreeChange::Write {
            path: path.to_owned(),
            contents: contents.to_vec(),
        };
        self.commit_changes_on_new_branch(base_rev, branch, &[change], message, author)
    }

    /// [`Repository::commit_file_on_new_branch`] with any number of
    /// changes, applied in one commit on `base_rev`'s tree. A directory left
    /// empty by a removal disappears with it (Git has no empty directories).
    pub fn commit_changes_on_new_branch(
        &self,
        base_rev: &str,
        branch: &str,
        changes: &[TreeChange],
        message: &str,
        author: &Author,
    ) -> Result<CommitId, RepoError> {
        check_branch_name(branch)?;
        for change in changes {
            check_repo_path(change.path())?;
        }
        let git = lock(&self.git);
        let ref_name = format!("refs/heads/{branch}");
        let git_error = |action: &str, e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: action.to_owned(),
            message: git_message(&e),
        };
        let keep_ref = format!("{UNPUSHED_NAMESPACE}{branch}");
        if git.find_reference(&ref_name).is_ok() || git.find_reference(&keep_ref).is_ok() {
            return Err(RepoError::BranchExists {
                branch: branch.to_owned(),
                repo: self.git_dir.clone(),
            });
        }
        let (base, _) = resolve_commit(&git, &self.git_dir, base_rev)?;
        let base_tree = base
            .tree()
            .map_err(|e| git_error("reading the base tree", e))?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for change in changes {
            match change {
                TreeChange::Write { path, contents } => {
                    let blob = git
                        .blob(contents)
                        .map_err(|e| git_error("writing the blob", e))?;
                    update.upsert(path.as_str(), blob, git2::FileMode::Blob);
                }
                TreeChange::Remove { path } => {
                    if base_tree.get_path(Path::new(path)).is_err() {
                        return Err(RepoError::BadPath {
                            path: path.clone(),
                            reason: format!("not in the tree of `{base_rev}`: nothing to remove"),
                        });
                    }
                    update.remove(path.as_str());
                }
            }
        }
        let tree_id = update
            .create_updated(&git, &base_tree)
            .map_err(|e| git_error("writing the changed tree", e))?;
        let tree = git
            .find_tree(tree_id)
            .map_err(|e| git_error("reading the new tree", e))?;
        let signature = git2::Signature::now(&author.name, &author.email)
            .map_err(|e| git_error("building the signature", e))?;
        let commit_id = git
            .commit(None, &signature, &signature, message, &tree, &[&base])
            .map_err(|e| git_error("writing the commit", e))?;
        // In a mirror, the keep-ref first: a fetch running meanwhile then
        // cannot lose the branch (see `fetch`).
        if self.remote_url.is_some() {
            git.reference(&keep_ref, commit_id, false, "catapult: unpushed proposal")
                .map_err(|e| git_error(&format!("keeping unpushed branch `{branch}`"), e))?;
        }
        // force = false: creating fails rather than moving an existing branch.
        git.reference(&ref_name, commit_id, false, "catapult: proposal branch")
            .map_err(|e| {
                if e.code() == git2::ErrorCode::Exists {
                    RepoError::BranchExists {
                        branch: branch.to_owned(),
                        repo: self.git_dir.clone(),
                    }
                } else {
                    git_error(&format!("creating branch `{branch}`"), e)
                }
            })?;
        Ok(CommitId(commit_id))
    }

    /// The paths under `under` that `head_rev` changed since it forked from
    /// `base_rev` (their merge base): what a proposal branch proposes,
    /// whatever `base_rev` did since. Sorted, each once (a rename gives
    /// both paths).
    pub fn changed_since_fork(
        &self,
        base_rev: &str,
        head_rev: &str,
        under: &str,
    ) -> Result<Vec<String>, RepoError> {
        let git = lock(&self.git);
        let git_error = |action: String, e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action,
            message: git_message(&e),
        };
        let (base, _) = resolve_commit(&git, &self.git_dir, base_rev)?;
        let (head, _) = resolve_commit(&git, &self.git_dir, head_rev)?;
        let fork = git.merge_base(base.id(), head.id()).map_err(|e| {
            git_error(
                format!("finding where `{head_rev}` forked from `{base_rev}`"),
                e,
            )
        })?;
        let fork_tree = git
            .find_commit(fork)
            .and_then(|c| c.tree())
            .map_err(|e| git_error(format!("reading the tree of {fork}"), e))?;
        let head_tree = head
            .tree()
            .map_err(|e| git_error(format!("reading the tree of `{head_rev}`"), e))?;
        let mut options = git2::DiffOptions::new();
        options.pathspec(under).disable_pathspec_match(false);
        let diff = git
            .diff_tree_to_tree(Some(&fork_tree), Some(&head_tree), Some(&mut options))
            .map_err(|e| git_error(format!("comparing `{head_rev}` with its fork point"), e))?;
        let mut paths: Vec<String> = diff
            .deltas()
            .flat_map(|delta| [delta.old_file().path(), delta.new_file().path()])
            .flatten()
            .filter_map(|path| path.to_str().map(str::to_owned))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// The commit local branch `branch` holds for a proposal: its unpushed
    /// commit if one is kept, else the branch itself; `None` if neither exists.
    pub fn proposal_commit(&self, branch: &str) -> Option<CommitId> {
        let git = lock(&self.git);
        [
            format!("{UNPUSHED_NAMESPACE}{branch}"),
            format!("refs/heads/{branch}"),
        ]
        .iter()
        .find_map(|name| git.refname_to_id(name).ok())
        .map(CommitId)
    }

    /// Points local proposal branch `branch` (and its unpushed keep-ref, in a
    /// mirror) at `commit`: another agent's commit of the same proposal, which
    /// is then pushed instead of ours. Only `catapult/` names.
    pub fn adopt_branch(&self, branch: &str, commit: CommitId) -> Result<(), RepoError> {
        check_branch_name(branch)?;
        if !branch.starts_with(crate::proposal::BRANCH_PREFIX) {
            return Err(RepoError::BadBranch {
                branch: branch.to_owned(),
                reason: "only proposal branches are adopted".to_owned(),
            });
        }
        let git = lock(&self.git);
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("pointing branch `{branch}` at {}", commit.short()),
            message: git_message(&e),
        };
        if self.remote_url.is_some() {
            git.reference(
                &format!("{UNPUSHED_NAMESPACE}{branch}"),
                commit.0,
                true,
                "catapult: adopt",
            )
            .map_err(git_error)?;
        }
        git.reference(
            &format!("refs/heads/{branch}"),
            commit.0,
            true,
            "catapult: adopt",
        )
        .map_err(git_error)?;
        Ok(())
    }

    /// Forgets local proposal branch `branch` if it was never pushed (a
    /// refused proposal leaves nothing behind, and asking again makes a new
    /// commit). A branch the mirrored remote has is left as it is.
    pub fn drop_unpushed_branch(&self, branch: &str) -> Result<(), RepoError> {
        let git = lock(&self.git);
        let keep = format!("{UNPUSHED_NAMESPACE}{branch}");
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("removing unpushed branch `{branch}`"),
            message: git_message(&e),
        };
        let Ok(mut keep_ref) = git.find_reference(&keep) else {
            return Ok(());
        };
        let kept = keep_ref.target();
        keep_ref.delete().map_err(git_error)?;
        if let Ok(mut head) = git.find_reference(&format!("refs/heads/{branch}"))
            && head.target() == kept
        {
            head.delete().map_err(git_error)?;
        }
        Ok(())
    }

    /// Writes a commit with `of`'s tree, `of` as its only parent and
    /// `message`, on no ref (the caller pushes it somewhere).
    pub fn commit_on(
        &self,
        of: CommitId,
        message: &str,
        author: &Author,
    ) -> Result<CommitId, RepoError> {
        let git = lock(&self.git);
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("writing a commit on {}", of.short()),
            message: git_message(&e),
        };
        let parent = git.find_commit(of.0).map_err(git_error)?;
        let tree = parent.tree().map_err(git_error)?;
        let signature = git2::Signature::now(&author.name, &author.email).map_err(git_error)?;
        let id = git
            .commit(None, &signature, &signature, message, &tree, &[&parent])
            .map_err(git_error)?;
        Ok(CommitId(id))
    }

    /// Message, first parent and committer time of `commit`, if this
    /// repository has it.
    pub fn commit_record(&self, commit: CommitId) -> Option<CommitRecord> {
        let git = lock(&self.git);
        let found = git.find_commit(commit.0).ok()?;
        Some(CommitRecord {
            message: String::from_utf8_lossy(found.message_bytes()).into_owned(),
            parent: found.parent_ids().next().map(CommitId),
            time: found.time().seconds(),
        })
    }

    /// Whether `commit` is `rev` or one of its ancestors (merged into it).
    pub fn is_merged(&self, commit: CommitId, rev: &str) -> Result<bool, RepoError> {
        let git = lock(&self.git);
        let (target, _) = resolve_commit(&git, &self.git_dir, rev)?;
        if target.id() == commit.0 {
            return Ok(true);
        }
        git.graph_descendant_of(target.id(), commit.0)
            .map_err(|e| RepoError::Git {
                repo: self.git_dir.clone(),
                action: format!("comparing {} with {rev}", commit.short()),
                message: git_message(&e),
            })
    }

    /// Pushes local branch `branch` to a new branch of the same name on
    /// `remote_url`. It only ever creates: if the remote already has a branch
    /// of that name on another commit (whatever it is, including a default
    /// branch not called `main`), nothing is sent and this is an error; if it
    /// has this very commit, there is nothing to do. Never forced. Protected
    /// names are refused before any network access.
    pub fn push_branch(
        &self,
        remote_url: &str,
        branch: &str,
        auth: &GitAuth,
    ) -> Result<(), RepoError> {
        check_branch_name(branch)?;
        let push_error = |message: String| RepoError::Push {
            branch: branch.to_owned(),
            url: redact_url(remote_url),
            message: auth.scrub(&message, remote_url),
        };
        // Own handle, as in `fetch`: the network must not block snapshot reads.
        let git = self
            .fresh_handle()
            .map_err(|e| push_error(git_message(&e)))?;
        let ref_name = format!("refs/heads/{branch}");
        let keep_ref = format!("{UNPUSHED_NAMESPACE}{branch}");
        // The proposal's own commit, even if a fetch moved the branch since.
        let source = if git.find_reference(&keep_ref).is_ok() {
            keep_ref.clone()
        } else {
            git.find_reference(&ref_name)
                .map_err(|_| push_error(format!("no local branch `{branch}` (create it first)")))?;
            ref_name.clone()
        };
        if let Some(path) = remote_ref::local_remote_path(remote_url) {
            // libgit2's local transport fails when any ref of the remote vanishes while it
            // pushes, and does not compare before it writes: create the branch directly.
            let commit = git
                .refname_to_id(&source)
                .map_err(|e| push_error(git_message(&e)))?;
            let created = self
                .update_local_remote_ref(&path, &ref_name, Some(CommitId(commit)), None)
                .map_err(|e| push_error(git_message(&e)))?;
            if let RefUpdate::Mismatch {
                current: Some(current),
            } = created
            {
                return Err(push_error(format!(
                    "{ref_name} already exists on the remote (at {}); a proposal only creates new branches",
                    current.short()
                )));
            }
        } else {
            self.push_with_transport(&git, remote_url, branch, &source, &ref_name, auth)?;
        }
        // Upstream holds the proposal now: the keep-ref has done its job.
        if let Ok(mut keep) = git.find_reference(&keep_ref) {
            keep.delete().map_err(|e| push_error(git_message(&e)))?;
        }
        Ok(())
    }

    pub(super) fn push_with_transport(
        &self,
        git: &git2::Repository,
        remote_url: &str,
        branch: &str,
        source: &str,
        ref_name: &str,
        auth: &GitAuth,
    ) -> Result<(), RepoError> {
        let push_error = |message: String| RepoError::Push {
            branch: branch.to_owned(),
            url: redact_url(remote_url),
            message: auth.scrub(&message, remote_url),
        };
        let mut remote = git
            .remote_anonymous(remote_url)
            .map_err(|e| push_error(git_message(&e)))?;
        let rejection: RefCell<Option<String>> = RefCell::new(None);
        {
            let mut callbacks = auth.callbacks(remote_url);
            callbacks.push_negotiation(|updates| {
                for update in updates {
                    let current = update.src();
                    if !current.is_zero() && current != update.dst() {
                        let name = update.dst_refname().unwrap_or("the branch");
                        let message = format!(
                            "{name} already exists on the remote (at {}); a proposal only creates new branches",
                            CommitId(current).short()
                        );
                        *rejection.borrow_mut() = Some(message.clone());
                        return Err(git2::Error::from_str(&message));
                    }
                }
                Ok(())
            });
            callbacks.push_update_reference(|name, status| {
                if let Some(status) = status {
                    *rejection.borrow_mut() = Some(format!("remote rejected {name}: {status}"));
                }
                Ok(())
            });
            let mut options = git2::PushOptions::new();
            options.remote_callbacks(callbacks);
            // No leading `+`: never a forced update.
            let refspec = format!("{source}:{ref_name}");
            let pushed = remote.push(&[refspec.as_str()], Some(&mut options));
            if let Err(e) = pushed {
                let message = rejection
                    .borrow_mut()
                    .take()
                    .unwrap_or_else(|| git_message(&e));
                return Err(push_error(message));
            }
        }
        if let Some(message) = rejection.into_inner() {
            return Err(push_error(message));
        }
        Ok(())
    }
}

pub(super) fn check_branch_name(branch: &str) -> Result<(), RepoError> {
    let bad = |reason: &str| {
        Err(RepoError::BadBranch {
            branch: branch.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if PROTECTED_BRANCHES
        .iter()
        .any(|p| p.eq_ignore_ascii_case(branch))
    {
        return bad("protected branch: proposals never write it");
    }
    if branch.starts_with("refs/") || branch.starts_with('-') || branch.starts_with('+') {
        return bad("give a plain branch name (no `refs/`, `+` or `-` prefix)");
    }
    if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return bad("not a valid Git branch name");
    }
    Ok(())
}

pub(super) fn check_repo_path(path: &str) -> Result<(), RepoError> {
    let bad = |reason: &str| {
        Err(RepoError::BadPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return bad(
            "expected a relative file path such as machines/gpu-01/8000/docker-compose.yml",
        );
    }
    if path.contains('\0') || path.contains('\\') {
        return bad("contains a NUL byte or a backslash");
    }
    for component in path.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return bad("empty, `.` or `..` component");
        }
        if component.eq_ignore_ascii_case(".git") {
            return bad("`.git` is not part of the repository's content");
        }
    }
    Ok(())
}

/// The unified diff (`git diff` style, three lines of context) of one file
/// from `old` to `new`, for a pull request's text; empty when they are equal.
pub fn unified_diff(path: &str, old: &str, new: &str) -> Result<String, RepoError> {
    let git_error = |e: git2::Error| RepoError::Git {
        repo: PathBuf::new(),
        action: format!("comparing two versions of `{path}`"),
        message: git_message(&e),
    };
    let at = Path::new(path);
    let mut patch =
        git2::Patch::from_buffers(old.as_bytes(), Some(at), new.as_bytes(), Some(at), None)
            .map_err(git_error)?;
    let text = patch.to_buf().map_err(git_error)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}
