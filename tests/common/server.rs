//! A `brief serve` process on a free loopback port, with tiny fixture models and its own cache directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub url: String,
    pub cache_dir: PathBuf,
    /// Everything the server has written to stderr so far.
    pub log: Arc<Mutex<String>>,
}

/// The arguments that make a server on the tiny models, quick searches, the given cache directory.
pub fn base_args(cache_dir: &Path) -> Vec<String> {
    let fixtures = super::fixtures();
    [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        fixtures.join("marian").join("tiny").to_str().unwrap(),
        "--summary-model",
        fixtures.join("t5").join("t5-v1_1").to_str().unwrap(),
        "--beams",
        "2",
        "--max-new-tokens",
        "8",
        "--summary-max-new-tokens",
        "10",
        "--summary-min-new-tokens",
        "2",
        "--cache-dir",
        cache_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Server {
    /// Starts `brief` with `args` and waits until `/health` says ready.
    pub fn start(args: &[String], cache_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_brief"))
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("BRIEF_API_KEY")
            .env_remove("BRIEF_API_KEYS_FILE")
            .env_remove("BRIEF_PROTECT_METRICS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        // Lines logged before the listening line (the cache is opened on another thread) belong to the log too.
        let mut early = String::new();
        let url = loop {
            let line = lines.next().expect("brief serve exited before listening").unwrap();
            if let Some(addr) = line.strip_prefix("brief listening on ") {
                break addr.trim().to_string();
            }
            early.push_str(&line);
            early.push('\n');
        };
        // Keep draining stderr so the server never blocks on a full pipe, and keep it for the tests.
        let log = Arc::new(Mutex::new(early));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let server = Server { child, url, cache_dir: cache_dir.to_path_buf(), log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = ureq::get(&format!("{}/health", server.url)).call() {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Whether the server's log shows `text` within 10 s (the log is read from its stderr by another thread, so
    /// a line can arrive after the answer that followed it).
    pub fn logged(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log.lock().unwrap().contains(text) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// POSTs JSON; returns (status, body) for any status.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        response(ureq::post(&self.url(path)).send_json(body.clone()))
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// The value of a metric line (`name{labels} value`), 0 when absent.
    pub fn metric(&self, line_prefix: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// (status, JSON body) of a ureq result, for success and error statuses alike.
pub fn response(result: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap_or(serde_json::Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(serde_json::Value::Null)),
        Err(e) => panic!("request failed: {e}"),
    }
}
