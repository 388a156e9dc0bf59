//! The compiler-style report operators read: one block per finding with the
//! source line, a caret under the offending node and the other side of a
//! conflict, then a verdict.

use std::fmt::Write as _;

use topology::{Location, Severity};

use crate::report::{Report, ReportedFinding, describe_revision, scope_line, summary_line};
use crate::source::{Excerpt, Lookup, SourceCache, excerpt, printable};

/// Source lines wider than this (in terminal columns) are cut around the caret.
const LINE_MAX: usize = 120;

/// ANSI styling, or none.
#[derive(Clone, Copy)]
struct Paint {
    on: bool,
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const CYAN: &str = "\x1b[1;36m";
const GREEN: &str = "\x1b[1;32m";
const BLUE: &str = "\x1b[1;34m";

impl Paint {
    fn paint(self, style: &str, text: &str) -> String {
        if self.on && !text.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    fn severity(self, severity: Severity) -> &'static str {
        match severity {
            Severity::Error => RED,
            Severity::Warning => YELLOW,
            Severity::Info => CYAN,
        }
    }
}

/// Renders the report. `sources` returns a repository file's text (for the
/// source lines): `(None, path)` at the head, `(Some(ref), path)` at a pending
/// ref; `color` adds ANSI colours.
pub fn render(report: &Report, sources: Lookup<'_>, color: bool) -> String {
    let paint = Paint { on: color };
    let mut cache = SourceCache::new(sources);
    let mut out = String::new();
    // New findings first: in a diff-aware run they are what the reader is
    // there for; pre-existing ones follow, in the same (file) order.
    let ordered = report
        .findings
        .iter()
        .filter(|f| f.counts())
        .chain(report.findings.iter().filter(|f| !f.counts()));
    for finding in ordered {
        render_finding(&mut out, finding, report, &mut cache, paint);
        out.push('\n');
    }
    let counts = report.counts();
    let _ = writeln!(out, "{}", scope_line(report));
    let (verdict, style) = if report.failed() {
        ("validation failed", RED)
    } else if counts.all.warnings > 0 || counts.all.errors > 0 {
        ("validation passed", YELLOW)
    } else {
        ("validation passed", GREEN)
    };
    let _ = writeln!(
        out,
        "{}: {}",
        paint.paint(style, verdict),
        paint.paint(BOLD, &summary_line(&counts))
    );
    for line in crate::report::stale_lines(report) {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn render_finding(
    out: &mut String,
    reported: &ReportedFinding,
    report: &Report,
    cache: &mut SourceCache<'_>,
    paint: Paint,
) {
    let finding = &reported.finding;
    let style = paint.severity(finding.severity);
    let related_at = reported.related_at.as_deref();

    // Primary and related source lines, fetched up front so the gutter is
    // as wide as the widest line number shown.
    let primary = snippet(cache, None, &finding.location);
    let related: Vec<_> = finding
        .related
        .iter()
        .map(|r| (r, snippet(cache, related_at, &r.location)))
        .collect();
    let width = std::iter::once(&primary)
        .chain(related.iter().map(|(_, s)| s))
        .flatten()
        .map(|s| s.number.to_string().len())
        .max()
        .unwrap_or(1);
    let pad = " ".repeat(width);
    let bar = paint.paint(BLUE, "|");

    let _ = writeln!(
        out,
        "{}: {}",
        paint.paint(
            style,
            &format!("{}[{}]", finding.severity, finding.rule.code())
        ),
        paint.paint(BOLD, &printable(&finding.message))
    );
    let _ = writeln!(
        out,
        "{pad}{} {}",
        paint.paint(BLUE, "-->"),
        printable(&finding.location.to_string())
    );
    let mut open = false;
    if let Some(snippet) = &primary {
        let _ = writeln!(out, "{pad} {bar}");
        write_snippet(
            out,
            snippet,
            width,
            &paint.paint(style, &"^".repeat(snippet.excerpt.width)),
            paint,
        );
        open = true;
    }

    let mut notes: Vec<(String, Option<Snippet>)> = related
        .into_iter()
        .map(|(r, s)| {
            // A location in another revision is written `ref:path:line:column`,
            // the way Git names a file at a revision.
            let location = match related_at {
                Some(at) => format!("{at}:{}", r.location),
                None => r.location.to_string(),
            };
            let text = if r.message.is_empty() {
                format!("also here: {location}")
            } else {
                format!("{}: {location}", r.message)
            };
            (printable(&text).into_owned(), s)
        })
        .collect();
    if let Some(reason) = &finding.suppressed {
        notes.push((
            format!("suppressed where it happens: {reason}; does not fail this run"),
            None,
        ));
    } else if reported.new == Some(false) {
        let origin = match (&report.base, &report.baseline) {
            (Some(base), _) => format!("also reported at {}", describe_revision(base)),
            (None, Some(baseline)) => format!("listed in the baseline {}", baseline.path),
            (None, None) => "also reported at the base".to_owned(),
        };
        notes.push((
            format!("pre-existing: {origin}; does not fail this run"),
            None,
        ));
    }
    for (text, snippet) in notes {
        if open {
            let _ = writeln!(out, "{pad} {bar}");
        }
        let _ = writeln!(
            out,
            "{pad} {} {} {text}",
            paint.paint(BLUE, "="),
            paint.paint(BOLD, "note:")
        );
        open = false;
        if let Some(snippet) = snippet {
            let _ = writeln!(out, "{pad} {bar}");
            write_snippet(
                out,
                &snippet,
                width,
                &paint.paint(BLUE, &"-".repeat(snippet.excerpt.width)),
                paint,
            );
            open = true;
        }
    }
}

/// One source line with where its caret goes.
struct Snippet {
    number: u32,
    excerpt: Excerpt,
}

fn snippet(cache: &mut SourceCache<'_>, at: Option<&str>, location: &Location) -> Option<Snippet> {
    if location.line == 0 {
        return None;
    }
    let line = cache.line(at, &location.path, location.line)?;
    Some(Snippet {
        number: location.line,
        excerpt: excerpt(line, location.column.max(1), LINE_MAX),
    })
}

fn write_snippet(out: &mut String, snippet: &Snippet, width: usize, marker: &str, paint: Paint) {
    let number = paint.paint(BLUE, &format!("{:>width$}", snippet.number));
    let bar = paint.paint(BLUE, "|");
    let text = snippet.excerpt.text.trim_end();
    if text.is_empty() {
        let _ = writeln!(out, "{number} {bar}");
    } else {
        let _ = writeln!(out, "{number} {bar} {text}");
    }
    let _ = writeln!(
        out,
        "{} {bar} {}{marker}",
        " ".repeat(width),
        " ".repeat(snippet.excerpt.offset)
    );
}
