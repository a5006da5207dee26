//! `brief batch --server`: the files a local batch writes, made by a `brief serve` on the tiny models; retries
//! after 503 and 429 against a fake server, a 422 failing only its article, reruns sending only what is not done,
//! and an unreachable server failing after the retries.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brief::service::brief::brief_id;
use brief::service::Brief;
use common::server::{base_args, Server};

/// `brief batch` with `args`, without the API key of the environment.
fn batch<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brief"))
        .arg("batch")
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("BRIEF_API_KEY")
        .env_remove("BRIEF_SERVER")
        .env_remove("BRIEF_KEEP_BOILERPLATE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The seed articles, an empty one and a file that is not an article.
fn seed_folder(dir: &Path) -> PathBuf {
    let input = dir.join("articles");
    std::fs::create_dir_all(&input).unwrap();
    for entry in std::fs::read_dir(common::shared().join("seeds")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), input.join(entry.file_name())).unwrap();
    }
    std::fs::write(input.join("empty.txt"), "  \n").unwrap();
    std::fs::write(input.join("notes.csv"), "a,b\n").unwrap();
    // Metadata in a sidecar: sent to the server as the API's fields, and the same in both outputs.
    let meta = r#"{"outlet": "Antara", "url": "https://www.antaranews.com/berita/0", "published_at": "2024-05-01"}"#;
    std::fs::write(input.join("000_b37d670be988eed1.json"), meta).unwrap();
    input
}

/// The files of `dir` by name, with the times and the making date (which differ between any two runs) blanked.
fn outputs(dir: &Path) -> Vec<(String, String)> {
    let times =
        regex::Regex::new(r#"("(translate_ms|summarize_ms|total_ms|ms)": )\d+|("created_at": )"[^"]*"|Timings: .*"#)
            .unwrap();
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let contents = std::fs::read_to_string(&p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                times.replace_all(&contents, "${1}${3}_").into_owned(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_batch_through_the_server_writes_what_a_local_batch_writes_and_a_rerun_sends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = seed_folder(tmp.path());
    let input = input.to_str().unwrap();
    let server_cache = tmp.path().join("server-cache");
    let server = Server::start(&base_args(&server_cache), &server_cache);
    // Search settings of the command line go with each request, over the server's (2 beams, 10 summary tokens).
    let settings = ["--beams", "1", "--summary-max-new-tokens", "6"];
    let remote_out = tmp.path().join("remote");
    let remote = batch(
        &[input, "--out", remote_out.to_str().unwrap(), "--server", &server.url, "--concurrency", "3"]
            .iter()
            .chain(&settings)
            .copied()
            .collect::<Vec<_>>(),
    );
    let fixtures = common::fixtures();
    let local_out = tmp.path().join("local");
    let path = |p: PathBuf| p.to_str().unwrap().to_string();
    let mut local_args: Vec<String> = vec![input.into(), "--out".into(), path(local_out.clone())];
    local_args.extend(["--cache-dir".into(), path(tmp.path().join("local-cache"))]);
    local_args.extend(["--model".into(), path(fixtures.join("marian").join("tiny"))]);
    local_args.extend(["--summary-model".into(), path(fixtures.join("t5").join("t5-v1_1"))]);
    local_args.extend(["--max-new-tokens", "8", "--summary-min-new-tokens", "2"].map(String::from));
    local_args.extend(settings.map(String::from));
    let local = batch(&local_args);
    for output in [&remote, &local] {
        assert_eq!(output.status.code(), Some(1), "the empty article fails: {}", text(&output.stderr));
        assert!(text(&output.stdout).contains("6 articles: 5 ok, 1 failed, 1 skipped"), "{}", text(&output.stdout));
    }
    let (remote_files, local_files) = (outputs(&remote_out), outputs(&local_out));
    assert_eq!(remote_files.len(), 12, "5 briefs (.md, .json) and the index (.md, .json)");
    // File by file first, for a readable failure.
    for (r, l) in remote_files.iter().zip(&local_files) {
        assert_eq!(r, l);
    }
    assert_eq!(remote_files, local_files);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(remote_out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["articles"][5]["error"], "empty.txt: the article is empty");
    assert_eq!(index["articles"][0]["outlet"], "Antara");
    assert_eq!(index["articles"][0]["published_at"], "2024-05-01T00:00:00Z");
    assert!(index["articles"][1].get("outlet").is_none());

    let made =
        |status: &str| server.metric(&format!("brief_http_requests_total{{route=\"/v1/briefs\",status=\"{status}\"}}"));
    assert_eq!((made("201"), made("422")), (5.0, 1.0));
    let before: Vec<Vec<u8>> =
        remote_files.iter().map(|(name, _)| std::fs::read(remote_out.join(name)).unwrap()).collect();
    let again = batch(&[input, "--out", remote_out.to_str().unwrap(), "--server", &server.url]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stdout).contains("6 articles: 5 ok, 1 failed, 1 skipped"), "{}", text(&again.stdout));
    assert_eq!((made("201"), made("422")), (5.0, 2.0), "only the failed article is sent again");
    for ((name, _), bytes) in remote_files.iter().zip(&before) {
        if name.starts_with("index") {
            continue;
        }
        assert_eq!(&std::fs::read(remote_out.join(name)).unwrap(), bytes, "{name} is kept as it was");
    }
    assert_eq!(outputs(&remote_out), remote_files, "the index lists the same");
}

/// What the fake server was asked: (name, Authorization header, request body).
type Asked = Arc<Mutex<Vec<(String, Option<String>, serde_json::Value)>>>;

/// A brief server on a free port that answers each request by its article's name: `busy-*` gets 503 with
/// `Retry-After: 1` the first time, `limited-*` 429 without one, `bad-*` always 422, `down-*` always 503 with
/// `Retry-After: 0`, and the others a fixed brief of their text at once.
fn fake_server() -> (String, Asked) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked: Asked = Arc::default();
    let log = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let log = log.clone();
            std::thread::spawn(move || answer(stream.unwrap(), &log));
        }
    });
    (url, asked)
}

