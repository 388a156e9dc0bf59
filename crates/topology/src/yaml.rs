//! A YAML reader that keeps source positions on every node.
//!
//! serde_yaml gives no positions, and findings must point at `path:line:column`
//! of the offending node, so we build our own tree from a marked event parser.
//! Anchors and aliases are expanded by copying, under a node budget; merge keys
//! (`<<`) are applied; custom tags are read as their plain value; nesting depth
//! and input size are bounded so a hostile file fails fast (RC001).

use rustc_hash::{FxHashMap, FxHashSet};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError};

/// 1-based line and column of a node's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
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
    /// win over merged ones), duplicate keys: last one wins.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
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
        Limits { max_bytes: 4 << 20, max_depth: 64, max_nodes: 200_000 }
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
pub fn parse(src: &str, limits: &Limits) -> Result<Node, YamlError> {
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
    // Without a `*` there can be no alias, so anchored nodes need no copy.
    let mut builder = TreeBuilder::new(limits, src.contains('*'));
    let mut parser = Parser::new_from_str(src);
    let mut documents = 0u32;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| scan_error(src, &e, limits))?;
        let pos = pos_of(span.start);
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        message: "a second YAML document starts here; the file must hold exactly one".into(),
                        pos,
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                // `!!str 3` is a string as surely as `"3"` is.
                let core_str =
                    tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !core_str;
                builder.scalar(text.into_owned(), plain, anchor, pos)?;
            }
            Event::SequenceStart(anchor, _) => builder.open(Body::Seq(Vec::new()), anchor, pos)?,
            Event::MappingStart(anchor, _) => builder.open(Body::new_map(), anchor, pos)?,
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
            Event::Alias(id) => builder.alias(id, pos)?,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    Ok(builder.finish())
}

fn pos_of(mark: Marker) -> Pos {
    Pos {
        line: u32::try_from(mark.line()).unwrap_or(u32::MAX),
        column: u32::try_from(mark.col()).unwrap_or(u32::MAX).saturating_add(1),
    }
}

/// Turns the parser's error into a short message; the position travels apart.
fn scan_error(src: &str, err: &ScanError, limits: &Limits) -> YamlError {
    let pos = pos_of(*err.marker());
    let info = err.info();
    let message = match info {
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
    let line = src.lines().nth(usize::try_from(pos.line).ok()?.checked_sub(1)?)?;
    let skip = usize::try_from(pos.column).ok()?.checked_sub(1)?;
    let start = line.char_indices().nth(skip).map(|(i, _)| i)?;
    let rest = line.get(start..)?.strip_prefix('*')?;
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
        .unwrap_or(rest.len());
    rest.get(..end).filter(|name| !name.is_empty())
}

fn depth_message(limits: &Limits) -> String {
    format!("nesting deeper than {} levels", limits.max_depth)
}

/// A collection still being read.
struct Frame {
    pos: Pos,
    /// Anchor id from the parser, 0 for none.
    anchor: usize,
    /// Node count before this collection, to size it if it is anchored.
    nodes_before: usize,
    /// Height of the tallest child collection (0: only scalars or empty).
    height: usize,
    body: Body,
}

enum Body {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        /// A key waiting for its value.
        key: Option<Node>,
        /// Merge sources (`<< : ...`): index in `entries` where the `<<` stood,
        /// and the entries it brings, sources in order.
        merges: Vec<(usize, Vec<(Node, Node)>)>,
    },
}

impl Body {
    fn new_map() -> Body {
        Body::Map { entries: Vec::new(), key: None, merges: Vec::new() }
    }
}

/// An anchored node kept for its aliases.
struct Anchored {
    node: Node,
    /// Nodes in it, charged again at each alias.
    size: usize,
    /// Collection levels in it, added to the depth at each alias.
    height: usize,
}

/// Builds the tree from events with an explicit stack, so depth costs no
/// recursion here.
struct TreeBuilder {
    limits: Limits,
    keep_anchors: bool,
    stack: Vec<Frame>,
    /// Indexed by the parser's anchor id; `None` while the anchored node is
    /// still open (an alias to it then is recursive).
    anchors: Vec<Option<Anchored>>,
    /// Nodes held: the tree after alias expansion plus anchored copies.
    nodes: usize,
    root: Option<Node>,
}

