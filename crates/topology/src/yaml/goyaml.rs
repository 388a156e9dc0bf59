//! Where go-yaml (Docker Compose's YAML reader) and YAML 1.2 part ways, for
//! documents the fast reader leaves to saphyr.
//!
//! One pass over the source, tracking quotes, comments, block scalars and
//! flow collections, finds:
//!
//! - lines inside a flow collection indented no deeper than the line that
//!   opened it (`command: [` ... `]` with the `]` under the key). go-yaml
//!   ignores indentation inside flow collections, YAML 1.2 (and saphyr) does
//!   not; such lines are padded for saphyr and positions moved back after.
//! - what go-yaml refuses and YAML 1.2 allows: the escape `\/` in a
//!   double-quoted scalar, and `?` inside a plain scalar of a flow
//!   collection (go-yaml reads it as a key indicator).

use super::{Node, Pos, Value, YamlError};

/// The findings of [`scan`].
pub(super) struct Scan {
    /// (1-based line, spaces added in front of it).
    pub(super) pads: Vec<(u32, u32)>,
    /// Byte offsets of the `'` of each `\'` in a double-quoted scalar: an
    /// escape go-yaml knows and YAML 1.2 does not, written `\x27` for saphyr.
    pub(super) quote_escapes: Vec<usize>,
    /// The first construct go-yaml refuses.
    pub(super) refusal: Option<YamlError>,
}

pub(super) fn scan(src: &str) -> Scan {
    let mut scan = Scan {
        pads: Vec::new(),
        quote_escapes: Vec::new(),
        refusal: None,
    };
    let bytes = src.as_bytes();
    let mut flow_depth = 0usize;
    // Indentation of the line that opened the outermost flow collection.
    let mut flow_indent = 0usize;
    // Inside a block scalar whose parent line is indented this much.
    let mut block_scalar: Option<usize> = None;
    // Where to go on within a line a multi-line quoted scalar ended on.
    let mut resume: Option<usize> = None;
    let mut line_no = 0u32;
    let mut at = 0usize;
    while at < bytes.len() {
        line_no += 1;
        let line_end = src[at..].find('\n').map_or(bytes.len(), |i| at + i);
        let line = &src[at..line_end];
        let indent = line.len() - line.trim_start_matches(' ').len();
        let mut i = indent;
        let mut node_start = true;
        if let Some(offset) = resume.take() {
            i = offset - at;
            node_start = false;
        } else {
            let blank = line.trim().is_empty();
            if let Some(parent) = block_scalar {
                if blank || indent > parent {
                    at = line_end + 1;
                    continue;
                }
                block_scalar = None;
            }
            if flow_depth > 0 && !blank && indent <= flow_indent {
                let pad = flow_indent + 1 - indent;
                scan.pads
                    .push((line_no, u32::try_from(pad).unwrap_or(u32::MAX)));
            }
            if flow_depth == 0 {
                flow_indent = indent;
            }
        }
        let lb = line.as_bytes();
        let mut next_line = line_end + 1;
        while i < lb.len() {
            match lb[i] {
                b' ' | b'\t' => {
                    i += 1;
                    continue;
                }
                b'#' if i == 0 || matches!(lb[i - 1], b' ' | b'\t') => break,
                b'"' if node_start => {
                    let Some(end) = double_quoted_end(src, at + i, &mut scan, line_no) else {
                        return scan;
                    };
                    if end > line_end {
                        // The scalar ends on a later line: go on there.
                        let skipped = src[at + i..end].matches('\n').count();
                        line_no += u32::try_from(skipped).unwrap_or(1) - 1;
                        next_line = src[..end].rfind('\n').map_or(0, |p| p + 1);
                        resume = Some(end);
                        break;
                    }
                    i = end - at;
                    node_start = false;
                    continue;
                }
                b'\'' if node_start => {
                    let mut k = i + 1;
                    loop {
                        match lb.get(k) {
                            Some(b'\'') if lb.get(k + 1) == Some(&b'\'') => k += 2,
                            Some(b'\'') => break,
                            Some(_) => k += 1,
                            // Multi-line single quotes: left to saphyr alone.
                            None => return scan,
                        }
                    }
                    i = k + 1;
                    node_start = false;
                    continue;
                }
                b'[' | b'{' if node_start || flow_depth > 0 => {
                    flow_depth += 1;
                    node_start = true;
                }
                b']' | b'}' if flow_depth > 0 => {
                    flow_depth -= 1;
                    node_start = false;
                }
                b',' if flow_depth > 0 => node_start = true,
                b'|' | b'>' if node_start && flow_depth == 0 => {
                    block_scalar = Some(indent);
                    break;
                }
                b'-' | b'?' | b':' if lb.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') => {
                    node_start = true;
                }
                // JSON style: `"key":"value"` in a flow collection.
                b':' if flow_depth > 0 && i > 0 && matches!(lb[i - 1], b'"' | b'\'') => {
                    node_start = true;
                }
                b'?' if flow_depth > 0 => {
                    refuse(
                        &mut scan,
                        line_no,
                        i,
                        "`?` in a flow collection: go-yaml (Docker Compose's YAML reader) reads it as a key indicator; quote the value",
                    );
                    return scan;
                }
                b'&' | b'!' if node_start => {
                    // A property: the node starts after it.
                    while i < lb.len() && lb[i] != b' ' {
                        i += 1;
                    }
                    continue;
                }
                _ => {
                    // A plain scalar, up to what ends it.
                    node_start = false;
                    while i < lb.len() {
                        let p = lb[i];
                        if flow_depth > 0 && matches!(p, b',' | b'[' | b']' | b'{' | b'}') {
                            break;
                        }
                        if flow_depth > 0 && p == b'?' {
                            refuse(
                                &mut scan,
                                line_no,
                                i,
                                "`?` inside a plain scalar of a flow collection: go-yaml (Docker Compose's YAML reader) reads it as a key indicator; quote the value",
                            );
                            return scan;
                        }
                        if p == b':' && lb.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') {
                            break;
                        }
                        if p == b'#' && matches!(lb[i - 1], b' ' | b'\t') {
                            break;
                        }
                        i += 1;
                    }
                    continue;
                }
            }
            i += 1;
        }
        at = next_line;
    }
    scan
}

