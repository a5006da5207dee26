//! The reader's timing with 10 and with 10,000 stored briefs (ignored by default; docs/BENCHMARKS.md, "The
//! reader", has the figures): a SQLite store filled with briefs of 20 paragraphs, then `GET /`, searches of a
//! common and a rare word, a search with an outlet, and the last page, through a real `brief serve` and as the
//! same queries at the store, the median of 50 each.
//!
//! `cargo test --test reader_bench -- --ignored --nocapture`

mod common;

use std::time::{Duration, Instant};

use brief::store::{BriefQuery, Store, StoreConfig, StoreUrl, StoredBrief, Verify, FILE_NAME};
use common::server::{base_args, Server};

/// Paragraphs per brief, and the reader's page size.
const PARAGRAPHS: usize = 20;
const PAGE_SIZE: u64 = 20;
const RUNS: usize = 50;

const WORDS: &[&str] = &[
    "the",
    "government",
    "said",
    "prices",
    "market",
    "president",
    "minister",
    "farmers",
    "rice",
    "jakarta",
    "province",
    "budget",
    "police",
    "election",
    "village",
    "school",
    "flood",
    "road",
    "company",
    "export",
    "regional",
    "people",
    "week",
    "bank",
    "fuel",
    "health",
    "hospital",
    "port",
    "island",
    "trade",
];
const KATA: &[&str] =
    &["pemerintah", "harga", "pasar", "presiden", "menteri", "petani", "beras", "provinsi", "anggaran", "desa"];

/// A deterministic sentence generator (a linear congruential generator, so every run stores the same briefs).
struct Text(u64);

impl Text {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }

    fn sentence(&mut self, words: &[&str], len: usize) -> String {
        let mut s: Vec<&str> = (0..len).map(|_| words[self.next(words.len())]).collect();
        s[0] = if s[0] == "the" { "The" } else { s[0] };
        format!("{}.", s.join(" "))
    }
}

fn brief_of(i: usize, text: &mut Text) -> StoredBrief {
    let outlets = ["Kompas", "Tempo", "Antara", "Detik"];
    let paragraphs: Vec<serde_json::Value> = (0..PARAGRAPHS)
        .map(|_| serde_json::json!({"source": text.sentence(KATA, 40), "english": text.sentence(WORDS, 45)}))
        .collect();
    let headline = text.sentence(WORDS, 10);
    let mut summary = text.sentence(WORDS, 60);
    if i == 3 {
        // One brief has a word no other has: the search of a rare word.
        summary.push_str(" A dam opened in Subang.");
    }
    let published = format!("2024-{:02}-{:02}T{:02}:{:02}:00+07:00", i % 12 + 1, i % 28 + 1, i % 24, i % 60);
    let created = format!("2026-01-01T00:00:{:02}Z", i % 60);
    let id = format!("{i:016x}");
    let json = serde_json::json!({
        "schema": "brief/1", "id": id,
        "source": {"name": format!("{i}.txt"), "sha256": "0".repeat(64), "bytes": 9000, "words": 1700,
            "paragraphs": PARAGRAPHS + 1, "outlet": outlets[i % 4], "published_at": published},
        "headline": {"source": text.sentence(KATA, 10), "english": headline},
        "summary": summary, "paragraphs": paragraphs,
        "models": {"translate": {"id": "m", "revision": "r", "model_type": "marian"},
            "summarize": {"id": "s", "revision": "r", "model_type": "t5"}},
        "summary_method": {"chunks_per_round": [2, 1]},
        "timings": {"translate_ms": 1, "summarize_ms": 1, "total_ms": 2},
        "created_at": created, "dropped": [],
    });
    let brief: brief::service::Brief = serde_json::from_value(json).unwrap();
    brief::service::stored(&brief)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn time_runs(mut f: impl FnMut()) -> Duration {
    for _ in 0..5 {
        f();
    }
    median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed()
            })
            .collect(),
    )
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn reader_timing_with_10_and_10000_briefs() {
    println!("| briefs | request | through `brief serve` (median of {RUNS}) | store query (median of {RUNS}) |");
    println!("|---:|---|---:|---:|");
    for n in [10usize, 10_000] {
        let cache = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            url: StoreUrl::Sqlite(cache.path().join(FILE_NAME)),
            max_bytes: 1 << 34,
            verify: Verify::None,
            prefix: String::new(),
            text_ttl: Duration::from_secs(60),
        };
        let store = Store::open(&config).unwrap();
        let mut text = Text(42);
        let filled = Instant::now();
        for i in 0..n {
            store.put_brief(&brief_of(i, &mut text)).unwrap();
        }
        let bytes = std::fs::metadata(cache.path().join(FILE_NAME)).map(|m| m.len()).unwrap_or(0);
        eprintln!("{n} briefs stored in {:?} ({} MB with the WAL not yet folded in)", filled.elapsed(), bytes >> 20);
        let last = (n as u64).div_ceil(PAGE_SIZE);
        let mut args = base_args(cache.path());
        args.extend(["--reader-page-size".to_string(), PAGE_SIZE.to_string()]);
        let server = Server::start(&args, cache.path());
        let cases = [
            ("`GET /`", "/".to_string(), BriefQuery::page(0, PAGE_SIZE)),
            (
                "`GET /?q=rice` (nearly every brief)",
                "/?q=rice".to_string(),
                BriefQuery { text: Some("rice".into()), limit: PAGE_SIZE, ..Default::default() },
            ),
            (
                "`GET /?q=subang` (1 match)",
                "/?q=subang".to_string(),
                BriefQuery { text: Some("subang".into()), limit: PAGE_SIZE, ..Default::default() },
            ),
            (
                "`GET /?q=rice+farmers&outlet=Tempo`",
                "/?q=rice+farmers&outlet=Tempo".to_string(),
                BriefQuery {
                    text: Some("rice farmers".into()),
                    outlet: Some("Tempo".into()),
                    limit: PAGE_SIZE,
                    ..Default::default()
                },
            ),
            ("last page", format!("/?page={last}"), BriefQuery::page((last - 1) * PAGE_SIZE, PAGE_SIZE)),
        ];
        for (name, path, query) in cases {
            let (status, body) = server.get(&path);
            assert_eq!(status, 200, "{path}: {body}");
            let http = time_runs(|| {
                let response = ureq::get(&server.url(&path)).call().unwrap();
                assert_eq!(response.status(), 200);
                response.into_string().unwrap();
            });
            let at_store = time_runs(|| {
                let page = store.find(&query).unwrap();
                assert!(!page.briefs.is_empty());
            });
            let label = if name == "last page" { format!("`GET /?page={last}` (last page)") } else { name.into() };
            println!("| {n} | {label} | {} | {} |", ms(http), ms(at_store));
        }
    }
}