impl TreeBuilder {
    fn new(limits: &Limits, keep_anchors: bool) -> TreeBuilder {
        TreeBuilder {
            limits: *limits,
            keep_anchors,
            stack: Vec::new(),
            anchors: Vec::new(),
            nodes: 0,
            root: None,
        }
    }

    fn charge(&mut self, count: usize, pos: Pos, by_alias: bool) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes <= self.limits.max_nodes {
            return Ok(());
        }
        let message = if by_alias {
            format!("alias expansion exceeds {} nodes", self.limits.max_nodes)
        } else {
            format!("document exceeds {} nodes", self.limits.max_nodes)
        };
        Err(YamlError { message, pos })
    }

    fn scalar(&mut self, text: String, plain: bool, anchor: usize, pos: Pos) -> Result<(), YamlError> {
        self.charge(1, pos, false)?;
        let node = Node { value: Value::Scalar(Scalar { text, plain }), pos };
        if anchor != 0 {
            self.remember(anchor, &node, 1, 0, pos)?;
        }
        self.attach(node, 0, pos)
    }

    fn open(&mut self, body: Body, anchor: usize, pos: Pos) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError { message: depth_message(&self.limits), pos });
        }
        let nodes_before = self.nodes;
        self.charge(1, pos, false)?;
        if anchor != 0 && self.keep_anchors {
            // Marks the anchor as open: an alias to it from inside is recursive.
            self.slot(anchor);
        }
        self.stack.push(Frame { pos, anchor, nodes_before, height: 0, body });
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let value = match frame.body {
            Body::Seq(items) => Value::Seq(items),
            Body::Map { entries, key, merges } => {
                let mut entries = entries;
                // Cannot happen with saphyr (it emits an empty value), but a
                // dangling key must not vanish silently.
                if let Some(key) = key {
                    let pos = key.pos;
                    let null = Node { value: Value::Scalar(Scalar { text: String::new(), plain: true }), pos };
                    entries.push((key, null));
                }
                Value::Map(finish_map(entries, merges))
            }
        };
        let node = Node { value, pos: frame.pos };
        let height = frame.height + 1;
        if frame.anchor != 0 {
            let size = self.nodes - frame.nodes_before;
            self.remember(frame.anchor, &node, size, height, frame.pos)?;
        }
        self.attach(node, height, frame.pos)
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), YamlError> {
        let (size, height) = match self.anchors.get(id) {
            Some(Some(a)) => (a.size, a.height),
            _ => {
                return Err(YamlError {
                    message: "alias refers to its own anchor (recursive alias)".into(),
                    pos,
                });
            }
        };
        if self.stack.len() + height > self.limits.max_depth {
            return Err(YamlError { message: depth_message(&self.limits), pos });
        }
        self.charge(size, pos, true)?;
        let node = match self.anchors.get(id) {
            Some(Some(a)) => a.node.clone(),
            _ => return Ok(()),
        };
        self.attach(node, height, pos)
    }

    fn slot(&mut self, id: usize) -> &mut Option<Anchored> {
        if self.anchors.len() <= id {
            self.anchors.resize_with(id + 1, || None);
        }
        // In bounds: resized just above.
        &mut self.anchors[id]
    }

    fn remember(&mut self, id: usize, node: &Node, size: usize, height: usize, pos: Pos) -> Result<(), YamlError> {
        if !self.keep_anchors {
            return Ok(());
        }
        // The copy is memory too: charge it, so nested anchors cannot multiply
        // the work unseen.
        self.charge(size, pos, false)?;
        *self.slot(id) = Some(Anchored { node: node.clone(), size, height });
        Ok(())
    }

    /// Hands a finished node to the open collection (or makes it the root).
    /// `at` is where it was referenced, for merge errors.
    fn attach(&mut self, node: Node, height: usize, at: Pos) -> Result<(), YamlError> {
        let Some(frame) = self.stack.last_mut() else {
            self.root.get_or_insert(node);
            return Ok(());
        };
        frame.height = frame.height.max(height);
        match &mut frame.body {
            Body::Seq(items) => items.push(node),
            Body::Map { entries, key, merges } => match key.take() {
                None => *key = Some(node),
                Some(k) if is_merge_key(&k) => merges.push((entries.len(), merge_source(node, at)?)),
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }

    fn finish(self) -> Node {
        match self.root {
            // An empty document (or none at all) is an empty mapping.
            None => Node { value: Value::Map(Vec::new()), pos: Pos { line: 1, column: 1 } },
            Some(Node { value: Value::Scalar(Scalar { text, plain: true }), pos }) if text.is_empty() => {
                Node { value: Value::Map(Vec::new()), pos }
            }
            Some(root) => root,
        }
    }
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar(s) if s.plain && s.text == "<<")
}