fn answer(mut stream: TcpStream, asked: &Asked) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let Some((k, v)) = line.trim_end().split_once(": ") else { break };
        headers.insert(k.to_ascii_lowercase(), v.to_string());
    }
    if request_line.starts_with("GET /health ") {
        return respond(&mut stream, "200 OK", "", r#"{"status":"ready"}"#);
    }
    let mut body = vec![0; headers["content-length"].parse().unwrap()];
    reader.read_exact(&mut body).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let name = body["name"].as_str().unwrap().to_string();
    let times = {
        let mut asked = asked.lock().unwrap();
        asked.push((name.clone(), headers.get("authorization").cloned(), body.clone()));
        asked.iter().filter(|a| a.0 == name).count()
    };
    let error = |message: &str| serde_json::json!({ "error": message, "error_type": "x" }).to_string();
    match name.split('-').next().unwrap() {
        "busy" if times == 1 => respond(&mut stream, "503 Service Unavailable", "Retry-After: 1\r\n", &error("busy")),
        "limited" if times == 1 => respond(&mut stream, "429 Too Many Requests", "", &error("slow down")),
        "bad" => respond(&mut stream, "422 Unprocessable Entity", "", &error("length_penalty must be finite")),
        "down" => respond(&mut stream, "503 Service Unavailable", "Retry-After: 0\r\n", &error("overloaded")),
        _ => respond(&mut stream, "201 Created", "", &fixed_brief(&name, body["text"].as_str().unwrap()).to_string()),
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
}

/// A valid brief (schema brief/1) of `text` named `name`, with fixed contents.
fn fixed_brief(name: &str, text: &str) -> serde_json::Value {
    let model = |id: &str| serde_json::json!({ "id": id, "revision": "r1", "model_type": "marian" });
    serde_json::json!({
        "schema": "brief/1",
        "id": brief_id(text),
        "source": { "name": name, "sha256": "0".repeat(64), "bytes": text.len(), "words": 2, "paragraphs": 2 },
        "headline": { "source": "Judul", "english": "Headline" },
        "summary": "A summary.",
        "paragraphs": [{ "source": "Isi.", "english": "Body." }],
        "models": { "translate": model("tiny-marian"), "summarize": model("tiny-t5") },
        "summary_method": { "chunks_per_round": [1] },
        "timings": { "translate_ms": 1, "summarize_ms": 2, "total_ms": 3 },
        "created_at": "2026-12-01T00:00:00Z"
    })
}

fn report<'a>(index: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    index["articles"].as_array().unwrap().iter().find(|a| a["file"] == file).unwrap()
}

