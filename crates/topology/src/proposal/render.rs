//! Rendering a proposal template with every value as data (contract 6.1).
//!
//! A repository template is written by another team, so what it does with a
//! value cannot be trusted: `model: {{ model_name }}` with a model name that
//! holds a newline and `privileged: true` must not become a key, whatever
//! filters the template applies. So rendering takes two passes:
//!
//! 1. Every `{{ expression }}` writes a marker. The result is parsed: that
//!    is the template's shape, independent of the values, and where each
//!    marker stands says how its value is written. A marker may be a whole
//!    plain scalar (a value or a key), a whole flow sequence of markers
//!    (`device_ids: {{ gpu_ids }}`), part of a double- or single-quoted
//!    scalar (`"{{ port }}:8000"`), or in a comment; part of a longer plain
//!    scalar or of a block scalar is refused, since nothing could escape a
//!    value there.
//! 2. Every expression writes its value escaped for its place: a whole value
//!    as a double-quoted YAML scalar (a sequence as a flow sequence of them),
//!    inside double quotes with YAML's escapes, inside single quotes with
//!    `''` (a line break there is refused), in a comment as a one-line quoted
//!    scalar; never able to end its scalar, break the line or interpolate
//!    (`$` is written `$$`, as Compose reads it). The result must parse to
//!    the same shape.
//!
//! `tojson` is the identity here: every value is already written as JSON
//! would write it, so the shipped templates' `| tojson` changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minijinja::value::{Value, ValueKind};

use crate::yaml::{self, Limits, Node, Pos};

/// Marker text: `__catapult_value_<n>__`, `__catapult_value_<n>_<i>__` for
/// sequence items.
const MARKER: &str = "__catapult_value_";

/// Where pass 1 found an expression's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// A whole plain scalar, or a flow sequence of markers.
    Whole,
    InDoubleQuotes,
    InSingleQuotes,
    /// Not in the parsed tree: in a comment.
    Comment,
}

pub(super) enum Pass {
    Markers,
    /// The place of each expression, in evaluation order (the same in both
    /// passes: same template, same values).
    Values(Arc<Vec<Place>>),
}

/// An environment whose `{{ }}` output is markers or escaped values, and
/// the count of expressions it has written.
pub(super) fn environment(pass: Pass) -> (minijinja::Environment<'static>, Arc<AtomicUsize>) {
    let mut env = minijinja::Environment::new();
    let next = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&next);
    env.add_filter("tojson", |value: Value| value);
    env.set_formatter(move |out, _state, value| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let text = match &pass {
            Pass::Markers => markers(value, n),
            Pass::Values(places) => {
                written(value, places.get(n).copied().unwrap_or(Place::Comment))?
            }
        };
        out.write_str(&text)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
    });
    (env, count)
}

/// `value` written for `place`.
fn written(value: &Value, place: Place) -> Result<String, minijinja::Error> {
    let scalar = |what: &str| -> Result<String, minijinja::Error> {
        if is_sequence(value)
            || matches!(
                value.kind(),
                ValueKind::Map | ValueKind::Plain | ValueKind::Invalid
            )
        {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("a list or mapping cannot be written {what}"),
            ));
        }
        Ok(value.to_string())
    };
    match place {
        Place::Whole => yaml_value(value),
        Place::Comment => Ok(quoted(&scalar("in a comment")?)),
        Place::InDoubleQuotes => {
            let text = quoted(&scalar("inside quotes")?);
            Ok(text[1..text.len() - 1].to_owned())
        }
        Place::InSingleQuotes => {
            let text = scalar("inside quotes")?;
            if text
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}'))
            {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "a value with a line break or control character cannot be written inside single quotes; use double quotes, or none",
                ));
            }
            Ok(text.replace('\'', "''").replace('$', "$$"))
        }
    }
}

fn is_sequence(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
}

fn markers(value: &Value, n: usize) -> String {
    if is_sequence(value) {
        let items = value.try_iter().map_or(0, Iterator::count);
        let inner: Vec<String> = (0..items).map(|i| format!("{MARKER}{n}_{i}__")).collect();
        format!("[{}]", inner.join(", "))
    } else {
        format!("{MARKER}{n}__")
    }
}

