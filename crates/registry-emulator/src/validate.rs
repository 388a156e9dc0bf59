//! Request validation with pydantic's messages, collecting every finding before answering 422.

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// pydantic's wording for an enum mismatch: `Input should be 'a', 'b' or 'c'`.
fn enum_message(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("Input should be {} or {last}", rest.join(", "))
        }
        Some((last, _)) => format!("Input should be {last}"),
        None => "Input should be a valid value".to_owned(),
    }
}

/// Checks a JSON request body field by field.
pub struct BodyCheck {
    obj: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl BodyCheck {
    /// A body that is not a JSON object fails at once (nothing else can be checked).
    pub fn new(body: Value) -> Result<Self, ApiError> {
        match body {
            Value::Object(obj) => Ok(Self {
                obj,
                errors: Vec::new(),
            }),
            _ => Err(ApiError::Validation(vec![FieldError::new(
                vec!["body".into()],
                "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type",
            )])),
        }
    }

    fn loc(name: &str) -> Vec<Value> {
        vec!["body".into(), name.into()]
    }

    fn push(&mut self, name: &str, msg: impl Into<String>, kind: &str) {
        self.errors
            .push(FieldError::new(Self::loc(name), msg, kind));
    }

    /// The raw field, treating JSON null like absence (pydantic Optional fields).
    fn field(&self, name: &str) -> Option<&Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    pub fn opt_str(&mut self, name: &str) -> Option<String> {
        match self.field(name) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.push(name, "Input should be a valid string", "string_type");
                None
            }
        }
    }

    /// A required string with at least one character; "" on error (the error is recorded).
    pub fn req_str(&mut self, name: &str) -> String {
        if self.field(name).is_none() {
            self.push(name, "Field required", "missing");
            return String::new();
        }
        let value = self.opt_str(name).unwrap_or_default();
        if value.is_empty() && self.obj.get(name).is_some_and(Value::is_string) {
            self.push(
                name,
                "String should have at least 1 character",
                "string_too_short",
            );
        }
        value
    }

    pub fn opt_bool(&mut self, name: &str) -> Option<bool> {
        match self.field(name) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.push(name, "Input should be a valid boolean", "bool_type");
                None
            }
        }
    }

    pub fn req_bool(&mut self, name: &str) -> bool {
        if self.field(name).is_none() {
            self.push(name, "Field required", "missing");
            return false;
        }
        self.opt_bool(name).unwrap_or(false)
    }

    pub fn opt_enum(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let value = self.opt_str(name)?;
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.push(name, enum_message(allowed), "enum");
            None
        }
    }

    pub fn req_enum(&mut self, name: &str, allowed: &[&str]) -> String {
        if self.field(name).is_none() {
            self.push(name, "Field required", "missing");
            return String::new();
        }
        self.opt_enum(name, allowed).unwrap_or_default()
    }

    pub fn opt_str_list(&mut self, name: &str) -> Option<Vec<String>> {
        match self.field(name) {
            None => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                let mut bad = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        _ => bad.push(i),
                    }
                }
                for i in bad {
                    self.errors.push(FieldError::new(
                        vec!["body".into(), name.into(), i.into()],
                        "Input should be a valid string",
                        "string_type",
                    ));
                }
                Some(out)
            }
            Some(_) => {
                self.push(name, "Input should be a valid list", "list_type");
                None
            }
        }
    }

    pub fn opt_object(&mut self, name: &str) -> Option<Map<String, Value>> {
        match self.field(name) {
            None => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(_) => {
                self.push(name, "Input should be a valid dictionary", "dict_type");
                None
            }
        }
    }

    /// A required integer within `min..=max`; `min` on error.
    pub fn req_int(&mut self, name: &str, min: i64, max: i64) -> i64 {
        let value = match self.field(name) {
            None => {
                self.push(name, "Field required", "missing");
                return min;
            }
            Some(v) => v.as_i64(),
        };
        match value {
            None => {
                self.push(name, "Input should be a valid integer", "int_type");
                min
            }
            Some(n) if n < min => {
                self.push(
                    name,
                    format!("Input should be greater than or equal to {min}"),
                    "greater_than_equal",
                );
                min
            }
            Some(n) if n > max => {
                self.push(
                    name,
                    format!("Input should be less than or equal to {max}"),
                    "less_than_equal",
                );
                min
            }
            Some(n) => n,
        }
    }

    /// Records a custom finding on a field (e.g. a pattern the server enforces).
    pub fn invalid(&mut self, name: &str, msg: impl Into<String>, kind: &str) {
        self.push(name, msg, kind);
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// Pagination after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParams {
    pub limit: usize,
    pub offset: usize,
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// An integer as pydantic reads it, except that values beyond `i64` saturate (Python's ints
/// are unbounded: `offset=10**30` is valid there and means "past the end").
fn parse_saturating(raw: &str) -> Result<i64, ()> {
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(n);
    }
    let (negative, digits) = match raw.as_bytes().first() {
        Some(b'-') => (true, raw.get(1..).unwrap_or("")),
        Some(b'+') => (false, raw.get(1..).unwrap_or("")),
        _ => (false, raw),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(if negative { i64::MIN } else { i64::MAX })
    } else {
        Err(())
    }
}

