//! The tree builder both readers feed: collections, scalars and aliases in
//! document order, with alias expansion, merge keys, duplicate keys and the
//! limits applied in one place, so the fast reader and saphyr agree exactly.

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Limits, Node, Pos, Scalar, Value, YamlError};

pub(super) fn depth_message(limits: &Limits) -> String {
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
        Body::Map {
            entries: Vec::new(),
            key: None,
            merges: Vec::new(),
        }
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
pub(super) struct TreeBuilder {
    limits: Limits,
    keep_anchors: bool,
    stack: Vec<Frame>,
    /// Indexed by the parser's anchor id; `None` while the anchored node is
    /// still open (an alias to it then is recursive).
    anchors: Vec<Option<Anchored>>,
    /// Nodes in the tree, aliases expanded.
    nodes: usize,
    /// Nodes in the copies kept for aliases.
    copies: usize,
    root: Option<Node>,
}

impl TreeBuilder {
    pub(super) fn new(limits: &Limits, keep_anchors: bool) -> TreeBuilder {
        TreeBuilder {
            limits: *limits,
            keep_anchors,
            stack: Vec::new(),
            anchors: Vec::new(),
            nodes: 0,
            copies: 0,
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
        self.attach(node, 0, pos)
    }

    pub(super) fn open_seq(&mut self, anchor: usize, pos: Pos) -> Result<(), YamlError> {
        self.open(Body::Seq(Vec::new()), anchor, pos)
    }

    pub(super) fn open_map(&mut self, anchor: usize, pos: Pos) -> Result<(), YamlError> {
        self.open(Body::new_map(), anchor, pos)
    }

    fn open(&mut self, body: Body, anchor: usize, pos: Pos) -> Result<(), YamlError> {
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
            body,
        });
        Ok(())
    }

    pub(super) fn close(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let value = match frame.body {
            Body::Seq(items) => Value::Seq(items),
            Body::Map {
                entries,
                key,
                merges,
            } => {
                let mut entries = entries;
                // Cannot happen with either reader (both emit an empty value), but a
                // dangling key must not vanish silently.
                if let Some(key) = key {
                    let pos = key.pos;
                    let null = Node {
                        value: Value::Scalar(Scalar {
                            text: String::new(),
                            plain: true,
                        }),
                        pos,
                    };
                    entries.push((key, null));
                }
                Value::Map(finish_map(entries, merges))
            }
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
        self.attach(node, height, frame.pos)
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
        self.attach(node, height, pos)
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
    fn attach(&mut self, node: Node, height: usize, at: Pos) -> Result<(), YamlError> {
        let Some(frame) = self.stack.last_mut() else {
            self.root.get_or_insert(node);
            return Ok(());
        };
        frame.height = frame.height.max(height);
        match &mut frame.body {
            Body::Seq(items) => items.push(node),
            Body::Map {
                entries,
                key,
                merges,
            } => match key.take() {
                None => *key = Some(node),
                Some(k) if is_merge_key(&k) => {
                    merges.push((entries.len(), merge_source(node, at)?))
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Node {
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

/// Applies merges (explicit keys win, earlier sources win over later ones;
/// merged entries sit where their `<<` stood) and drops duplicate keys (the
/// last one wins).
fn finish_map(
    entries: Vec<(Node, Node)>,
    merges: Vec<(usize, Vec<(Node, Node)>)>,
) -> Vec<(Node, Node)> {
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
                    .map(|(k, _)| {
                        key_text(k).is_none_or(|t| !explicit.contains(t) && merged.insert(t))
                    })
                    .collect()
            })
            .collect()
    };
    let total = entries.len() + keep.iter().flatten().filter(|k| **k).count();
    let mut out = Vec::with_capacity(total);
    let mut merges = merges.into_iter().zip(keep).peekable();
    for (index, entry) in entries.into_iter().enumerate() {
        while let Some(((_, source), keep)) = merges.next_if(|((at, _), _)| *at <= index) {
            out.extend(
                source
                    .into_iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(e, _)| e),
            );
        }
        out.push(entry);
    }
    for ((_, source), keep) in merges {
        out.extend(
            source
                .into_iter()
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|(e, _)| e),
        );
    }
    // Merged keys are now unique and distinct from explicit ones; only
    // explicit duplicates remain.
    dedupe_last_wins(out)
}

fn dedupe_last_wins(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    const LINEAR: usize = 16;
    let keep: Vec<bool> = if entries.len() <= LINEAR {
        let has_duplicate = entries.iter().enumerate().any(|(i, (k, _))| {
            key_text(k).is_some_and(|t| {
                entries
                    .iter()
                    .skip(i + 1)
                    .any(|(later, _)| key_text(later) == Some(t))
            })
        });
        if !has_duplicate {
            return entries;
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| {
                key_text(k).is_none_or(|t| {
                    !entries
                        .iter()
                        .skip(i + 1)
                        .any(|(later, _)| key_text(later) == Some(t))
                })
            })
            .collect()
    } else {
        let mut last: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, (k, _)) in entries.iter().enumerate() {
            if let Some(t) = key_text(k) {
                last.insert(t, i);
            }
        }
        if last.len()
            == entries
                .iter()
                .filter(|(k, _)| key_text(k).is_some())
                .count()
        {
            return entries;
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| key_text(k).is_none_or(|t| last.get(t) == Some(&i)))
            .collect()
    };
    entries
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(e, _)| e)
        .collect()
}
