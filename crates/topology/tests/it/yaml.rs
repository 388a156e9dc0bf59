//! The positioned YAML reader: tree shape, positions, anchors and merge keys,
//! tags, errors, and hostile input (bombs, deep nesting, huge files).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use topology::yaml::{Limits, Node, Pos, Value, parse, parse_fast_path, parse_with_saphyr};

/// Compact rendering: `text@line:col` for plain scalars, `"text"@..` for
/// quoted/block ones, `[..]@..` and `{k: v, ..}@..` for collections.
fn render(node: &Node) -> String {
    let at = format!("@{}:{}", node.pos.line, node.pos.column);
    match &node.value {
        Value::Scalar(s) if s.plain => format!("{}{at}", s.text),
        Value::Scalar(s) => format!("{:?}{at}", s.text),
        Value::Seq(items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]{at}", items.join(", "))
        }
        Value::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", render(k), render(v)))
                .collect();
            format!("{{{}}}{at}", entries.join(", "))
        }
    }
}

/// Same without positions, for cases about values only.
fn shape(node: &Node) -> String {
    match &node.value {
        Value::Scalar(s) if s.plain => s.text.clone(),
        Value::Scalar(s) => format!("{:?}", s.text),
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(shape).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", shape(k), shape(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn parsed(input: &str) -> Node {
    match parse(input, &Limits::default()) {
        Ok(node) => node,
        Err(e) => panic!("{input:?} should parse, got {} at {:?}", e.message, e.pos),
    }
}

/// `expected` is the positioned rendering of the tree.
#[track_caller]
fn check(input: &str, expected: &str) {
    assert_eq!(render(&parsed(input)), expected, "input: {input:?}");
}

/// `expected` is the rendering without positions.
#[track_caller]
fn check_shape(input: &str, expected: &str) {
    assert_eq!(shape(&parsed(input)), expected, "input: {input:?}");
}

/// `expected` is `message@line:col`; the message is matched by prefix.
#[track_caller]
fn check_error(input: &str, limits: &Limits, expected: &str) {
    let err = match parse(input, limits) {
        Ok(node) => panic!("{input:?} should fail, parsed as {}", render(&node)),
        Err(e) => e,
    };
    let (message, at) = expected.rsplit_once('@').unwrap_or((expected, ""));
    assert!(
        err.message.starts_with(message),
        "input {input:?}: message {:?}, expected {message:?}",
        err.message
    );
    assert_eq!(
        format!("{}:{}", err.pos.line, err.pos.column),
        at,
        "input {input:?}: position of {:?}",
        err.message
    );
}

#[test]
fn positions_of_nested_nodes() {
    let compose = "\
services:
  web:
    image: nginx
    ports:
      - \"80:80\"
      - 443
    labels: {a: b, c: [d]}
";
    check(
        compose,
        "{services@1:1: {web@2:3: {image@3:5: nginx@3:12, \
         ports@4:5: [\"80:80\"@5:9, 443@6:9]@5:7, \
         labels@7:5: {a@7:14: b@7:17, c@7:20: [d@7:24]@7:23}@7:13}@3:5}@2:3}@1:1",
    );
    let cases = [
        ("a: b", "{a@1:1: b@1:4}@1:1"),
        ("- a\n- b", "[a@1:3, b@2:3]@1:1"),
        ("[a, [b]]", "[a@1:2, [b@1:6]@1:5]@1:1"),
        ("{a: {b: c}}", "{a@1:2: {b@1:6: c@1:9}@1:5}@1:1"),
        ("a:\n- x\n- y", "{a@1:1: [x@2:3, y@3:3]@2:1}@1:1"),
        ("a:\n  - x", "{a@1:1: [x@2:5]@2:3}@1:1"),
        // Columns count characters, not bytes.
        ("é: ü", "{é@1:1: ü@1:4}@1:1"),
        // An empty value sits at its `:`.
        ("a:\nb: 1", "{a@1:1: @1:2, b@2:1: 1@2:4}@1:1"),
        ("# comment\n\na: 1 # trailing", "{a@3:1: 1@3:4}@3:1"),
        ("---\na: 1\n...\n", "{a@2:1: 1@2:4}@2:1"),
        // A node with properties starts at its first property.
        ("a: !override [1]", "{a@1:1: [1@1:15]@1:4}@1:1"),
        ("a: &x\n  b: 1", "{a@1:1: {b@2:3: 1@2:6}@1:4}@1:1"),
        // Complex keys are kept as nodes.
        ("[a, b]: c", "{[a@1:2, b@1:5]@1:1: c@1:9}@1:1"),
        ("? - a\n: b", "{[a@1:5]@1:3: b@2:3}@1:1"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn scalar_styles_and_tags() {
    let cases = [
        // Quoted and block scalars are not plain, whatever their text.
        ("a: 3", "{a: 3}"),
        ("a: '3'", "{a: \"3\"}"),
        ("a: \"3\"", "{a: \"3\"}"),
        ("a: ''", "{a: \"\"}"),
        ("a: |\n  x\n  y\n", "{a: \"x\\ny\\n\"}"),
        ("a: >-\n  x\n  y\n", "{a: \"x y\"}"),
        ("a: 'it''s'", "{a: \"it's\"}"),
        ("a: \"tab\\there\"", "{a: \"tab\\there\"}"),
        ("a: multi\n  line plain", "{a: multi line plain}"),
        // Custom tags read as their plain value.
        // `!reset` removes its entry, as Compose does.
        ("a: !reset null", "{}"),
        ("a: !override\n  - 1", "{a: [1]}"),
        ("a: !whatever {b: c}", "{a: {b: c}}"),
        ("a: !custom 'q'", "{a: \"q\"}"),
        // `!!str` makes a string as quotes do.
        ("a: !!str 3", "{a: \"3\"}"),
        ("a: !!int 3", "{a: 3}"),
        // Flow and block styles give the same tree.
        ("a: [1, 2]\nb: {c: d}", "{a: [1, 2], b: {c: d}}"),
        ("a:\n  - 1\n  - 2\nb:\n  c: d", "{a: [1, 2], b: {c: d}}"),
        ("- a: 1\n  b: 2\n- c", "[{a: 1, b: 2}, c]"),
        ("[a: 1, b]", "[{a: 1}, b]"),
    ];
    for (input, expected) in cases {
        check_shape(input, expected);
    }
    let node = parsed("a: ~\nb:\nc: Null\nd: ''\ne: x");
    let nulls: Vec<bool> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|k| node.get(k).is_some_and(Node::is_null))
        .collect();
    assert_eq!(nulls, [true, true, true, false, false]);
}

#[test]
fn documents_and_duplicates() {
    let cases = [
        ("", "{}"),
        ("\n\n", "{}"),
        ("# only a comment\n", "{}"),
        ("---\n", "{}"),
        ("---\n...\n", "{}"),
        ("plain", "plain"),
        ("~", "~"),
    ];
    for (input, expected) in cases {
        check_shape(input, expected);
    }
    // A key written twice is an error at the second one, as in go-yaml (and
    // so Docker Compose), whatever the quoting; two `<<` are duplicates too.
    let mut big: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
    big.push_str("k7: last\n");
    for (input, line, column, first) in [
        ("a: 1\nb: 2\na: 3", 3, 1, 1),
        ("{a: 1, a: 2}", 1, 8, 1),
        ("a: 1\n'a': 2", 2, 1, 1),
        ("x: &x {a: 1}\ny:\n  <<: *x\n  <<: *x\n", 4, 3, 3),
        // Past the small-map path, duplicates are found with a hash map.
        (big.as_str(), 41, 1, 8),
    ] {
        let limits = Limits::default();
        for err in [parse(input, &limits), parse_with_saphyr(input, &limits)] {
            let err = err.expect_err(input);
            assert_eq!(
                (err.pos.line, err.pos.column),
                (line, column),
                "{input}: {err}"
            );
            assert!(
                err.message
                    .ends_with(&format!("is already defined at line {first}")),
                "{input}: {err}"
            );
        }
    }
    // Keys that come in through a merge are not duplicates.
    check_shape(
        "x: &x {a: 1}\ny:\n  <<: *x\n  a: 2\n",
        "{x: {a: 1}, y: {a: 2}}",
    );
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let cases = [
        ("a: &x 1\nb: *x", "{a: 1, b: 1}"),
        (
            "a: &x [1, 2]\nb: *x\nc: [*x, *x]",
            "{a: [1, 2], b: [1, 2], c: [[1, 2], [1, 2]]}",
        ),
        // A redefined anchor: aliases see the latest definition.
        ("a: &x 1\nb: &x 2\nc: *x", "{a: 1, b: 2, c: 2}"),
        ("&k key: *k", "{key: key}"),
        // Merge: explicit keys win wherever they stand.
        (
            "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 9",
            "{base: {x: 1, y: 2}, d: {y: 2, x: 9}}",
        ),
        (
            "base: &b {x: 1, y: 2}\nd:\n  x: 9\n  <<: *b",
            "{base: {x: 1, y: 2}, d: {x: 9, y: 2}}",
        ),
        // Earlier sources win over later ones.
        (
            "b: &b {x: 1, y: 2}\nc: &c {y: 3, z: 4}\nd:\n  <<: [*b, *c]\n  w: 0",
            "{b: {x: 1, y: 2}, c: {y: 3, z: 4}, d: {x: 1, y: 2, z: 4, w: 0}}",
        ),
        (
            "b: &b {x: 1, y: 2}\nc: &c {y: 3, z: 4}\nd:\n  <<: [*c, *b]",
            "{b: {x: 1, y: 2}, c: {y: 3, z: 4}, d: {y: 3, z: 4, x: 1}}",
        ),
        // An inline mapping merges too; a quoted `<<` is an ordinary key.
        ("d: {<<: {a: 1}, b: 2}", "{d: {a: 1, b: 2}}"),
        ("d: {\"<<\": {a: 1}}", "{d: {\"<<\": {a: 1}}}"),
        // Merged nodes were merged already in their own anchor.
        (
            "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b}",
            "{a: {x: 1}, b: {x: 1, y: 2}, c: {x: 1, y: 2}}",
        ),
        // The usual compose idiom.
        (
            "x-common: &common\n  restart: always\n  environment:\n    A: 1\nservices:\n  web:\n    <<: *common\n    image: nginx",
            "{x-common: {restart: always, environment: {A: 1}}, services: {web: {restart: always, environment: {A: 1}, image: nginx}}}",
        ),
    ];
    for (input, expected) in cases {
        check_shape(input, expected);
    }
    // Aliased and merged nodes keep the positions where they were written.
    check(
        "b: &b {x: 1}\nd:\n  <<: *b\n  y: 2\ne: *b",
        "{b@1:1: {x@1:8: 1@1:11}@1:4, d@2:1: {x@1:8: 1@1:11, y@4:3: 2@4:6}@3:3, e@5:1: {x@1:8: 1@1:11}@1:4}@1:1",
    );
}

#[test]
fn errors_name_the_problem_and_its_position() {
    let limits = Limits::default();
    let cases = [
        (
            "a: b\n  c: d",
            "mapping values are not allowed in this context@2:4",
        ),
        (
            "key: value: other",
            "mapping values are not allowed in this context@1:11",
        ),
        (
            "a: [b, c",
            "while parsing a flow sequence, expected ',' or ']'@1:9",
        ),
        (
            "a: {b: c",
            "while parsing a flow mapping, did not find expected ',' or '}'@1:9",
        ),
        (
            "a:\n  b: 1\n c: 2",
            "while parsing a block mapping, did not find expected key@3:2",
        ),
        ("a: \"open", "unterminated quoted string@1:4"),
        ("a: 'x\n", "unterminated quoted string@1:4"),
        ("a: b\nc", "could not find expected ':' after a key@2:2"),
        (
            "a: *nope",
            "unknown anchor: *nope is used before any &nope@1:4",
        ),
        ("a: &x [1, *x]", "alias refers to its own anchor@1:11"),
        (
            "---\na: 1\n---\nb: 2",
            "a second YAML document starts here@3:1",
        ),
        ("a: 1\n---\nb: 2", "a second YAML document starts here@2:1"),
        (
            "d: {<<: 3}",
            "merge key `<<` needs a mapping or a list of mappings, found a scalar@1:9",
        ),
        (
            "d:\n  <<: [{a: 1}, x]",
            "merge key `<<` needs a mapping or a list of mappings, found a scalar inside the list@2:7",
        ),
    ];
    for (input, expected) in cases {
        check_error(input, &limits, expected);
    }
}

#[test]
fn limits_are_enforced() {
    check_error(
        "a: 0123456789",
        &Limits {
            max_bytes: 10,
            ..Limits::default()
        },
        "file is 13 bytes, over the limit of 10 bytes@1:1",
    );
    let shallow = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let few = Limits {
        max_nodes: 5,
        ..Limits::default()
    };
    let cases = [
        ("[[[[1]]]]", &shallow, "nesting deeper than 3 levels@1:4"),
        (
            "a:\n b:\n  c:\n   d: 1",
            &shallow,
            "nesting deeper than 3 levels@4:4",
        ),
        ("[1, 2, 3, 4, 5]", &few, "document exceeds 5 nodes@1:14"),
        (
            "a: &a [1]\nb: *a",
            &few,
            "alias expansion exceeds 5 nodes@2:4",
        ),
    ];
    for (input, limits, expected) in cases {
        check_error(input, limits, expected);
    }
    // An alias adds the depth of what it copies.
    let depth = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    check_error(
        "a: &a [[1]]\nb: [*a]",
        &depth,
        "nesting deeper than 3 levels@2:5",
    );
    assert!(parse("a: &a [[1]]\nb: *a", &depth).is_ok());
    // Exactly at the limits is fine.
    assert!(
        parse(
            "[[[1]]]",
            &Limits {
                max_depth: 3,
                ..Limits::default()
            }
        )
        .is_ok()
    );
    assert!(
        parse(
            "[1, 2, 3, 4]",
            &Limits {
                max_nodes: 5,
                ..Limits::default()
            }
        )
        .is_ok()
    );
}

#[track_caller]
fn assert_fails_fast(input: &str, message_start: &str, budget: Duration) {
    let start = Instant::now();
    let result = parse(input, &Limits::default());
    let took = start.elapsed();
    match result {
        Ok(node) => panic!(
            "hostile input parsed: {}",
            shape(&node).chars().take(200).collect::<String>()
        ),
        Err(e) => assert!(
            e.message.starts_with(message_start),
            "message {:?}, expected {message_start:?}",
            e.message
        ),
    }
    assert!(took < budget, "took {took:?}, budget {budget:?}");
}

#[test]
fn billion_laughs_fails_fast() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..9u8 {
        let prev = char::from(b'a' + level - 1);
        let name = char::from(b'a' + level);
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    assert_fails_fast(
        &bomb,
        "alias expansion exceeds 200000 nodes",
        Duration::from_secs(2),
    );
    // Anchors nested inside one another cannot multiply the work unseen either.
    let mut nested = String::new();
    for i in 0..60 {
        nested.push_str(&format!("&n{i} ["));
    }
    nested.push_str(&vec!["x"; 5000].join(","));
    nested.push_str(&"]".repeat(60));
    nested.insert_str(0, "a: ");
    nested.push_str("\nb: *n59\n");
    assert_fails_fast(
        &nested,
        "anchored nodes exceed 200000 nodes",
        Duration::from_secs(2),
    );
}

#[test]
fn deep_nesting_fails_fast_without_overflow() {
    let flow = "[".repeat(10_000);
    assert_fails_fast(
        &flow,
        "nesting deeper than 64 levels",
        Duration::from_secs(2),
    );
    let flow_map = "{a: ".repeat(10_000);
    assert_fails_fast(
        &flow_map,
        "nesting deeper than 64 levels",
        Duration::from_secs(2),
    );
    let block_seq = "- ".repeat(10_000) + "x";
    assert_fails_fast(
        &block_seq,
        "nesting deeper than 64 levels",
        Duration::from_secs(2),
    );
    // Indentation grows with depth, so 2,000 levels already take 2 MB.
    let block_map: String = (0..2_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    assert_fails_fast(
        &block_map,
        "nesting deeper than 64 levels",
        Duration::from_secs(2),
    );
}

#[test]
fn huge_input_is_rejected_by_size() {
    let huge = "a: b\n".repeat(10 << 20);
    assert!(huge.len() >= 50 << 20);
    assert_fails_fast(
        &huge,
        "file is 52428800 bytes, over the limit of 4194304 bytes",
        Duration::from_millis(50),
    );
}

#[test]
fn a_typical_compose_file_parses_quickly() {
    let service = |i: usize| {
        format!(
            "  svc{i}:\n    image: \"registry.local/vllm:{i}\"\n    command: [\"--model\", \"m{i}\", \"--port\", \"80{i:02}\"]\n    ports:\n      - \"80{i:02}:8000\"\n    environment:\n      - CUDA_VISIBLE_DEVICES={i}\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n              device_ids: [\"{i}\"]\n"
        )
    };
    let compose = format!("services:\n{}", (0..6).map(service).collect::<String>());
    assert!(compose.len() > 1500, "{}", compose.len());
    let node = parsed(&compose);
    assert_eq!(
        node.get("services").and_then(Node::as_map).map(<[_]>::len),
        Some(6)
    );
    // Loose bound (debug build, shared machine): guards against a blow-up,
    // not a benchmark.
    let start = Instant::now();
    for _ in 0..200 {
        assert!(parse(&compose, &Limits::default()).is_ok());
    }
    let each = start.elapsed() / 200;
    assert!(each < Duration::from_millis(20), "{each:?} per parse");
}

#[test]
fn node_helpers() {
    let node = parsed("a: [1, 2]\nb: {c: d}\nc: x\nd:");
    let kinds: Vec<&str> = ["a", "b", "c", "d"]
        .iter()
        .filter_map(|k| node.get(k))
        .map(Node::kind_name)
        .collect();
    assert_eq!(kinds, ["list", "mapping", "scalar", "null"]);
    assert_eq!(
        node.get("a").and_then(Node::as_seq).map(<[_]>::len),
        Some(2)
    );
    assert_eq!(
        node.get("b")
            .and_then(|b| b.get("c"))
            .and_then(Node::as_str),
        Some("d")
    );
    assert_eq!(
        node.get("b").map(|b| b.pos),
        Some(Pos { line: 2, column: 4 })
    );
    assert!(node.get("zz").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(input in any::<String>()) {
        let _ = parse(&input, &Limits::default());
    }

    #[test]
    fn yamlish_text_never_panics(input in "[-:?\\[\\]{},&*!|>'\"#%@` \\n\\ta-c0-9<]{0,80}") {
        let _ = parse(&input, &Limits::default());
    }
}

// ---------------------------------------------------------------------------
// The fast reader: same trees and errors as saphyr, and which documents it
// leaves to saphyr.

/// `parse` (fast reader first) and the saphyr-only reader agree exactly:
/// tree, positions, `plain` flags, or error message and position.
#[track_caller]
fn check_same_as_saphyr(input: &str) {
    let limits = Limits::default();
    let fast = parse(input, &limits);
    let reference = parse_with_saphyr(input, &limits);
    assert_eq!(fast, reference, "input:\n{input}");
    if let Some(node) = parse_fast_path(input, &limits) {
        assert_eq!(Ok(node), reference, "fast path on input:\n{input}");
    }
}

/// Documents the fast reader must read itself, each checked against saphyr.
#[test]
fn fast_path_reads_compose_subset_like_saphyr() {
    let cases = [
        "a: b",
        "a: 1\nb: 2\n",
        "---\na: 1\n",
        "--- # start\na: 1\n",
        "# head\n\n  # indented comment\na: 1 # trailing\n\n",
        "a:\n  b:\n    c: d\n  e: f\ng: h",
        "a:\n    b: 1\n    c:\n       - x\n       - y",
        "a:\n- x\n- y\nb: 1",
        "a:\n  - x\n  -   y\n",
        "a:\nb:\nc: ~\n",
        "a:    # empty\nb: 2",
        "- a\n- b: 1\n  c: 2\n- d",
        "-   a: 1\n    b:\n    - x\n",
        "a:\n  -\n    b: 1\n  - # note\n    c: 2\n",
        "a: \"x: y # z\"\nb: 'it''s'\nc: \"q\\\"\\\\\"",
        "a: \"\\t\\n\\x41\\u00e9\\U0001F600\\0\\ \\_\\N\\L\\P\\e\\a\\b\\v\\f\\r\"",
        "\"quoted key\": 1\n'single key' : 2\n",
        "a: b#c\nd: e #f\ng: h:i\nj: ${X:-y}\nk: http://h/p?q=1&r",
        "a: -1\nb: --port\nc: a b  c   \nd: <<\n",
        "é: ü\nclé: \"ça\" # ok\n",
        "a: [1, \"2\", '3', x y]\nb: {c: d, \"e\": 'f', g: 1}\nc: []\nd: {}",
        "a: [ ]\nb: {  }\nc: [a,b]",
        "numa_domains: [[0, 1, 2, 3], [4, 5, 6, 7]]\nb: [[], [ ], [[x]], [a, [b, \"c\"]]]",
        "a: &x 1\nb: *x\nc: [*x, *x]\nd: {k: *x}",
        "a: &m\n  x: 1\n  y: 2\nb:\n  <<: *m\n  y: 3",
        "a: &m {x: 1}\nb: &n {y: 2}\nc:\n  <<: [*m, *n]\n  z: 3\nd: {<<: *m, w: 0}",
        "a: &s\n  - 1\n  - 2\nb: *s\n",
        "a: &s\n- 1\nb: *s\n",
        "a: &x !t\n  b: 1\nc: !t &y\n  - 2\n",
        "a: !!str 3\nb: !!int 4\nc: !reset null\nd: !override [1]\ne: !custom 'q'",
        "- &a x\n- *a\n- &b [1]\n- *b\n- &c\n  k: v\n- *c",
        "a: &x !t 1\nb: !t &y [2]\nc: [*x, *y]",
        "a: &x 1\nb: &x 2\nc: *x",
        "x-common: &common\n  restart: always\nservices:\n  web:\n    <<: *common\n    image: nginx\n  db:\n    <<: *common\n",
    ];
    let limits = Limits::default();
    for input in cases {
        assert!(
            parse_fast_path(input, &limits).is_some(),
            "the fast reader should read {input:?}"
        );
        check_same_as_saphyr(input);
    }
}

/// Documents the fast reader leaves to saphyr (and that still parse or fail
/// exactly as saphyr says).
#[test]
fn fast_path_leaves_the_rest_to_saphyr() {
    let cases = [
        // Empty documents and non-mapping roots.
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("---\n", "empty"),
        ("plain", "scalar root"),
        ("[a, b]", "flow root"),
        ("  a: 1", "indented root"),
        // Markers and directives.
        ("a: 1\n...\n", "document end"),
        ("a: 1\n---\nb: 2", "second document"),
        ("%YAML 1.2\n---\na: 1", "directive"),
        ("--- a: 1", "content after ---"),
        // Characters.
        ("a:\tb", "tab"),
        ("a: b\r\nc: d", "carriage return"),
        ("\u{feff}a: 1", "byte order mark"),
        // Scalars we do not read.
        ("a: |\n  x\n", "literal block scalar"),
        ("a: >-\n  x\n", "folded block scalar"),
        ("a: multi\n  line", "multi-line plain"),
        ("a: b # c\n  d", "plain continued after comment"),
        ("a: \"multi\n  line\"", "multi-line double-quoted"),
        ("a: 'multi\n  line'", "multi-line single-quoted"),
        ("a: \"\\q\"", "unknown escape"),
        ("a: \"\\uD800\"", "surrogate escape"),
        ("a: \"x\\\n  y\"", "escaped line break"),
        ("a: @x", "reserved indicator"),
        ("a: `x`", "reserved indicator"),
        // Keys.
        ("? a\n: b", "complex key"),
        ("[a, b]: c", "flow key"),
        ("&k key: *k", "anchored key"),
        ("*x : 1", "alias key"),
        ("a:b: 1\nc: d:", "value with trailing colon"),
        // Flow collections beyond one line of scalars.
        ("a: [1, {b: 2}]", "mapping in a flow sequence"),
        ("a: [1,\n  2]", "multi-line flow"),
        ("a: [1, 2,]", "trailing comma"),
        ("a: [a: 1]", "pair in flow sequence"),
        ("a: {b}", "flow key without value"),
        ("a: {\"b\":1}", "adjacent json value"),
        ("a: [&x 1]", "anchor in flow"),
        ("a: {b: [y]}", "sequence in a flow mapping"),
        ("a: [[1, 2,], [3]]", "trailing comma in a nested sequence"),
        ("a: [80 -, x]", "dash before a flow indicator"),
        // Sequences and entries.
        ("- - a", "compact nested sequence"),
        ("a:\n  -\n  - b", "empty entry"),
        ("a: &x\nb: 1", "anchored empty value"),
        // Errors of all kinds: saphyr words them.
        ("a: b\n  c: d", "bad indentation"),
        ("key: value: other", "value in value"),
        ("a:\n  b: 1\n c: 2", "dedent to no level"),
        ("a: *nope", "unknown alias"),
        ("a: &x [1, *x]", "recursive alias"),
        ("d: {<<: 3}", "merge of a scalar"),
        ("a: \"open", "unterminated quote"),
        ("a: 1\n- b", "entry after mapping"),
        ("a:\n  - b\n  c: 1", "key after sequence"),
    ];
    let long = "k".repeat(1100);
    let long_keys = [
        format!("{long}: 1"),
        format!("\"{long}\": 1"),
        format!("a: {{{long}: 1}}"),
    ];
    let limits = Limits::default();
    for input in &long_keys {
        assert!(
            parse_fast_path(input, &limits).is_none(),
            "keys past saphyr's 1024-character simple-key window are left to it"
        );
        check_same_as_saphyr(input);
    }
    for (input, why) in cases {
        assert!(
            parse_fast_path(input, &limits).is_none(),
            "the fast reader should leave {input:?} ({why}) to saphyr"
        );
        check_same_as_saphyr(input);
    }
    // Limits are the builder's, and their errors come from saphyr's run.
    let few = Limits {
        max_nodes: 3,
        ..Limits::default()
    };
    assert!(parse_fast_path("a: [1, 2]", &few).is_none());
    assert_eq!(
        parse("a: [1, 2]", &few),
        parse_with_saphyr("a: [1, 2]", &few)
    );
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let deep = "a:\n  b:\n    c: 1";
    assert!(parse_fast_path(deep, &shallow).is_none());
    assert_eq!(parse(deep, &shallow), parse_with_saphyr(deep, &shallow));
}

/// A compose-like document drawn from a choice sequence: each choice picks
/// among options with the simplest first, so shrinking the sequence
/// simplifies the document.
struct DocGen<'a> {
    choices: &'a [u8],
    next: usize,
    out: String,
    /// Anchors defined so far, with whether each holds a mapping.
    anchors: Vec<(String, bool)>,
    /// Add constructs the fast reader leaves to saphyr (and invalid YAML).
    wild: bool,
}

const PLAIN_VALUES: &[&str] = &[
    "nginx",
    "8080",
    "80:80",
    "true",
    "~",
    "null",
    "-1",
    "--port",
    "1.5",
    "a#b",
    "x'y",
    "x\"y",
    "a\\b",
    "http://host:80/p?q=1&r=2",
    "${VAR:-default}",
    "a b  c",
    "é ü",
    "<<",
    "x[not] {flow},",
];
const FLOW_PLAINS: &[&str] = &["a", "80", "x y", "-v", "é", "a.b/c", "~"];
const PLAIN_KEYS: &[&str] = &[
    "image",
    "x-common",
    "com.example.team",
    "8080",
    "a b",
    "é",
    "key-with_under",
    "-flag",
];
const QUOTED_CHARS: &[&str] = &[
    "a", " ", ":", "#", "'", "\"", "\\", "é", ": ", " #", "x", "{", "]", ",", "*", "&", "!",
];
const WILD: &[&str] = &[
    "|\n  block\n",
    ">-\n  folded\n",
    "multi\n  line",
    "\"open",
    "[1, [2]]",
    "[1,\n 2]",
    "{a}",
    "a: b",
    "*undefined",
    "\t tab",
    "x\r",
    "@at",
    "? q",
    "[a,]",
    "'multi\n line'",
    "\"esc \\q\"",
    "-",
    "[not] plain",
];

impl DocGen<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let choice = self.choices.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        usize::from(choice) % n.max(1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.pick(100) >= 100 - percent
    }

    fn one_of(&mut self, options: &[&'static str]) -> &'static str {
        options[self.pick(options.len())]
    }

    fn push_one_of(&mut self, options: &[&'static str]) {
        let text = self.one_of(options);
        self.out.push_str(text);
    }

    fn document(mut self) -> String {
        if self.chance(20) {
            self.out.push_str("# compose file: 'x' \"y\"\n\n");
        }
        if self.chance(20) {
            self.push_one_of(&["---\n", "--- # go\n"]);
        }
        let entries = 1 + self.pick(4);
        self.block_map(0, entries, 0);
        if self.wild && self.chance(10) {
            self.push_one_of(&["...\n", "---\nb: 1\n", "a"]);
        }
        self.out
    }

    fn indent(&mut self, width: usize) {
        self.out.extend(std::iter::repeat_n(' ', width));
    }

    fn step(&mut self) -> usize {
        1 + self.pick(4)
    }

    fn comment_or_end(&mut self) {
        match self.pick(8) {
            1 => self.out.push_str(" # note: 'x' \"y\""),
            2 => self.out.push_str("   "),
            _ => {}
        }
        self.out.push('\n');
        match self.pick(10) {
            1 => self.out.push('\n'),
            2 => {
                let width = self.pick(6);
                self.indent(width);
                self.out.push_str("# between\n");
            }
            _ => {}
        }
    }

    fn key(&mut self) {
        match self.pick(6) {
            4 => {
                let text = self.quoted_text();
                self.double_quoted(&text);
            }
            5 => {
                let text = self.quoted_text();
                self.single_quoted(&text);
            }
            _ => {
                let key = self.one_of(PLAIN_KEYS);
                self.out.push_str(key);
            }
        }
        if self.chance(5) {
            self.out.push(' ');
        }
        self.out.push(':');
    }

    fn quoted_text(&mut self) -> String {
        let len = self.pick(6);
        (0..len).map(|_| self.one_of(QUOTED_CHARS)).collect()
    }

    fn double_quoted(&mut self, text: &str) {
        self.out.push('"');
        for c in text.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                'é' if self.chance(50) => self.out.push_str("\\u00e9"),
                'a' if self.chance(30) => self.out.push_str("\\x61"),
                ' ' if self.chance(20) => self.out.push_str("\\t"),
                _ => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn single_quoted(&mut self, text: &str) {
        self.out.push('\'');
        self.out.push_str(&text.replace('\'', "''"));
        self.out.push('\'');
    }

    /// A scalar, alias or flow collection on the rest of the line.
    fn inline_value(&mut self) {
        if self.wild && self.chance(3) {
            let wild = self.one_of(WILD);
            self.out.push_str(wild);
            return;
        }
        match self.pick(12) {
            0..=3 => {
                let plain = self.one_of(PLAIN_VALUES);
                self.out.push_str(plain);
            }
            4 => {
                let text = self.quoted_text();
                self.double_quoted(&text);
            }
            5 => {
                let text = self.quoted_text();
                self.single_quoted(&text);
            }
            6 | 7 => self.flow_seq(),
            8 => self.flow_map(),
            9 if !self.anchors.is_empty() => self.alias(false),
            10 => {
                let tag = self.one_of(&["!!str ", "!reset ", "!!int ", "!custom "]);
                self.out.push_str(tag);
                let plain = self.one_of(FLOW_PLAINS);
                self.out.push_str(plain);
            }
            11 => {
                let name = self.new_anchor();
                self.out.push_str(&format!("&{name} "));
                let plain = self.one_of(FLOW_PLAINS);
                self.out.push_str(plain);
                self.defined(Some(name), false);
            }
            _ => self.out.push_str("value"),
        }
    }

    /// A name for a new anchor (redefinitions happen too: aliases see the
    /// latest). It is usable once its node is complete (`defined`); until
    /// then an alias to the name would be recursive.
    fn new_anchor(&mut self) -> String {
        let name = format!("a{}", self.pick(6));
        self.anchors.retain(|(n, _)| *n != name);
        name
    }

    fn defined(&mut self, anchor: Option<String>, is_map: bool) {
        // A redefinition inside the node came later, so it stays the latest.
        if let Some(name) = anchor
            && !self.anchors.iter().any(|(n, _)| *n == name)
        {
            self.anchors.push((name, is_map));
        }
    }

    fn alias(&mut self, map_only: bool) {
        let candidates: Vec<String> = self
            .anchors
            .iter()
            .filter(|(_, is_map)| *is_map || !map_only)
            .map(|(name, _)| name.clone())
            .collect();
        if candidates.is_empty() {
            self.out.push_str("{}");
            return;
        }
        let name = candidates[self.pick(candidates.len())].clone();
        self.out.push('*');
        self.out.push_str(&name);
    }

    fn flow_scalar(&mut self, allow_alias: bool) {
        match self.pick(5) {
            1 => {
                let text = self.quoted_text();
                self.double_quoted(&text);
            }
            2 => {
                let text = self.quoted_text();
                self.single_quoted(&text);
            }
            3 if allow_alias && !self.anchors.is_empty() => self.alias(false),
            _ => {
                let plain = self.one_of(FLOW_PLAINS);
                self.out.push_str(plain);
            }
        }
    }

    fn flow_seq(&mut self) {
        self.flow_seq_within(2);
    }

    /// A flow sequence, its items sequences too down to `depth` more levels
    /// (inventories write NUMA domains as `[[0, 1], [2, 3]]`).
    fn flow_seq_within(&mut self, depth: usize) {
        let items = self.pick(4);
        self.out.push('[');
        for i in 0..items {
            if i > 0 {
                self.push_one_of(&[", ", ",", " , "]);
            }
            if depth > 0 && self.chance(25) {
                self.flow_seq_within(depth - 1);
            } else {
                self.flow_scalar(true);
            }
        }
        self.out.push(']');
    }

    fn flow_map(&mut self) {
        let entries = self.pick(3);
        self.out.push('{');
        for i in 0..entries {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.flow_scalar(false);
            self.out.push_str(": ");
            self.flow_scalar(true);
        }
        self.out.push('}');
    }

    /// Entries of a block mapping whose keys stand at `indent`; the first
    /// key's indentation is already written when `first_written`.
    fn block_map(&mut self, indent: usize, entries: usize, depth: usize) {
        self.block_map_from(indent, entries, depth, false);
    }

    fn block_map_from(&mut self, indent: usize, entries: usize, depth: usize, first_written: bool) {
        for i in 0..entries {
            if i > 0 || !first_written {
                self.indent(indent);
            }
            if self.anchors.iter().any(|(_, is_map)| *is_map) && self.chance(8) {
                self.out.push_str("<<: ");
                if self.chance(30) {
                    self.out.push('[');
                    self.alias(true);
                    self.out.push_str(", ");
                    self.alias(true);
                    self.out.push(']');
                } else {
                    self.alias(true);
                }
                self.comment_or_end();
                continue;
            }
            self.key();
            self.map_value(indent, depth);
        }
    }

    /// After `key:`.
    fn map_value(&mut self, indent: usize, depth: usize) {
        let nested = depth < 4;
        match self.pick(10) {
            0..=3 => {
                self.out.push(' ');
                self.inline_value();
                self.comment_or_end();
            }
            4 if nested => {
                // Nested mapping, maybe anchored or tagged.
                let anchor = self.block_properties();
                self.comment_or_end();
                let entries = 1 + self.pick(3);
                let step = self.step();
                self.block_map(indent + step, entries, depth + 1);
                self.defined(anchor, true);
            }
            5 if nested => {
                let anchor = self.block_properties();
                self.comment_or_end();
                // Indented or indentless sequence.
                let step = if self.chance(30) { 0 } else { self.step() };
                self.block_seq(indent + step, depth + 1);
                self.defined(anchor, false);
            }
            6 => {
                // Empty value.
                self.comment_or_end();
            }
            _ => {
                self.out.push(' ');
                self.inline_value();
                self.comment_or_end();
            }
        }
    }

    /// Properties of a block collection; returns the anchor it defines.
    fn block_properties(&mut self) -> Option<String> {
        match self.pick(6) {
            1 => {
                let name = self.new_anchor();
                self.out.push_str(&format!(" &{name}"));
                Some(name)
            }
            2 => {
                self.out.push_str(" !override");
                None
            }
            3 => {
                let name = self.new_anchor();
                self.out.push_str(&format!(" !reset &{name}"));
                Some(name)
            }
            _ => None,
        }
    }

    fn block_seq(&mut self, indent: usize, depth: usize) {
        let items = 1 + self.pick(3);
        for _ in 0..items {
            self.indent(indent);
            self.out.push('-');
            match self.pick(8) {
                0..=3 => {
                    self.out.push(' ');
                    self.inline_value();
                    self.comment_or_end();
                }
                4 | 5 if depth < 4 => {
                    // `- key: value` with the rest of the keys below.
                    let gap = 1 + self.pick(2);
                    self.indent(gap);
                    let entries = 1 + self.pick(3);
                    self.block_map_from(indent + 1 + gap, entries, depth + 1, true);
                }
                6 if depth < 4 => {
                    // The entry's collection starts on the next line.
                    let anchor = self.block_properties();
                    self.comment_or_end();
                    let step = 1 + self.step();
                    let entries = 1 + self.pick(2);
                    self.block_map(indent + step, entries, depth + 1);
                    self.defined(anchor, true);
                }
                _ => {
                    self.out.push(' ');
                    let plain = self.one_of(PLAIN_VALUES);
                    self.out.push_str(plain);
                    self.comment_or_end();
                }
            }
        }
    }
}

/// What edits insert: indicators, blanks, breaks, quotes, escapes.
const EDIT_CHARS: &[char] = &[
    ' ', ' ', '\n', '\n', ':', '-', '#', '"', '\'', '\\', '[', ']', '{', '}', ',', '&', '*', '!',
    '|', '>', '?', '%', '@', '\t', '\r', 'a', '.', '<',
];

fn compose_like(choices: &[u8], wild: bool) -> String {
    DocGen {
        choices,
        next: 0,
        out: String::new(),
        anchors: Vec::new(),
        wild,
    }
    .document()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Whatever the document, `parse` gives exactly what saphyr gives.
    #[test]
    fn fast_path_agrees_with_saphyr(
        choices in proptest::collection::vec(any::<u8>(), 0..400),
        wild in proptest::bool::weighted(0.3),
    ) {
        let input = compose_like(&choices, wild);
        let limits = Limits::default();
        let reference = parse_with_saphyr(&input, &limits);
        prop_assert_eq!(parse(&input, &limits), reference.clone(), "input:\n{}", input);
        if let Some(node) = parse_fast_path(&input, &limits) {
            prop_assert_eq!(Ok(node), reference, "fast path on input:\n{}", input);
        }
    }

    /// Small edits of a compose-like document (a character inserted,
    /// removed or replaced, YAML's indicators most often) make the near
    /// misses a fast reader could get wrong; `parse` must still agree.
    #[test]
    fn fast_path_agrees_with_saphyr_on_edited_documents(
        choices in proptest::collection::vec(any::<u8>(), 0..300),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(EDIT_CHARS)), 1..8),
    ) {
        let mut input: Vec<char> = compose_like(&choices, false).chars().collect();
        for (at, op, c) in edits {
            let at = at.index(input.len() + 1);
            match op {
                0 => input.insert(at, c),
                1 if at < input.len() => { input.remove(at); }
                _ if at < input.len() => input[at] = c,
                _ => input.push(c),
            }
        }
        let input: String = input.into_iter().collect();
        let limits = Limits::default();
        prop_assert_eq!(parse(&input, &limits), parse_with_saphyr(&input, &limits), "input:\n{}", input);
    }

    /// Documents without wild parts are valid, and the fast reader reads
    /// them itself (so the property above does test it).
    #[test]
    fn fast_path_reads_tame_compose_like_documents(
        choices in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let input = compose_like(&choices, false);
        let limits = Limits::default();
        // The generator may write a key twice, which is an error.
        let read = parse_with_saphyr(&input, &limits);
        prop_assume!(!read.as_ref().is_err_and(|e| e.message.contains("already defined")));
        prop_assert!(read.is_ok(), "invalid:\n{}", input);
        prop_assert!(parse_fast_path(&input, &limits).is_some(), "left to saphyr:\n{}", input);
    }
}
