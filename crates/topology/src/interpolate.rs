//! Compose variable interpolation (`$VAR`, `${VAR:-default}`, ...) and `.env`
//! files. Values come from the deployment's `.env` only, never from the
//! process environment, so results are reproducible.

use std::collections::BTreeMap;

/// Variables of one deployment, from its `.env`.
pub type Vars = BTreeMap<String, String>;

/// The interpolated text and the plain `${VAR}`/`$VAR` references whose
/// variable was unset (they became empty: RC005).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    pub text: String,
    pub unset: Vec<String>,
}

/// A required variable is missing (`${VAR:?msg}`), or the expression is
/// malformed (`${`, `${VAR`, `${1x}`): RC003.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InterpolationError {
    pub message: String,
    /// Byte offset of the offending `$` in the input.
    pub offset: usize,
}

/// Nesting of `${...}` inside defaults beyond which we stop (a hostile value
/// must not exhaust the stack).
const MAX_NESTING: usize = 64;

/// Interpolates `input` as Compose does (compose-go's `template` package):
/// `$$` is a literal `$`; `$NAME` and `${NAME}` (names `[A-Za-z_][A-Za-z0-9_]*`)
/// take the value or become empty and are listed in `unset`; `${NAME:-word}` /
/// `${NAME-word}` default when unset-or-empty / unset; `${NAME:+word}` /
/// `${NAME+word}` substitute when set-and-non-empty / set; `${NAME:?msg}` /
/// `${NAME?msg}` fail when unset-or-empty / unset. The word is itself
/// interpolated, and, as in Compose, always (even when its branch is not taken).
/// A `$` before anything else (`$1`, `$ `) is kept as it is.
pub fn interpolate(input: &str, vars: &Vars) -> Result<Interpolated, InterpolationError> {
    if !input.contains('$') {
        return Ok(Interpolated {
            text: input.to_owned(),
            unset: Vec::new(),
        });
    }
    let mut expander = Expander {
        src: input.as_bytes(),
        input,
        vars,
        unset: Vec::new(),
    };
    let mut text = String::with_capacity(input.len());
    expander.expand(0, &mut text, None, 0)?;
    Ok(Interpolated {
        text,
        unset: expander.unset,
    })
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    /// `:-` (`colon`) or `-`: default when unset (or empty).
    Default,
    /// `:?` or `?`: error when unset (or empty).
    Required,
    /// `:+` or `+`: alternative when set (and not empty).
    Alternative,
}

struct Expander<'a> {
    src: &'a [u8],
    input: &'a str,
    vars: &'a Vars,
    unset: Vec<String>,
}