fn yaml_value(value: &Value) -> Result<String, minijinja::Error> {
    let invalid = |what: &str| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "{what} cannot be written as one YAML value; a template inserts strings, numbers or a list of them"
            ),
        )
    };
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for item in value.try_iter()? {
                if matches!(
                    item.kind(),
                    ValueKind::Seq | ValueKind::Iterable | ValueKind::Map
                ) {
                    return Err(invalid("a list inside a list"));
                }
                items.push(quoted(&item.to_string()));
            }
            Ok(format!("[{}]", items.join(", ")))
        }
        ValueKind::Map | ValueKind::Plain | ValueKind::Invalid => Err(invalid("a mapping")),
        _ => Ok(quoted(&value.to_string())),
    }
}

/// A YAML double-quoted scalar holding exactly `text` for Docker Compose
/// ([`yaml::double_quoted`]), with `$` doubled so that Compose's
/// interpolation gives it back.
pub(crate) fn quoted(text: &str) -> String {
    yaml::double_quoted(&text.replace('$', "$$"))
}

/// Pass 1's check: where each of the `expressions` markers stands (see the
/// module doc), or the line of one that stands where nothing could escape it.
pub(super) fn check_markers(
    rendered: &str,
    expressions: usize,
) -> Result<(Node, Vec<Place>), String> {
    let root = yaml::parse(rendered, &Limits::default()).map_err(|e| {
        format!(
            "the rendered file is not YAML at line {}: {}",
            e.pos.line, e.message
        )
    })?;
    let mut places = vec![Place::Comment; expressions];
    let lines: Vec<&str> = rendered.lines().collect();
    let mut stack = vec![&root];
    while let Some(node) = stack.pop() {
        match &node.value {
            yaml::Value::Scalar(s) => {
                if !s.text.contains(MARKER) {
                    continue;
                }
                let place = if s.plain && is_marker(&s.text) {
                    Place::Whole
                } else {
                    // The quote that opens the scalar stands at its position.
                    let opening = lines
                        .get(node.pos.line as usize - 1)
                        .and_then(|l| l.chars().nth(node.pos.column as usize - 1));
                    match opening {
                        Some('"') if !s.plain => Place::InDoubleQuotes,
                        Some('\'') if !s.plain => Place::InSingleQuotes,
                        _ => return Err(misplaced(node.pos)),
                    }
                };
                for n in marker_numbers(&s.text) {
                    if let Some(slot) = places.get_mut(n) {
                        *slot = place;
                    }
                }
            }
            yaml::Value::Seq(items) => stack.extend(items),
            yaml::Value::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
        }
    }
    Ok((root, places))
}

/// The expression numbers of the markers in `text`.
fn marker_numbers(text: &str) -> Vec<usize> {
    text.match_indices(MARKER)
        .filter_map(|(i, _)| {
            let digits: String = text[i + MARKER.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

fn is_marker(text: &str) -> bool {
    text.strip_prefix(MARKER)
        .and_then(|t| t.strip_suffix("__"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

fn misplaced(pos: Pos) -> String {
    format!(
        "line {}: a `{{{{ }}}}` expression inside a longer plain value or a block scalar: nothing could escape its value there. Make it the whole value (`image: {{{{ \"vllm/vllm-openai:\" ~ tag }}}}`), or put the text in quotes (`image: \"vllm/vllm-openai:{{{{ tag }}}}\"`)",
        pos.line
    )
}

/// Pass 2's check: the file with values has the shape the markers gave.
pub(super) fn check_shape(shape: &Node, rendered: &str) -> Result<(), String> {
    let root = yaml::parse(rendered, &Limits::default()).map_err(|e| {
        format!(
            "the rendered file is not YAML at line {}: {}",
            e.pos.line, e.message
        )
    })?;
    same_shape(shape, &root, "")
}

fn same_shape(shape: &Node, got: &Node, path: &str) -> Result<(), String> {
    let differ = || {
        format!(
            "the values change the file's structure at `{}`",
            if path.is_empty() { "/" } else { path }
        )
    };
    match (&shape.value, &got.value) {
        (yaml::Value::Scalar(_), yaml::Value::Scalar(_)) => Ok(()),
        (yaml::Value::Seq(a), yaml::Value::Seq(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same_shape(x, y, &format!("{path}/{i}"))?;
            }
            Ok(())
        }
        (yaml::Value::Map(a), yaml::Value::Map(b)) if a.len() == b.len() => {
            for ((ka, va), (kb, vb)) in a.iter().zip(b) {
                let key = ka.as_str().unwrap_or("?");
                // A key with a value in it is the value's to name.
                let valued_key = ka.as_str().is_some_and(|k| k.contains(MARKER));
                if !valued_key && ka.as_str() != kb.as_str() {
                    return Err(differ());
                }
                same_shape(va, vb, &format!("{path}/{key}"))?;
            }
            Ok(())
        }
        _ => Err(differ()),
    }
}