fn refuse(scan: &mut Scan, line: u32, index: usize, message: &str) {
    scan.refusal.get_or_insert(YamlError {
        message: message.to_owned(),
        pos: Pos {
            line,
            column: u32::try_from(index + 1).unwrap_or(u32::MAX),
        },
    });
}

/// The byte after the closing quote of the double-quoted scalar at `start`;
/// records an escape go-yaml does not know. `None` when unterminated.
fn double_quoted_end(src: &str, start: usize, scan: &mut Scan, line: u32) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    let mut line = line;
    let mut line_start = src[..start].rfind('\n').map_or(0, |p| p + 1);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            b'\\' => {
                if bytes.get(i + 1) == Some(&b'\'') {
                    scan.quote_escapes.push(i + 1);
                }
                if bytes.get(i + 1) == Some(&b'/') {
                    refuse(
                        scan,
                        line,
                        src[line_start..i].chars().count(),
                        "unknown escape `\\/` (go-yaml, Docker Compose's YAML reader, refuses it; write `/`)",
                    );
                }
                i += 1;
                if bytes.get(i) == Some(&b'\n') {
                    line += 1;
                    line_start = i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The source as saphyr can read what go-yaml reads, and how to move
/// positions back to the file as written.
pub(super) struct Rewrite {
    pub(super) text: String,
    /// (line, first column in the rewritten text that moved, by how much).
    shifts: Vec<(u32, u32, u32)>,
}

impl Scan {
    /// Whether the source needs rewriting for saphyr at all.
    pub(super) fn rewrites(&self) -> bool {
        !self.pads.is_empty() || !self.quote_escapes.is_empty()
    }
}

/// Pads the lines of [`Scan::pads`] and writes each `\'` as `\x27`.
pub(super) fn rewrite(src: &str, scan: &Scan) -> Rewrite {
    let mut text =
        String::with_capacity(src.len() + scan.pads.len() * 8 + scan.quote_escapes.len() * 2);
    let mut shifts = Vec::new();
    let mut pads = scan.pads.iter().peekable();
    let mut escapes = scan.quote_escapes.iter().peekable();
    let mut line_start = 0;
    for (i, line) in src.split_inclusive('\n').enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let mut added = 0u32;
        if let Some(&&(l, pad)) = pads.peek()
            && l == line_no
        {
            pads.next();
            text.extend(std::iter::repeat_n(' ', pad as usize));
            shifts.push((line_no, 1, pad));
            added = pad;
        }
        let line_end = line_start + line.len();
        let mut copied = line_start;
        while let Some(&&at) = escapes.peek() {
            if at >= line_end {
                break;
            }
            escapes.next();
            text.push_str(&src[copied..at]);
            text.push_str("x27");
            copied = at + 1;
            // Columns after the `'` move by the two characters added.
            let column = u32::try_from(src[line_start..at].chars().count()).unwrap_or(u32::MAX);
            shifts.push((line_no, column.saturating_add(added).saturating_add(4), 2));
            added = added.saturating_add(2);
        }
        text.push_str(&src[copied..line_end]);
        line_start = line_end;
    }
    Rewrite { text, shifts }
}

impl Rewrite {
    fn restore_pos(&self, pos: &mut Pos) {
        let moved: u32 = self
            .shifts
            .iter()
            .filter(|(line, from, _)| *line == pos.line && pos.column >= *from)
            .map(|(_, _, by)| by)
            .sum();
        pos.column = pos.column.saturating_sub(moved).max(1);
    }

    /// Moves positions in `node` back to the file as written.
    pub(super) fn restore(&self, node: &mut Node) {
        let mut stack = vec![node];
        while let Some(node) = stack.pop() {
            self.restore_pos(&mut node.pos);
            match &mut node.value {
                Value::Scalar(_) => {}
                Value::Seq(items) => stack.extend(items.iter_mut()),
                Value::Map(entries) => {
                    for (k, v) in entries.iter_mut() {
                        stack.push(k);
                        stack.push(v);
                    }
                }
            }
        }
    }

    pub(super) fn restore_error(&self, mut error: YamlError) -> YamlError {
        self.restore_pos(&mut error.pos);
        error
    }
}
