//! Accepting one finding where it happens, with a reason: a YAML comment on the finding's line
//! or on the line above it,
//!
//! ```yaml
//!       # release-config: ignore GPU003 -- the sidecar only reads GPU metrics
//!       runtime: nvidia
//! ```
//!
//! A comment, not a label: a label is deployed metadata (changing one recreates the container
//! on `docker compose up`, restarting a model server to record a review decision), and labels
//! exist only on services. Suppressed findings stay findings, marked with the reason; a
//! suppression without a reason, naming an unknown rule, or matching nothing is SUP001.

use std::sync::Arc;

use crate::finding::{Finding, Location, Rule};

/// What a suppression comment starts with (after `#` and spaces).
pub(crate) const MARKER: &str = "release-config: ignore";

/// One suppression comment of a compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suppression {
    pub location: Location,
    pub machine: Option<String>,
    pub rules: Vec<Rule>,
    /// After ` -- `; `None` when missing (then it suppresses nothing).
    pub reason: Option<String>,
    /// Codes that name no rule.
    pub unknown: Vec<String>,
}

/// The suppression comments of `text` (the file at `path`). Cheap when there are none: one
/// substring search.
pub(crate) fn scan(path: &Arc<str>, machine: Option<&str>, text: &str) -> Vec<Suppression> {
    if !text.contains(MARKER) {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let Some(hash) = comment_start(line) else {
            continue;
        };
        let comment = line[hash + 1..].trim_start();
        let Some(rest) = comment.strip_prefix(MARKER) else {
            continue;
        };
        let (codes, reason) = match rest.split_once("--") {
            Some((codes, reason)) => (codes, Some(reason.trim()).filter(|r| !r.is_empty())),
            None => (rest, None),
        };
        let mut rules = Vec::new();
        let mut unknown = Vec::new();
        for code in codes
            .split([',', ' '])
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            match Rule::from_code(&code.to_ascii_uppercase()) {
                Some(rule) => rules.push(rule),
                None => unknown.push(code.to_owned()),
            }
        }
        let column = u32::try_from(hash + 1).unwrap_or(u32::MAX);
        found.push(Suppression {
            location: Location::new(
                Arc::clone(path),
                u32::try_from(index + 1).unwrap_or(u32::MAX),
                column,
            ),
            machine: machine.map(str::to_owned),
            rules,
            reason: reason.map(str::to_owned),
            unknown,
        });
    }
    found
}

/// Where a line's comment starts: a `#` at the start or after whitespace, outside quotes (as
/// YAML reads comments).
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return Some(i),
            None => {}
        }
        previous = c;
    }
    None
}

/// Marks the findings each suppression accepts (same file; its line or the next; one of its
/// rules), and adds SUP001 for each suppression that is unusable or accepts nothing.
pub(crate) fn apply(findings: &mut Vec<Finding>, suppressions: &[Suppression]) {
    let mut problems = Vec::new();
    for suppression in suppressions {
        let at = &suppression.location;
        let sup001 = |message: String| {
            Finding::new(
                Rule::Sup001,
                suppression.machine.as_deref(),
                Vec::new(),
                [format!("{}:{}", at.path, at.line)],
                at.clone(),
                message,
            )
        };
        if !suppression.unknown.is_empty() {
            problems.push(sup001(format!(
                "`{MARKER}` names no rule called {}",
                suppression.unknown.join(", ")
            )));
        }
        let Some(reason) = &suppression.reason else {
            problems.push(sup001(format!(
                "`{MARKER}` needs a reason: `# {MARKER} CODE -- why this is fine`; nothing is suppressed without one"
            )));
            continue;
        };
        let mut used = false;
        for finding in findings.iter_mut() {
            let here = &finding.location;
            if here.path == at.path
                && (here.line == at.line || here.line == at.line + 1)
                && suppression.rules.contains(&finding.rule)
                && finding.suppressed.is_none()
            {
                finding.suppressed = Some(reason.clone());
                used = true;
            }
        }
        if !used && !suppression.rules.is_empty() {
            let codes: Vec<&str> = suppression.rules.iter().map(|r| r.code()).collect();
            problems.push(sup001(format!(
                "this suppression of {} accepts no finding (on its line or the next): remove it",
                codes.join(", ")
            )));
        }
    }
    findings.extend(problems);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> Arc<str> {
        Arc::from("machines/m1/8000/docker-compose.yml")
    }

    #[test]
    fn comments_are_read_as_yaml_reads_them() {
        let text = "a: 1 # release-config: ignore GPU003, tp004 -- metrics only\n\
                    b: \"# release-config: ignore GPU001 -- in a string\"\n\
                    c: x#release-config: ignore GPU001 -- not a comment\n\
                    # release-config: ignore GPU9 GPU001\n";
        let found = scan(&path(), Some("m1"), text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].rules, [Rule::Gpu003, Rule::Tp004]);
        assert_eq!(found[0].reason.as_deref(), Some("metrics only"));
        assert_eq!(found[0].location.line, 1);
        assert_eq!(found[1].unknown, ["GPU9"]);
        assert_eq!(found[1].reason, None);
        assert!(scan(&path(), None, "no marker here\n").is_empty());
    }

    #[test]
    fn a_suppression_accepts_its_line_and_the_next_only() {
        let finding = |line| {
            Finding::new(
                Rule::Gpu003,
                Some("m1"),
                Vec::new(),
                Vec::new(),
                Location::new(path(), line, 5),
                "x",
            )
        };
        let mut findings = vec![finding(4), finding(5), finding(7)];
        let suppressions = scan(
            &path(),
            Some("m1"),
            "\n\n\n# release-config: ignore GPU003 -- ok\n",
        );
        apply(&mut findings, &suppressions);
        let marked: Vec<bool> = findings.iter().map(|f| f.suppressed.is_some()).collect();
        assert_eq!(marked, [true, true, false]);
        let mut none = vec![finding(7)];
        apply(&mut none, &suppressions);
        assert_eq!(none.last().map(|f| f.rule), Some(Rule::Sup001));
    }
}
