//! A YAML reader that keeps source positions on every node.
//!
//! serde_yaml gives no positions, and findings must point at `path:line:column`
//! of the offending node, so we build our own tree from a marked event parser.
//! Anchors and aliases are expanded by copying, under a node budget; merge keys
//! (`<<`) are applied; custom tags are read as their plain value; nesting depth
//! and input size are bounded so a hostile file fails fast (RC001).
//!
//! Two readers feed one tree builder (`builder`): a fast one for the plain
//! YAML compose files are written in (`fast`), and saphyr-parser's events
//! (`saphyr`) for everything else, errors included. Both give the same tree,
//! and both accept and refuse what go-yaml (Docker Compose's reader) does:
//! the fast reader leaves anything where the two differ to the general
//! path, and `goyaml` bridges YAML 1.2 and go-yaml there (flow collections
//! indented as go-yaml allows, escapes and indicators it refuses).

mod builder;
mod fast;
mod goyaml;
mod saphyr;

/// 1-based line and column of a node's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A scalar as written. Typing is left to the reader of the compose file,
/// because Compose interpolates the text before it is typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// `false` for single-, double-quoted and block scalars: `"3"` is a string,
    /// `3` may be an integer, `""` is not null.
    pub plain: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in document order, merge keys already applied (explicit keys
    /// win over merged ones); a key written twice is an error.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A YAML double-quoted scalar holding exactly `text`: no line break, quote
/// or backslash left unescaped, and nothing YAML or go-yaml reads as a break
/// (U+0085, U+2028, U+2029). How this crate writes every value it emits.
pub fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bounds that make a hostile file fail fast.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of input.
    pub max_bytes: usize,
    /// Nesting depth of collections.
    pub max_depth: usize,
    /// Nodes in the tree after alias expansion.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 4 << 20,
            max_depth: 64,
            max_nodes: 200_000,
        }
    }
}

/// Why a document could not be read. Always RC001.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    /// Where it went wrong (1:1 for size errors).
    pub pos: Pos,
}

/// Parses one YAML document (an empty document is an empty mapping). More
/// than one document in the stream is an error.
///
/// Typical compose files take the fast reader; anything it does not read
/// with certainty (and every error) goes through saphyr-parser, so results
/// and messages are saphyr's either way.
pub fn parse(src: &str, limits: &Limits) -> Result<Node, YamlError> {
    check_size(src, limits)?;
    match fast::parse(src, limits) {
        Some(node) => Ok(node),
        None => general(src, limits),
    }
}

/// saphyr, made to accept and refuse what go-yaml does (`goyaml`).
fn general(src: &str, limits: &Limits) -> Result<Node, YamlError> {
    let scan = goyaml::scan(src);
    let read = match saphyr::parse(src, limits) {
        // The rewrite only ever turns a refusal into what go-yaml accepts;
        // when it does not get past the first error, that error is the one
        // of the file as written.
        Err(e) if scan.rewrites() => {
            let rewrite = goyaml::rewrite(src, &scan);
            match saphyr::parse(&rewrite.text, limits) {
                Ok(mut node) => {
                    rewrite.restore(&mut node);
                    Ok(node)
                }
                // The rewrite got further: its error is the next problem.
                Err(later) if later.pos.line > e.pos.line => Err(rewrite.restore_error(later)),
                Err(_) => Err(e),
            }
        }
        read => read,
    };
    match (read, scan.refusal) {
        (Ok(_), Some(refusal)) => Err(refusal),
        (Err(e), Some(refusal)) if refusal.pos < e.pos => Err(refusal),
        (read, _) => read,
    }
}

/// [`parse`] without the fast reader: the reference the fast reader is
/// tested and timed against.
#[doc(hidden)]
pub fn parse_with_saphyr(src: &str, limits: &Limits) -> Result<Node, YamlError> {
    check_size(src, limits)?;
    general(src, limits)
}

/// The fast reader alone: `None` when it leaves the document to saphyr
/// (anything it does not read with certainty, every error, over-size input).
/// For tests of which documents take which path.
#[doc(hidden)]
pub fn parse_fast_path(src: &str, limits: &Limits) -> Option<Node> {
    check_size(src, limits).ok()?;
    fast::parse(src, limits)
}

fn check_size(src: &str, limits: &Limits) -> Result<(), YamlError> {
    if src.len() > limits.max_bytes {
        return Err(YamlError {
            message: format!(
                "file is {} bytes, over the limit of {} bytes",
                src.len(),
                limits.max_bytes
            ),
            pos: Pos { line: 1, column: 1 },
        });
    }
    Ok(())
}

impl Node {
    /// The value under `key` in a mapping (scalar keys compared by text).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| matches!(&k.value, Value::Scalar(s) if s.text == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar, `None` for collections.
    pub fn as_str(&self) -> Option<&str> {
        self.as_scalar().map(|s| s.text.as_str())
    }

    /// Plain `~`, `null`, `Null`, `NULL` or empty.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.plain && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Short name of the node's kind, for RC002 messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar(_) if self.is_null() => "null",
            Value::Scalar(_) => "scalar",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}
