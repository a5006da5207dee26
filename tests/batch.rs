//! `brief batch` and the reader pages with tiny models: five seed briefs and an index, a second run served from
//! the cache, 40 evaldata articles with a broken file among them, and the reader showing what batch stored.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use brief::batch::{self, BatchOptions, Status};
use brief::cli::{cached_model, WorkerArgs};
use brief::engine::{BatchLimits, EngineConfig};
use brief::generate::Overrides;
use brief::metrics::Metrics;
use brief::models::ModelSource;
use brief::service::{BriefOptions, Service, SummaryOptions};
use common::server::{base_args, Server};

fn service(cache_dir: &Path) -> Service {
    let store = Arc::new(brief::store::Store::Sqlite(
        brief::store::SqliteStore::open(&cache_dir.join(brief::store::FILE_NAME), 1 << 30, brief::store::Verify::Quick)
            .unwrap(),
    ));
    let metrics = Arc::new(Metrics::new());
    let config = |dir: std::path::PathBuf, task: Option<&str>| EngineConfig {
        source: ModelSource::Local(dir),
        device: candle_core::Device::Cpu,
        dtype: brief::models::ComputeType::F32,
        batch: BatchLimits::default(),
        progress: false,
        task: task.map(str::to_string),
        prefix: None,
    };
    let workers = WorkerArgs::default();
    let translator = cached_model(
        &config(common::fixtures().join("marian").join("tiny"), None),
        &workers,
        "translate",
        Some(store.clone()),
        metrics.clone(),
    )
    .unwrap();
    let summarizer = cached_model(
        &config(common::fixtures().join("t5").join("t5-v1_1"), Some("summarization")),
        &workers,
        "summarize",
        Some(store.clone()),
        metrics,
    )
    .unwrap();
    Service {
        translator: Arc::new(translator),
        summarizer: Some(Arc::new(summarizer)),
        store: Some(store),
        store_error: None,
    }
}

fn options(input: &Path, out: &Path) -> BatchOptions {
    BatchOptions {
        input: input.to_path_buf(),
        out: out.to_path_buf(),
        group: 3,
        brief: BriefOptions {
            translate: Overrides { num_beams: Some(2), max_new_tokens: Some(8), ..Default::default() },
            summary: SummaryOptions {
                overrides: Overrides {
                    num_beams: Some(2),
                    max_new_tokens: Some(10),
                    min_new_tokens: Some(2),
                    ..Default::default()
                },
                chunk_tokens: 512,
            },
            keep_boilerplate: false,
        },
    }
}

#[test]
fn the_seed_folder_gives_five_briefs_and_an_index_and_a_second_run_computes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let svc = service(&tmp.path().join("cache"));
    let seeds = common::shared().join("seeds");
    let mut progress = Vec::new();
    let first_started = std::time::Instant::now();
    let reports =
        batch::run(&svc, &options(&seeds, &out), |r, done, total| progress.push((r.file.clone(), done, total)))
            .unwrap();
    let first = first_started.elapsed();
    assert_eq!(reports.len(), 5);
    assert!(reports.iter().all(|r| r.status == Status::Ok), "{reports:?}");
    assert_eq!(progress.iter().map(|p| p.1).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert!(progress.iter().all(|p| p.2 == 5));
    for r in &reports {
        let stem = r.file.trim_end_matches(".txt");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap()).unwrap();
        common::assert_valid_brief_json(&json);
        assert_eq!(json["source"]["name"], r.file.as_str());
        assert!(std::fs::read_to_string(out.join(format!("{stem}.md"))).unwrap().contains("## Summary"));
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["articles"].as_array().unwrap().len(), 5);
    let index_md = std::fs::read_to_string(out.join("index.md")).unwrap();
    assert_eq!(index_md.matches("| ok |").count(), 5);
    // The store holds them for the reader.
    assert_eq!(svc.briefs().unwrap().len(), 5);

    // Again: everything from the cache, nothing generated.
    let before = (svc.translator.codec().stats(), svc.summarizer().unwrap().codec().stats());
    let second_started = std::time::Instant::now();
    let again = batch::run(&svc, &options(&seeds, &out), |_, _, _| {}).unwrap();
    let second = second_started.elapsed();
    let after = (svc.translator.codec().stats(), svc.summarizer().unwrap().codec().stats());
    assert!(again.iter().all(|r| r.status == Status::Ok));
    assert_eq!(before, after, "the second run generated nothing");
    eprintln!("seed batch: first run {first:?}, second run {second:?}");
}

#[test]
fn forty_articles_with_a_broken_and_an_empty_file_report_those_and_finish_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("articles");
    std::fs::create_dir_all(&input).unwrap();
    for entry in std::fs::read_dir(common::shared().join("evaldata").join("articles")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), input.join(entry.file_name())).unwrap();
    }
    std::fs::write(input.join("detik_9999_broken.txt"), b"Judul \xff\xfe rusak\n\nIsi berita.\n").unwrap();
    std::fs::write(input.join("detik_9998_empty.txt"), b"  \n").unwrap();
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let fixtures = common::fixtures();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_brief"))
            .args([
                "batch",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
            ])
            .args(["--model", fixtures.join("marian").join("tiny").to_str().unwrap()])
            .args(["--summary-model", fixtures.join("t5").join("t5-v1_1").to_str().unwrap()])
            .args(["--beams", "2", "--max-new-tokens", "8", "--summary-max-new-tokens", "10"])
            .output()
            .unwrap()
    };
    let output = run();
    assert_eq!(output.status.code(), Some(1), "a failed article makes the exit code non-zero");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stdout.starts_with("ARTICLE"), "{stdout}");
    assert!(stdout.contains("42 articles: 40 ok, 2 failed, 1 skipped"), "{stdout}");
    assert!(
        stdout.contains("not UTF-8 text (invalid byte at offset 6)") && stdout.contains("the article is empty"),
        "{stdout}"
    );
    assert!(stdout.contains("MANIFEST.jsonl") && stdout.contains("skipped"));
    assert!(stderr.contains("[42/42]") && stderr.contains("error: 2 of 42 articles failed"), "{stderr}");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    let articles = index["articles"].as_array().unwrap();
    assert_eq!(articles.iter().filter(|a| a["status"] == "ok").count(), 40);
    assert_eq!(
        std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
            .count(),
        41
    );
    eprintln!("{stdout}");
}

