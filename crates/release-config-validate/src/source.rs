//! Source lines and caret spans for the human report: which part of a line a
//! location points at, and how that line is shown on a terminal (tabs,
//! wide characters, control characters, very long lines).

use std::collections::HashMap;

use unicode_width::UnicodeWidthChar as _;

/// Reads a repository file: `(at, path)`, where `at` is `None` for the
/// validated head and `Some(ref)` for another revision (a pending proposal).
pub type Lookup<'a> = &'a dyn Fn(Option<&str>, &str) -> Option<String>;

/// One loaded file: its text and where each line starts.
struct File {
    text: String,
    starts: Vec<usize>,
}

/// Loads files on demand (through the caller's lookup) and indexes their
/// lines, so that a file named by many findings is read once.
pub struct SourceCache<'a> {
    lookup: Lookup<'a>,
    files: HashMap<(Option<String>, String), Option<File>>,
}

impl<'a> SourceCache<'a> {
    pub fn new(lookup: Lookup<'a>) -> SourceCache<'a> {
        SourceCache {
            lookup,
            files: HashMap::new(),
        }
    }

    /// Line `line` (1-based) of `path` at `at`, without its line break.
    pub fn line(&mut self, at: Option<&str>, path: &str, line: u32) -> Option<&str> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        let lookup = self.lookup;
        let file = self
            .files
            .entry((at.map(str::to_owned), path.to_owned()))
            .or_insert_with(|| {
                lookup(at, path).map(|text| {
                    let starts = std::iter::once(0)
                        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                        .collect();
                    File { text, starts }
                })
            })
            .as_ref()?;
        let start = *file.starts.get(index)?;
        let end = file
            .starts
            .get(index + 1)
            .map_or(file.text.len(), |next| next - 1);
        if start > file.text.len() || (start == file.text.len() && index > 0) {
            // The position after a final line break is not a line.
            return None;
        }
        let text = file.text.get(start..end)?;
        Some(text.strip_suffix('\r').unwrap_or(text))
    }
}

/// Tabs are shown as this many spaces so carets line up.
const TAB_WIDTH: usize = 4;
/// Shown around a cut line.
const ELLIPSIS: &str = "...";

/// A source line ready to print: its displayed text and where the caret goes
/// (in terminal columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    pub text: String,
    pub offset: usize,
    pub width: usize,
}

/// The excerpt of `line` for a node at 1-based character `column`: tabs
/// expanded, control and bidirectional-override characters replaced (a
/// hostile file must not drive the terminal), wide characters counted as two
/// columns, and a line wider than `max_width` cut around the caret.
pub fn excerpt(line: &str, column: u32, max_width: usize) -> Excerpt {
    let chars: Vec<char> = line.chars().collect();
    let (start, len) = token_span(&chars, column);
    // Display column where each character starts, plus the total at the end.
    let mut cols = Vec::with_capacity(chars.len() + 1);
    let mut col = 0usize;
    for &c in &chars {
        cols.push(col);
        col += display_width(c);
    }
    cols.push(col);
    let total = col;
    let at = |i: usize| cols.get(i).copied().unwrap_or(total);
    let caret_start = at(start);
    let caret_end = at(start + len).max(caret_start + 1);

    let (first, last) = if total <= max_width {
        (0, chars.len())
    } else {
        // Keep about a third of the window before the caret.
        let context = max_width / 3;
        let mut lo = caret_start.saturating_sub(context);
        let mut hi = lo + max_width;
        if hi > total {
            hi = total;
            lo = total.saturating_sub(max_width);
        }
        let first = (0..chars.len())
            .find(|&i| at(i) >= lo)
            .unwrap_or(chars.len());
        let last = (first..chars.len())
            .take_while(|&i| at(i + 1) <= hi)
            .last()
            .map_or(first, |i| i + 1);
        (first, last)
    };
    let mut text = String::with_capacity(line.len() + 2 * ELLIPSIS.len());
    let mut offset = caret_start.saturating_sub(at(first));
    if first > 0 {
        text.push_str(ELLIPSIS);
        offset += ELLIPSIS.len();
    }
    for &c in chars.get(first..last).unwrap_or(&[]) {
        push_display(&mut text, c);
    }
    let visible_end = if last < chars.len() {
        at(last)
    } else {
        usize::MAX
    };
    if last < chars.len() {
        text.push_str(ELLIPSIS);
    }
    let width = caret_end
        .min(visible_end)
        .saturating_sub(caret_start)
        .max(1);
    Excerpt {
        text,
        offset,
        width,
    }
}

