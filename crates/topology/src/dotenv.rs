//! `.env` files, parsed as Docker Compose parses them (compose-go's
//! `dotenv` package), with one difference the contract asks for: a bad
//! statement is an error for its line and reading goes on with the next line,
//! so one typo never empties every other variable (Compose stops there).
//!
//! The rules, from compose-go: statements are `KEY=value` or `KEY: value`,
//! optionally after `export `; names are letters, digits and `_.-[]`; a bare
//! `KEY` would come from the process environment, which we never read, so it
//! stays unset. Unquoted values end at the line, lose a ` #` comment and
//! trailing blanks, and are interpolated. Single-quoted values are literal (a
//! `\` before the quote keeps the quote and drops the backslash);
//! double-quoted ones may span lines, expand `\n`-style escapes and are
//! interpolated. Text after a closing quote starts the next statement.

use crate::interpolate::{Vars, interpolate};

/// What a `.env` file defines, and what was wrong in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    pub vars: Vars,
    /// Statements Compose refuses (RC003), each at its line.
    pub errors: Vec<EnvFileError>,
    /// Variables a value uses that are not set above it (RC005), with the
    /// line of the value.
    pub unset: Vec<(u32, String)>,
}

/// A malformed `.env` statement: RC003 at `line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EnvFileError {
    pub line: u32,
    pub message: String,
}

/// Reads a `.env` file; never fails (see [`EnvFile`]).
pub fn parse_env_file(src: &str) -> EnvFile {
    // Compose drops a byte order mark.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut parser = Parser {
        src,
        line_starts: std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        out: EnvFile::default(),
    };
    let mut at = 0;
    while let Some(start) = parser.statement_start(at) {
        at = match parser.statement(start) {
            Ok(next) => next,
            Err(message) => {
                let line = parser.line_of(start);
                parser.out.errors.push(EnvFileError { line, message });
                // Go on at the next line.
                src.get(start..)
                    .and_then(|rest| rest.find('\n'))
                    .map_or(src.len(), |i| start + i + 1)
            }
        };
    }
    parser.out
}

/// Compose's `isSpace`: blanks, but not the line break.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

struct Parser<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
    out: EnvFile,
}

impl Parser<'_> {
    fn line_of(&self, offset: usize) -> u32 {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        u32::try_from(line + 1).unwrap_or(u32::MAX)
    }

    /// The start of the next statement at or after `at`: past white space
    /// and comment lines. `None` at the end.
    fn statement_start(&self, mut at: usize) -> Option<usize> {
        loop {
            let rest = self.src.get(at..)?;
            let skip = rest.find(|c: char| !c.is_whitespace())?;
            at += skip;
            if !self.src[at..].starts_with('#') {
                return Some(at);
            }
            at += self.src[at..].find('\n')?;
        }
    }

    /// One statement at `start`; returns where the next one may begin.
    fn statement(&mut self, start: usize) -> Result<usize, String> {
        let src = self.src;
        let line = self.line_of(start);
        let mut text = &src[start..];
        if let Some(rest) = text.strip_prefix("export")
            && rest.starts_with(char::is_whitespace)
        {
            text = rest.trim_start_matches(is_space);
        }
        let offset_of = |s: &str| s.as_ptr() as usize - src.as_ptr() as usize;
        let mut key_end = None;
        for (i, c) in text.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key_end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    let first_line = text.split('\n').next().unwrap_or("");
                    return Err(format!(
                        "unexpected character `{c}` in variable name `{first_line}`"
                    ));
                }
            }
        }
        let Some((end, separator)) = key_end else {
            // A name alone on the last line: Compose would take it from the
            // process environment.
            return Ok(src.len());
        };
        let key = text[..end].trim_end_matches(char::is_whitespace);
        if key.contains(' ') {
            return Err(format!("variable name `{key}` cannot contain a space"));
        }
        let after = &text[end + separator.len_utf8()..];
        if separator == '\n' {
            // `KEY` alone: from the process environment, which we never read.
            return Ok(offset_of(after));
        }
        let value = after.trim_start_matches(is_space);
        let (text_value, next) = match value.chars().next() {
            Some(quote @ ('\'' | '"')) => {
                let (body, rest) = quoted(&value[1..], quote).ok_or_else(|| {
                    let shown = value.split('\n').next().unwrap_or(value);
                    format!("unterminated quoted value {shown}")
                })?;
                let body = if quote == '"' {
                    self.expand(&unescape(&body), key, line)?
                } else {
                    body
                };
                (body, offset_of(rest))
            }
            _ => {
                let (raw, rest) = value.split_once('\n').unwrap_or((value, ""));
                let raw = raw.split(" #").next().unwrap_or(raw);
                let raw = raw.trim_end_matches(char::is_whitespace);
                let next = if rest.is_empty() && !value.contains('\n') {
                    src.len()
                } else {
                    offset_of(rest)
                };
                (self.expand(raw, key, line)?, next)
            }
        };
        self.out.vars.insert(key.to_owned(), text_value);
        Ok(next)
    }

    /// Interpolation with the variables defined above.
    fn expand(&mut self, value: &str, key: &str, line: u32) -> Result<String, String> {
        let done = interpolate(value, &self.out.vars)
            .map_err(|e| format!("in the value of `{key}`: {}", e.message))?;
        self.out
            .unset
            .extend(done.unset.into_iter().map(|var| (line, var)));
        Ok(done.text)
    }
}

/// The body of a quoted value, up to the unescaped closing `quote`, and the
/// text after it. A backslash before the quote keeps only the quote; any
/// other backslash stays (for [`unescape`], in double quotes).
fn quoted(src: &str, quote: char) -> Option<(String, &str)> {
    let mut body = String::new();
    let mut escape = false;
    for (i, c) in src.char_indices() {
        if c != quote {
            if !escape && c == '\\' {
                escape = true;
                continue;
            }
            if escape {
                escape = false;
                body.push('\\');
            }
            body.push(c);
            continue;
        }
        if escape {
            escape = false;
            body.push(c);
            continue;
        }
        return Some((body, &src[i + c.len_utf8()..]));
    }
    None
}

/// Double-quote escapes, as compose-go's `expandEscapes`: `\a \b \f \n \r \t
/// \v \" \\`, `\0` plus three octal digits, and `\$` for a literal `$` (kept
/// as `$$` for the interpolation that follows). Any other `\x` stays as it is.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        let (replacement, used): (Option<String>, usize) = match chars.next() {
            Some('a') => (Some("\u{7}".into()), 1),
            Some('b') => (Some("\u{8}".into()), 1),
            Some('f') => (Some("\u{c}".into()), 1),
            Some('n') => (Some("\n".into()), 1),
            Some('r') => (Some("\r".into()), 1),
            Some('t') => (Some("\t".into()), 1),
            Some('v') => (Some("\u{b}".into()), 1),
            Some('"') => (Some("\"".into()), 1),
            Some('\\') => (Some("\\".into()), 1),
            Some('$') => (Some("$$".into()), 1),
            Some('0') => {
                let digits: String = after[1..]
                    .chars()
                    .take(3)
                    .take_while(char::is_ascii_digit)
                    .collect();
                match u8::from_str_radix(&digits, 8) {
                    Ok(byte) if digits.len() == 3 => (Some(char::from(byte).to_string()), 4),
                    _ => (None, 1 + digits.len()),
                }
            }
            _ => (None, 0),
        };
        match replacement {
            Some(text) => out.push_str(&text),
            None => {
                out.push('\\');
                out.push_str(&after[..used.min(after.len())]);
            }
        }
        rest = &after[used.min(after.len())..];
    }
    out.push_str(rest);
    out
}
