//! Credentials and URLs: how the Git seam authenticates to a remote (and to
//! which origins it offers a token), how long it waits, and how it names a
//! remote without its secrets.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How to authenticate to a remote, and how long a transfer may take. HTTPS
/// uses the token (as the password of user `x-access-token`, or of the URL's
/// user), offered only over HTTPS to the origin of the remote being accessed
/// (never after a redirect elsewhere); SSH uses the ssh agent; local paths
/// and `file://` need nothing. `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct GitAuth {
    token: Option<secrets::Secret>,
    /// A transfer running longer than this is aborted.
    deadline: Option<Duration>,
}

impl GitAuth {
    /// No credentials: public HTTPS remotes, SSH through the agent, local paths.
    pub fn anonymous() -> GitAuth {
        GitAuth::default()
    }

    /// An HTTPS token (e.g. a GitHub installation or personal access token).
    pub fn with_token(token: impl Into<String>) -> GitAuth {
        let token = token.into();
        GitAuth {
            token: (!token.is_empty()).then(|| secrets::Secret::new(token)),
            deadline: None,
        }
    }

    /// Aborts a fetch whose transfer has run for `deadline` (a peer that
    /// trickles bytes never trips the read timeout of
    /// [`set_network_timeouts`]).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> GitAuth {
        self.deadline = Some(deadline);
        self
    }

    /// The deadline of a transfer, if any.
    pub(super) fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Removes the URL's credentials and the token from a message libgit2 wrote.
    pub(super) fn scrub(&self, message: &str, url: &str) -> String {
        let mut clean = message.replace(url, &redact_url(url));
        if let Some(userinfo) = url_userinfo(url)
            && !userinfo.is_empty()
        {
            clean = clean.replace(userinfo, "***");
        }
        if let Some(token) = &self.token {
            clean = clean.replace(token.expose(), "***");
        }
        secrets::redact_text(&clean)
    }

    pub(super) fn callbacks<'a>(&'a self, remote_url: &'a str) -> git2::RemoteCallbacks<'a> {
        use git2::CredentialType;
        let mut tried = CredentialType::empty();
        let mut callbacks = git2::RemoteCallbacks::new();
        // libgit2 calls this again after every failed attempt: try each kind once,
        // then fail instead of looping.
        callbacks.credentials(move |url, username, allowed| {
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && !tried.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some(token) = &self.token
            {
                tried |= CredentialType::USER_PASS_PLAINTEXT;
                // The token is the configured remote's: never for another origin (a
                // redirect), never in clear text.
                if !token_belongs_to(url, remote_url) {
                    return Err(git2::Error::from_str(&format!(
                        "{} asked for credentials; the token is offered only over HTTPS to {}",
                        redact_url(url),
                        origin_of(remote_url).unwrap_or_else(|| redact_url(remote_url))
                    )));
                }
                let user = username.unwrap_or("x-access-token");
                return git2::Cred::userpass_plaintext(user, token.expose());
            }
            if allowed.contains(CredentialType::SSH_KEY) && !tried.contains(CredentialType::SSH_KEY)
            {
                tried |= CredentialType::SSH_KEY;
                return git2::Cred::ssh_key_from_agent(username.unwrap_or("git"));
            }
            if allowed.contains(CredentialType::USERNAME)
                && !tried.contains(CredentialType::USERNAME)
            {
                tried |= CredentialType::USERNAME;
                return git2::Cred::username(username.unwrap_or("git"));
            }
            Err(git2::Error::from_str(AUTH_FAILED))
        });
        if let Some(deadline) = self.deadline {
            let started = Instant::now();
            callbacks.transfer_progress(move |_| started.elapsed() < deadline);
            callbacks.sideband_progress(move |_| started.elapsed() < deadline);
        }
        callbacks
    }
}

/// `scheme://host[:port]` of a URL, lower-case, without userinfo.
pub(super) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    })
}

/// Whether the token of `remote_url` may be sent to `asking` (the URL libgit2
/// is talking to, after any redirect): HTTPS only, same origin.
pub(super) fn token_belongs_to(asking: &str, remote_url: &str) -> bool {
    asking.to_ascii_lowercase().starts_with("https://")
        && origin_of(asking).is_some()
        && origin_of(asking) == origin_of(remote_url)
}

/// Sets libgit2's connect and read timeouts for every network transfer of the
/// process (HTTP(S) and `git://`): a remote that accepts and stays silent fails
/// after `stall` instead of hanging. Process-wide: call once at start-up,
/// before any fetch or push.
#[allow(unsafe_code)] // One of the workspace's two audited exceptions (see ARCHITECTURE.md).
pub fn set_network_timeouts(connect: Duration, stall: Duration) {
    let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
    // SAFETY: libgit2's global options are plain integers it reads when a
    // transport connects; setting them before any transfer starts (as
    // documented above) races with nothing.
    unsafe {
        if let Err(error) = git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect))
        {
            tracing::warn!(%error, "libgit2 connect timeout not set");
        }
        if let Err(error) = git2::opts::set_server_timeout_in_milliseconds(millis(stall)) {
            tracing::warn!(%error, "libgit2 read timeout not set");
        }
    }
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitAuth")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The user-info part of a `scheme://user:secret@host/...` URL, if any.
pub(super) fn url_userinfo(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_end)?;
    let at = authority.rfind('@')?;
    authority.get(..at)
}

/// A URL safe to print: the workspace's one redaction.
pub use secrets::redact_url;

/// Directory name of the mirror of `url` inside a cache directory: a readable
/// slug of the credential-free URL plus a hash, so different remotes never share
/// a mirror and no secret ends up in a file name.
pub(super) fn mirror_dir_name(url: &str) -> String {
    let redacted = redact_url(url);
    let without_scheme = redacted
        .split_once("://")
        .map_or(redacted.as_str(), |(_, rest)| rest);
    let mut slug: String = without_scheme
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = slug.trim_matches(|c| c == '_' || c == '.').to_owned();
    slug = trimmed.chars().take(60).collect();
    // FNV-1a over the URL without credentials: stable across runs and platforms.
    let key = url_without_secrets(url);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{slug}-{hash:016x}.git")
}

/// The URL with user-info and query removed (same remote, whoever's token).
pub(super) fn url_without_secrets(url: &str) -> String {
    let url = secrets::without_userinfo(url);
    match url.split_once('?') {
        Some((before, _)) => before.to_owned(),
        None => url,
    }
}
