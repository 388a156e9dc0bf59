//! Command words: `command`/`entrypoint` as Compose splits them
//! (go-shellwords), shell wrappers, `--flag=value`, and where each word
//! stands in the source.

use super::{Reader, Token};
use crate::yaml::{Node, Pos, Value};

impl Reader<'_> {
    /// The words of `command` or `entrypoint`: a string split as Compose
    /// splits it ([`shellwords`]), or a list of strings. `false` when the
    /// field is null or could not be read.
    pub(super) fn command_tokens(&mut self, node: &Node, what: &str, out: &mut Vec<Token>) -> bool {
        match &node.value {
            Value::Scalar(_) if node.is_null() => false,
            Value::Scalar(s) => match shellwords(&s.text) {
                Ok(words) => {
                    let positions = self.locate_words(node.pos, &words);
                    out.extend(
                        words
                            .into_iter()
                            .zip(positions)
                            .map(|(text, pos)| Token { text, pos }),
                    );
                    true
                }
                Err(message) => {
                    self.rc002(node, what, format!("`{what}`: {message}"));
                    false
                }
            },
            Value::Seq(items) => {
                let mut ok = true;
                for item in items {
                    match self.string_entry(item, what) {
                        Some(text) => out.push(Token {
                            text: text.to_owned(),
                            pos: item.pos,
                        }),
                        None => ok = false,
                    }
                }
                ok
            }
            Value::Map(_) => {
                self.rc002(
                    node,
                    what,
                    format!("`{what}` must be a string or a list, found a mapping"),
                );
                false
            }
        }
    }

    /// Finds each word of a command string in the source, so that a finding
    /// can point at the flag value rather than the start of the command. Words
    /// that cannot be found (their text came from a variable) get the position
    /// of the next unmatched raw word; failing that, the scalar's position.
    pub(super) fn locate_words(&mut self, start: Pos, words: &[String]) -> Vec<Pos> {
        let mut out = vec![start; words.len()];
        let Some(mut cursor) = self.offset_of(start) else {
            return out;
        };
        let src = self.src;
        // Never wander further than the command could plausibly extend.
        let limit = src.len().min(cursor.saturating_add(16 * 1024));
        let is_sep = |c: char| {
            c.is_whitespace() || matches!(c, '"' | '\'' | '=' | '\\' | '>' | '|' | '-' | '+')
        };
        for (i, word) in words.iter().enumerate() {
            if word.is_empty() {
                continue;
            }
            let Some(rest) = src.get(cursor..limit) else {
                break;
            };
            // The word itself, after nothing but separators (quotes, a block
            // scalar header, line continuations)?
            let sep_len = rest.find(|c: char| !is_sep(c)).unwrap_or(rest.len());
            let exact = (0..=sep_len)
                .find(|&p| rest.get(p..).is_some_and(|r| r.starts_with(word.as_str())));
            let (at, len) = match exact {
                Some(p) => (cursor + p, word.len()),
                None => {
                    // A raw word such as `${TP}`: up to the next separator.
                    let skip = rest
                        .find(|c: char| {
                            !(c.is_whitespace() || matches!(c, '"' | '\'' | '=' | '\\'))
                        })
                        .unwrap_or(rest.len());
                    let raw = rest.get(skip..).unwrap_or("");
                    let len = raw
                        .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                        .unwrap_or(raw.len());
                    (cursor + skip, len)
                }
            };
            if let Some(pos) = self.pos_of_offset(at) {
                out[i] = pos;
            }
            cursor = at + len;
        }
        out
    }

    /// Where `snippet` first appears in the source at or after `start`
    /// (bounded: a value never spans more than 16 KiB of source). `None` when
    /// the text cannot be found verbatim (escapes in a quoted scalar).
    pub(super) fn locate_snippet(&mut self, start: Pos, snippet: &str) -> Option<Pos> {
        let from = self.offset_of(start)?;
        let src = self.src;
        let limit = src.len().min(from.saturating_add(16 * 1024));
        let found = src.get(from..limit)?.find(snippet)?;
        self.pos_of_offset(from + found)
    }

    pub(super) fn line_starts(&mut self) -> &[usize] {
        let src = self.src;
        self.line_starts.get_or_insert_with(|| {
            let mut starts = vec![0];
            starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
            starts
        })
    }

    pub(super) fn offset_of(&mut self, pos: Pos) -> Option<usize> {
        let src = self.src;
        let line = usize::try_from(pos.line).ok()?.checked_sub(1)?;
        let start = *self.line_starts().get(line)?;
        let column = usize::try_from(pos.column).ok()?.checked_sub(1)?;
        let line_text = src.get(start..)?;
        let within = line_text
            .char_indices()
            .nth(column)
            .map_or(line_text.len(), |(i, _)| i);
        Some(start + within)
    }

    pub(super) fn pos_of_offset(&mut self, offset: usize) -> Option<Pos> {
        let src = self.src;
        let starts = self.line_starts();
        let line = match starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.checked_sub(1)?,
        };
        let start = *starts.get(line)?;
        let column = src.get(start..offset)?.chars().count();
        Some(Pos {
            line: u32::try_from(line + 1).ok()?,
            column: u32::try_from(column + 1).ok()?,
        })
    }
}