/// Checks query parameters; the last occurrence of a repeated parameter wins, as in Starlette.
pub struct QueryCheck {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl QueryCheck {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self {
            pairs,
            errors: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, msg: impl Into<String>, kind: &str) {
        self.errors.push(FieldError::new(
            vec!["query".into(), name.into()],
            msg,
            kind,
        ));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn opt_str(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    pub fn req_str(&mut self, name: &str) -> String {
        match self.get(name).map(str::to_owned) {
            None => {
                self.push(name, "Field required", "missing");
                String::new()
            }
            Some(v) if v.is_empty() => {
                self.push(
                    name,
                    "String should have at least 1 character",
                    "string_too_short",
                );
                v
            }
            Some(v) => v,
        }
    }

    pub fn opt_enum(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let value = self.opt_str(name)?;
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.push(name, enum_message(allowed), "enum");
            None
        }
    }

    /// pydantic's lax boolean parsing of query strings.
    pub fn opt_bool(&mut self, name: &str) -> Option<bool> {
        let value = self.get(name)?.to_ascii_lowercase();
        match value.as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
            _ => {
                self.push(
                    name,
                    "Input should be a valid boolean, unable to interpret input",
                    "bool_parsing",
                );
                None
            }
        }
    }

    pub fn int(&mut self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        let Some(raw) = self.get(name).map(str::to_owned) else {
            return default;
        };
        match parse_saturating(raw.trim()) {
            Err(_) => {
                self.push(
                    name,
                    "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing",
                );
                default
            }
            Ok(n) if n < min => {
                self.push(
                    name,
                    format!("Input should be greater than or equal to {min}"),
                    "greater_than_equal",
                );
                default
            }
            Ok(n) if n > max => {
                self.push(
                    name,
                    format!("Input should be less than or equal to {max}"),
                    "less_than_equal",
                );
                default
            }
            Ok(n) => n,
        }
    }

    /// `limit` (default 50, 1..=500) and `offset` (>= 0).
    pub fn page(&mut self) -> PageParams {
        let limit = self.int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT);
        let offset = self.int("offset", 0, 0, i64::MAX);
        PageParams {
            limit: usize::try_from(limit).unwrap_or(50),
            offset: usize::try_from(offset).unwrap_or(0),
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body_errors(body: Value, f: impl FnOnce(&mut BodyCheck)) -> Vec<(String, String)> {
        let mut check = match BodyCheck::new(body) {
            Ok(c) => c,
            Err(ApiError::Validation(errs)) => {
                return errs
                    .into_iter()
                    .map(|e| (json!(e.loc).to_string(), e.kind))
                    .collect();
            }
            Err(other) => panic!("unexpected {other:?}"),
        };
        f(&mut check);
        match check.finish() {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(errs)) => errs
                .into_iter()
                .map(|e| (json!(e.loc).to_string(), e.kind))
                .collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn body_checks_report_every_field() {
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (
                json!({}),
                vec![
                    (r#"["body","name"]"#, "missing"),
                    (r#"["body","server_type"]"#, "missing"),
                ],
            ),
            (
                json!({"name": "", "server_type": "x"}),
                vec![
                    (r#"["body","name"]"#, "string_too_short"),
                    (r#"["body","server_type"]"#, "enum"),
                ],
            ),
            (
                json!({"name": 3, "server_type": "vllm", "tags": [1, "a"]}),
                vec![
                    (r#"["body","name"]"#, "string_type"),
                    (r#"["body","tags",0]"#, "string_type"),
                ],
            ),
            (
                json!({"name": "ok", "server_type": "vllm", "n": 0}),
                vec![(r#"["body","n"]"#, "greater_than_equal")],
            ),
            (json!([1]), vec![(r#"["body"]"#, "model_attributes_type")]),
        ];
        for (body, expected) in cases {
            let got = body_errors(body.clone(), |c| {
                c.req_str("name");
                c.req_enum("server_type", &["vllm", "sglang"]);
                c.opt_str_list("tags");
                if c.field("n").is_some() {
                    c.req_int("n", 1, 10);
                }
            });
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
            assert_eq!(got, expected, "body {body}");
        }
    }

    #[test]
    fn enum_message_matches_pydantic() {
        assert_eq!(
            enum_message(&["dev", "staging", "testing"]),
            "Input should be 'dev', 'staging' or 'testing'"
        );
        assert_eq!(enum_message(&["a"]), "Input should be 'a'");
    }

    #[test]
    fn query_page_bounds() {
        let check = |q: &[(&str, &str)]| {
            let mut c = QueryCheck::new(
                q.iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect(),
            );
            let page = c.page();
            (page, c.finish().is_ok())
        };
        assert_eq!(
            check(&[]),
            (
                PageParams {
                    limit: 50,
                    offset: 0
                },
                true
            )
        );
        assert_eq!(
            check(&[("limit", "500"), ("offset", "7")]),
            (
                PageParams {
                    limit: 500,
                    offset: 7
                },
                true
            )
        );
        assert!(!check(&[("limit", "501")]).1);
        assert!(!check(&[("limit", "0")]).1);
        assert!(!check(&[("limit", "ten")]).1);
        assert!(!check(&[("offset", "-1")]).1);
        assert_eq!(check(&[("limit", "5"), ("limit", "6")]).0.limit, 6);
        // Beyond i64: offsets saturate (valid, past the end); limits are still too big.
        let huge = "123456789012345678901234567890";
        let (page, ok) = check(&[("offset", huge)]);
        assert_eq!((page.offset as u64, ok), (i64::MAX as u64, true));
        assert!(!check(&[("limit", huge)]).1);
        assert!(!check(&[("offset", &format!("-{huge}"))]).1);
        assert!(!check(&[("offset", "12x")]).1);
    }
}
