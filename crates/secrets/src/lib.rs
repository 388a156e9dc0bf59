//! The workspace's one way to keep secrets out of output: [`Secret`], the one
//! type a credential lives in, and [`redact_url`] / [`redact_text`], the one
//! redaction every crate prints URLs and foreign messages through.
//!
//! What counts as a credential, in one place: the user-info of a URL (an SSH
//! user name without a password is kept: it is not a secret), the values of
//! query parameters named like credentials ([`CREDENTIAL_PARAMS`], any case),
//! and strings shaped like known tokens ([`TOKEN_PREFIXES`]).

use std::fmt;

/// What redaction puts where a credential was.
pub const MASK: &str = "***";

/// Query parameters whose values are credentials (compared ignoring case).
pub const CREDENTIAL_PARAMS: [&str; 7] = [
    "token",
    "access_token",
    "private_token",
    "key",
    "sig",
    "password",
    "api_key",
];

/// Prefixes of well-known token formats: GitHub (classic and fine-grained),
/// GitLab, and the user name GitHub's installation tokens go with.
pub const TOKEN_PREFIXES: [&str; 8] = [
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "x-access-token:",
];

/// A secret string. `Debug` and `Display` print a mask; only [`Secret::expose`]
/// gives the value, for the one place that sends it (an HTTP header, a Git
/// credential).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

/// A URL safe to print: user-info becomes `***@` (an SSH user without a
/// password stays), credential query values become `***`, token-shaped
/// strings anywhere become `***`. Anything that is not a URL (a local path)
/// only has its token shapes masked.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return mask_tokens(url);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str("://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let ssh = scheme.eq_ignore_ascii_case("ssh") || scheme.eq_ignore_ascii_case("git+ssh");
            if ssh && !userinfo.contains(':') && !looks_like_token(userinfo) {
                out.push_str(userinfo);
            } else {
                out.push_str(MASK);
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&redact_query(query));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    mask_tokens(&out)
}

/// `url` without its user-info part (`scheme://user:pw@host/x` becomes
/// `scheme://host/x`): for a client that authenticates otherwise, so that no
/// library it hands the URL to can log the credentials.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{tail}")
}

/// A message from elsewhere (libgit2, an HTTP client, a server) safe to
/// print: every URL in it through [`redact_url`], and token shapes masked.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: letters, digits, `+`, `-`, `.` before `://`.
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    mask_tokens(&out)
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_credential_param(name) => format!("{name}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_credential_param(name: &str) -> bool {
    let name = percent_decoded_lower(name);
    CREDENTIAL_PARAMS.iter().any(|param| name == *param)
}

/// `name` lower-cased, with `%XX` escapes of ASCII decoded (so `%74oken` is
/// `token`).
fn percent_decoded_lower(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = name.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
            && byte.is_ascii()
        {
            out.push(char::from(byte).to_ascii_lowercase());
            i += 3;
            continue;
        }
        out.push(char::from(bytes[i]).to_ascii_lowercase());
        i += 1;
    }
    out
}

fn looks_like_token(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    TOKEN_PREFIXES.iter().any(|prefix| lower.contains(prefix))
}

/// Every token-shaped run (a known prefix and the token characters after
/// it) replaced by the mask.
fn mask_tokens(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let found = TOKEN_PREFIXES
            .iter()
            .filter(|prefix| lower[i..].starts_with(*prefix))
            .max_by_key(|prefix| prefix.len());
        match found {
            Some(prefix) => {
                let body_start = i + prefix.len();
                let body_len = text[body_start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
                    .unwrap_or(text.len() - body_start);
                out.push_str(MASK);
                i = body_start + body_len;
            }
            None => {
                let Some(c) = text[i..].chars().next() else {
                    break;
                };
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn urls_lose_userinfo_credential_parameters_and_tokens() {
        for (url, shown) in [
            ("https://user:pw@host/x.git", "https://***@host/x.git"),
            ("https://ghp_abc123@host/x.git", "https://***@host/x.git"),
            (
                "https://host/x.git?access_token=s3cr3t&ref=main",
                "https://host/x.git?access_token=***&ref=main",
            ),
            (
                "https://host/x?Private_Token=a#frag",
                "https://host/x?Private_Token=***#frag",
            ),
            ("https://host/x?%74oken=a", "https://host/x?%74oken=***"),
            (
                "ssh://git@github.com/acme/rc.git",
                "ssh://git@github.com/acme/rc.git",
            ),
            (
                "ssh://git:pw@github.com/acme/rc.git",
                "ssh://***@github.com/acme/rc.git",
            ),
            ("git@github.com:acme/rc.git", "git@github.com:acme/rc.git"),
            ("/srv/release-configs", "/srv/release-configs"),
            ("https://host/ghp_leaked0123/x", "https://host/***/x"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn messages_lose_every_url_credential_and_token() {
        let message = "fetch of 'https://x-access-token:ghs_abc@github.com/o/r.git' failed; \
                       retry with glpat-XYZ987 or see https://h/p?sig=zzz.";
        let clean = redact_text(message);
        for secret in ["ghs_abc", "glpat-XYZ987", "zzz", "x-access-token:"] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(clean.contains("github.com/o/r.git"), "{clean}");
    }

    #[test]
    fn userinfo_can_be_dropped() {
        assert_eq!(
            without_userinfo("https://u:p@ghe.example/api/v3?x=1"),
            "https://ghe.example/api/v3?x=1"
        );
        assert_eq!(without_userinfo("https://h/a@b"), "https://h/a@b");
        assert_eq!(without_userinfo("/local/path"), "/local/path");
    }

    #[test]
    fn a_secret_shows_only_a_mask() {
        let secret = Secret::new("cat_live_abcdef");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(secret.expose(), "cat_live_abcdef");
    }

    fn credential() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{12,24}".prop_map(|s| format!("Zq{s}"))
    }

    proptest! {
        /// A credential in any position of a URL never survives redaction.
        #[test]
        fn no_credential_survives(
            secret in credential(),
            host in "[a-z]{1,8}\\.[a-z]{2,3}",
            path in "(/[a-z0-9._-]{1,8}){0,3}",
            param in prop::sample::select(CREDENTIAL_PARAMS.to_vec()),
            upper in any::<bool>(),
            position in 0..5usize,
            scheme in prop::sample::select(vec!["https", "http", "git", "ssh"]),
        ) {
            let param = if upper { param.to_ascii_uppercase() } else { param.to_owned() };
            let url = match position {
                0 => format!("{scheme}://user:{secret}@{host}{path}"),
                1 => format!("{scheme}://{secret}:x-oauth-basic@{host}{path}"),
                2 => format!("{scheme}://{host}{path}?a=1&{param}={secret}&b=2"),
                3 => format!("{scheme}://{host}{path}?{param}={secret}#top"),
                _ => format!("{scheme}://{host}{path}/ghp_{secret}"),
            };
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&secret), "{url} -> {shown}");
            let text = redact_text(&format!("error at {url}: nope"));
            prop_assert!(!text.contains(&secret), "{url} -> {text}");
        }
    }
}
