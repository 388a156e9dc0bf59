//! Compose variable interpolation (`$VAR`, `${VAR:-default}`, ...). Values
//! come from the deployment's `.env` only, never from the process
//! environment, so results are reproducible.

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
