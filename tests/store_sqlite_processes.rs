//! One SQLite store, several processes: `brief serve` under concurrent `/v1/translate` load while `brief batch`
//! makes 40 briefs on the same cache directory. No write may fail (busy) and `/health` never says degraded.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{base_args, Server};
use serde_json::json;

#[test]
fn serve_under_load_and_batch_share_one_sqlite_store_without_failed_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let input = tmp.path().join("articles");
    std::fs::create_dir_all(&input).unwrap();
    for entry in std::fs::read_dir(common::shared().join("evaldata").join("articles")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), input.join(entry.file_name())).unwrap();
    }
    let server = Arc::new(Server::start(&base_args(&cache), &cache));
    let fixtures = common::fixtures();
    let out = tmp.path().join("out");
    let batch = {
        let (input, out, cache) = (input.clone(), out.clone(), cache.clone());
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_brief"))
                .args(["batch", input.to_str().unwrap(), "--out", out.to_str().unwrap()])
                .args(["--cache-dir", cache.to_str().unwrap()])
                .args(["--model", fixtures.join("marian").join("tiny").to_str().unwrap()])
                .args(["--summary-model", fixtures.join("t5").join("t5-v1_1").to_str().unwrap()])
                .args(["--beams", "2", "--max-new-tokens", "8", "--summary-max-new-tokens", "10"])
                .env("HF_HUB_OFFLINE", "1")
                .output()
                .unwrap()
        })
    };
    let done = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (server, done, requests) = (server.clone(), done.clone(), requests.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    // New texts (writes) and repeated ones (hits, whose last-used time is a write too).
                    let texts = [format!("Harga beras naik {c} {i}."), "Ya.".to_string()];
                    let (status, body) = server.post_json("/v1/translate", &json!({ "texts": texts }));
                    if status != 200 {
                        failures.push(format!("{status} {body}"));
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                failures
            })
        })
        .collect();
    let sampler = {
        let (server, done) = (server.clone(), done.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let (_, body) = server.get("/health");
                let health: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                samples.push((health["status"].as_str().unwrap_or("?").to_string(), health["checks"]["cache"].clone()));
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    let started = Instant::now();
    let output = batch.join().unwrap();
    let batch_secs = started.elapsed().as_secs_f64();
    // A little more load after the batch ends, so that both sides of its last writes are seen.
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    let failures: Vec<String> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let samples = sampler.join().unwrap();

    let batch_log = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let serve_log = server.log.lock().unwrap().clone();
    eprintln!(
        "batch: {batch_secs:.1} s; serve: {} translate requests, {} health samples",
        requests.load(Ordering::Relaxed),
        samples.len()
    );
    assert!(output.status.success(), "batch failed:\n{stdout}\n{batch_log}");
    assert!(stdout.contains("40 ok"), "{stdout}");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    for (name, log) in [("batch", &batch_log), ("serve", &serve_log)] {
        for line in ["cache writes fail", "cache reads fail", "database is locked"] {
            assert_eq!(log.matches(line).count(), 0, "{name} logged {line:?}:\n{log}");
        }
    }
    let degraded: Vec<_> = samples.iter().filter(|(status, _)| status != "ready").collect();
    assert!(degraded.is_empty(), "health samples not ready: {degraded:?}");
    assert!(requests.load(Ordering::Relaxed) > 20 && samples.len() > 3, "the load overlapped the batch");
    assert_eq!(samples[0].1["backend"], "sqlite");
    // The server lists what the batch stored.
    let (status, body) = server.get("/v1/briefs?limit=5");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, list["total"].as_u64(), list["briefs"].as_array().map(Vec::len)), (200, Some(40), Some(5)));
}
