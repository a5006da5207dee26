//! Loading through the hub client from a stand-in hub on 127.0.0.1 (the real hub is unreachable here), then
//! offline from the cache, and `brief models --download` against the same stand-in. The loading test sets the
//! HF_* environment variables of the process; the download test gives its child process its own.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use brief::engine::{BatchLimits, Engine, EngineConfig};
use brief::generate::Overrides;
use brief::models::ModelSource;
use sha2::{Digest, Sha256};

const REPO: &str = "brief-test/tiny-marian";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Files of each repository the stand-in serves.
type Repos = HashMap<String, HashMap<String, Vec<u8>>>;

/// A minimal hub: the repository listing API and `resolve` downloads with HTTP ranges, as hf-hub uses them.
struct StandIn {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl StandIn {
    fn start(repos: Repos) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &repos, &log);
                }
            }
        });
        Self { url, requests, stop }
    }

    fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn serve(mut stream: TcpStream, repos: &Repos, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap();
            range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().ok()));
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let listed = path.strip_prefix("/api/models/").and_then(|p| p.strip_suffix("/revision/main"));
    let resolved = path.trim_start_matches('/').split_once("/resolve/main/");
    let response = if let Some(files) = listed.and_then(|repo| repos.get(repo)) {
        let siblings: Vec<serde_json::Value> = files.keys().map(|f| serde_json::json!({ "rfilename": f })).collect();
        let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings }).to_string();
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .into_bytes()
    } else if let Some(body) = resolved.and_then(|(repo, name)| repos.get(repo)?.get(name)) {
        let etag = format!("{:x}", Sha256::digest(body));
        let (start, end) = match range {
            Some((a, b)) => (a.min(body.len()), b.map_or(body.len(), |b| (b + 1).min(body.len()))),
            None => (0, body.len()),
        };
        let mut head = format!(
            "HTTP/1.1 206 Partial Content\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            end.saturating_sub(1),
            body.len(),
            end - start
        )
        .into_bytes();
        head.extend_from_slice(&body[start..end]);
        head
    } else {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
    };
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let mut drain = [0u8; 1];
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(10)));
    let _ = stream.read(&mut drain);
}

fn engine(source: ModelSource) -> Result<Engine, brief::engine::EngineError> {
    Engine::load(&EngineConfig {
        source,
        device: candle_core::Device::Cpu,
        dtype: brief::models::ComputeType::F32,
        batch: BatchLimits::default(),
        progress: false,
        task: None,
        prefix: None,
    })
}

/// The tiny Marian model's files, as a hub repository holds them.
fn tiny_marian_files() -> HashMap<String, Vec<u8>> {
    let fixture: PathBuf = common::fixtures().join("marian").join("tiny");
    std::fs::read_dir(&fixture)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !matches!(e.file_name().to_str(), Some("expected.json" | "logits.safetensors")))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// The snapshot directory of `repo` at [`COMMIT`] in the hub cache under `hf_home`.
fn snapshot(hf_home: &Path, repo: &str) -> PathBuf {
    hf_home.join("hub").join(format!("models--{}", repo.replace('/', "--"))).join("snapshots").join(COMMIT)
}

