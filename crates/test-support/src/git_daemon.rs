//! `git daemon` on 127.0.0.1 as a real network remote (the `git://` smart
//! protocol, served by Git's own `receive-pack` and `upload-pack`), so tests
//! see what a hosted remote does: the server, not the client, decides whether
//! a ref update applies.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `git daemon` serving one directory's repositories, read and
/// write; stopped when dropped.
pub struct GitDaemon {
    child: Child,
    addr: SocketAddr,
}

impl GitDaemon {
    /// Serves every repository under `base` (as `git://127.0.0.1:PORT/<name>`),
    /// pushes allowed, with no system or user Git configuration.
    pub fn serve(base: &Path) -> Result<GitDaemon, String> {
        // A free port: bound, then released for the daemon.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start `git daemon` (is git installed?): {e}"))?;
        let mut daemon = GitDaemon { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(format!("`git daemon` exited at start: {status}"));
            }
            if Instant::now() > deadline {
                let _ = daemon.child.kill();
                return Err(format!("`git daemon` did not listen on {addr} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// The URL of repository `name` (a directory under the served base).
    pub fn url(&self, name: &str) -> String {
        format!("git://{}/{name}", self.addr)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
