//! GitHub Actions workflow commands (`::error file=..::message`), errors
//! first, and the Markdown report for `$GITHUB_STEP_SUMMARY` (GitHub shows
//! only 10 annotations of a kind per step; the summary holds them all).

use std::fmt::Write as _;

use topology::Severity;

use crate::report::{Report, ReportedFinding, describe_revision, scope_line, summary_line};

/// GitHub shows this many annotations of each kind (error, warning, notice)
/// per step and drops the rest.
pub const ANNOTATIONS_PER_KIND: usize = 10;

/// The job summary must stay under 1 MiB per step; leave room for what other
/// commands of the step append.
const STEP_SUMMARY_MAX_BYTES: usize = 900 * 1024;

/// The annotations, one line each, errors first, then a plain summary line.
/// `in_step_summary` says whether the full report also went to
/// `$GITHUB_STEP_SUMMARY` (the note about dropped annotations points there).
pub fn render(report: &Report, in_step_summary: bool) -> String {
    let mut out = String::new();
    if let Some(note) = limit_note(report, in_step_summary) {
        // First, so that it is never itself one of the dropped notices.
        let _ = writeln!(
            out,
            "::notice title={}::{}",
            escape_property("release-config: more findings than annotations"),
            escape_data(&note)
        );
    }
    // Suppressed findings are accepted: the step summary lists them, no annotation nags.
    for reported in ordered(report)
        .into_iter()
        .filter(|f| f.finding.suppressed.is_none())
    {
        let finding = &reported.finding;
        let command = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = vec![format!("file={}", escape_property(&finding.location.path))];
        if finding.location.line > 0 {
            properties.push(format!("line={}", finding.location.line));
            if finding.location.column > 0 {
                properties.push(format!("col={}", finding.location.column));
            }
        }
        let mut title = finding.rule.code().to_owned();
        if reported.new == Some(false) {
            title.push_str(" (pre-existing)");
        }
        properties.push(format!("title={}", escape_property(&title)));
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            escape_data(&message(reported, report))
        );
    }
    if report
        .baseline
        .as_ref()
        .is_some_and(|b| !b.stale.is_empty())
    {
        let _ = writeln!(
            out,
            "::notice title={}::{}",
            escape_property("release-config: baseline entries fixed"),
            escape_data(&crate::report::stale_lines(report).join("\n"))
        );
    }
    let _ = writeln!(
        out,
        "release-config: {}; {}",
        summary_line(&report.counts()),
        scope_line(report)
    );
    out
}