/// `sh -c "vllm serve ..."`: the script's words are read as part of the
/// command, with `$@` standing for the arguments after the script's `$0`.
pub(super) fn expand_shell_scripts(argv: &mut Vec<Token>, reader: &mut Reader<'_>) {
    let mut extra = Vec::new();
    for (i, token) in argv.iter().enumerate() {
        let base = token.text.rsplit('/').next().unwrap_or(&token.text);
        if !matches!(base, "sh" | "bash" | "dash" | "zsh" | "ash") {
            continue;
        }
        let Some(flag) = argv.get(i + 1) else {
            continue;
        };
        if !(flag.text.starts_with('-') && !flag.text.starts_with("--") && flag.text.contains('c'))
        {
            continue;
        }
        if let Some(script) = argv.get(i + 2)
            && let Ok(words) = shell_split(&script.text)
        {
            let positions = reader.locate_words(script.pos, &words);
            // `sh -c 'exec server "$@"' arg0 args...`: `$@` is the args.
            let args = argv.get(i + 4..).unwrap_or_default();
            for (text, pos) in words.into_iter().zip(positions) {
                if matches!(text.as_str(), "$@" | "${@}" | "$*" | "${*}") {
                    extra.extend(args.iter().cloned());
                } else {
                    extra.push(Token { text, pos });
                }
            }
        }
    }
    argv.extend(extra);
}

/// `--flag=value` becomes two tokens `--flag` `value`, so lookups treat both
/// forms alike; the value's column is just after the `=`.
pub(super) fn split_inline_values(argv: &mut Vec<Token>) {
    let mut out = Vec::with_capacity(argv.len());
    for token in argv.drain(..) {
        if token.text.starts_with('-')
            && let Some((flag, value)) = token.text.split_once('=')
        {
            let flag_chars = u32::try_from(flag.chars().count() + 1).unwrap_or(0);
            let value_pos = Pos {
                line: token.pos.line,
                column: token.pos.column.saturating_add(flag_chars),
            };
            out.push(Token {
                text: flag.to_owned(),
                pos: token.pos,
            });
            out.push(Token {
                text: value.to_owned(),
                pos: value_pos,
            });
        } else {
            out.push(token);
        }
    }
    *argv = out;
}