/// The entries a `<<` value brings: a mapping, or a list of mappings.
fn merge_source(value: Node, at: Pos) -> Result<Vec<(Node, Node)>, YamlError> {
    let bad = |found: &str| YamlError {
        message: format!("merge key `<<` needs a mapping or a list of mappings, found {found}"),
        pos: at,
    };
    match value.value {
        Value::Map(entries) => Ok(entries),
        Value::Seq(items) => {
            let mut all = Vec::new();
            for item in items {
                match item.value {
                    Value::Map(entries) => all.extend(entries),
                    Value::Seq(_) => return Err(bad("a list inside the list")),
                    Value::Scalar(_) => return Err(bad("a scalar inside the list")),
                }
            }
            Ok(all)
        }
        Value::Scalar(_) => Err(bad("a scalar")),
    }
}

fn key_text(key: &Node) -> Option<&str> {
    match &key.value {
        Value::Scalar(s) => Some(s.text.as_str()),
        _ => None,
    }
}

/// Applies merges (explicit keys win, earlier sources win over later ones;
/// merged entries sit where their `<<` stood) and drops duplicate keys (the
/// last one wins).
fn finish_map(entries: Vec<(Node, Node)>, merges: Vec<(usize, Vec<(Node, Node)>)>) -> Vec<(Node, Node)> {
    if merges.is_empty() {
        return dedupe_last_wins(entries);
    }
    let keep: Vec<Vec<bool>> = {
        let explicit: FxHashSet<&str> = entries.iter().filter_map(|(k, _)| key_text(k)).collect();
        let mut merged: FxHashSet<&str> = FxHashSet::default();
        merges
            .iter()
            .map(|(_, source)| {
                source
                    .iter()
                    .map(|(k, _)| key_text(k).is_none_or(|t| !explicit.contains(t) && merged.insert(t)))
                    .collect()
            })
            .collect()
    };
    let total = entries.len() + keep.iter().flatten().filter(|k| **k).count();
    let mut out = Vec::with_capacity(total);
    let mut merges = merges.into_iter().zip(keep).peekable();
    for (index, entry) in entries.into_iter().enumerate() {
        while let Some(((_, source), keep)) = merges.next_if(|((at, _), _)| *at <= index) {
            out.extend(source.into_iter().zip(keep).filter(|(_, k)| *k).map(|(e, _)| e));
        }
        out.push(entry);
    }
    for ((_, source), keep) in merges {
        out.extend(source.into_iter().zip(keep).filter(|(_, k)| *k).map(|(e, _)| e));
    }
    // Merged keys are now unique and distinct from explicit ones; only
    // explicit duplicates remain.
    dedupe_last_wins(out)
}

fn dedupe_last_wins(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    const LINEAR: usize = 16;
    let keep: Vec<bool> = if entries.len() <= LINEAR {
        let has_duplicate = entries.iter().enumerate().any(|(i, (k, _))| {
            key_text(k).is_some_and(|t| entries.iter().skip(i + 1).any(|(later, _)| key_text(later) == Some(t)))
        });
        if !has_duplicate {
            return entries;
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| {
                key_text(k).is_none_or(|t| !entries.iter().skip(i + 1).any(|(later, _)| key_text(later) == Some(t)))
            })
            .collect()
    } else {
        let mut last: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, (k, _)) in entries.iter().enumerate() {
            if let Some(t) = key_text(k) {
                last.insert(t, i);
            }
        }
        if last.len() == entries.iter().filter(|(k, _)| key_text(k).is_some()).count() {
            return entries;
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| key_text(k).is_none_or(|t| last.get(t) == Some(&i)))
            .collect()
    };
    entries.into_iter().zip(keep).filter(|(_, k)| *k).map(|(e, _)| e).collect()
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
