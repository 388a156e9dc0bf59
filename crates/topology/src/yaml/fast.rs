//! A fast reader for the YAML that compose files are written in.
//!
//! saphyr-parser's scanner costs most of a parse, and validation reads
//! thousands of compose files. Nearly all of them use a small part of YAML:
//! block mappings and sequences, one-line plain and quoted scalars, comments,
//! one-line flow collections of scalars and aliases, anchors, merge keys and
//! tags on nodes. This reader handles exactly that part, feeding the same
//! tree builder with the same positions saphyr's events carry, and gives up
//! (the caller then uses saphyr) on anything else: block and multi-line
//! scalars, complex keys, flow collections nested other than sequences in
//! sequences, tabs, carriage returns, directives, several documents, unusual
//! indentation, and every error, including the builder's, so messages are
//! always saphyr's.

use super::builder::TreeBuilder;
use super::{Limits, Node, Pos, YamlError};

/// The document is outside what this reader handles with certainty.
struct Unsupported;

/// Limits and merge errors are reported by the saphyr reader, which finds
/// the same error at the same place.
impl From<YamlError> for Unsupported {
    fn from(_: YamlError) -> Unsupported {
        Unsupported
    }
}

type Read<T> = Result<T, Unsupported>;

/// Our own recursion bound (one level per block collection); deeper
/// documents are left to saphyr and the builder's depth limit.
const MAX_NESTING: usize = 128;

/// saphyr drops a simple key candidate 1024 characters after its start;
/// keys anywhere near that are left to it.
const MAX_KEY_SPAN: usize = 1000;

/// The tree of `src`, or `None` when saphyr must read it.
pub(super) fn parse(src: &str, limits: &Limits) -> Option<Node> {
    let scan = scan(src);
    if !scan.simple {
        return None;
    }
    let mut reader = Reader {
        src,
        bytes: src.as_bytes(),
        at: 0,
        line: 1,
        line_start: 0,
        ascii: scan.ascii,
        start_marker_allowed: true,
        // Without a `*` there can be no alias, so anchored nodes need no copy.
        builder: TreeBuilder::new(limits, scan.star),
        anchors: Vec::new(),
        next_anchor: 1,
        nesting: 0,
    };
    reader.document().ok()?;
    Some(reader.builder.finish())
}

/// What one pass over the input tells.
struct Scan {
    /// No tab, carriage return, other control character or DEL: the
    /// places where they matter in YAML are left to saphyr.
    simple: bool,
    ascii: bool,
    /// A `*` somewhere: there may be aliases.
    star: bool,
}

/// One branch-free pass (it vectorises): the input is read once more than
/// the reader itself reads it, so it must be cheap.
fn scan(src: &str) -> Scan {
    const CHUNK: usize = 32;
    let mut odd = false;
    let mut high = 0u8;
    let mut star = false;
    let bytes = src.as_bytes();
    let mut chunks = bytes.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        for &b in chunk {
            odd |= (b < 0x20) & (b != b'\n') | (b == 0x7f);
            high |= b;
            star |= b == b'*';
        }
        if odd {
            break;
        }
    }
    for &b in chunks.remainder() {
        odd |= (b < 0x20) & (b != b'\n') | (b == 0x7f);
        high |= b;
        star |= b == b'*';
    }
    let ascii = high < 0x80;
    Scan {
        simple: !odd && (ascii || !src.contains('\u{feff}')),
        ascii,
        star,
    }
}

/// A node's properties: `&anchor` and `!tag`, either order.
#[derive(Default)]
struct Props {
    /// Builder anchor id, 0 for none.
    anchor: usize,
    /// `!!str`: the scalar is a string even unquoted.
    core_str: bool,
    /// Where the first property starts (the node's position).
    pos: Option<Pos>,
}

struct Reader<'a> {
    src: &'a str,
    bytes: &'a [u8],
    /// Cursor (byte index).
    at: usize,
    /// 1-based line of the cursor.
    line: u32,
    /// Byte index where the cursor's line starts.
    line_start: usize,
    /// Columns are byte offsets when the whole input is ASCII.
    ascii: bool,
    /// One `---` may come before the content.
    start_marker_allowed: bool,
    builder: TreeBuilder,
    /// Anchor names with their ids; the latest definition of a name wins.
    anchors: Vec<(&'a str, usize)>,
    next_anchor: usize,
    nesting: usize,
}

