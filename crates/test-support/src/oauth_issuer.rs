//! A small OAuth 2.1 authorization server on 127.0.0.1, as far as a resource server sees one:
//! its metadata (RFC 8414) and its JWKS, with one ES256 key made for the run. Tests mint
//! JWTs with it, signed by `ring` directly (not by the JWT library the server verifies with).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// The key id the issuer publishes its key under.
pub const KEY_ID: &str = "test-key-1";

pub struct Issuer {
    addr: SocketAddr,
    key: EcdsaKeyPair,
    /// Signs tokens the issuer never published a key for.
    stranger: EcdsaKeyPair,
    rng: SystemRandom,
    jwks_requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

fn key_pair(rng: &SystemRandom) -> Result<EcdsaKeyPair, String> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|e| format!("generate a key: {e}"))?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|e| format!("read the key: {e}"))
}

impl Issuer {
    pub fn start() -> Result<Issuer, String> {
        let rng = SystemRandom::new();
        let key = key_pair(&rng)?;
        let stranger = key_pair(&rng)?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let origin = format!("http://{addr}");
        let point = key.public_key().as_ref();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"{KEY_ID}","x":"{}","y":"{}"}}]}}"#,
            base64url(&point[1..33]),
            base64url(&point[33..65])
        );
        let metadata = format!(
            r#"{{"issuer":"{origin}","jwks_uri":"{origin}/jwks.json","authorization_endpoint":"{origin}/authorize","token_endpoint":"{origin}/token","response_types_supported":["code"],"code_challenge_methods_supported":["S256"]}}"#
        );
        let jwks_requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped) = (Arc::clone(&jwks_requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, &metadata, &jwks, &counter);
                }
            }
        });
        Ok(Issuer {
            addr,
            key,
            stranger,
            rng,
            jwks_requests,
            stop,
        })
    }

    /// The issuer identifier (`iss`), `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How often the JWKS was fetched.
    pub fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(Ordering::Relaxed)
    }

    /// A JWT with these claims (a JSON object), signed with the published key.
    pub fn mint(&self, claims: &str) -> Result<String, String> {
        sign(&self.key, &self.rng, KEY_ID, claims)
    }

    /// A JWT naming the published key id but signed with another key.
    pub fn forge(&self, claims: &str) -> Result<String, String> {
        sign(&self.stranger, &self.rng, KEY_ID, claims)
    }

    /// A JWT signed with a key under an id the issuer does not publish.
    pub fn mint_unknown_key(&self, claims: &str) -> Result<String, String> {
        sign(&self.stranger, &self.rng, "not-published", claims)
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn sign(key: &EcdsaKeyPair, rng: &SystemRandom, kid: &str, claims: &str) -> Result<String, String> {
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}"}}"#);
    let input = format!(
        "{}.{}",
        base64url(header.as_bytes()),
        base64url(claims.as_bytes())
    );
    let signature = key
        .sign(rng, input.as_bytes())
        .map_err(|e| format!("sign: {e}"))?;
    Ok(format!("{input}.{}", base64url(signature.as_ref())))
}

fn answer(
    stream: TcpStream,
    metadata: &str,
    jwks: &str,
    jwks_requests: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or_default();
    let (status, body) = match target {
        "/.well-known/oauth-authorization-server" => ("200 OK", metadata),
        "/jwks.json" => {
            jwks_requests.fetch_add(1, Ordering::Relaxed);
            ("200 OK", jwks)
        }
        _ => ("404 Not Found", "{}"),
    };
    let stream = reader.get_mut();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Base64url without padding (JWS).
pub fn base64url(data: &[u8]) -> String {
    crate::base64(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        false,
    )
}
