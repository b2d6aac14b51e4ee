//! A real `redis-server` on a unix socket in its own directory (no TCP port: nothing to race
//! for), owned by one test. Where no `redis-server` is
//! installed the Redis leg is skipped with a printed reason, except under CI (`CI=true`),
//! where it fails.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    socket: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    /// Starts a server, or returns `None` (skip) when redis-server is missing outside CI.
    pub fn start() -> Option<RedisServer> {
        if !installed() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is not installed; CI must run the Redis leg");
            }
            eprintln!(
                "SKIPPED: redis-server is not installed, the Redis leg of this test did not run"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut server = RedisServer {
            socket: dir.path().join("redis.sock"),
            dir,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("unix://{}?db=0", self.socket.display())
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--unixsocketperm", "700"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut buf).is_ok()
            && &buf == b"+PONG\r\n"
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same socket (empty: it keeps nothing on disk).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
