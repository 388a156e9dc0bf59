//! Compose interpolation (`.env` files are checked against Docker Compose
//! itself, in `compose_reference`).

use proptest::prelude::*;
use topology::dotenv::parse_env_file;
use topology::interpolate::{Interpolated, InterpolationError, Vars, interpolate};

fn vars() -> Vars {
    [
        ("FOO", "first"),
        ("BAR", ""),
        ("PORT", "8080"),
        ("_x1", "u"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `expected`: `Ok("text | UNSET,NAMES")` (the `|` part only when something
/// is unset) or `Err("message@offset")`.
#[track_caller]
fn check(input: &str, expected: Result<&str, &str>) {
    let got = match interpolate(input, &vars()) {
        Ok(Interpolated { text, unset }) if unset.is_empty() => Ok(text),
        Ok(Interpolated { text, unset }) => Ok(format!("{text} | {}", unset.join(","))),
        Err(InterpolationError { message, offset }) => Err(format!("{message}@{offset}")),
    };
    assert_eq!(
        got,
        expected.map(str::to_owned).map_err(str::to_owned),
        "input: {input:?}"
    );
}

#[test]
fn every_operator() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        // No `$`: unchanged.
        ("plain text", Ok("plain text")),
        ("", Ok("")),
        // Plain references.
        ("$FOO", Ok("first")),
        ("${FOO}", Ok("first")),
        ("a${FOO}b", Ok("afirstb")),
        ("$FOO-bar", Ok("first-bar")),
        ("$FOO.bar", Ok("first.bar")),
        ("${_x1}", Ok("u")),
        ("$_x1$FOO", Ok("ufirst")),
        ("port ${PORT}:$PORT", Ok("port 8080:8080")),
        // Unset: empty, and reported once.
        ("${MISSING}", Ok(" | MISSING")),
        ("$MISSING/x/${MISSING}/$OTHER", Ok("/x// | MISSING,OTHER")),
        // Set but empty is not unset.
        ("[${BAR}]", Ok("[]")),
        // `$$` is a literal `$`.
        ("$$", Ok("$")),
        ("$${FOO}", Ok("${FOO}")),
        ("$$FOO", Ok("$FOO")),
        ("$$$FOO", Ok("$first")),
        ("cost: 5$$", Ok("cost: 5$")),
        // A `$` that cannot start anything stays as it is.
        ("$1", Ok("$1")),
        ("a $ b", Ok("a $ b")),
        ("$-x", Ok("$-x")),
        ("trailing $", Ok("trailing $")),
        ("$}", Ok("$}")),
        ("100%$", Ok("100%$")),
        // `:-` default when unset or empty; `-` only when unset.
        ("${MISSING:-def}", Ok("def")),
        ("${BAR:-def}", Ok("def")),
        ("${FOO:-def}", Ok("first")),
        ("${MISSING-def}", Ok("def")),
        ("${BAR-def}", Ok("")),
        ("${FOO-def}", Ok("first")),
        ("${MISSING:-}", Ok("")),
        ("${BAR:-/non:-alphanumeric}", Ok("/non:-alphanumeric")),
        ("${MISSING-myerror?msg}", Ok("myerror?msg")),
        // `:+` alternative when set and not empty; `+` when set.
        ("${FOO:+alt}", Ok("alt")),
        ("${BAR:+alt}", Ok("")),
        ("${MISSING:+alt}", Ok("")),
        ("${FOO+alt}", Ok("alt")),
        ("${BAR+alt}", Ok("alt")),
        ("${MISSING+alt}", Ok("")),
        // `:?` and `?`: required.
        ("${FOO:?err}", Ok("first")),
        ("${FOO?err}", Ok("first")),
        ("${BAR?err}", Ok("")),
        (
            "ok ${MISSING:?Mandatory Variable Unset}",
            Err("required variable MISSING is missing a value: Mandatory Variable Unset@3"),
        ),
        (
            "${BAR:?must not be empty}",
            Err("required variable BAR is missing a value: must not be empty@0"),
        ),
        (
            "${MISSING:?}",
            Err("required variable MISSING is missing a value@0"),
        ),
        (
            "${MISSING?bar-baz}",
            Err("required variable MISSING is missing a value: bar-baz@0"),
        ),
        (
            "${MISSING?}",
            Err("required variable MISSING is missing a value@0"),
        ),
        // Nested expansion in the word, evaluated as Compose does.
        ("ok ${MISSING-$FOO}", Ok("ok first")),
        ("ok ${MISSING-${FOO}}", Ok("ok first")),
        ("ok ${MISSING-${FOO} ${FOO}}", Ok("ok first first")),
        ("ok ${BAR:-${FOO}}", Ok("ok first")),
        ("${A:-${B:-${FOO}}}", Ok("first")),
        ("${FOO:+[${PORT}]}", Ok("[8080]")),
        (
            "${MISSING:?need ${FOO}}",
            Err("required variable MISSING is missing a value: need first@0"),
        ),
        ("${MISSING:-$$}", Ok("$")),
        ("${MISSING:-a$}", Ok("a$")),
        // Compose expands the word even when it is not used.
        ("${FOO:-$UNUSED}", Ok("first | UNUSED")),
        (
            "${FOO:-${X:?boom}}",
            Err("required variable X is missing a value: boom@7"),
        ),
        // Balanced braces in a word are kept.
        ("${MISSING:-{\"a\": 1}}", Ok("{\"a\": 1}")),
        ("${MISSING:-}}", Ok("}")),
        // Malformed.
        ("${", Err("unterminated `${`: missing closing brace@0")),
        (
            "x ${FOO",
            Err("unterminated `${FOO`: missing closing brace@2"),
        ),
        (
            "${FOO:-abc",
            Err("unterminated `${FOO:-abc`: missing closing brace@0"),
        ),
        (
            "${MISSING:-${FOO}",
            Err("unterminated `${MISSING:-${FOO}`: missing closing brace@0"),
        ),
        ("${}", Err("empty variable name in `${}`@0")),
        (
            "${1A}",
            Err("invalid variable name in `${1A}`: a name starts with a letter or `_`@0"),
        ),
        (
            "${ FOO}",
            Err("invalid variable name in `${ FOO}`: a name starts with a letter or `_`@0"),
        ),
        (
            "${FOO:x}",
            Err("invalid modifier `:x` in `${FOO:x}`: expected `:-`, `:?` or `:+`@0"),
        ),
        (
            "${FOO:}",
            Err("invalid modifier `:}` in `${FOO:}`: expected `:-`, `:?` or `:+`@0"),
        ),
        (
            "${FOO }",
            Err(
                "invalid character ` ` in `${FOO }`: expected `}` or one of `-`, `?`, `+` after the name@0",
            ),
        ),
        (
            "${FOO!}",
            Err(
                "invalid character `!` in `${FOO!}`: expected `}` or one of `-`, `?`, `+` after the name@0",
            ),
        ),
        ("${FOO:-${}}", Err("empty variable name in `${}`@7")),
        (
            "ok $$ then ${",
            Err("unterminated `${`: missing closing brace@11"),
        ),
    ];
    for (input, expected) in cases {
        check(input, *expected);
    }
}

#[test]
fn non_ascii_text_is_kept() {
    check("héllo ${FOO} wörld $ ü", Ok("héllo first wörld $ ü"));
    check("${MISSING:-é}", Ok("é"));
    check(
        "${FOOé}",
        Err(
            "invalid character `é` in `${FOOé}`: expected `}` or one of `-`, `?`, `+` after the name@0",
        ),
    );
}

#[test]
fn hostile_nesting_is_bounded() {
    let deep = "${A:-".repeat(10_000) + &"}".repeat(10_000);
    let err = interpolate(&deep, &Vars::new()).err().map(|e| e.message);
    assert_eq!(
        err.as_deref(),
        Some("interpolation nested deeper than 64 levels")
    );
    let fine = "${A:-".repeat(60) + "x" + &"}".repeat(60);
    assert_eq!(
        interpolate(&fine, &Vars::new()).map(|i| i.text),
        Ok("x".to_owned())
    );
}

/// A piece of a generated template, rendered to text and evaluated by the
/// model independently of the parser.
#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Dollar,
    Named(String),
    Braced(String),
    Op {
        name: String,
        colon: bool,
        op: char,
        word: Vec<Piece>,
    },
}

fn render(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Dollar => out.push_str("$$"),
            Piece::Named(name) => {
                // `$NAME` followed by a name character would read a longer name.
                let glued = matches!(pieces.get(i + 1), Some(Piece::Literal(t)) if t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
                if glued {
                    out.push_str(&format!("${{{name}}}"));
                } else {
                    out.push_str(&format!("${name}"));
                }
            }
            Piece::Braced(name) => out.push_str(&format!("${{{name}}}")),
            Piece::Op {
                name,
                colon,
                op,
                word,
            } => {
                let colon = if *colon { ":" } else { "" };
                out.push_str(&format!("${{{name}{colon}{op}{}}}", render(word)));
            }
        }
    }
    out
}