/// Terminal columns a character takes once displayed.
fn display_width(c: char) -> usize {
    if c == '\t' {
        TAB_WIDTH
    } else if is_unsafe(c) {
        1
    } else {
        c.width().unwrap_or(0)
    }
}

fn push_display(out: &mut String, c: char) {
    if c == '\t' {
        out.extend(std::iter::repeat_n(' ', TAB_WIDTH));
    } else if is_unsafe(c) {
        out.push(char::REPLACEMENT_CHARACTER);
    } else {
        out.push(c);
    }
}

/// Control characters (escape sequences) and bidirectional overrides
/// ("Trojan source") are never written to the terminal as they are.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters escaped, for messages and paths that may
/// carry bytes from the repository (a file name with an escape sequence).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The node at 1-based character `column` of the line: the index of its
/// first character and how many characters it spans (at least 1, except on
/// an empty rest of line).
fn token_span(chars: &[char], column: u32) -> (usize, usize) {
    let start = usize::try_from(column)
        .unwrap_or(usize::MAX)
        .saturating_sub(1)
        .min(chars.len());
    let before = chars.get(..start).unwrap_or(&[]);
    let rest = chars.get(start..).unwrap_or(&[]);
    let len = if starts_node(before) {
        token_width(rest, flow_depth(before) > 0)
    } else {
        // Inside a scalar (a flag in a command string, a value after `=`):
        // underline the word, not the rest of the scalar.
        rest.iter()
            .position(|c| c.is_whitespace())
            .unwrap_or(rest.len())
    };
    (start, len.min(rest.len()))
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
        '"' => {
            // A backslash escapes the next character, itself included.
            let mut i = 1;
            while let Some(&c) = rest.get(i) {
                match c {
                    '\\' => i += 2,
                    '"' => return i + 1,
                    _ => i += 1,
                }
            }
            rest.len()
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: usize = 1000;

    #[test]
    fn caret_spans() {
        // (line, column, expected offset, expected width), no cutting.
        let cases: &[(&str, u32, usize, usize)] = &[
            (r#"      device_ids: ["2", "3"]"#, 25, 24, 3),
            (r#"      device_ids: ["2", "3"]"#, 19, 18, 10),
            ("      device_ids: ['0,1,2,3']", 19, 18, 11),
            ("      device_ids: [2, 3]", 20, 19, 1),
            ("        - \"3\"", 11, 10, 3),
            (r#"        - "a\"b" # c"#, 11, 10, 6),
            (r#"        - "a\\" # c"#, 11, 10, 5),
            ("        - 3", 11, 10, 1),
            ("      count: all  # every GPU", 14, 13, 3),
            ("      gpu_sharing: true", 7, 6, 11),
            ("  image: vllm/vllm-openai:v0.6.3", 10, 9, 23),
            ("      - 'it''s'", 9, 8, 7),
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
            // Tabs: four columns each, before and inside the token.
            ("\tcount: 2", 9, 11, 1),
            ("\tcount:\t2", 9, 14, 1),
            ("  - \"a\tb\"", 5, 4, 8),
            // Wide characters take two columns; combining marks none.
            ("  model: \"模型\"", 10, 9, 6),
            ("  模型: \"x\"", 7, 8, 3),
            ("  name: e\u{301}x", 9, 8, 2),
            ("  emoji: 🚀", 10, 9, 2),
        ];
        for &(line, column, offset, width) in cases {
            let got = excerpt(line, column, WIDE);
            assert_eq!(
                (got.offset, got.width),
                (offset, width),
                "{line:?} at column {column}"
            );
        }
    }

    #[test]
    fn displayed_text_is_safe_and_aligned() {
        let got = excerpt("\tx: \"\u{1b}[31mred\"", 5, WIDE);
        assert_eq!(got.text, "    x: \"\u{FFFD}[31mred\"");
        assert_eq!((got.offset, got.width), (7, 10));
        let bidi = excerpt("a: \"\u{202E}b\"", 4, WIDE);
        assert_eq!(bidi.text, "a: \"\u{FFFD}b\"");
        assert_eq!(printable("a\u{1b}b\nc"), "a\\u{1b}b\\u{a}c");
        assert_eq!(printable("plain"), "plain");
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let filler = "x".repeat(200);
        // Caret far to the right: the start is cut, the caret stays visible.
        let line = format!("    command: {filler} --tp 4 --more {filler}");
        let column = u32::try_from(line.find("4 --more").unwrap() + 1).unwrap();
        let got = excerpt(&line, column, 60);
        assert!(got.text.starts_with("...") && got.text.ends_with("..."));
        assert!(got.text.chars().count() <= 60 + 6, "{}", got.text);
        assert_eq!(got.text.chars().nth(got.offset), Some('4'), "{got:?}");
        assert_eq!(got.width, 1);
        // Caret near the start: only the end is cut.
        let got = excerpt(&line, 5, 60);
        assert!(got.text.starts_with("    command:") && got.text.ends_with("..."));
        assert_eq!((got.offset, got.width), (4, 7));
        // Caret near the end: only the start is cut.
        let line = format!("{filler}: v");
        let got = excerpt(&line, u32::try_from(line.len()).unwrap(), 60);
        assert!(got.text.starts_with("...") && got.text.ends_with(": v"));
        assert_eq!(got.text.chars().nth(got.offset), Some('v'));
        // A token longer than the window is underlined up to the cut.
        let line = format!("k: {filler}");
        let got = excerpt(&line, 4, 60);
        assert_eq!(got.offset, 3);
        assert_eq!(got.offset + got.width, got.text.chars().count() - 3);
        // Wide characters are not split by the cut.
        let line = format!("k: {}", "模".repeat(100));
        let got = excerpt(&line, 4, 61);
        assert!(got.text.ends_with("..."));
        let shown: usize = got
            .text
            .trim_end_matches('.')
            .chars()
            .map(display_width)
            .sum();
        assert!(shown <= 61, "{shown}");
    }

    #[test]
    fn cache_reads_each_file_once() {
        let calls = std::cell::Cell::new(0);
        let lookup = |at: Option<&str>, path: &str| {
            calls.set(calls.get() + 1);
            match (at, path) {
                (None, "a") => Some("one\ntwo\r\nthree\n".to_owned()),
                (Some("refs/pull/1/head"), "a") => Some("other".to_owned()),
                _ => None,
            }
        };
        let mut cache = SourceCache::new(&lookup);
        assert_eq!(cache.line(None, "a", 2), Some("two"));
        assert_eq!(cache.line(None, "a", 3), Some("three"));
        assert_eq!(cache.line(None, "a", 1), Some("one"));
        assert_eq!(cache.line(None, "a", 4), None);
        assert_eq!(cache.line(None, "a", 0), None);
        assert_eq!(cache.line(Some("refs/pull/1/head"), "a", 1), Some("other"));
        assert_eq!(cache.line(None, "b", 1), None);
        assert_eq!(cache.line(None, "b", 1), None);
        assert_eq!(calls.get(), 3);
    }
}