impl Expander<'_> {
    fn error(&self, offset: usize, message: String) -> InterpolationError {
        InterpolationError { message, offset }
    }

    /// The text of `${...}` starting at `dollar`, cut for messages.
    fn snippet(&self, dollar: usize) -> String {
        let rest = self.input.get(dollar..).unwrap_or("");
        let end = rest.find('}').map_or(rest.len(), |i| i + 1);
        let cut = rest.get(..end).unwrap_or(rest);
        if cut.chars().count() > 40 {
            let short: String = cut.chars().take(40).collect();
            format!("{short}...")
        } else {
            cut.to_owned()
        }
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    fn note_unset(&mut self, name: &str) {
        if !self.unset.iter().any(|n| n == name) {
            self.unset.push(name.to_owned());
        }
    }

    /// Expands from `pos` into `out`. At top level (`opened` is `None`) it
    /// runs to the end of input; inside a braced word (`opened` is the offset of
    /// the `$` of `${`) it stops after the `}` that closes it. Bare `{ }` pairs
    /// inside a word are kept and balanced, as Compose does. Returns the offset
    /// after what it consumed.
    fn expand(
        &mut self,
        mut pos: usize,
        out: &mut String,
        opened: Option<usize>,
        nesting: usize,
    ) -> Result<usize, InterpolationError> {
        let mut braces = 0usize;
        let mut literal_from = pos;
        while let Some(&b) = self.src.get(pos) {
            match b {
                b'$' => {
                    out.push_str(self.input.get(literal_from..pos).unwrap_or(""));
                    pos = self.dollar(pos, out, nesting)?;
                    literal_from = pos;
                }
                b'{' if opened.is_some() => {
                    braces += 1;
                    pos += 1;
                }
                b'}' if opened.is_some() => {
                    if braces == 0 {
                        out.push_str(self.input.get(literal_from..pos).unwrap_or(""));
                        return Ok(pos + 1);
                    }
                    braces -= 1;
                    pos += 1;
                }
                _ => pos += 1,
            }
        }
        if let Some(dollar) = opened {
            return Err(self.error(
                dollar,
                format!(
                    "unterminated `{}`: missing closing brace",
                    self.snippet(dollar)
                ),
            ));
        }
        out.push_str(self.input.get(literal_from..pos).unwrap_or(""));
        Ok(pos)
    }

    /// Handles the `$` at `dollar`; returns the offset after the expression.
    fn dollar(
        &mut self,
        dollar: usize,
        out: &mut String,
        nesting: usize,
    ) -> Result<usize, InterpolationError> {
        let next = dollar + 1;
        match self.src.get(next) {
            Some(b'$') => {
                out.push('$');
                Ok(next + 1)
            }
            Some(&b) if is_name_start(b) => {
                let end = self.name_end(next);
                let name = self.input.get(next..end).unwrap_or("");
                match self.lookup(name) {
                    Some(value) => out.push_str(value),
                    None => self.note_unset(name),
                }
                Ok(end)
            }
            Some(b'{') => self.braced(dollar, out, nesting),
            // `$` before anything that cannot start a name stays literal
            // (compose-go's pattern does not match it).
            _ => {
                out.push('$');
                Ok(next)
            }
        }
    }

    fn name_end(&self, start: usize) -> usize {
        let mut end = start;
        while self.src.get(end).is_some_and(|&b| is_name_char(b)) {
            end += 1;
        }
        end
    }

    fn braced(
        &mut self,
        dollar: usize,
        out: &mut String,
        nesting: usize,
    ) -> Result<usize, InterpolationError> {
        if nesting >= MAX_NESTING {
            return Err(self.error(
                dollar,
                format!("interpolation nested deeper than {MAX_NESTING} levels"),
            ));
        }
        let start = dollar + 2;
        let end = self.name_end(start);
        let name = self.input.get(start..end).unwrap_or("");
        let unterminated = || {
            format!(
                "unterminated `{}`: missing closing brace",
                self.snippet(dollar)
            )
        };
        let Some(&after) = self.src.get(end) else {
            return Err(self.error(dollar, unterminated()));
        };
        if name.is_empty() {
            let message = match after {
                b'}' => "empty variable name in `${}`".to_owned(),
                _ => format!(
                    "invalid variable name in `{}`: a name starts with a letter or `_`",
                    self.snippet(dollar)
                ),
            };
            return Err(self.error(dollar, message));
        }
        if !is_name_start(self.src.get(start).copied().unwrap_or(0)) {
            return Err(self.error(
                dollar,
                format!(
                    "invalid variable name in `{}`: a name starts with a letter or `_`",
                    self.snippet(dollar)
                ),
            ));
        }
        let (colon, op_at) = if after == b':' {
            (true, end + 1)
        } else {
            (false, end)
        };
        let operator = match self.src.get(op_at) {
            Some(b'}') if !colon => {
                match self.lookup(name) {
                    Some(value) => out.push_str(value),
                    None => self.note_unset(name),
                }
                return Ok(end + 1);
            }
            Some(b'-') => Operator::Default,
            Some(b'?') => Operator::Required,
            Some(b'+') => Operator::Alternative,
            None => return Err(self.error(dollar, unterminated())),
            Some(_) if colon => {
                let bad = self
                    .input
                    .get(end..)
                    .and_then(|r| r.chars().nth(1))
                    .unwrap_or(' ');
                return Err(self.error(
                    dollar,
                    format!(
                        "invalid modifier `:{bad}` in `{}`: expected `:-`, `:?` or `:+`",
                        self.snippet(dollar)
                    ),
                ));
            }
            Some(_) => {
                let bad = self
                    .input
                    .get(end..)
                    .and_then(|r| r.chars().next())
                    .unwrap_or(' ');
                return Err(self.error(dollar, format!("invalid character `{bad}` in `{}`: expected `}}` or one of `-`, `?`, `+` after the name", self.snippet(dollar))));
            }
        };
        // Compose expands the word first, whichever branch is taken.
        let mut word = String::new();
        let after_word = self.expand(op_at + 1, &mut word, Some(dollar), nesting + 1)?;
        let value = self.lookup(name);
        let present = match value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match operator {
            Operator::Default if present => out.push_str(value.unwrap_or("")),
            Operator::Default => out.push_str(&word),
            Operator::Alternative if present => out.push_str(&word),
            Operator::Alternative => out.push_str(value.unwrap_or("")),
            Operator::Required if present => out.push_str(value.unwrap_or("")),
            Operator::Required => {
                let message = if word.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {word}")
                };
                return Err(self.error(dollar, message));
            }
        }
        Ok(after_word)
    }
}

/// A malformed `.env` line: RC003 at `line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EnvFileError {
    pub line: u32,
    pub message: String,
}

