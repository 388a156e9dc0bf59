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
        // `git daemon` runs `git-daemon` as its child: killing `git` on drop
        // left the server running after every test. The server itself is
        // started, so that the kill reaches it.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .map_err(|e| format!("cannot run git (is it installed?): {e}"))?;
        let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
        let server = Path::new(&exec_path).join("git-daemon");
        let child = Command::new(&server)
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
            .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Dropping the daemon stops the server, not only a wrapper around it:
    /// its port refuses connections afterwards (a leaked server outlived
    /// every test run before).
    #[test]
    fn a_dropped_daemon_stops_listening() {
        let base = tempfile::tempdir().unwrap();
        let daemon = GitDaemon::serve(base.path()).unwrap();
        let addr = daemon.addr;
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
        drop(daemon);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{addr} still answers after the daemon was dropped"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