fn is_blank_or_end(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | 0)
}

fn is_flow_indicator(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

/// Anchor names we accept; saphyr accepts more, and those go to it.
fn is_anchor_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Whether a plain scalar may start with `first` (followed by `next`).
fn plain_may_start(first: u8, next: u8, in_flow: bool) -> bool {
    match first {
        b'-' => !(is_blank_or_end(next) || (in_flow && is_flow_indicator(next))),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|'
        | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' | b'\n' | 0 => false,
        _ => true,
    }
}

/// Where a key ends on its line.
struct KeyEnd {
    /// Byte index of the `:` that ends the key.
    colon: usize,
    /// End of the key's text (before trailing spaces, or after the quote).
    text_end: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> u8 {
        self.byte(self.at)
    }

    fn byte(&self, index: usize) -> u8 {
        // The input holds no NUL, so 0 means the end.
        self.bytes.get(index).copied().unwrap_or(0)
    }

    fn text(&self, start: usize, end: usize) -> Read<&'a str> {
        self.src.get(start..end).ok_or(Unsupported)
    }

    /// Position of byte `index` on the cursor's line.
    fn pos_at(&self, index: usize) -> Pos {
        let column = if self.ascii {
            index.saturating_sub(self.line_start)
        } else {
            self.src
                .get(self.line_start..index)
                .map_or(0, |s| s.chars().count())
        };
        Pos {
            line: self.line,
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.at;
        while self.peek() == b' ' {
            self.at += 1;
        }
        self.at - start
    }

    fn skip_to_line_end(&mut self) {
        self.at = self
            .bytes
            .get(self.at..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(self.bytes.len(), |offset| self.at + offset);
    }

    /// After a node: blanks, maybe a comment, then the end of the line.
    fn end_of_line(&mut self) -> Read<()> {
        let spaces = self.skip_spaces();
        match self.peek() {
            b'\n' | 0 => Ok(()),
            b'#' if spaces > 0 => {
                self.skip_to_line_end();
                Ok(())
            }
            _ => Err(Unsupported),
        }
    }

    /// Moves to the first character of the next line with content (skipping
    /// blank and comment lines) and returns its indentation, `None` at the
    /// end. Called at a line break, or at the very start.
    fn next_content_line(&mut self) -> Read<Option<usize>> {
        loop {
            if self.peek() == b'\n' {
                self.at += 1;
                self.line += 1;
                self.line_start = self.at;
            }
            let indent = self.skip_spaces();
            match self.peek() {
                0 => return Ok(None),
                b'\n' => {}
                b'#' => self.skip_to_line_end(),
                _ => {
                    if indent == 0 && self.at_document_marker() {
                        if !self.start_marker_allowed || self.peek() != b'-' {
                            return Err(Unsupported);
                        }
                        self.start_marker_allowed = false;
                        self.at += 3;
                        self.end_of_line()?;
                        continue;
                    }
                    self.start_marker_allowed = false;
                    return Ok(Some(indent));
                }
            }
        }
    }

    /// `---` or `...` at the start of a line, followed by a blank or the end.
    fn at_document_marker(&self) -> bool {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        (rest.starts_with(b"---") || rest.starts_with(b"..."))
            && is_blank_or_end(self.byte(self.at + 3))
    }

    /// A block sequence entry: `-` followed by a blank or the end.
    fn at_dash_entry(&self) -> bool {
        self.peek() == b'-' && is_blank_or_end(self.byte(self.at + 1))
    }

    fn enter(&mut self) -> Read<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Unsupported);
        }
        Ok(())
    }

    fn document(&mut self) -> Read<()> {
        // The root must be a block collection at column 1.
        if self.next_content_line()? != Some(0) {
            return Err(Unsupported);
        }
        let pos = self.pos_at(self.at);
        match self.block_collection(0, 0, pos)? {
            None => Ok(()),
            Some(_) => Err(Unsupported),
        }
    }

    /// A block sequence or mapping whose first line starts at the cursor.
    /// Returns the indentation of the line after it (the cursor is there).
    fn block_collection(&mut self, indent: usize, anchor: usize, pos: Pos) -> Read<Option<usize>> {
        if self.at_dash_entry() {
            self.block_seq(indent, anchor, pos)
        } else {
            self.block_map(indent, anchor, pos)
        }
    }

    fn block_map(&mut self, indent: usize, anchor: usize, pos: Pos) -> Read<Option<usize>> {
        self.enter()?;
        self.builder.open_map(anchor, pos)?;
        loop {
            self.key()?;
            match self.map_value(indent)? {
                // A sequence entry here would be an error.
                Some(next) if next == indent && !self.at_dash_entry() => {}
                Some(next) if next >= indent => return Err(Unsupported),
                next => {
                    self.builder.close()?;
                    self.nesting -= 1;
                    return Ok(next);
                }
            }
        }
    }

    /// `indent` is where the `-` of every entry stands.
    fn block_seq(&mut self, indent: usize, anchor: usize, pos: Pos) -> Read<Option<usize>> {
        self.enter()?;
        self.builder.open_seq(anchor, pos)?;
        loop {
            self.at += 1;
            let spaces = self.skip_spaces();
            let next = match self.peek() {
                b'\n' | 0 => self.entry_below(indent, Props::default())?,
                b'#' if spaces > 0 => {
                    self.skip_to_line_end();
                    self.entry_below(indent, Props::default())?
                }
                _ => self.seq_entry_inline(indent)?,
            };
            match next {
                Some(next) if next == indent && self.at_dash_entry() => {}
                Some(next) if next > indent => return Err(Unsupported),
                // A line at `indent` that is no entry ends an indentless
                // sequence; the caller decides whether it may stand there.
                next => {
                    self.builder.close()?;
                    self.nesting -= 1;
                    return Ok(next);
                }
            }
        }
    }

    /// A sequence entry written on the lines below its `-` (the cursor is at
    /// the end of the `-` line).
    fn entry_below(&mut self, indent: usize, props: Props) -> Read<Option<usize>> {
        match self.next_content_line()? {
            Some(next) if next > indent => {
                let pos = props.pos.unwrap_or_else(|| self.pos_at(self.at));
                self.block_collection(next, props.anchor, pos)
            }
            // An empty entry.
            _ => Err(Unsupported),
        }
    }

    /// A sequence entry that starts on the `-` line, at the cursor.
    fn seq_entry_inline(&mut self, indent: usize) -> Read<Option<usize>> {
        if self.at_dash_entry() {
            return Err(Unsupported);
        }
        let column = self.at - self.line_start;
        let props = self.properties()?;
        if props.pos.is_some() {
            // `- &a key: value` anchors the key, which we leave to saphyr;
            // the scalar readers below refuse the `:`.
            if self.at_comment_or_line_end() {
                self.skip_to_line_end();
                return self.entry_below(indent, props);
            }
        } else if self.key_end().is_some() {
            // `- key: value`: a mapping whose keys stand at `column`.
            let pos = self.pos_at(self.at);
            return self.block_map(column, 0, pos);
        }
        self.inline_node(props)?;
        self.end_of_line()?;
        self.next_content_line()
    }

    /// After blanks: a comment or the end of the line.
    fn at_comment_or_line_end(&self) -> bool {
        match self.peek() {
            b'\n' | 0 => true,
            b'#' => self.at > 0 && self.byte(self.at - 1) == b' ',
            _ => false,
        }
    }

    /// The value after a key's `:` (the cursor is just past it), in a mapping
    /// whose keys stand at `indent`.
    fn map_value(&mut self, indent: usize) -> Read<Option<usize>> {
        let colon = self.pos_at(self.at - 1);
        self.skip_spaces();
        let props = self.properties()?;
        if self.at_comment_or_line_end() {
            self.skip_to_line_end();
            return self.value_below(indent, colon, props);
        }
        self.inline_node(props)?;
        self.end_of_line()?;
        self.next_content_line()
    }

    /// A mapping value on the lines below its key, or an empty value.
    fn value_below(&mut self, indent: usize, colon: Pos, props: Props) -> Read<Option<usize>> {
        let next = self.next_content_line()?;
        match next {
            Some(next) if next > indent || (next == indent && self.at_dash_entry()) => {
                // A sequence at the key's own indentation is allowed.
                let pos = props.pos.unwrap_or_else(|| self.pos_at(self.at));
                self.block_collection(next, props.anchor, pos)
            }
            _ if props.pos.is_some() => Err(Unsupported),
            // An empty value sits at its `:`.
            _ => {
                self.builder.scalar(String::new(), true, 0, colon)?;
                Ok(next)
            }
        }
    }

    /// `&anchor` and `!tag` before a node, each at most once, each followed
    /// by a blank. Leaves the cursor on what follows them.
    fn properties(&mut self) -> Read<Props> {
        let mut props = Props::default();
        let mut tagged = false;
        loop {
            let start = self.at;
            match self.peek() {
                b'&' if props.anchor == 0 => {
                    self.at += 1;
                    let name = self.anchor_name()?;
                    if !is_blank_or_end(self.peek()) {
                        return Err(Unsupported);
                    }
                    props.anchor = self.next_anchor;
                    self.next_anchor += 1;
                    self.anchors.push((name, props.anchor));
                }
                b'!' if !tagged => {
                    tagged = true;
                    self.at += 1;
                    let secondary = self.peek() == b'!';
                    if secondary {
                        self.at += 1;
                    }
                    let suffix_start = self.at;
                    while is_anchor_name_byte(self.peek()) {
                        self.at += 1;
                    }
                    if self.at == suffix_start || !is_blank_or_end(self.peek()) {
                        return Err(Unsupported);
                    }
                    let suffix = self.text(suffix_start, self.at)?;
                    props.core_str = secondary && suffix == "str";
                    if !secondary && suffix == "reset" {
                        // Properties come right before their node.
                        self.builder.reset_next();
                    }
                }
                _ => return Ok(props),
            }
            props.pos.get_or_insert_with(|| self.pos_at(start));
            self.skip_spaces();
        }
    }

    fn anchor_name(&mut self) -> Read<&'a str> {
        let start = self.at;
        while is_anchor_name_byte(self.peek()) {
            self.at += 1;
        }
        if self.at == start {
            return Err(Unsupported);
        }
        self.text(start, self.at)
    }

    /// A node on the rest of the line (block context): scalar, alias or flow
    /// collection. Leaves the cursor after it.
    fn inline_node(&mut self, props: Props) -> Read<()> {
        let start = self.at;
        let pos = props.pos.unwrap_or_else(|| self.pos_at(start));
        match self.peek() {
            b'"' => {
                let text = self.double_quoted()?;
                self.builder.scalar(text, false, props.anchor, pos)?;
            }
            b'\'' => {
                let text = self.single_quoted()?;
                self.builder.scalar(text, false, props.anchor, pos)?;
            }
            b'*' if props.pos.is_none() => self.alias()?,
            b'[' => self.flow_seq(props.anchor, pos)?,
            b'{' => self.flow_map(props.anchor, pos)?,
            first if plain_may_start(first, self.byte(start + 1), false) => {
                let text = self.block_plain()?;
                self.builder
                    .scalar(text.to_owned(), !props.core_str, props.anchor, pos)?;
            }
            _ => return Err(Unsupported),
        }
        Ok(())
    }

    /// A one-line plain scalar in block context, up to a comment or the end
    /// of the line. A `: ` inside would make it a key: left to saphyr.
    fn block_plain(&mut self) -> Read<&'a str> {
        let start = self.at;
        let mut end = start;
        loop {
            match self.peek() {
                b'\n' | 0 => break,
                b':' if is_blank_or_end(self.byte(self.at + 1)) => return Err(Unsupported),
                b' ' if self.byte(self.at + 1) == b'#' => break,
                b' ' => {}
                _ => end = self.at + 1,
            }
            self.at += 1;
        }
        self.text(start, end)
    }

    /// Where the key at the cursor ends, if the line is `key: ...` with a
    /// one-line plain or quoted key.
    fn key_end(&self) -> Option<KeyEnd> {
        let start = self.at;
        let first = self.peek();
        let (text_end, mut at) = match first {
            b'"' | b'\'' => {
                let close = self.closing_quote(first)?;
                (close + 1, close + 1)
            }
            _ if plain_may_start(first, self.byte(start + 1), false) => {
                let mut at = start;
                let mut end = start;
                loop {
                    match self.byte(at) {
                        b':' if is_blank_or_end(self.byte(at + 1)) => break,
                        b'\n' | 0 => return None,
                        b' ' if self.byte(at + 1) == b'#' => return None,
                        b' ' => {}
                        _ => end = at + 1,
                    }
                    at += 1;
                }
                (end, at)
            }
            _ => return None,
        };
        while self.byte(at) == b' ' {
            at += 1;
        }
        let colon_ok = self.byte(at) == b':' && is_blank_or_end(self.byte(at + 1));
        (colon_ok && at - start <= MAX_KEY_SPAN).then_some(KeyEnd {
            colon: at,
            text_end,
        })
    }

    /// Byte index of the quote closing the one-line quoted scalar at the cursor.
    fn closing_quote(&self, quote: u8) -> Option<usize> {
        let mut at = self.at + 1;
        loop {
            match self.byte(at) {
                b'\n' | 0 => return None,
                b'\\' if quote == b'"' => at += 1,
                b'\'' if quote == b'\'' && self.byte(at + 1) == b'\'' => at += 1,
                b if b == quote => return Some(at),
                _ => {}
            }
            at += 1;
        }
    }

    /// A block mapping key at the cursor, through its `:`.
    fn key(&mut self) -> Read<()> {
        let Some(end) = self.key_end() else {
            return Err(Unsupported);
        };
        let pos = self.pos_at(self.at);
        let (text, plain) = match self.peek() {
            b'"' => (self.double_quoted()?, false),
            b'\'' => (self.single_quoted()?, false),
            _ => (self.text(self.at, end.text_end)?.to_owned(), true),
        };
        self.builder.scalar(text, plain, 0, pos)?;
        self.at = end.colon + 1;
        Ok(())
    }

    /// A one-line double-quoted scalar at the cursor; leaves the cursor past
    /// the closing quote.
    fn double_quoted(&mut self) -> Read<String> {
        self.at += 1;
        let start = self.at;
        // Most strings have no escape: one copy.
        loop {
            match self.peek() {
                b'"' => {
                    let text = self.text(start, self.at)?.to_owned();
                    self.at += 1;
                    return Ok(text);
                }
                b'\\' => break,
                b'\n' | 0 => return Err(Unsupported),
                _ => self.at += 1,
            }
        }
        let mut text = self.text(start, self.at)?.to_owned();
        loop {
            let run = self.at;
            loop {
                match self.peek() {
                    b'"' | b'\\' => break,
                    b'\n' | 0 => return Err(Unsupported),
                    _ => self.at += 1,
                }
            }
            text.push_str(self.text(run, self.at)?);
            if self.peek() == b'"' {
                self.at += 1;
                return Ok(text);
            }
            self.at += 1;
            let escape = self.peek();
            self.at += 1;
            let decoded = match escape {
                b'0' => '\0',
                b'a' => '\x07',
                b'b' => '\x08',
                b't' => '\t',
                b'n' => '\n',
                b'v' => '\x0b',
                b'f' => '\x0c',
                b'r' => '\r',
                b'e' => '\x1b',
                b' ' => ' ',
                b'"' => '"',
                b'\\' => '\\',
                b'N' => '\u{85}',
                b'_' => '\u{a0}',
                b'L' => '\u{2028}',
                b'P' => '\u{2029}',
                b'x' => self.hex_escape(2)?,
                b'u' => self.hex_escape(4)?,
                b'U' => self.hex_escape(8)?,
                // Unknown escapes (`\/` among them: go-yaml refuses it),
                // escaped line breaks: the general reader's.
                _ => return Err(Unsupported),
            };
            text.push(decoded);
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Read<char> {
        let hex = self.text(self.at, self.at + digits)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Unsupported);
        }
        self.at += digits;
        u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or(Unsupported)
    }

    /// A one-line single-quoted scalar at the cursor; leaves the cursor past
    /// the closing quote.
    fn single_quoted(&mut self) -> Read<String> {
        self.at += 1;
        let mut run = self.at;
        let mut text = String::new();
        loop {
            match self.peek() {
                b'\'' if self.byte(self.at + 1) == b'\'' => {
                    text.push_str(self.text(run, self.at + 1)?);
                    self.at += 2;
                    run = self.at;
                }
                b'\'' => {
                    text.push_str(self.text(run, self.at)?);
                    self.at += 1;
                    return Ok(text);
                }
                b'\n' | 0 => return Err(Unsupported),
                _ => self.at += 1,
            }
        }
    }

    /// `*name` at the cursor.
    fn alias(&mut self) -> Read<()> {
        let pos = self.pos_at(self.at);
        self.at += 1;
        let name = self.anchor_name()?;
        let Some(&(_, id)) = self.anchors.iter().rev().find(|(n, _)| *n == name) else {
            // Unknown anchor: saphyr words the error.
            return Err(Unsupported);
        };
        self.builder.alias(id, pos)?;
        Ok(())
    }

    /// `[a, "b", *c]` on one line: scalars, aliases and sequences of them
    /// (`[[0, 1], [2, 3]]`, as inventories write NUMA domains).
    fn flow_seq(&mut self, anchor: usize, pos: Pos) -> Read<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Unsupported);
        }
        self.builder.open_seq(anchor, pos)?;
        self.at += 1;
        self.skip_spaces();
        if self.peek() != b']' {
            loop {
                if self.peek() == b'[' {
                    let inner = self.pos_at(self.at);
                    self.flow_seq(0, inner)?;
                } else {
                    self.flow_scalar(false)?;
                }
                self.skip_spaces();
                match self.peek() {
                    b',' => {
                        self.at += 1;
                        self.skip_spaces();
                        if self.peek() == b']' {
                            return Err(Unsupported);
                        }
                    }
                    b']' => break,
                    _ => return Err(Unsupported),
                }
            }
        }
        self.at += 1;
        self.builder.close()?;
        self.nesting -= 1;
        Ok(())
    }

    /// `{a: 1, "b": *c}` on one line, scalar keys, scalar or alias values.
    fn flow_map(&mut self, anchor: usize, pos: Pos) -> Read<()> {
        self.builder.open_map(anchor, pos)?;
        self.at += 1;
        self.skip_spaces();
        if self.peek() != b'}' {
            loop {
                if self.peek() == b'*' {
                    return Err(Unsupported);
                }
                let key_start = self.at;
                self.flow_scalar(true)?;
                self.skip_spaces();
                if self.peek() != b':'
                    || self.byte(self.at + 1) != b' '
                    || self.at - key_start > MAX_KEY_SPAN
                {
                    return Err(Unsupported);
                }
                self.at += 1;
                self.skip_spaces();
                self.flow_scalar(false)?;
                self.skip_spaces();
                match self.peek() {
                    b',' => {
                        self.at += 1;
                        self.skip_spaces();
                        if self.peek() == b'}' {
                            return Err(Unsupported);
                        }
                    }
                    b'}' => break,
                    _ => return Err(Unsupported),
                }
            }
        }
        self.at += 1;
        self.builder.close()?;
        Ok(())
    }

    /// A scalar or alias inside a flow collection. Plain ones stop at `,`,
    /// brackets and braces (a plain key also at `: `); any other `:` or `#`
    /// in them is left to saphyr.
    fn flow_scalar(&mut self, key: bool) -> Read<()> {
        let start = self.at;
        let pos = self.pos_at(start);
        match self.peek() {
            b'"' => {
                let text = self.double_quoted()?;
                self.builder.scalar(text, false, 0, pos)?;
            }
            b'\'' => {
                let text = self.single_quoted()?;
                self.builder.scalar(text, false, 0, pos)?;
            }
            b'*' => {
                self.alias()?;
                if !matches!(self.peek(), b' ' | b',' | b']' | b'}') {
                    return Err(Unsupported);
                }
            }
            first if plain_may_start(first, self.byte(start + 1), true) => {
                let mut end = start;
                loop {
                    match self.peek() {
                        b',' | b']' | b'}' => break,
                        b':' if key && self.byte(self.at + 1) == b' ' => break,
                        // saphyr rejects `-` before a flow indicator.
                        b'-' if is_flow_indicator(self.byte(self.at + 1)) => {
                            return Err(Unsupported);
                        }
                        // go-yaml reads `?` in a flow collection as a key indicator.
                        b'[' | b'{' | b':' | b'#' | b'?' | b'\n' | 0 => return Err(Unsupported),
                        b' ' => {}
                        _ => end = self.at + 1,
                    }
                    self.at += 1;
                }
                self.at = end;
                let text = self.text(start, end)?;
                self.builder.scalar(text.to_owned(), true, 0, pos)?;
            }
            _ => return Err(Unsupported),
        }
        Ok(())
    }
}