/// Reads a `.env` file as Compose does: `KEY=value`, optional `export `,
/// comments, single/double quotes, blank lines. Later keys win.
///
/// Unquoted and double-quoted values are interpolated with the variables
/// defined above them (Compose does the same); single-quoted values are
/// literal. A bare `KEY` line would take the value from the process
/// environment in Compose; we never read it, so the key stays unset.
pub fn parse_env_file(src: &str) -> Result<Vars, Vec<EnvFileError>> {
    let mut vars = Vars::new();
    let mut errors = Vec::new();
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut lines = src.split('\n').enumerate().map(|(i, l)| {
        (
            u32::try_from(i + 1).unwrap_or(u32::MAX),
            l.strip_suffix('\r').unwrap_or(l),
        )
    });
    while let Some((line_no, line)) = lines.next() {
        match env_line(line, &mut lines, &vars) {
            Ok(Some((key, value))) => {
                vars.insert(key, value);
            }
            Ok(None) => {}
            Err(message) => errors.push(EnvFileError {
                line: line_no,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

fn is_env_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}')
}

/// One statement starting on `line`; quoted values may take more lines.
fn env_line<'a>(
    line: &'a str,
    more: &mut impl Iterator<Item = (u32, &'a str)>,
    vars: &Vars,
) -> Result<Option<(String, String)>, String> {
    let text = line.trim_start_matches(is_env_blank);
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let text = match text.strip_prefix("export") {
        Some(rest) if rest.starts_with(is_env_blank) => rest.trim_start_matches(is_env_blank),
        _ => text,
    };
    let key_end = text
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .unwrap_or(text.len());
    let (key, rest) = text.split_at(key_end);
    let rest = rest.trim_start_matches(is_env_blank);
    let Some(first) = rest.chars().next() else {
        if key.is_empty() {
            return Err("expected KEY=VALUE".into());
        }
        // `KEY` alone: Compose reads it from the process environment, which
        // we never do.
        return Ok(None);
    };
    if key.is_empty() {
        return Err(format!(
            "unexpected character `{first}` at the start of a variable name"
        ));
    }
    if first != '=' && first != ':' {
        if rest.len() < text.len() - key_end {
            return Err(format!(
                "variable name `{key}` is followed by `{first}`: a key cannot contain a space"
            ));
        }
        return Err(format!(
            "unexpected character `{first}` in variable name `{key}{first}...`"
        ));
    }
    let value = rest.get(1..).unwrap_or("").trim_start_matches(is_env_blank);
    let value = match value.chars().next() {
        Some('\'') => {
            let (raw, trailing) = quoted(value.get(1..).unwrap_or(""), '\'', more)
                .ok_or_else(|| format!("unterminated single-quoted value for `{key}`"))?;
            check_trailing(trailing, key)?;
            raw
        }
        Some('"') => {
            let (raw, trailing) = quoted(value.get(1..).unwrap_or(""), '"', more)
                .ok_or_else(|| format!("unterminated double-quoted value for `{key}`"))?;
            check_trailing(trailing, key)?;
            expand_env_value(&unescape_double(&raw), vars, key)?
        }
        _ => {
            // An inline comment needs a blank before `#`: `a#b` is a value.
            let cut = value
                .find(" #")
                .or_else(|| value.find("\t#"))
                .unwrap_or(value.len());
            let raw = value.get(..cut).unwrap_or(value).trim_end();
            expand_env_value(raw, vars, key)?
        }
    };
    Ok(Some((key.to_owned(), value)))
}

/// The body of a quoted value up to its closing `quote` (a `\` escapes the
/// next character in double quotes), continuing on further lines if needed.
/// Returns the raw body (escapes untouched) and the text after the quote.
fn quoted<'a>(
    first: &'a str,
    quote: char,
    more: &mut impl Iterator<Item = (u32, &'a str)>,
) -> Option<(String, &'a str)> {
    let mut body = String::new();
    let mut chunk = first;
    loop {
        let mut escaped = false;
        for (i, c) in chunk.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && quote == '"' {
                escaped = true;
            } else if c == quote {
                body.push_str(chunk.get(..i).unwrap_or(""));
                return Some((body, chunk.get(i + 1..).unwrap_or("")));
            }
        }
        body.push_str(chunk);
        body.push('\n');
        chunk = more.next()?.1;
    }
}

fn check_trailing(trailing: &str, key: &str) -> Result<(), String> {
    let t = trailing.trim_start_matches(is_env_blank);
    if t.is_empty() || t.starts_with('#') {
        Ok(())
    } else {
        Err(format!(
            "unexpected text after the closing quote of `{key}`"
        ))
    }
}

/// Double-quote escapes: `\n`, `\r`, `\t`, `\"`, `\\`, and `\$` for a literal
/// `$` (kept as `$$` for the interpolation that follows). Other `\x` stay.
fn unescape_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn expand_env_value(raw: &str, vars: &Vars, key: &str) -> Result<String, String> {
    interpolate(raw, vars)
        .map(|i| i.text)
        .map_err(|e| format!("in the value of `{key}`: {}", e.message))
}
