//! The general reader: saphyr-parser's marked events into the tree builder.
//! It reads all of YAML and words the errors; the fast reader hands every
//! document it is unsure of to it.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};

use super::builder::{TreeBuilder, depth_message};
use super::{Limits, Node, Pos, YamlError};

/// Reads the document from saphyr-parser's events. The caller has checked
/// the size limit.
pub(super) fn parse(src: &str, limits: &Limits) -> Result<Node, YamlError> {
    // Without a `*` there can be no alias, so anchored nodes need no copy.
    let mut builder = TreeBuilder::new(limits, src.contains('*'));
    let mut parser = Parser::new_from_str(src);
    let mut documents = 0u32;
    let mut lines = Lines {
        src,
        line: 1,
        start: 0,
    };
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| scan_error(src, &e, limits))?;
        let pos = pos_of(span.start);
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        message:
                            "a second YAML document starts here; the file must hold exactly one"
                                .into(),
                        pos,
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if tag.as_ref().is_some_and(|t| is_reset(t)) {
                    builder.reset_next();
                }
                // `!!str 3` is a string as surely as `"3"` is.
                let core_str = tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !core_str;
                builder.scalar(text.into_owned(), plain, anchor, pos)?;
            }
            Event::SequenceStart(anchor, tag) => {
                if tag.as_ref().is_some_and(|t| is_reset(t)) {
                    builder.reset_next();
                }
                // An indentless sequence (`key:\n- item`) is reported at its
                // first item; point at the `-` like other block sequences.
                // Only a mapping value can be one; properties give a span.
                let pos = if span.is_empty() && builder.awaits_map_value() {
                    lines.indentless_dash(pos)
                } else {
                    pos
                };
                builder.open_seq(anchor, pos)?;
            }
            Event::MappingStart(anchor, tag) => {
                if tag.as_ref().is_some_and(|t| is_reset(t)) {
                    builder.reset_next();
                }
                builder.open_map(anchor, pos)?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
            Event::Alias(id) => builder.alias(id, pos)?,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    Ok(builder.finish())
}

/// Compose's `!reset` (a local tag).
fn is_reset(tag: &Tag) -> bool {
    tag.handle == "!" && tag.suffix == "reset"
}

fn pos_of(mark: Marker) -> Pos {
    Pos {
        line: u32::try_from(mark.line()).unwrap_or(u32::MAX),
        column: u32::try_from(mark.col())
            .unwrap_or(u32::MAX)
            .saturating_add(1),
    }
}

/// Turns the parser's error into a short message; the position travels apart.
fn scan_error(src: &str, err: &ScanError, limits: &Limits) -> YamlError {
    let mut pos = pos_of(*err.marker());
    // At end of input saphyr may point one line past the last one.
    let last_line = src.split('\n').count();
    if usize::try_from(pos.line).is_ok_and(|line| line > last_line) {
        let last = src.rsplit('\n').next().unwrap_or("");
        pos = Pos {
            line: u32::try_from(last_line).unwrap_or(u32::MAX),
            column: u32::try_from(last.chars().count() + 1).unwrap_or(u32::MAX),
        };
    }
    let info = err.info();
    let message = match info {
        "simple key expected" | "simple key expect ':'" => {
            "could not find expected ':' after a key".to_owned()
        }
        "unexpected eof" => "unexpected end of file".to_owned(),
        "while scanning a quoted scalar, found unexpected end of stream" => {
            "unterminated quoted string".to_owned()
        }
        "while parsing node, found unknown anchor" => match alias_name_at(src, pos) {
            Some(name) => format!("unknown anchor: *{name} is used before any &{name}"),
            None => "unknown anchor".to_owned(),
        },
        // saphyr's own flow-nesting guard (255 levels) can fire while it
        // scans ahead, before our depth check sees the events.
        "recursion limit exceeded" => depth_message(limits),
        _ => info.to_owned(),
    };
    YamlError { message, pos }
}

/// The anchor name of `*name` at `pos`, read back from the source (error path only).
fn alias_name_at(src: &str, pos: Pos) -> Option<&str> {
    let line = src
        .lines()
        .nth(usize::try_from(pos.line).ok()?.checked_sub(1)?)?;
    let skip = usize::try_from(pos.column).ok()?.checked_sub(1)?;
    let start = line.char_indices().nth(skip).map(|(i, _)| i)?;
    let rest = line.get(start..)?.strip_prefix('*')?;
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
        .unwrap_or(rest.len());
    rest.get(..end).filter(|name| !name.is_empty())
}

/// Line starts, found moving forward as the events do.
struct Lines<'a> {
    src: &'a str,
    /// 1-based line that starts at byte `start`.
    line: u32,
    start: usize,
}

impl<'a> Lines<'a> {
    fn text(&mut self, line: u32) -> Option<&'a str> {
        if line < self.line {
            self.line = 1;
            self.start = 0;
        }
        while self.line < line {
            let newline = self.src.get(self.start..)?.find('\n')?;
            self.start += newline + 1;
            self.line += 1;
        }
        self.src.get(self.start..)?.split('\n').next()
    }

    /// Where the first `-` of an indentless sequence (`key:\n- item`)
    /// stands. saphyr reports such a sequence past that `-` and the blanks
    /// (and comment) after it; a block sequence in the same place
    /// (`key:\n  - item`) is reported at its `-`, with only indentation
    /// before it, and keeps `pos`.
    fn indentless_dash(&mut self, pos: Pos) -> Pos {
        let Some(text) = self.text(pos.line) else {
            return pos;
        };
        let indent = text.len() - text.trim_start_matches(' ').len();
        let dash_column = u32::try_from(indent + 1).unwrap_or(u32::MAX);
        if dash_column < pos.column && text.get(indent..).is_some_and(|t| t.starts_with('-')) {
            Pos {
                line: pos.line,
                column: dash_column,
            }
        } else {
            pos
        }
    }
}
