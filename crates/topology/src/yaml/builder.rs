//! The tree builder both readers feed: collections, scalars and aliases in
//! document order, with alias expansion, merge keys, duplicate keys and the
//! limits applied in one place, so the fast reader and saphyr agree exactly.

use std::cell::Cell;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Limits, Node, Pos, Scalar, Value, YamlError};

pub(super) fn depth_message(limits: &Limits) -> String {
    format!("nesting deeper than {} levels", limits.max_depth)
}

thread_local! {
    /// The builder's stacks, kept between parses on a thread: validation
    /// parses thousands of files in a row, and these are the only large
    /// allocations of a parse.
    static SPARE_STACKS: Cell<Option<(Vec<Frame>, Vec<Node>)>> = const { Cell::new(None) };
}

/// Spare stacks grown past this (a hostile file) are freed, not kept.
const MAX_SPARE: usize = 4096;

/// A collection still being read.
struct Frame {
    pos: Pos,
    /// Anchor id from the parser, 0 for none.
    anchor: usize,
    /// Node count before this collection, to size it if it is anchored.
    nodes_before: usize,
    /// Height of the tallest child collection (0: only scalars or empty).
    height: usize,
    /// Where this collection's children start in [`TreeBuilder::items`]
    /// (a mapping's as key, value, key, value...).
    start: usize,
    is_map: bool,
    /// Merge sources (`<< : ...`) of a mapping: the entry index where the
    /// `<<` stood, and the entries it brings, sources in order.
    merges: Vec<(usize, Vec<(Node, Node)>)>,
    /// The mapping's `<<` key: a second one is a duplicate key.
    merge_key: Option<Node>,
    /// The collection is tagged `!reset`.
    reset: bool,
    /// Entries of this mapping whose value is tagged `!reset`.
    resets: Vec<usize>,
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
/// recursion here. Children of all open collections wait on one stack and
/// each collection is allocated once, at its exact size, when it closes.
pub(super) struct TreeBuilder {
    limits: Limits,
    keep_anchors: bool,
    stack: Vec<Frame>,
    items: Vec<Node>,
    /// Indexed by the parser's anchor id; `None` while the anchored node is
    /// still open (an alias to it then is recursive).
    anchors: Vec<Option<Anchored>>,
    /// Nodes in the tree, aliases expanded.
    nodes: usize,
    /// Nodes in the copies kept for aliases.
    copies: usize,
    root: Option<Node>,
    /// The next node is tagged `!reset`.
    reset_pending: bool,
}

impl TreeBuilder {
    pub(super) fn new(limits: &Limits, keep_anchors: bool) -> TreeBuilder {
        let (stack, items) = SPARE_STACKS.take().unwrap_or_default();
        TreeBuilder {
            limits: *limits,
            keep_anchors,
            stack,
            items,
            anchors: Vec::new(),
            nodes: 0,
            copies: 0,
            root: None,
            reset_pending: false,
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

    pub(super) fn scalar(
        &mut self,
        text: String,
        plain: bool,
        anchor: usize,
        pos: Pos,
    ) -> Result<(), YamlError> {
        self.charge(1, pos, false)?;
        let node = Node {
            value: Value::Scalar(Scalar { text, plain }),
            pos,
        };
        if anchor != 0 {
            self.remember(anchor, &node, 1, 0, pos)?;
        }
        let reset = std::mem::take(&mut self.reset_pending);
        self.attach(node, 0, pos, reset)
    }

    /// The next node is tagged `!reset`: as in Compose, its mapping entry is
    /// removed (before merge keys apply, so a merged value comes back).
    pub(super) fn reset_next(&mut self) {
        self.reset_pending = true;
    }

    /// Whether the next node is the value of a mapping entry.
    pub(super) fn awaits_map_value(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|f| f.is_map && self.items.len().saturating_sub(f.start) % 2 == 1)
    }

    pub(super) fn open_seq(&mut self, anchor: usize, pos: Pos) -> Result<(), YamlError> {
        self.open(false, anchor, pos)
    }

    pub(super) fn open_map(&mut self, anchor: usize, pos: Pos) -> Result<(), YamlError> {
        self.open(true, anchor, pos)
    }

    fn open(&mut self, is_map: bool, anchor: usize, pos: Pos) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError {
                message: depth_message(&self.limits),
                pos,
            });
        }
        let nodes_before = self.nodes;
        self.charge(1, pos, false)?;
        if anchor != 0 && self.keep_anchors {
            // Marks the anchor as open: an alias to it from inside is recursive.
            self.slot(anchor);
        }
        self.stack.push(Frame {
            pos,
            anchor,
            nodes_before,
            height: 0,
            start: self.items.len(),
            is_map,
            merges: Vec::new(),
            merge_key: None,
            reset: std::mem::take(&mut self.reset_pending),
            resets: Vec::new(),
        });
        Ok(())
    }

    pub(super) fn close(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let start = frame.start.min(self.items.len());
        let value = if frame.is_map {
            // Cannot happen with either reader (both emit an empty value),
            // but a dangling key must not vanish silently.
            if (self.items.len() - start) % 2 == 1 {
                let pos = self.items.last().map_or(frame.pos, |key| key.pos);
                self.items.push(Node {
                    value: Value::Scalar(Scalar {
                        text: String::new(),
                        plain: true,
                    }),
                    pos,
                });
            }
            let merged: usize = frame.merges.iter().map(|(_, s)| s.len()).sum();
            let mut entries = Vec::with_capacity((self.items.len() - start) / 2 + merged);
            let mut children = self.items.drain(start..);
            while let (Some(key), Some(value)) = (children.next(), children.next()) {
                entries.push((key, value));
            }
            drop(children);
            let mut merges = frame.merges;
            for &reset in frame.resets.iter().rev() {
                if reset < entries.len() {
                    entries.remove(reset);
                    for (at, _) in &mut merges {
                        if *at > reset {
                            *at -= 1;
                        }
                    }
                }
            }
            Value::Map(finish_map(entries, merges)?)
        } else {
            Value::Seq(self.items.split_off(start))
        };
        let node = Node {
            value,
            pos: frame.pos,
        };
        let height = frame.height + 1;
        if frame.anchor != 0 {
            let size = self.nodes - frame.nodes_before;
            self.remember(frame.anchor, &node, size, height, frame.pos)?;
        }
        self.attach(node, height, frame.pos, frame.reset)
    }

    pub(super) fn alias(&mut self, id: usize, pos: Pos) -> Result<(), YamlError> {
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
            return Err(YamlError {
                message: depth_message(&self.limits),
                pos,
            });
        }
        self.charge(size, pos, true)?;
        let node = match self.anchors.get(id) {
            Some(Some(a)) => a.node.clone(),
            _ => return Ok(()),
        };
        self.reset_pending = false;
        self.attach(node, height, pos, false)
    }

    fn slot(&mut self, id: usize) -> &mut Option<Anchored> {
        if self.anchors.len() <= id {
            self.anchors.resize_with(id + 1, || None);
        }
        // In bounds: resized just above.
        &mut self.anchors[id]
    }

    fn remember(
        &mut self,
        id: usize,
        node: &Node,
        size: usize,
        height: usize,
        pos: Pos,
    ) -> Result<(), YamlError> {
        if !self.keep_anchors {
            return Ok(());
        }
        // The copy is memory too: nested anchors copy the same nodes again
        // at each level, so copies have a budget of their own.
        self.copies = self.copies.saturating_add(size);
        if self.copies > self.limits.max_nodes {
            return Err(YamlError {
                message: format!("anchored nodes exceed {} nodes", self.limits.max_nodes),
                pos,
            });
        }
        *self.slot(id) = Some(Anchored {
            node: node.clone(),
            size,
            height,
        });
        Ok(())
    }

    /// Hands a finished node to the open collection (or makes it the root).
    /// `at` is where it was referenced, for merge errors.
    fn attach(&mut self, node: Node, height: usize, at: Pos, reset: bool) -> Result<(), YamlError> {
        let Some(frame) = self.stack.last_mut() else {
            self.root.get_or_insert(node);
            return Ok(());
        };
        frame.height = frame.height.max(height);
        let held = self.items.len().saturating_sub(frame.start);
        if frame.is_map && held % 2 == 1 && self.items.last().is_some_and(is_merge_key) {
            let key = self.items.pop();
            if let (Some(first), Some(key)) = (&frame.merge_key, &key) {
                return Err(duplicate_key(first, key));
            }
            frame.merge_key = key;
            frame.merges.push((held / 2, merge_source(node, at)?));
        } else {
            if reset && frame.is_map && held % 2 == 1 {
                frame.resets.push(held / 2);
            }
            self.items.push(node);
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Node {
        self.stack.clear();
        self.items.clear();
        if self.stack.capacity() <= MAX_SPARE && self.items.capacity() <= MAX_SPARE {
            SPARE_STACKS.set(Some((
                std::mem::take(&mut self.stack),
                std::mem::take(&mut self.items),
            )));
        }
        match self.root {
            // An empty document (or none at all) is an empty mapping.
            None => Node {
                value: Value::Map(Vec::new()),
                pos: Pos { line: 1, column: 1 },
            },
            Some(Node {
                value: Value::Scalar(Scalar { text, plain: true }),
                pos,
            }) if text.is_empty() => Node {
                value: Value::Map(Vec::new()),
                pos,
            },
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

/// Refuses a key written twice (go-yaml and so Docker Compose refuse it; keys
/// that come in through `<<` are not duplicates), then applies merges
/// (explicit keys win, earlier sources win over later ones; merged entries
/// sit where their `<<` stood). `entries` should have room for the merged
/// entries.
fn finish_map(
    mut entries: Vec<(Node, Node)>,
    mut merges: Vec<(usize, Vec<(Node, Node)>)>,
) -> Result<Vec<(Node, Node)>, YamlError> {
    check_unique_keys(&entries)?;
    if merges.is_empty() {
        return Ok(entries);
    }
    let keep: Vec<bool> = {
        let merged_count = merges.iter().map(|(_, s)| s.len()).sum::<usize>();
        let mut explicit = KeySet::for_size(entries.len());
        for text in entries.iter().filter_map(|(k, _)| key_text(k)) {
            explicit.insert(text);
        }
        let mut merged = KeySet::for_size(merged_count);
        merges
            .iter()
            .flat_map(|(_, source)| source)
            .map(|(k, _)| key_text(k).is_none_or(|t| !explicit.contains(t) && merged.insert(t)))
            .collect()
    };
    // `retain` visits every entry once, in order.
    let mut keep = keep.into_iter();
    for (_, source) in &mut merges {
        source.retain(|_| keep.next().unwrap_or(true));
    }
    entries.reserve_exact(merges.iter().map(|(_, s)| s.len()).sum());
    // From the last: earlier insertion points stay valid, and sources merged
    // at the same point keep their order.
    for (at, source) in merges.into_iter().rev() {
        let at = at.min(entries.len());
        entries.splice(at..at, source);
    }
    Ok(entries)
}

fn duplicate_key(first: &Node, again: &Node) -> YamlError {
    YamlError {
        message: format!(
            "mapping key \"{}\" is already defined at line {}",
            key_text(again).unwrap_or_default(),
            first.pos.line
        ),
        pos: again.pos,
    }
}

/// go-yaml compares scalar keys by their text, whatever their style.
fn check_unique_keys(entries: &[(Node, Node)]) -> Result<(), YamlError> {
    const LINEAR: usize = 16;
    if entries.len() <= LINEAR {
        for (i, (key, _)) in entries.iter().enumerate() {
            let Some(text) = key_text(key) else { continue };
            if let Some((first, _)) = entries[..i].iter().find(|(k, _)| key_text(k) == Some(text)) {
                return Err(duplicate_key(first, key));
            }
        }
        return Ok(());
    }
    let mut first: FxHashMap<&str, &Node> = FxHashMap::default();
    for (key, _) in entries {
        if let Some(text) = key_text(key)
            && let Some(earlier) = first.insert(text, key)
        {
            return Err(duplicate_key(earlier, key));
        }
    }
    Ok(())
}

/// Key texts: a list while few (no hashing, no table), hashed when many.
enum KeySet<'a> {
    Few(Vec<&'a str>),
    Many(FxHashSet<&'a str>),
}

impl<'a> KeySet<'a> {
    fn for_size(size: usize) -> KeySet<'a> {
        if size <= 32 {
            KeySet::Few(Vec::with_capacity(size))
        } else {
            KeySet::Many(FxHashSet::with_capacity_and_hasher(
                size,
                Default::default(),
            ))
        }
    }

    fn contains(&self, text: &str) -> bool {
        match self {
            KeySet::Few(texts) => texts.contains(&text),
            KeySet::Many(texts) => texts.contains(text),
        }
    }

    /// `false` if it was there already.
    fn insert(&mut self, text: &'a str) -> bool {
        match self {
            KeySet::Few(texts) => {
                let new = !texts.contains(&text);
                if new {
                    texts.push(text);
                }
                new
            }
            KeySet::Many(texts) => texts.insert(text),
        }
    }
}