/// The Compose rules, applied to the structure: `Err(name)` for a missing
/// required variable (the first one, in evaluation order).
fn model(pieces: &[Piece], vars: &Vars, unset: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Dollar => out.push('$'),
            Piece::Named(name) | Piece::Braced(name) => match vars.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    if !unset.contains(name) {
                        unset.push(name.clone());
                    }
                }
            },
            Piece::Op {
                name,
                colon,
                op,
                word,
            } => {
                let word = model(word, vars, unset)?;
                let value = vars.get(name);
                let present = value.is_some_and(|v| !(*colon && v.is_empty()));
                let value = value.cloned().unwrap_or_default();
                match (op, present) {
                    ('-', true) | ('?', true) | ('+', false) => out.push_str(&value),
                    ('-', false) | ('+', true) => out.push_str(&word),
                    _ => return Err(name.clone()),
                }
            }
        }
    }
    Ok(out)
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("A".to_owned()),
        Just("B".to_owned()),
        Just("EMPTY".to_owned()),
        Just("_u9".to_owned()),
        Just("NOPE".to_owned()),
        "[A-Za-z_][A-Za-z0-9_]{0,5}"
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    let leaf = prop_oneof![
        // Literal text: no `$` or braces (those are what the pieces are for).
        "[a-zA-Z0-9 .:/=@,_+?-]{1,6}".prop_map(Piece::Literal),
        Just(Piece::Dollar),
        name().prop_map(Piece::Named),
        name().prop_map(Piece::Braced),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        (
            name(),
            any::<bool>(),
            prop_oneof![Just('-'), Just('?'), Just('+')],
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(name, colon, op, word)| Piece::Op {
                name,
                colon,
                op,
                word,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_compose_model(pieces in prop::collection::vec(piece(), 0..6)) {
        let vars: Vars = [("A", "alpha"), ("B", "b"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let input = render(&pieces);
        let mut unset = Vec::new();
        let expected = model(&pieces, &vars, &mut unset);
        let got = interpolate(&input, &vars);
        match (got, expected) {
            (Ok(got), Ok(text)) => {
                prop_assert_eq!(got.text, text, "input {:?}", input);
                prop_assert_eq!(got.unset, unset, "input {:?}", input);
            }
            (Err(err), Err(name)) => {
                let prefix = format!("required variable {name} is missing a value");
                prop_assert!(err.message.starts_with(&prefix), "input {:?}: {:?}", input, err.message);
                prop_assert_eq!(input.get(err.offset..err.offset + 2), Some("${"));
            }
            (got, expected) => prop_assert!(false, "input {:?}: got {:?}, model {:?}", input, got, expected),
        }
    }

    #[test]
    fn arbitrary_text_never_panics(input in "[${}:?+\\-a-zA-Z0-9_ é]{0,40}") {
        let _ = interpolate(&input, &Vars::new());
        let _ = parse_env_file(&input);
    }
}