#[test]
fn the_reader_shows_briefs_made_by_batch_and_escapes_article_text() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let svc = service(&cache);
    batch::run(&svc, &options(&common::shared().join("seeds"), &tmp.path().join("out")), |_, _, _| {}).unwrap();
    drop(svc);
    let server = Server::start(&base_args(&cache), &cache);
    let (status, html) = server.get("/");
    assert_eq!(status, 200);
    assert_eq!(html.matches("class=\"brief-card\"").count(), 5);
    assert!(html.contains("000_b37d670be988eed1.txt") && !html.contains("http://") && !html.contains("https://"));

    // An article with markup in it shows the markup as text.
    let hostile = "<script>alert('x')</script> Judul berita\nHarga \"beras\" & <b>gula</b> naik.\n";
    let (status, brief) =
        server.post_json("/v1/briefs", &serde_json::json!({"text": hostile, "name": "<img src=x>.txt"}));
    assert_eq!(status, 201, "{brief}");
    let id = brief["id"].as_str().unwrap();
    let (status, page) = server.get(&format!("/briefs/{id}"));
    assert_eq!(status, 200);
    assert!(!page.contains("<script>alert") && !page.contains("<img src=x>") && !page.contains("<b>gula"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(")
            && page.contains("&lt;b&gt;gula&lt;")
            && page.contains("&lt;img src=x&gt;.txt"),
        "{page}"
    );
    assert_eq!(page.matches("class=\"pair\"").count(), brief["paragraphs"].as_array().unwrap().len());
    let (status, index) = server.get("/");
    assert_eq!(status, 200);
    assert_eq!(index.matches("class=\"brief-card\"").count(), 6);
    let (status, missing) = server.get("/briefs/ffffffffffffffff");
    assert_eq!(status, 404);
    assert!(missing.contains("There is no brief with id ffffffffffffffff"));
}

#[test]
fn front_matter_and_sidecars_give_article_metadata_to_briefs_and_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let body = "Harga beras naik lagi\n\nPedagang di pasar mengeluh.\n";
    std::fs::write(
        input.join("a.md"),
        format!("---\noutlet: Kompas\nurl: \"https://www.kompas.com/read/a\"\npublished_at: 2024-05-01\ntags: x\n---\n{body}"),
    )
    .unwrap();
    std::fs::write(input.join("b.txt"), body.replace("beras", "cabai")).unwrap();
    std::fs::write(input.join("b.json"), r#"{"outlet": "Tempo", "published_at": "2024-05-02T08:30:00+07:00"}"#)
        .unwrap();
    std::fs::write(input.join("c.txt"), body.replace("beras", "gula")).unwrap();
    std::fs::write(input.join("c.json"), r#"{"url": "ftp://x.id/c"}"#).unwrap();
    let svc = service(&tmp.path().join("cache"));
    let reports = batch::run(&svc, &options(&input, &out), |_, _, _| {}).unwrap();
    let summary: Vec<(&str, Status)> = reports.iter().map(|r| (r.file.as_str(), r.status)).collect();
    // The sidecars are neither articles nor skipped entries.
    assert_eq!(summary, [("a.md", Status::Ok), ("b.txt", Status::Ok), ("c.txt", Status::Failed)]);
    assert_eq!(reports[2].error.as_deref(), Some("url: \"ftp://x.id/c\" is not an http or https address"));

    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("a.json")).unwrap()).unwrap();
    common::assert_valid_brief_json(&a);
    assert_eq!(a["source"]["outlet"], "Kompas");
    assert_eq!(a["source"]["url"], "https://www.kompas.com/read/a");
    assert_eq!(a["source"]["published_at"], "2024-05-01T00:00:00Z");
    // The front matter is not part of the article: the id is that of the text after it, and so is the headline.
    assert_eq!(a["id"], brief::service::brief::brief_id(body));
    assert_eq!(a["headline"]["source"], "Harga beras naik lagi");
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("b.json")).unwrap()).unwrap();
    assert_eq!((b["source"]["outlet"].as_str(), b["source"].get("url")), (Some("Tempo"), None));

    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    let first = &index["articles"][0];
    assert_eq!(
        (&first["outlet"], &first["url"], &first["published_at"]),
        (&"Kompas".into(), &"https://www.kompas.com/read/a".into(), &"2024-05-01T00:00:00Z".into())
    );
    assert_eq!(index["articles"][1]["published_at"], "2024-05-02T08:30:00+07:00");
    assert_eq!(index["articles"].as_array().unwrap().len(), 3);
}