/// When a kind has more findings than GitHub shows annotations, says so and
/// where the rest is.
fn limit_note(report: &Report, in_step_summary: bool) -> Option<String> {
    let counts = report.counts().all;
    let over: Vec<String> = [
        (counts.errors, "errors"),
        (counts.warnings, "warnings"),
        (counts.infos, "notices"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > ANNOTATIONS_PER_KIND)
    .map(|(n, kind)| format!("{n} {kind}"))
    .collect();
    if over.is_empty() {
        return None;
    }
    let rest = if in_step_summary {
        "the job summary lists every finding"
    } else {
        "the step log lists every finding"
    };
    Some(format!(
        "GitHub shows only {ANNOTATIONS_PER_KIND} annotations of each kind per step and this run has {}: {rest}",
        over.join(", ")
    ))
}

/// Errors, then warnings, then infos; new before pre-existing; otherwise the
/// report's (file) order.
fn ordered(report: &Report) -> Vec<&ReportedFinding> {
    let mut findings: Vec<&ReportedFinding> = report.findings.iter().collect();
    findings.sort_by_key(|f| (f.finding.severity, !f.counts()));
    findings
}

/// The finding's message with its related locations and, in diff-aware mode,
/// the pre-existing note, one per line.
fn message(reported: &ReportedFinding, report: &Report) -> String {
    let finding = &reported.finding;
    let mut text = finding.message.clone();
    for related in &finding.related {
        text.push('\n');
        if !related.message.is_empty() {
            let _ = write!(text, "{}: ", related.message);
        } else {
            text.push_str("also here: ");
        }
        if let Some(at) = &reported.related_at {
            let _ = write!(text, "{at}:");
        }
        let _ = write!(text, "{}", related.location);
    }
    if reported.new == Some(false) {
        let base = report
            .base
            .as_ref()
            .map(describe_revision)
            .unwrap_or_else(|| "the base".to_owned());
        let _ = write!(
            text,
            "\npre-existing: also reported at {base}; does not fail this run"
        );
    }
    text
}

/// Escaping of a command's message, as in `@actions/core`.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of a command property value, as in `@actions/core`.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The verdict heading and the summary line that open every Markdown report (the job summary,
/// the pull-request comment).
pub(crate) fn heading(report: &Report) -> String {
    let verdict = if report.failed() { "failed" } else { "passed" };
    format!(
        "## Release-config validation {verdict}\n\n**{}** ({})\n\n",
        markdown_text(&summary_line(&report.counts())),
        markdown_text(&scope_line(report))
    )
}

/// The Markdown report appended to `$GITHUB_STEP_SUMMARY`.
pub fn step_summary(report: &Report) -> String {
    let mut out = heading(report);
    if report.findings.is_empty() {
        let _ = writeln!(out, "No findings.");
        return out;
    }
    let mut left_out = 0usize;
    let diff_aware = report.diff_aware();
    if diff_aware {
        let _ = writeln!(
            out,
            "| Severity | Rule | Location | Message | New |\n|---|---|---|---|---|"
        );
    } else {
        let _ = writeln!(
            out,
            "| Severity | Rule | Location | Message |\n|---|---|---|---|"
        );
    }
    for reported in ordered(report) {
        let finding = &reported.finding;
        let icon = match finding.severity {
            Severity::Error => ":x:",
            Severity::Warning => ":warning:",
            Severity::Info => ":information_source:",
        };
        if left_out > 0 {
            left_out += 1;
            continue;
        }
        let mut message = markdown_text(&finding.message);
        for related in &finding.related {
            let label = if related.message.is_empty() {
                "also here"
            } else {
                related.message.as_str()
            };
            let location = match &reported.related_at {
                Some(at) => format!("{at}:{}", related.location),
                None => related.location.to_string(),
            };
            let _ = write!(
                message,
                "<br>{}: {}",
                markdown_text(label),
                code_span(&location)
            );
        }
        let mut row = format!(
            "| {icon} {} | {} | {} | {message} |",
            finding.severity,
            code_span(finding.rule.code()),
            code_span(&finding.location.to_string())
        );
        if diff_aware {
            let _ = write!(row, " {} |", if reported.counts() { "yes" } else { "no" });
        }
        row.push('\n');
        if out.len() + row.len() > STEP_SUMMARY_MAX_BYTES {
            left_out = 1;
            continue;
        }
        out.push_str(&row);
    }
    if left_out > 0 {
        let _ = writeln!(
            out,
            "\n{left_out} more findings are left out: GitHub limits the job summary to 1 MiB. \
             Run the validator with `--format json` for all of them."
        );
    }
    out
}

/// Text safe inside a Markdown table cell: no raw HTML, no cell breaks.
pub(crate) fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            '*' | '_' | '`' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A code span, or escaped text when the content holds a backtick or a pipe.
pub(crate) fn code_span(text: &str) -> String {
    if text.contains(['`', '|', '\n', '\r']) {
        markdown_text(text)
    } else {
        format!("`{text}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_actions_core() {
        assert_eq!(
            escape_data("50% of a\r\nb: c, d"),
            "50%25 of a%0D%0Ab: c, d"
        );
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }

    #[test]
    fn code_spans_of_locations_in_other_refs() {
        assert_eq!(
            code_span("refs/pull/1/head:m/1/d.yml:3:4"),
            "`refs/pull/1/head:m/1/d.yml:3:4`"
        );
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(markdown_text("a | b\n<c>"), "a \\| b<br>&lt;c&gt;");
        assert_eq!(code_span("x`y"), "x\\`y");
        assert_eq!(code_span("m:1:2"), "`m:1:2`");
    }
}
