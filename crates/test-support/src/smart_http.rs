//! Git's smart-HTTP protocol on 127.0.0.1, served by Git's own
//! `git http-backend` (as CGI), over HTTPS with a certificate made for the run
//! or over plain HTTP; it records what every request carried, so tests can
//! assert where credentials went. It can also misbehave the way real remotes
//! do: require Basic credentials, redirect to another origin, or trickle its
//! answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server behaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost`.
    pub tls: bool,
    /// Answer 401 unless the request carries Basic credentials for this
    /// user and password.
    pub credentials: Option<(String, String)>,
    /// Answer every request with a 302 to the same path at this origin
    /// (`https://127.0.0.1:PORT`).
    pub redirect_to: Option<String>,
    /// Write the answers of `POST` requests (the pack) one byte per this
    /// interval.
    pub trickle_pack: Option<Duration>,
    /// Write the answers of `GET` requests (the ref advertisement) one byte
    /// per this interval.
    pub trickle_refs: Option<Duration>,
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
}

/// A running server; stops accepting when dropped.
pub struct SmartHttp {
    addr: SocketAddr,
    tls: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    ca_file: Option<PathBuf>,
}

/// The certificate of every HTTPS server of this process (one per run, so a
/// client trusting it trusts them all).
struct Certificate {
    config: Arc<rustls::ServerConfig>,
    pem: String,
    key_pem: String,
}

/// The run's certificate for `127.0.0.1` and `localhost`, and its private key, as PEM: for a
/// server under test to serve (the same certificate [`SmartHttp`] serves over HTTPS).
pub fn certificate_pem() -> Result<(String, String), String> {
    let cert = certificate()?;
    Ok((cert.pem.clone(), cert.key_pem.clone()))
}

fn certificate() -> Result<&'static Certificate, String> {
    static CERT: std::sync::OnceLock<Result<Certificate, String>> = std::sync::OnceLock::new();
    CERT.get_or_init(|| {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| format!("cannot make a test certificate: {e}"))?;
        let pem = made.cert.pem();
        let key_pem = made.signing_key.serialize_pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .map_err(|e| format!("TLS certificate: {e}"))?;
        Ok(Certificate {
            config: Arc::new(config),
            pem,
            key_pem,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

impl SmartHttp {
    /// Serves every repository under `root` as `<scheme>://127.0.0.1:PORT/<name>`
    /// (pushes allowed), with no system or user Git configuration. With TLS, the
    /// certificate is written to a file in the temp directory for the client to
    /// trust ([`SmartHttp::ca_file`], e.g. as `SSL_CERT_FILE`).
    pub fn serve(root: &Path, behaviour: Behaviour) -> Result<SmartHttp, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?;
        let ca_file = if behaviour.tls {
            let cert = certificate()?;
            let file = std::env::temp_dir().join(format!(
                "smart-http-ca-{}-{}.pem",
                std::process::id(),
                addr.port()
            ));
            std::fs::write(&file, &cert.pem)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Some(file)
        } else {
            None
        };
        let server = SmartHttp {
            addr,
            tls: behaviour.tls,
            seen: Arc::default(),
            stop: Arc::default(),
            ca_file,
        };
        let seen = Arc::clone(&server.seen);
        let stop = Arc::clone(&server.stop);
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (seen, root, behaviour) = (Arc::clone(&seen), root.clone(), behaviour.clone());
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &root, &behaviour, &seen);
                });
            }
        });
        Ok(server)
    }

    /// `scheme://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.origin())
    }

    /// The PEM file of the certificate to trust (HTTPS servers only).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

impl Drop for SmartHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(file) = &self.ca_file {
            let _ = std::fs::remove_file(file);
        }
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// The value of an `Authorization` header with Basic credentials.
pub fn basic_authorization(user: &str, password: &str) -> String {
    let standard = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    format!(
        "Basic {}",
        crate::base64(format!("{user}:{password}").as_bytes(), standard, true)
    )
}

