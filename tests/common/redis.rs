//! A `redis-server` of a test's own on a free loopback port (Debian's package; scripts/services.sh installs it).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of our own, in a temporary directory, persisting nothing; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn redis_binary() -> Option<String> {
    let candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"];
    candidates.iter().find(|p| Path::new(p).is_file()).map(|p| p.to_string()).or_else(|| {
        Command::new("redis-server")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| "redis-server".into())
    })
}

impl RedisServer {
    /// Starts one, or `None` when there is no `redis-server` and `BRIEF_SKIP_REDIS=1` says that is fine.
    pub fn start() -> Option<Self> {
        let Some(binary) = redis_binary() else {
            if std::env::var("BRIEF_SKIP_REDIS").is_ok_and(|v| v == "1") {
                eprintln!("redis-server not found: the Redis half is skipped (BRIEF_SKIP_REDIS=1)");
                return None;
            }
            panic!(
                "redis-server not found (apt-get install redis-server); set BRIEF_SKIP_REDIS=1 to skip the Redis tests"
            );
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = spawn(&binary, port, dir.path());
        let server = Self { child, port, dir };
        server.wait_ready();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = redis::Client::open(self.url()).unwrap().get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer within 10 s", self.port);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new server on the same port (nothing kept: `--save ''`).
    pub fn restart(&mut self) {
        self.kill();
        let binary = redis_binary().unwrap();
        // The port may take a moment to be free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = spawn(&binary, self.port, self.dir.path());
            std::thread::sleep(Duration::from_millis(200));
            if self.child.try_wait().unwrap().is_none() || Instant::now() > deadline {
                break;
            }
        }
        self.wait_ready();
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

fn spawn(binary: &str, port: u16, dir: &Path) -> Child {
    Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
