//! Source lines and caret spans for the human report.

use std::collections::HashMap;

/// Loads repository files on demand (through the caller's lookup) and keeps
/// them split into lines, so that a file named by many findings is read once.
pub struct SourceCache<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    files: HashMap<String, Option<Vec<String>>>,
}

impl<'a> SourceCache<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> SourceCache<'a> {
        SourceCache {
            lookup,
            files: HashMap::new(),
        }
    }

    /// Line `line` (1-based) of `path`, without its line break.
    pub fn line(&mut self, path: &str, line: u32) -> Option<&str> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        let lookup = self.lookup;
        let lines = self
            .files
            .entry(path.to_owned())
            .or_insert_with(|| lookup(path).map(|text| text.lines().map(str::to_owned).collect()));
        lines.as_ref()?.get(index).map(String::as_str)
    }
}

/// Tabs are shown as this many spaces so carets line up.
const TAB: &str = "    ";

/// The line as displayed (tabs expanded).
pub fn display_line(line: &str) -> String {
    line.replace('\t', TAB)
}

/// Where the caret starts (display columns before it) and how wide it is, for
/// a node at 1-based character `column` of `line`.
pub fn caret_span(line: &str, column: u32) -> (usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    let start = usize::try_from(column)
        .unwrap_or(usize::MAX)
        .saturating_sub(1)
        .min(chars.len());
    let offset: usize = chars
        .iter()
        .take(start)
        .map(|&c| if c == '\t' { TAB.len() } else { 1 })
        .sum();
    let before = chars.get(..start).unwrap_or(&[]);
    let rest = chars.get(start..).unwrap_or(&[]);
    let width = if starts_node(before) {
        token_width(rest, flow_depth(before) > 0)
    } else {
        // Inside a scalar (a flag in a command string, a value after `=`):
        // underline the word, not the rest of the scalar.
        rest.iter()
            .position(|c| c.is_whitespace())
            .unwrap_or(rest.len())
    };
    (offset, width.max(1))
}

/// Whether a YAML node can start after `before`: at the start of the line, or
/// after `key:`, a list dash, `[`, `{`, `,` or `?` and whitespace.
fn starts_node(before: &[char]) -> bool {
    match before.last() {
        None => true,
        Some('[' | '{' | ',') => true,
        Some(c) if c.is_whitespace() => {
            let previous = before.iter().rev().find(|c| !c.is_whitespace());
            matches!(
                previous,
                None | Some(':' | '-' | '[' | '{' | ',' | '?' | '|' | '>')
            )
        }
        _ => false,
    }
}

/// How many `[`/`{` are open before the node (quotes skipped), i.e. whether a
/// `,` ends a plain scalar there.
fn flow_depth(before: &[char]) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for &c in before {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                '#' => break,
                _ => {}
            },
        }
    }
    depth
}

/// The width of the YAML token starting at `rest[0]`: a quoted scalar up to
/// its closing quote, a flow collection up to its closing bracket, a plain
/// scalar up to `: `, ` #`, or (inside a flow collection) `,`/`]`/`}`.
fn token_width(rest: &[char], in_flow: bool) -> usize {
    let Some(&first) = rest.first() else { return 1 };
    match first {
        '"' => closing(rest, |i, c| {
            c == '"' && rest.get(i.wrapping_sub(1)) != Some(&'\\')
        }),
        '\'' => {
            // `''` inside a single-quoted scalar is an escaped quote.
            let mut i = 1;
            while let Some(&c) = rest.get(i) {
                if c == '\'' {
                    if rest.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    return i + 1;
                }
                i += 1;
            }
            rest.len()
        }
        '[' | '{' => {
            let mut depth = 0usize;
            let mut quote: Option<char> = None;
            for (i, &c) in rest.iter().enumerate() {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None => match c {
                        '"' | '\'' => quote = Some(c),
                        '[' | '{' => depth += 1,
                        ']' | '}' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                return i + 1;
                            }
                        }
                        _ => {}
                    },
                }
            }
            rest.len()
        }
        _ => {
            let mut end = rest.len();
            for (i, &c) in rest.iter().enumerate() {
                let next = rest.get(i + 1).copied();
                let ends = match c {
                    ':' => next.is_none_or(char::is_whitespace),
                    '#' => i > 0 && rest.get(i - 1).is_some_and(|p| p.is_whitespace()),
                    ',' | ']' | '}' => in_flow,
                    _ => false,
                };
                if ends {
                    end = i;
                    break;
                }
            }
            let trimmed = rest.get(..end).unwrap_or(rest);
            trimmed
                .iter()
                .rposition(|c| !c.is_whitespace())
                .map_or(1, |last| last + 1)
        }
    }
}

fn closing(rest: &[char], is_close: impl Fn(usize, char) -> bool) -> usize {
    rest.iter()
        .enumerate()
        .skip(1)
        .find(|&(i, &c)| is_close(i, c))
        .map_or(rest.len(), |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_spans() {
        // (line, column, expected offset, expected width)
        let cases: &[(&str, u32, usize, usize)] = &[
            (r#"      device_ids: ["2", "3"]"#, 25, 24, 3),
            (r#"      device_ids: ["2", "3"]"#, 19, 18, 10),
            ("      device_ids: ['0,1,2,3']", 19, 18, 11),
            ("      device_ids: [2, 3]", 20, 19, 1),
            ("        - \"3\"", 11, 10, 3),
            ("        - 3", 11, 10, 1),
            ("      count: all  # every GPU", 14, 13, 3),
            ("      gpu_sharing: true", 7, 6, 11),
            ("  image: vllm/vllm-openai:v0.6.3", 10, 9, 23),
            ("      - 'it''s'", 9, 8, 7),
            ("\tcount: 2", 9, 11, 1),
            ("short", 40, 5, 1),
            ("", 1, 0, 1),
            (
                "      command: --model m --tensor-parallel-size 4",
                16,
                15,
                34,
            ),
            (
                "      command: --model m --tensor-parallel-size 4",
                26,
                25,
                22,
            ),
            (
                "      command: --model m --tensor-parallel-size=4",
                49,
                48,
                1,
            ),
            ("      - --tensor-parallel-size", 9, 8, 22),
            ("      - NVIDIA_VISIBLE_DEVICES=2,3", 32, 31, 3),
        ];
        for &(line, column, offset, width) in cases {
            assert_eq!(
                caret_span(line, column),
                (offset, width),
                "{line:?} at column {column}"
            );
        }
    }

    #[test]
    fn cache_reads_each_file_once() {
        let calls = std::cell::Cell::new(0);
        let lookup = |path: &str| {
            calls.set(calls.get() + 1);
            (path == "a").then(|| "one\ntwo\r\nthree".to_owned())
        };
        let mut cache = SourceCache::new(&lookup);
        assert_eq!(cache.line("a", 2), Some("two"));
        assert_eq!(cache.line("a", 3), Some("three"));
        assert_eq!(cache.line("a", 4), None);
        assert_eq!(cache.line("a", 0), None);
        assert_eq!(cache.line("b", 1), None);
        assert_eq!(cache.line("b", 1), None);
        assert_eq!(calls.get(), 2);
    }
}
