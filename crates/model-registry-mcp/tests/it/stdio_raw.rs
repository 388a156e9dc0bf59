//! Raw JSON-RPC lines on stdio: malformed input gets an error, and the server keeps serving.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::command;

#[tokio::test]
async fn malformed_lines_get_errors_and_the_server_keeps_serving() {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = command(&[], &[], cache.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let mut stdout =
        BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let mut exchange = async |line: String| -> Value {
        stdin
            .write_all(line.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        stdin
            .write_all(b"\n")
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        stdin.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
        let reply = stdout
            .next_line()
            .await
            .unwrap_or_else(|e| panic!("read: {e}"))
            .unwrap_or_default();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {reply}"))
    };
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    // The notification goes out first, on the same line buffer, after the initialize line.
    let reply = exchange(format!("{init}\n{initialized}")).await;
    assert_eq!(reply["result"]["serverInfo"]["name"], "model-registry-mcp");

    let cases: Vec<(String, Value, i64)> = vec![
        ("{this is not json".to_owned(), Value::Null, -32700),
        ("[1, 2,".to_owned(), Value::Null, -32700),
        ("\"just a string\"".to_owned(), Value::Null, -32600),
        (r#"{"jsonrpc":"2.0","id":7}"#.to_owned(), json!(7), -32600),
        (r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":"nope"}"#.to_owned(), json!(8), -32602),
        (r#"{"jsonrpc":"2.0","id":9,"method":"no/such/method"}"#.to_owned(), json!(9), -32601),
        (r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"list_models","arguments":[1]}}"#.to_owned(), json!(12), -32602),
        (r#"{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"list_models","arguments":"x"}}"#.to_owned(), json!(13), -32602),
        (r#"{"jsonrpc":"2.0","id":14,"method":"resources/read","params":{"uri":7}}"#.to_owned(), json!(14), -32602),
        (r#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"list_models","arguments":{"limit":0}}}"#.to_owned(), json!(15), -32602),
        (format!(r#"{{"jsonrpc":"2.0","id":10,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(5 * 1024 * 1024)), Value::Null, -32600),
        (
            r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"get_release_config","arguments":{"machine":"../../etc","port":"x"}}}"#.to_owned(),
            json!(11),
            -32602,
        ),
    ];
    for (line, id, code) in cases {
        let reply = exchange(line.clone()).await;
        assert_eq!(reply["id"], id, "{}: {reply}", &line[..line.len().min(80)]);
        assert_eq!(
            reply["error"]["code"].as_i64(),
            Some(code),
            "{}: {reply}",
            &line[..line.len().min(80)]
        );
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let reply =
        exchange(json!({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}).to_string()).await;
    assert_eq!(reply["id"], 99);
    assert!(
        reply["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{reply}"
    );
    drop(stdin);
    let status = child.wait().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.success(),
        "the server exits cleanly when stdin closes: {status}"
    );
}