#[test]
fn download_from_a_stand_in_hub_then_load_offline_from_the_cache() {
    let files = tiny_marian_files();
    let hub = StandIn::start(HashMap::from([(REPO.to_string(), files.clone())]));
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_ENDPOINT", &hub.url);
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::remove_var("HF_HUB_CACHE");

    let source = ModelSource::parse(REPO, None).unwrap();
    assert_eq!(source, ModelSource::Hub { id: REPO.into(), revision: "main".into() });
    let online = engine(source.clone()).unwrap();
    assert_eq!(online.info().id, REPO);
    assert_eq!(online.info().revision, COMMIT);
    let requests = hub.requests.lock().unwrap().clone();
    assert!(requests.iter().any(|p| p.ends_with("/pytorch_model.bin")), "{requests:?}");
    assert!(requests.iter().any(|p| p.starts_with("/api/models/")), "{requests:?}");
    // The cache holds the snapshot for the commit, byte for byte.
    let snapshot = snapshot(home.path(), REPO);
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(snapshot.join(name)).unwrap(), bytes, "{name}");
    }
    let overrides = Overrides { num_beams: Some(2), max_new_tokens: Some(8), ..Default::default() };
    let text = vec!["Harga beras naik lagi.".to_string()];
    let first = online.generate_texts(&text, &overrides).unwrap();

    // The hub goes away: offline mode loads the same model from the cache without a request.
    hub.shut_down();
    let before = hub.requests.lock().unwrap().len();
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let offline = engine(source.clone()).unwrap();
    assert_eq!(offline.info().revision, COMMIT);
    assert_eq!(offline.generate_texts(&text, &overrides).unwrap(), first);
    assert_eq!(hub.requests.lock().unwrap().len(), before, "offline mode made no request");

    // Without the offline flag, an unreachable hub also falls back to the complete cached copy.
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    assert_eq!(engine(source).unwrap().info().revision, COMMIT);

    // A model the cache does not have is a clear error in offline mode.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let missing = engine(ModelSource::parse("brief-test/absent", None).unwrap()).err().unwrap().to_string();
    assert!(missing.contains("HF_HUB_OFFLINE") && missing.contains("brief-test/absent"), "{missing}");
}

/// `brief models --download` with its own hub environment (none inherited from this process).
fn models_download(hf_home: &Path, endpoint: &str, offline: bool, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brief"));
    command.args(["models", "--download"]).args(args).env("HF_HOME", hf_home).env("HF_ENDPOINT", endpoint);
    for name in ["HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "BRIEF_TRANSLATE_MODEL", "BRIEF_SUMMARY_MODEL"] {
        command.env_remove(name);
    }
    if offline {
        command.env("HF_HUB_OFFLINE", "1");
    }
    command.output().unwrap()
}

#[test]
fn models_download_fills_the_hub_cache_once_and_then_downloads_nothing() {
    const SUMMARY: &str = "brief-test/tiny-summary";
    let files = tiny_marian_files();
    let hub = StandIn::start(HashMap::from([(REPO.to_string(), files.clone()), (SUMMARY.to_string(), files.clone())]));
    let home = tempfile::tempdir().unwrap();
    let args = ["--model", REPO, "--summary-model", SUMMARY];

    let first = models_download(home.path(), &hub.url, false, &args);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    // One line per file, and both models land in the cache byte for byte.
    assert!(stderr.contains("  pytorch_model.bin: downloaded ("), "{stderr}");
    for repo in [REPO, SUMMARY] {
        for (name, bytes) in &files {
            assert_eq!(&std::fs::read(snapshot(home.path(), repo).join(name)).unwrap(), bytes, "{repo} {name}");
        }
    }
    let downloads = |requests: &[String]| requests.iter().filter(|p| p.contains("/resolve/")).count();
    let after_first = hub.requests.lock().unwrap().clone();
    // hf-hub asks for each file's metadata, then its bytes.
    assert!(downloads(&after_first) >= 2 * files.len(), "{after_first:?}");

    // A second run finds every file in the cache: it lists the repositories and downloads nothing.
    let second = models_download(home.path(), &hub.url, false, &args);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(!stderr.contains(": downloaded ("), "{stderr}");
    assert!(String::from_utf8_lossy(&second.stdout).contains(&format!(
        "{} downloaded, {} already cached",
        0,
        files.len()
    )));
    assert_eq!(downloads(&hub.requests.lock().unwrap()), downloads(&after_first));

    // Offline with everything cached is success, without a request.
    let before = hub.requests.lock().unwrap().len();
    let offline = models_download(home.path(), &hub.url, true, &args);
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    assert_eq!(hub.requests.lock().unwrap().len(), before);
    hub.shut_down();

    // An unreachable hub and an empty cache: status 1 and an error naming the model and the way out.
    let empty = tempfile::tempdir().unwrap();
    let unreachable = models_download(empty.path(), "http://127.0.0.1:9", false, &args);
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot download {REPO} @ main from http://127.0.0.1:9")), "{stderr}");
    assert!(stderr.contains("copy that cache"), "{stderr}");
}