fn serve_connection(
    stream: TcpStream,
    root: &Path,
    behaviour: &Behaviour,
    seen: &Mutex<Vec<Seen>>,
) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    if behaviour.tls {
        let connection = rustls::ServerConnection::new(Arc::clone(&certificate()?.config))
            .map_err(|e| e.to_string())?;
        serve_requests(
            rustls::StreamOwned::new(connection, stream),
            root,
            behaviour,
            seen,
        )
    } else {
        serve_requests(stream, root, behaviour, seen)
    }
}

/// Answers one request (every answer closes the connection).
fn serve_requests<S: Read + Write>(
    stream: S,
    root: &Path,
    behaviour: &Behaviour,
    seen: &Mutex<Vec<Seen>>,
) -> Result<(), String> {
    let mut reader = BufReader::new(stream);
    {
        let mut request_line = String::new();
        if reader
            .read_line(&mut request_line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|e| e.to_string())?;
        }
        let body = read_body(&mut reader, &header)?;
        let authorization = header("authorization");
        if let Ok(mut seen) = seen.lock() {
            seen.push(Seen {
                method: method.clone(),
                target: target.clone(),
                authorization: authorization.clone(),
            });
        }
        let (status, response_headers, response_body) = if let Some(origin) = &behaviour.redirect_to
        {
            (
                "302 Found".to_owned(),
                vec![format!("Location: {origin}{target}")],
                Vec::new(),
            )
        } else if let Some((user, password)) = &behaviour.credentials
            && authorization.as_deref() != Some(basic_authorization(user, password).as_str())
        {
            (
                "401 Unauthorized".to_owned(),
                vec!["WWW-Authenticate: Basic realm=\"git\"".to_owned()],
                Vec::new(),
            )
        } else {
            let user = behaviour
                .credentials
                .as_ref()
                .map(|(user, _)| user.as_str());
            http_backend(root, &method, &target, &header, user, &body)?
        };
        let stream = reader.get_mut();
        let mut head = format!("HTTP/1.1 {status}\r\n");
        for line in &response_headers {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            response_body.len()
        ));
        stream
            .write_all(head.as_bytes())
            .map_err(|e| e.to_string())?;
        let trickle = if method == "POST" {
            behaviour.trickle_pack
        } else {
            behaviour.trickle_refs
        };
        match trickle {
            Some(interval) => {
                for byte in &response_body {
                    stream
                        .write_all(std::slice::from_ref(byte))
                        .and_then(|()| stream.flush())
                        .map_err(|e| e.to_string())?;
                    std::thread::sleep(interval);
                }
            }
            None => stream
                .write_all(&response_body)
                .map_err(|e| e.to_string())?,
        }
        stream.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn read_body<R: BufRead>(
    reader: &mut R,
    header: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader
                .read_line(&mut size_line)
                .map_err(|e| e.to_string())?;
            let size_text = size_line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|e| format!("bad Content-Length {length:?}: {e}"))?;
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(body)
}

/// Runs `git http-backend` for one request; returns status, headers, body.
fn http_backend(
    root: &Path,
    method: &str,
    target: &str,
    header: &dyn Fn(&str) -> Option<String>,
    user: Option<&str>,
    body: &[u8],
) -> Result<(String, Vec<String>, Vec<u8>), String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", root)
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(content_type) = header("content-type") {
        command.env("CONTENT_TYPE", content_type);
    }
    if let Some(protocol) = header("git-protocol") {
        command.env("GIT_PROTOCOL", protocol);
    }
    // Pushes need an authenticated user unless receive-pack is enabled by config.
    command.env("REMOTE_USER", user.unwrap_or("anonymous"));
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start `git http-backend`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(body).map_err(|e| e.to_string())?;
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        })
        .ok_or("`git http-backend` wrote no header")?;
    let head = String::from_utf8_lossy(&output.stdout[..split.0]).into_owned();
    let mut status = "200 OK".to_owned();
    let mut headers = Vec::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_owned();
            }
            Some(_) => headers.push(line.trim().to_owned()),
            None => {}
        }
    }
    Ok((status, headers, output.stdout[split.0 + split.1..].to_vec()))
}