#[test]
fn busy_answers_are_retried_after_their_wait_a_422_fails_its_article_alone_and_a_rerun_sends_only_that() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("articles");
    std::fs::create_dir_all(&input).unwrap();
    for name in ["busy-a", "limited-b", "bad-c", "down-d", "ok-e", "ok-f"] {
        std::fs::write(input.join(format!("{name}.txt")), format!("Judul {name}\nIsi berita {name}.\n")).unwrap();
    }
    let (url, asked) = fake_server();
    let out = tmp.path().join("out");
    let args = [input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--server", &url, "--retries", "2"];
    let started = Instant::now();
    let first = batch(&args.iter().chain(&["--api-key", "k1", "--beams", "3"]).copied().collect::<Vec<_>>());
    let elapsed = started.elapsed();
    let stdout = text(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "{stdout}{}", text(&first.stderr));
    assert!(stdout.contains("6 articles: 4 ok, 2 failed, 0 skipped"), "{stdout}");
    assert!(elapsed >= Duration::from_secs(1), "the Retry-After second was waited: {elapsed:?}");

    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    assert!(report(&index, "busy-a.txt")["ms"].as_u64().unwrap() >= 1000, "{index}");
    assert!(report(&index, "limited-b.txt")["ms"].as_u64().unwrap() >= 500, "backed off 0.5 s: {index}");
    assert_eq!(report(&index, "bad-c.txt")["error"], "length_penalty must be finite");
    assert_eq!(
        report(&index, "down-d.txt")["error"],
        format!("{url}/v1/briefs: 503: overloaded (gave up after 3 attempts)")
    );
    for file in ["busy-a", "limited-b", "ok-e", "ok-f"] {
        let name = format!("{file}.txt");
        assert_eq!(report(&index, &name)["status"], "ok");
        let article = std::fs::read_to_string(input.join(&name)).unwrap();
        let brief: Brief = serde_json::from_value(fixed_brief(&name, &article)).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{file}.json"))).unwrap(),
            format!("{}\n", brief.to_json())
        );
        assert_eq!(std::fs::read_to_string(out.join(format!("{file}.md"))).unwrap(), brief.to_markdown());
    }
    let counts = |asked: &Asked| {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (name, _, _) in asked.lock().unwrap().iter() {
            match counts.iter_mut().find(|c| &c.0 == name) {
                Some(c) => c.1 += 1,
                None => counts.push((name.clone(), 1)),
            }
        }
        counts.sort();
        counts
    };
    let sent = |pairs: &[(&str, usize)]| pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect::<Vec<_>>();
    assert_eq!(
        counts(&asked),
        sent(&[
            ("bad-c.txt", 1),
            ("busy-a.txt", 2),
            ("down-d.txt", 3),
            ("limited-b.txt", 2),
            ("ok-e.txt", 1),
            ("ok-f.txt", 1)
        ])
    );
    for (_, auth, body) in asked.lock().unwrap().iter() {
        assert_eq!(auth.as_deref(), Some("Bearer k1"));
        assert_eq!(body["translate"], serde_json::json!({ "num_beams": 3 }));
        assert_eq!(body["summary"], serde_json::json!({}));
    }

    // Again: the done articles are not sent; the failed ones are.
    asked.lock().unwrap().clear();
    let again = batch(&args);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stdout).contains("6 articles: 4 ok, 2 failed, 0 skipped"), "{}", text(&again.stdout));
    assert_eq!(counts(&asked), sent(&[("bad-c.txt", 1), ("down-d.txt", 3)]));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(report(&index, "busy-a.txt")["headline"], "Headline");

    // A brief file of another article (same name, other text) is made again.
    std::fs::write(input.join("ok-e.txt"), "Judul lain\nIsi lain.\n").unwrap();
    asked.lock().unwrap().clear();
    batch(&args);
    assert_eq!(counts(&asked), sent(&[("bad-c.txt", 1), ("down-d.txt", 3), ("ok-e.txt", 1)]));
}

#[test]
fn an_unreachable_server_fails_the_batch_after_the_retries_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = tmp.path().join("out");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = batch(&[
        common::shared().join("seeds").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--server",
        &url,
        "--retries",
        "1",
    ]);
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("error: the server is not ready: {url}/health: Connection Failed"))
            && stderr.trim_end().ends_with("(gave up after 2 attempts)"),
        "{stderr}"
    );
    assert!(elapsed >= Duration::from_millis(500), "one backoff wait, not a busy loop: {elapsed:?}");
    assert!(!out.exists());

    let bad = batch(&["/tmp", "--server", "localhost:8080"]);
    assert_eq!(text(&bad.stderr), "error: --server must be an http:// or https:// URL, not \"localhost:8080\"\n");
}

#[test]
fn the_keep_boilerplate_choice_goes_to_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("articles");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("ok-a.txt"), "Judul\nBaca juga: Harga cabai\nIsi berita.\n").unwrap();
    let (url, asked) = fake_server();
    for (out, flag, keep) in [("out1", None, false), ("out2", Some("--keep-boilerplate"), true)] {
        let out = tmp.path().join(out);
        let mut args = vec![input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--server", &url];
        args.extend(flag);
        let run = batch(&args);
        assert!(run.status.success(), "{}{}", text(&run.stdout), text(&run.stderr));
        let body = asked.lock().unwrap().last().unwrap().2.clone();
        assert_eq!(body["keep_boilerplate"], keep, "{body}");
    }
    assert_eq!(asked.lock().unwrap().len(), 2);
}
