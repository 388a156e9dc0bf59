//! YAML scalars as Docker Compose types them (contract section 2.5).
//!
//! Compose decodes the file with go-yaml, which types every plain scalar
//! (null, bool, int, float, timestamp, else string), and then turns the
//! values of `environment` and `labels` back into text with Go's
//! `fmt.Sprint`: `2.0` becomes `"2"`, `0x10` `"16"`, `1e6` `"1e+06"`. Fields
//! whose entries must be strings (`command` lists, `device_ids`, ...) refuse
//! the typed ones. Quoted and block scalars, and every value that held a `$`
//! before interpolation, are strings.

use crate::yaml::Scalar;

/// What go-yaml makes of a scalar.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Typed<'a> {
    Null,
    /// A bool, int or float, as Go prints it.
    Value(String),
    /// go-yaml decodes `2024-01-31` to a time, which Compose refuses where it
    /// wants text.
    Timestamp,
    Str(&'a str),
}

impl Typed<'_> {
    /// What the value is, for RC002 messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Typed::Null => "null",
            Typed::Value(_) => "number or boolean",
            Typed::Timestamp => "timestamp",
            Typed::Str(_) => "string",
        }
    }
}

/// go-yaml v3's `resolve` for an untagged scalar.
pub(super) fn typed(scalar: &Scalar) -> Typed<'_> {
    let text = scalar.text.as_str();
    if !scalar.plain {
        return Typed::Str(text);
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Typed::Null,
        "true" | "True" | "TRUE" => return Typed::Value("true".into()),
        "false" | "False" | "FALSE" => return Typed::Value("false".into()),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Typed::Value("+Inf".into());
        }
        "-.inf" | "-.Inf" | "-.INF" => return Typed::Value("-Inf".into()),
        ".nan" | ".NaN" | ".NAN" => return Typed::Value("NaN".into()),
        _ => {}
    }
    match text.as_bytes()[0] {
        b'.' => match text.parse::<f64>() {
            Ok(f) if go_float_syntax(text) => Typed::Value(go_float(f)),
            _ => Typed::Str(text),
        },
        b'0'..=b'9' | b'+' | b'-' => {
            if is_timestamp(text) {
                return Typed::Timestamp;
            }
            let plain = text.replace('_', "");
            if let Some(int) = go_parse_int(&plain) {
                return Typed::Value(int);
            }
            if yaml_style_float(&plain)
                && let Ok(f) = plain.parse::<f64>()
                && f.is_finite()
            {
                return Typed::Value(go_float(f));
            }
            Typed::Str(text)
        }
        _ => Typed::Str(text),
    }
}

/// Go's `strconv.ParseFloat` syntax for what starts with `.` (Rust's parser
/// also takes `inf`/`nan` words, which cannot start with a dot anyway).
fn go_float_syntax(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_style_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `strconv.ParseInt(text, 0, 64)`, then `ParseUint`: decimal, `0x`, `0o`,
/// `0b`, and a leading `0` for octal; the value in decimal.
fn go_parse_int(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        // i64 range only: -9223372036854775808 at most.
        if magnitude > 1u64 << 63 {
            return None;
        }
        if magnitude == 0 {
            return Some("0".into());
        }
        return Some(format!("-{magnitude}"));
    }
    // ParseUint takes no sign; `+` beyond the i64 range fails both.
    if text.starts_with('+') && magnitude > i64::MAX as u64 {
        return None;
    }
    Some(magnitude.to_string())
}

/// go-yaml's timestamp forms start with a four-digit year and a `-`:
/// `2001-12-14`, `2001-12-14t21:59:43.10-05:00`, `2001-12-14 21:59:43.10`.
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    for part in 0..2 {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if !(1..=2).contains(&(i - start)) {
            return false;
        }
        if part == 0 {
            if b.get(i) != Some(&b'-') {
                return false;
            }
            i += 1;
        }
    }
    match b.get(i) {
        None => true,
        Some(b'T' | b't' | b' ') => b.get(i + 1..).is_some_and(|rest| {
            rest.first().is_some_and(u8::is_ascii_digit) && rest.contains(&b':')
        }),
        Some(_) => false,
    }
}

/// Go's `fmt.Sprint` of a float64: the shortest digits that read back, in
/// `%e` form when the decimal exponent is below -4 or at least 6 (`%v` is
/// `%g` at the shortest precision, whose cut-off is 6).
pub(super) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `-1.2345e-7`.
    let formatted = format!("{f:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{dot}e{exp_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    let point = exponent + 1;
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = point as usize;
    if digits.len() <= point {
        let zeros = "0".repeat(point - digits.len());
        format!("{sign}{digits}{zeros}")
    } else {
        format!("{sign}{}.{}", &digits[..point], &digits[point..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> String {
        match typed(&Scalar {
            text: text.into(),
            plain: true,
        }) {
            Typed::Null => "<null>".into(),
            Typed::Value(v) => v,
            Typed::Timestamp => "<time>".into(),
            Typed::Str(s) => s.into(),
        }
    }

    /// Each pair is what Docker Compose 2.40 printed for the plain scalar.
    #[test]
    fn scalars_as_compose_prints_them() {
        for (yaml, compose) in [
            ("1.50", "1.5"),
            ("0x10", "16"),
            ("017", "15"),
            ("08", "8"),
            ("1e+21", "1e+21"),
            (".inf", "+Inf"),
            ("1_000", "1000"),
            ("yes", "yes"),
            ("0o17", "15"),
            ("12345678901234567890", "12345678901234567890"),
            ("1e6", "1e+06"),
            ("0.00001", "1e-05"),
            ("-0b11", "-3"),
            ("~", "<null>"),
            ("123456789.0", "1.23456789e+08"),
            ("1.0e5", "100000"),
            ("-0", "0"),
            ("+12", "12"),
            ("0.1", "0.1"),
            (".5", "0.5"),
            ("1.", "1"),
            ("-.inf", "-Inf"),
            (".NaN", "NaN"),
            ("0xFFFFFFFFFFFFFFFF", "18446744073709551615"),
            ("1e400", "1e400"),
            ("2.0", "2"),
            ("True", "true"),
            ("2001-12-14", "<time>"),
            ("vllm/vllm-openai", "vllm/vllm-openai"),
        ] {
            assert_eq!(plain(yaml), compose, "{yaml}");
        }
    }
}
