//! `GET /feed.atom` on a real server with the tiny models, read back with atom_syndication: the fields of each
//! entry, the empty feed, escaping, the public address (option, `Host`, `X-Forwarded-*`), 304 and 503.

mod common;

use std::time::Duration;

use atom_syndication::{Feed, FixedDateTime, Link};
use brief::store::{Store, StoreConfig, StoreUrl, Verify, FILE_NAME};
use common::server::{base_args, Server};
use serde_json::{json, Value};

const HEADLINE: &str = "Rice <prices> & \"sugar\" fall";

fn start(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut args = base_args(cache.path());
    args.extend(extra.iter().map(|s| s.to_string()));
    (Server::start(&args, cache.path()), cache)
}

/// GET /feed.atom with `headers`: (status, the response, its body).
fn get(server: &Server, headers: &[(&str, &str)]) -> (u16, ureq::Response) {
    let mut request = ureq::get(&server.url("/feed.atom"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    match request.call() {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("GET /feed.atom: {e}"),
    }
}

fn feed(server: &Server, headers: &[(&str, &str)]) -> Feed {
    let (status, response) = get(server, headers);
    assert_eq!(status, 200);
    assert_eq!(response.header("content-type"), Some("application/atom+xml; charset=utf-8"));
    Feed::read_from(std::io::BufReader::new(response.into_reader())).unwrap()
}

fn links(links: &[Link]) -> Vec<(String, String)> {
    links.iter().map(|l| (l.rel.clone(), l.href.clone())).collect()
}

fn time(text: &str) -> FixedDateTime {
    FixedDateTime::parse_from_rfc3339(text).unwrap()
}

fn make_brief(server: &Server, text: &str) -> Value {
    let (status, body) = server.post_json("/v1/briefs", &json!({"text": text, "name": "a.txt"}));
    assert_eq!(status, 201, "{body}");
    body
}

/// Stores `brief` as the server would, with a creation time the test chooses.
fn store(cache: &std::path::Path, brief: &Value) {
    let store = Store::open(&StoreConfig {
        url: StoreUrl::Sqlite(cache.join(FILE_NAME)),
        max_bytes: 1 << 30,
        verify: Verify::Quick,
        prefix: String::new(),
        text_ttl: Duration::from_secs(60),
    })
    .unwrap();
    let brief: brief::service::Brief = serde_json::from_value(brief.clone()).unwrap();
    store.put_brief(&brief::service::stored(&brief)).unwrap();
}

#[test]
fn feed_entries_carry_the_briefs_fields_links_and_dates() {
    let (server, cache) = start(&[]);
    let base = server.url.clone();

    let empty = feed(&server, &[]);
    assert_eq!(empty.title.as_str(), "brief: Indonesian news in English");
    assert_eq!(empty.id, format!("{base}/feed.atom"));
    assert!(empty.entries.is_empty());
    assert_eq!(empty.updated, time("1970-01-01T00:00:00Z"));
    assert_eq!(
        links(&empty.links),
        [("self".into(), format!("{base}/feed.atom")), ("alternate".into(), format!("{base}/"))]
    );
    let (_, response) = get(&server, &[]);
    assert!(response.header("last-modified").is_none(), "no briefs, no date");
    assert!(response.header("etag").is_some());

    let plain = make_brief(&server, "Harga beras naik\nHarga beras di pasar naik lagi minggu ini.\n");
    let mut known = plain.clone();
    known["id"] = json!("0123456789abcdef");
    known["headline"]["english"] = json!(HEADLINE);
    known["summary"] = json!("Rice is cheaper.");
    known["created_at"] = json!("2030-01-02T03:04:05Z");
    known["source"]["outlet"] = json!("Kompas");
    known["source"]["url"] = json!("https://www.kompas.example/read/2026/11/23/beras");
    // Listed by publication time (then creation time), so this one comes first.
    known["source"]["published_at"] = json!("2030-01-02T08:30:00+07:00");
    store(cache.path(), &known);

    let (_, response) = get(&server, &[]);
    let xml = response.into_string().unwrap();
    assert!(xml.contains("<title>Rice &lt;prices&gt; &amp; "), "escaped in the XML: {xml}");
    let english = plain["headline"]["english"].as_str().unwrap();

    let full = feed(&server, &[]);
    assert_eq!(full.updated, time("2030-01-02T03:04:05Z"), "the newest brief's time");
    let [first, second] = &full.entries[..] else { panic!("two entries: {:?}", full.entries) };
    assert_eq!(first.id, "urn:brief:0123456789abcdef");
    assert_eq!(first.title.as_str(), HEADLINE, "unescaped once parsed");
    assert_eq!(first.summary.as_ref().map(|s| s.as_str()), Some("Rice is cheaper."));
    assert_eq!(
        links(&first.links),
        [
            ("alternate".into(), format!("{base}/briefs/0123456789abcdef")),
            ("related".into(), "https://www.kompas.example/read/2026/11/23/beras".into())
        ]
    );
    assert_eq!(first.published, Some(time("2030-01-02T08:30:00+07:00")));
    assert_eq!(first.updated, time("2030-01-02T03:04:05Z"));
    assert_eq!(first.authors.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Kompas"]);

    let id = plain["id"].as_str().unwrap();
    assert_eq!(second.id, format!("urn:brief:{id}"));
    assert_eq!(second.title.as_str(), english);
    assert_eq!(second.summary.as_ref().map(|s| s.as_str()), plain["summary"].as_str());
    assert_eq!(links(&second.links), [("alternate".into(), format!("{base}/briefs/{id}"))]);
    assert_eq!(second.published, None);
    assert_eq!(second.updated, time(plain["created_at"].as_str().unwrap()));
    assert_eq!(second.authors.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["brief"]);

    // Feed readers poll: the same feed is 304 by its ETag, or by its date when no ETag is sent.
    let (_, response) = get(&server, &[]);
    let etag = response.header("etag").unwrap().to_string();
    let modified = response.header("last-modified").unwrap().to_string();
    assert_eq!(modified, "Wed, 02 Jan 2030 03:04:05 GMT");
    let (status, response) = get(&server, &[("If-None-Match", &etag)]);
    assert_eq!((status, response.header("etag")), (304, Some(etag.as_str())));
    assert_eq!(get(&server, &[("If-None-Match", "\"stale\"")]).0, 200);
    assert_eq!(get(&server, &[("If-None-Match", "\"stale\""), ("If-Modified-Since", &modified)]).0, 200);
    assert_eq!(get(&server, &[("If-Modified-Since", &modified)]).0, 304);
    assert_eq!(get(&server, &[("If-Modified-Since", "Tue, 01 Jan 2030 00:00:00 GMT")]).0, 200);

    // Without --public-url the links follow the address the client used, through a proxy too.
    let hosted = feed(&server, &[("Host", "news.example:8080")]);
    assert_eq!(hosted.id, "http://news.example:8080/feed.atom");
    assert_eq!(hosted.entries[0].links[0].href, "http://news.example:8080/briefs/0123456789abcdef");
    let proxied =
        feed(&server, &[("Host", "127.0.0.1"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "brief.example")]);
    assert_eq!(links(&proxied.links)[0].1, "https://brief.example/feed.atom");
    assert_eq!(proxied.entries[1].links[0].href, format!("https://brief.example/briefs/{id}"));
    let (_, hosted) = get(&server, &[("Host", "news.example:8080")]);
    assert_ne!(hosted.header("etag"), Some(etag.as_str()), "another address, another feed");
}

#[test]
fn feed_with_a_public_url_and_an_entry_limit() {
    let (server, _cache) = start(&["--public-url", "https://news.example/", "--feed-entries", "1"]);
    make_brief(&server, "Harga beras naik\nHarga beras di pasar naik lagi.\n");
    make_brief(&server, "Kereta cepat beroperasi\nKereta cepat mulai beroperasi hari ini.\n");
    // Both were made within a second: the newest is whichever the list puts first.
    let (_, list) = server.get("/v1/briefs");
    let list: Value = serde_json::from_str(&list).unwrap();
    let newest = &list["briefs"][0];
    let feed = feed(&server, &[("X-Forwarded-Host", "proxy.example"), ("X-Forwarded-Proto", "http")]);
    assert_eq!(
        links(&feed.links),
        [
            ("self".into(), "https://news.example/feed.atom".into()),
            ("alternate".into(), "https://news.example/".into())
        ]
    );
    let id = newest["id"].as_str().unwrap();
    let [entry] = &feed.entries[..] else { panic!("one entry: {:?}", feed.entries) };
    assert_eq!(entry.id, format!("urn:brief:{id}"));
    assert_eq!(entry.links[0].href, format!("https://news.example/briefs/{id}"));
}

#[test]
fn feed_options_are_checked_at_start() {
    for (args, expected) in [
        (&["--public-url", "ftp://news.example"][..], "is not a public address"),
        (&["--public-url", "news.example"][..], "is not a public address"),
        (&["--feed-entries", "0"][..], "--feed-entries"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_brief"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .env_remove("BRIEF_PUBLIC_URL")
            .env_remove("BRIEF_FEED_ENTRIES")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn feed_is_503_when_the_store_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("cache");
    std::fs::write(&not_a_dir, "a file where the cache directory should be").unwrap();
    let server = Server::start(&base_args(&not_a_dir), dir.path());
    let (status, response) = get(&server, &[]);
    assert_eq!(status, 503);
    assert!(response.into_string().unwrap().contains("The stored briefs cannot be read"));
}
