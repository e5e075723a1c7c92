//! A real `redis-server` for the shared-limit tests, on a unix socket in a temporary directory:
//! race-free (no TCP port to pick and lose to another process, Redis cannot bind port 0) and
//! restartable on the same address. `--port 0` turns TCP off; no persistence (`--save ""
//! --appendonly no`), so a restarted server starts empty. Killed on drop.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::{tool, Edge, PATIENCE};

/// A running (or stopped, between [`RedisServer::stop`] and [`RedisServer::restart`]) Redis.
pub struct RedisServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`; `None` when redis-server is not installed
    /// (outside CI; under `CI=true` that fails the test).
    pub fn start() -> Option<RedisServer> {
        let binary = tool("redis-server")?;
        let mut server = RedisServer {
            binary,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// The socket's path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The URL for `MM_EDGE_RATE_LIMIT_REDIS`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Kills the server (SIGKILL: as abrupt as a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Sends `sig` to the server (`STOP`: it keeps its connections but answers nothing; `CONT`).
    pub fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("redis-server running");
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig}");
    }

    /// Starts the server again on the same socket (stopping it first if it runs).
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis log");
        let child = Command::new(&self.binary)
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let start = Instant::now();
        while !self.answers_ping() {
            assert!(
                start.elapsed() < PATIENCE,
                "redis-server did not answer within {PATIENCE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(self.socket()) else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// What the server logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("CONT");
        }
        self.stop();
    }
}

/// Blocks until the edge's log holds `needle` at least `n` times ([`PATIENCE`] bounds a
/// failure; the log is read every 10 ms).
pub fn wait_for_log_count(edge: &Edge, needle: &str, n: usize) {
    let start = Instant::now();
    loop {
        let log = edge.log();
        if log.matches(needle).count() >= n {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "log never showed {needle:?} {n} times:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
