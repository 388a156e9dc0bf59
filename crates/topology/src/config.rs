//! `release-config.toml`: per-repository rule severities (contract section 4).
//!
//! ```toml
//! [rules]
//! TP004 = "off"
//! GPU006 = "error"
//! ```
//!
//! A broken file never stops validation: syntax errors are RC001, unknown rule
//! codes, severities or keys are RC002, and the valid entries still apply.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::finding::{Finding, Location, Rule, Severity};

/// The severity a rule is set to, or `Off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Info,
    Off,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text {
            "error" => Some(Level::Error),
            "warning" => Some(Level::Warning),
            "info" => Some(Level::Info),
            "off" => Some(Level::Off),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Config {
    pub rules: BTreeMap<Rule, Level>,
}

impl Config {
    /// Reads the file; what cannot be understood becomes findings.
    pub fn read(path: &str, src: &str) -> (Config, Vec<Finding>) {
        let mut config = Config::default();
        let mut findings = Vec::new();
        let located = |span: Option<std::ops::Range<usize>>| match span {
            Some(span) => {
                let (line, column) = line_column(src, span.start);
                Location::new(path, line, column)
            }
            None => Location::file(path),
        };
        let table: toml::Table = match toml::from_str(src) {
            Ok(table) => table,
            Err(e) => {
                let message = format!("{path} is not valid TOML: {}", e.message().trim());
                findings.push(Finding::new(
                    Rule::Rc001,
                    None,
                    Vec::new(),
                    Vec::new(),
                    located(e.span()),
                    message,
                ));
                return (config, findings);
            }
        };
        // Spans of keys and values, for pointing at the offending entry.
        let spans = rule_spans(src);
        let span_of = |key: &str| spans.get(key).cloned();
        for (key, value) in &table {
            if key != "rules" {
                findings.push(Finding::new(
                    Rule::Rc002,
                    None,
                    Vec::new(),
                    [format!("{path}:{key}")],
                    Location::file(path),
                    format!("{path}: unknown table or key `{key}` (only `[rules]` is read)"),
                ));
                continue;
            }
            let Some(rules) = value.as_table() else {
                findings.push(Finding::new(
                    Rule::Rc002,
                    None,
                    Vec::new(),
                    [format!("{path}:rules")],
                    Location::file(path),
                    format!("{path}: `rules` must be a table of `CODE = \"error\"|\"warning\"|\"info\"|\"off\"`"),
                ));
                continue;
            };
            for (code, level) in rules {
                let location = located(span_of(code));
                let Some(rule) = Rule::from_code(code) else {
                    findings.push(Finding::new(
                        Rule::Rc002,
                        None,
                        Vec::new(),
                        [format!("{path}:{code}")],
                        location,
                        format!("{path}: unknown rule `{code}` in [rules]"),
                    ));
                    continue;
                };
                match level.as_str().and_then(Level::parse) {
                    Some(level) => {
                        config.rules.insert(rule, level);
                    }
                    None => findings.push(Finding::new(
                        Rule::Rc002,
                        None,
                        Vec::new(),
                        [format!("{path}:{code}")],
                        location,
                        format!(
                            "{path}: [rules] {code} = {level}: the value must be \"error\", \"warning\", \"info\" or \"off\""
                        ),
                    )),
                }
            }
        }
        findings.sort_by(|a, b| a.location.cmp(&b.location));
        (config, findings)
    }

    /// The level a rule runs at.
    pub fn level(&self, rule: Rule) -> Level {
        match self.rules.get(&rule) {
            Some(level) => *level,
            None => match rule.default_severity() {
                Severity::Error => Level::Error,
                Severity::Warning => Level::Warning,
                Severity::Info => Level::Info,
            },
        }
    }

    /// The severity a rule's findings get; `None` when it is turned off.
    pub fn severity(&self, rule: Rule) -> Option<Severity> {
        match self.level(rule) {
            Level::Error => Some(Severity::Error),
            Level::Warning => Some(Severity::Warning),
            Level::Info => Some(Severity::Info),
            Level::Off => None,
        }
    }

    /// Sets overridden severities and removes findings of rules turned off.
    pub fn apply(&self, findings: &mut Vec<Finding>) {
        if self.rules.is_empty() {
            return;
        }
        findings.retain_mut(|finding| match self.level(finding.rule) {
            Level::Off => false,
            Level::Error => {
                finding.severity = Severity::Error;
                true
            }
            Level::Warning => {
                finding.severity = Severity::Warning;
                true
            }
            Level::Info => {
                finding.severity = Severity::Info;
                true
            }
        });
    }
}

/// Byte offsets of `CODE =` keys inside `[rules]`, found with a tolerant line
/// scan (the `toml` table has no spans; the file is small).
fn rule_spans(src: &str) -> BTreeMap<String, std::ops::Range<usize>> {
    let mut spans = BTreeMap::new();
    let mut in_rules = false;
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('[') {
            in_rules = trimmed.trim_end().trim_end_matches(|c| c != ']').trim() == "[rules]";
        } else if let Some((key, _)) = trimmed.split_once('=') {
            let key = key.trim().trim_matches('"');
            let full = if in_rules {
                key.to_owned()
            } else {
                key.strip_prefix("rules.").unwrap_or("").to_owned()
            };
            if !full.is_empty() {
                spans
                    .entry(full)
                    .or_insert(offset + indent..offset + indent + key.len());
            }
        }
        offset += line.len();
    }
    spans
}

fn line_column(src: &str, offset: usize) -> (u32, u32) {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_problems() {
        let src =
            "[rules]\nTP004 = \"off\"\nGPU006 = \"error\"\nNOPE1 = \"off\"\nINV001 = \"loud\"\n";
        let (config, findings) = Config::read("release-config.toml", src);
        assert_eq!(config.level(Rule::Tp004), Level::Off);
        assert_eq!(config.level(Rule::Gpu006), Level::Error);
        assert_eq!(config.level(Rule::Gpu001), Level::Error);
        let got: Vec<String> = findings
            .iter()
            .map(|f| format!("{} {}", f.rule, f.location))
            .collect();
        assert_eq!(
            got,
            [
                "RC002 release-config.toml:4:1",
                "RC002 release-config.toml:5:1"
            ]
        );
    }

    #[test]
    fn syntax_error_is_rc001() {
        let (config, findings) = Config::read("release-config.toml", "[rules\nx = ");
        assert!(config.rules.is_empty());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule, Rule::Rc001);
        assert!(findings[0].location.line >= 1);
    }
}
