//! Review fixes: bounded bodies and request log, auth before lookups, huge paging values,
//! storage confinement against encoded and NUL forms, and no keys in the emulator's output.

use std::time::Duration;

use registry_emulator::{FaultSpec, MAX_BODY_BYTES, RecordedRequest, RequestLog, Role};
use registry_emulator::{MAX_LOG_ENTRIES, MAX_RECORDED_BODY};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::{Emu, must, pairs, validation_errors};

#[tokio::test]
async fn oversized_bodies_answer_413_without_being_buffered() {
    let emu = Emu::start().await;
    let huge = json!({ "name": "x", "storage_path": "x", "server_type": "vllm",
        "description": "d".repeat(MAX_BODY_BYTES) });
    for role in [Some(Role::Operator), None] {
        let (status, body) = emu
            .call("POST", "/v1/models", role, Some(huge.clone()))
            .await;
        assert_eq!(status, 413, "{role:?}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("Request body too large")),
            "{body}"
        );
    }

    // A chunked body (no Content-Length) is cut at the limit while it streams in.
    let mut stream = must(
        tokio::net::TcpStream::connect(emu.emu.addr()).await,
        "connect",
    );
    let key = emu.key(Role::Operator);
    let head = format!(
        "POST /api/v1/models HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    must(stream.write_all(head.as_bytes()).await, "head");
    let chunk = vec![b' '; 1 << 20];
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk,
        b"\r\n".to_vec(),
    ]
    .concat();
    for _ in 0..(MAX_BODY_BYTES / (1 << 20) + 2) {
        // The server may answer and stop reading before all of it is sent.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn the_request_log_is_bounded() {
    let emu = Emu::start().await;
    let big = json!({ "model_name": "bge-m3", "version": "x".repeat(MAX_RECORDED_BODY) });
    let (status, _) = emu.post("/v1/versions", big).await;
    assert_eq!(status, 201);
    let recorded = emu.emu.requests().snapshot();
    let body = recorded.last().and_then(|r| r.body.clone());
    assert!(
        matches!(&body, Some(Value::String(s)) if s.ends_with("bytes, not recorded>")),
        "{body:?}"
    );

    let log = RequestLog::default();
    for i in 0..MAX_LOG_ENTRIES + 5 {
        log.push(RecordedRequest {
            method: "GET".into(),
            path: format!("/{i}"),
            query: None,
            body: None,
            api_key_present: false,
            api_key_name: None,
        });
    }
    let entries = log.snapshot();
    assert_eq!(entries.len(), MAX_LOG_ENTRIES);
    assert_eq!(
        entries.first().map(|r| r.path.as_str()),
        Some("/5"),
        "oldest dropped first"
    );
}

/// (role, method, path, body, expected status)
type AuthCase = (Option<Role>, &'static str, String, Option<Value>, u16);

#[tokio::test]
async fn authentication_then_role_then_lookup() {
    let emu = Emu::start().await;
    let ghost = "00000000-0000-0000-0000-000000000000";
    let update = Some(json!({ "description": "x" }));
    let cases: [AuthCase; 8] = [
        (None, "GET", format!("/v1/models/{ghost}"), None, 401),
        (
            None,
            "PATCH",
            format!("/v1/models/{ghost}"),
            Some(json!([])),
            401,
        ),
        (
            Some(Role::Viewer),
            "PATCH",
            format!("/v1/models/{ghost}"),
            update.clone(),
            403,
        ),
        (
            Some(Role::Viewer),
            "POST",
            format!("/v1/deployments/{ghost}/stop"),
            None,
            403,
        ),
        (
            Some(Role::Operator),
            "DELETE",
            format!("/v1/models/{ghost}"),
            None,
            403,
        ),
        (
            Some(Role::Admin),
            "DELETE",
            format!("/v1/models/{ghost}"),
            None,
            404,
        ),
        (
            Some(Role::Operator),
            "PATCH",
            format!("/v1/models/{ghost}"),
            update,
            404,
        ),
        (
            Some(Role::Viewer),
            "GET",
            format!("/v1/deployments/{ghost}/health"),
            None,
            404,
        ),
    ];
    for (role, method, path, body, expected) in cases {
        let (status, answer) = emu.call(method, &path, role, body).await;
        assert_eq!(status, expected, "{role:?} {method} {path}: {answer}");
        assert!(answer["detail"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn huge_paging_values_never_overflow() {
    let emu = Emu::start().await;
    let huge = "123456789012345678901234567890";
    for offset in [huge, "9223372036854775807", "18446744073709551615"] {
        let page = emu.get(&format!("/v1/models?offset={offset}")).await;
        assert_eq!(page, json!({ "items": [], "total": 5 }), "offset {offset}");
    }
    let (status, body) = emu
        .call(
            "GET",
            &format!("/v1/versions?limit={huge}"),
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(
        (status, validation_errors(&body)),
        (422, pairs(&[("query.limit", "less_than_equal")]))
    );
    let (status, body) = emu
        .call(
            "GET",
            &format!("/v1/deployments/x/logs?lines={huge}"),
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(
        (status, validation_errors(&body)),
        (422, pairs(&[("query.lines", "less_than_equal")]))
    );
}

#[tokio::test]
async fn browse_refuses_encoded_escapes_and_normalises_inner_dots() {
    let emu = Emu::start().await;
    // Inner `..` that stays inside the root is fine, as after os.path.normpath.
    let listing = emu
        .get("/v1/system/storage/browse?path=models/../models/./")
        .await;
    assert_eq!(listing["path"], "models");
    assert!(listing["entries"].as_array().is_some_and(|e| !e.is_empty()));

    let long = "a".repeat(300);
    // (raw query value, status, detail fragment)
    let cases = [
        ("%2e%2e", 400, "escapes the storage root"),
        ("%2E%2E%2F%2E%2E%2Fetc", 400, "escapes the storage root"),
        (
            "models%2F%2e%2e%2F%2e%2e%2Foutside",
            400,
            "escapes the storage root",
        ),
        ("models/..%2F..", 400, "escapes the storage root"),
        ("%2Fetc%2Fpasswd", 400, "must be relative"),
        ("//etc", 400, "must be relative"),
        ("%00", 400, "NUL"),
        ("models%00/..", 400, "NUL"),
        (long.as_str(), 400, "not a valid path"),
        ("README.md/inner", 404, "not found"),
        // Double encoding is a literal name once decoded: not an escape, just absent.
        ("%252e%252e", 404, "not found"),
    ];
    for (raw, expected, fragment) in cases {
        let (status, body) = emu
            .call(
                "GET",
                &format!("/v1/system/storage/browse?path={raw}"),
                Some(Role::Viewer),
                None,
            )
            .await;
        assert_eq!(status, expected, "{raw}: {body}");
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains(fragment), "{raw}: {detail}");
        assert!(
            !detail.contains(&*emu.root.path().to_string_lossy()),
            "no host paths in {detail}"
        );
    }
}

#[tokio::test]
async fn a_fault_for_the_next_zero_requests_does_nothing() {
    let emu = Emu::start().await;
    emu.emu.faults().set(FaultSpec {
        status: Some(500),
        for_next_n: Some(0),
        ..FaultSpec::default()
    });
    assert_eq!(emu.emu.faults().current(), None);
    emu.get("/v1/auth/me").await;
}

#[tokio::test]
async fn the_binary_never_prints_api_keys() {
    let root = must(tempfile::tempdir(), "tempdir");
    let mut child = must(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_registry-emulator"))
            .args(["--bind", "127.0.0.1:0", "--storage-root"])
            .arg(root.path().join("storage"))
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn(),
        "spawn the emulator binary",
    );
    let Some(stderr) = child.stderr.take() else {
        panic!("no stderr pipe");
    };
    let mut lines = BufReader::new(stderr).lines();
    let mut banner = Vec::new();
    let read_banner = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.starts_with("controls:");
            banner.push(line);
            if done {
                break;
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(20), read_banner).await;
    let _ = child.kill().await;
    assert!(finished.is_ok(), "banner: {banner:?}");
    let text = banner.join("\n");
    assert!(text.contains("REGISTRY_URL=http://127.0.0.1:"), "{text}");
    assert!(text.contains("demo-operator"), "names are shown: {text}");
    let Ok(seed) = registry_emulator::Seed::demo() else {
        panic!("demo seed");
    };
    for key in &seed.api_keys {
        assert!(
            !text.contains(&key.key),
            "key of {} printed: {text}",
            key.name
        );
    }
}

#[tokio::test]
async fn times_with_offsets_and_fractions_sort_by_instant() {
    let emu = Emu::start().await;
    // Seeded as 09:00+02:00 (07:00Z) and 08:05:00.250+01:00 (07:05:00.25Z): by text the first
    // looks newer, by instant the second is.
    let list = emu.get("/v1/deployments?model_name=bge-m3").await;
    assert_eq!(crate::field_of_items(&list, "version"), ["1.0.0", "1.1.0"]);
    assert_eq!(
        crate::field_of_items(&list, "created_at"),
        ["2024-08-20T08:05:00.25+01:00", "2024-08-20T09:00:00+02:00"],
        "offsets and fractions are served as seeded"
    );
    let version = emu
        .get(&format!(
            "/v1/versions/{}",
            emu.version_id("llama-3-70b-instruct", "1.1.0")
        ))
        .await;
    assert_eq!(version["created_at"], "2024-04-18T08:30:00.123456-04:00");
}