/// Splits a `command`/`entrypoint` string as Docker Compose does, with
/// go-shellwords (v1.0.12, without environment or backtick expansion):
/// blanks (space, tab, CR, LF) separate words; single quotes are literal; a
/// backslash outside single quotes takes the next character as it is (`\t`
/// and `\n` become a tab and a newline), inside double quotes too; an
/// unquoted `;`, `&`, `|`, `<` or `>` ends the command (the words before it
/// are all the server receives; `2>` drops the `2`); `(` is an error unless
/// it opens `$(`; an unterminated quote or trailing backslash is an error.
pub(super) fn shellwords(line: &str) -> Result<Vec<String>, String> {
    const INVALID: &str = "invalid command line string (as Compose splits it)";
    let mut args = Vec::new();
    let mut buf = String::new();
    let (mut escaped, mut double, mut single, mut back, mut dollar) =
        (false, false, false, false, false);
    // No word yet, an unquoted word, a word with quotes.
    let mut got = false;
    for mut r in line.chars() {
        if escaped {
            r = match r {
                't' => '\t',
                'n' => '\n',
                other => other,
            };
            buf.push(r);
            escaped = false;
            got = true;
            continue;
        }
        if r == '\\' {
            if single {
                buf.push(r);
            } else {
                escaped = true;
            }
            continue;
        }
        if matches!(r, ' ' | '\t' | '\r' | '\n') {
            if single || double || back || dollar {
                buf.push(r);
            } else if got {
                args.push(std::mem::take(&mut buf));
                got = false;
            }
            continue;
        }
        match r {
            '`' if !single && !double && !dollar => back = !back,
            ')' if !single && !double && !back => dollar = !dollar,
            '(' if !single && !double && !back => {
                if !dollar && buf.ends_with('$') {
                    dollar = true;
                    buf.push('(');
                    continue;
                }
                return Err(INVALID.into());
            }
            '"' if !single && !dollar => {
                if double {
                    got = true;
                }
                double = !double;
                continue;
            }
            '\'' if !double && !dollar => {
                if single {
                    got = true;
                }
                single = !single;
                continue;
            }
            ';' | '&' | '|' | '<' | '>' if !(single || double || back || dollar) => {
                if r == '>' && buf.starts_with(|c: char| c.is_ascii_digit()) {
                    got = false;
                }
                if got {
                    args.push(std::mem::take(&mut buf));
                }
                return if escaped || single || double || back || dollar {
                    Err(INVALID.into())
                } else {
                    Ok(args)
                };
            }
            _ => {}
        }
        got = true;
        buf.push(r);
    }
    if got {
        args.push(buf);
    }
    if escaped || single || double || back || dollar {
        return Err(INVALID.into());
    }
    Ok(args)
}

/// Splits a shell script (the argument of `sh -c`) like a POSIX shell:
/// whitespace separates words, single quotes are literal, double quotes
/// allow `\"` `\\` `\$` `` \` ``, a backslash outside quotes escapes the next
/// character, backslash-newline continues the line.
pub(super) fn shell_split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => {
                    in_word = true;
                    word.push('\\');
                }
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Docker Compose 2.40 made of these strings (`config --format
    /// json`); the differential test checks many more.
    #[test]
    fn compose_words() {
        let words = |s: &str| shellwords(s).unwrap();
        assert_eq!(
            words("vllm serve m \\\n  --tp 2 > /dev/null"),
            ["vllm", "serve", "m", "\n", "--tp", "2"]
        );
        assert_eq!(words("a 'b c' \"x\\\"y\" ; echo"), ["a", "b c", "x\"y"]);
        assert_eq!(
            words("run \"a\\\\b\" \"g\\h\" x\\ y"),
            ["run", "a\\b", "gh", "x y"]
        );
        assert_eq!(words("serve --x 1 2>&1"), ["serve", "--x", "1"]);
        assert_eq!(words("a && b"), ["a"]);
        assert_eq!(words("''"), [""]);
        assert!(shellwords("echo (x)").is_err());
        assert!(shellwords("'open").is_err());
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split("a  'b c' \"d \\\"e\\\"\" f\\ g").unwrap(),
            ["a", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(
            shell_split("--x=1 \\\n --y 2").unwrap(),
            ["--x=1", "--y", "2"]
        );
        assert!(shell_split("'open").is_err());
        assert_eq!(shell_split("").unwrap(), Vec::<String>::new());
        assert_eq!(shell_split("''").unwrap(), [""]);
    }
}
