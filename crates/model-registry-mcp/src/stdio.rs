//! Newline-delimited JSON-RPC over stdin/stdout, answering every malformed line.
//!
//! rmcp's own stdio transport drops lines that are not JSON without a word. A client (or a person
//! typing) then waits forever, so this transport answers: `-32700` for text that is not JSON,
//! `-32600` for JSON that is not a JSON-RPC message or a line that is too long, `-32602` for a known
//! method with unusable parameters. Notifications (no `id`) are never answered, as JSON-RPC says.
//! Reading and writing run in their own tasks, so `receive` is cancellation-safe.

use std::io;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Longest line accepted (a JSON-RPC message is one line).
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

pub struct LineTransport {
    incoming: mpsc::Receiver<RxJsonRpcMessage<RoleServer>>,
    outgoing: Option<mpsc::UnboundedSender<String>>,
    reader: JoinHandle<()>,
}

/// Resolves when everything sent has been written (await it before the process exits).
pub struct WriterDone(JoinHandle<()>);

impl WriterDone {
    pub async fn wait(self) {
        let _ = self.0.await;
    }
}

impl LineTransport {
    pub fn new<R, W>(read: R, write: W, max_line_bytes: usize) -> (LineTransport, WriterDone)
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (out_tx, out_rx) = mpsc::unbounded_channel::<String>();
        let (in_tx, in_rx) = mpsc::channel(64);
        let writer = tokio::spawn(write_lines(write, out_rx));
        let reader = tokio::spawn(read_lines(
            BufReader::new(read),
            in_tx,
            out_tx.clone(),
            max_line_bytes,
        ));
        (
            LineTransport {
                incoming: in_rx,
                outgoing: Some(out_tx),
                reader,
            },
            WriterDone(writer),
        )
    }
}

impl Transport<RoleServer> for LineTransport {
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let result = match (&self.outgoing, serde_json::to_string(&item)) {
            (Some(out), Ok(line)) => out
                .send(line)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stdout is closed")),
            (None, _) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "transport is closed",
            )),
            (_, Err(error)) => Err(io::Error::new(io::ErrorKind::InvalidData, error)),
        };
        std::future::ready(result)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        self.outgoing = None;
        Ok(())
    }
}

impl Drop for LineTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(write: W, mut lines: mpsc::UnboundedReceiver<String>) {
    let mut write = tokio::io::BufWriter::new(write);
    while let Some(line) = lines.recv().await {
        let mut batch = Some(line);
        // Write what is queued, then flush once.
        while let Some(line) = batch.take().or_else(|| lines.try_recv().ok()) {
            if write.write_all(line.as_bytes()).await.is_err()
                || write.write_all(b"\n").await.is_err()
            {
                return;
            }
        }
        if write.flush().await.is_err() {
            return;
        }
    }
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without growing past `max`); a longer line is consumed and dropped.
async fn read_line<R: AsyncBufRead + Unpin>(
    read: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    let mut too_long = false;
    loop {
        let available = read.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let take = newline.map_or(available.len(), |i| i + 1);
        if !too_long {
            if buf.len() + take > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(available.get(..take).unwrap_or_default());
            }
        }
        read.consume(take);
        if newline.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

async fn read_lines<R: AsyncBufRead + Unpin>(
    mut read: R,
    messages: mpsc::Sender<RxJsonRpcMessage<RoleServer>>,
    replies: mpsc::UnboundedSender<String>,
    max: usize,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line(&mut read, &mut buf, max).await {
            Ok(Line::Eof) => return,
            Err(error) => {
                tracing::error!(%error, "reading stdin failed");
                return;
            }
            Ok(Line::TooLong) => {
                tracing::warn!(max, "dropped a line longer than the limit");
                let _ = replies.send(error_line(
                    &Value::Null,
                    -32600,
                    &format!("Invalid Request: message longer than {max} bytes"),
                ));
            }
            Ok(Line::Complete) => {
                let line = trim_line(&buf);
                if line.is_empty() {
                    continue;
                }
                match decode(line) {
                    Decoded::Message(message) => {
                        if messages.send(*message).await.is_err() {
                            return;
                        }
                    }
                    Decoded::Reply(reply) => {
                        let _ = replies.send(reply);
                    }
                    Decoded::Ignore => {}
                }
            }
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(line)
}

enum Decoded {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    /// An error response to write back.
    Reply(String),
    Ignore,
}

fn decode(line: &[u8]) -> Decoded {
    let error = match serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(line) {
        Ok(message) => return Decoded::Message(Box::new(message)),
        Err(error) => error,
    };
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(syntax) => {
            return Decoded::Reply(error_line(
                &Value::Null,
                -32700,
                &format!("Parse error: {syntax}"),
            ));
        }
    };
    let id = value
        .get("id")
        .filter(|id| id.is_string() || id.is_number());
    let method = value.get("method").and_then(Value::as_str);
    match (id, method) {
        // A notification (no id) is never answered, even when malformed.
        (None, Some(_)) => {
            tracing::debug!(%error, "ignored a malformed notification");
            Decoded::Ignore
        }
        (Some(id), Some(method)) if value.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {
            let method: String = method.chars().take(64).collect();
            Decoded::Reply(error_line(
                id,
                -32602,
                &format!("Invalid params for {method}: {error}"),
            ))
        }
        (id, _) => Decoded::Reply(error_line(
            id.unwrap_or(&Value::Null),
            -32600,
            &format!("Invalid Request: not a JSON-RPC 2.0 message ({error})"),
        )),
    }
}

fn error_line(id: &Value, code: i32, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(line: &str) -> Option<Value> {
        match decode(line.as_bytes()) {
            Decoded::Reply(text) => serde_json::from_str(&text).ok(),
            _ => None,
        }
    }

    #[test]
    fn malformed_lines_get_specific_errors() {
        let cases: &[(&str, Option<(Value, i64)>)] = &[
            ("{not json", Some((Value::Null, -32700))),
            ("[1,2", Some((Value::Null, -32700))),
            ("42", Some((Value::Null, -32600))),
            (r#"{"jsonrpc":"2.0","id":7}"#, Some((json!(7), -32600))),
            (
                r#"{"jsonrpc":"1.0","id":"a","method":"tools/list"}"#,
                Some((json!("a"), -32600)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"nope"}"#,
                Some((json!(3), -32602)),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":5}"#,
                None,
            ),
        ];
        for (line, expected) in cases {
            let got =
                reply(line).map(|v| (v["id"].clone(), v["error"]["code"].as_i64().unwrap_or(0)));
            assert_eq!(&got, expected, "{line}");
        }
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Decoded::Message(_)
        ));
    }

    #[tokio::test]
    async fn long_lines_are_dropped_and_reading_goes_on() {
        let input = format!("{}\nsecond\n", "x".repeat(100));
        let mut read = BufReader::with_capacity(16, input.as_bytes());
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut read, &mut buf, 50).await,
            Ok(Line::TooLong)
        ));
        buf.clear();
        assert!(matches!(
            read_line(&mut read, &mut buf, 50).await,
            Ok(Line::Complete)
        ));
        assert_eq!(trim_line(&buf), b"second");
        buf.clear();
        assert!(matches!(
            read_line(&mut read, &mut buf, 50).await,
            Ok(Line::Eof)
        ));
    }
}
