//! The reader's list (`GET /`) and `GET /v1/briefs` over a store of briefs made here (with outlets and
//! publication times): pages and their exact links, search, the outlet and date filters, and 400 for malformed
//! parameters; on a real `brief serve` with the tiny models.

mod common;

use brief::store::{Store, StoreConfig, StoreUrl, Verify, FILE_NAME};
use common::server::{base_args, Server};
use serde_json::{json, Value};

/// A brief of schema `brief/1` as the service makes it; `english` is the translation's second paragraph.
pub fn brief_json(
    id: &str,
    created_at: &str,
    outlet: Option<&str>,
    published_at: Option<&str>,
    english: &str,
) -> Value {
    let model = json!({"id": "m", "revision": "r", "model_type": "marian"});
    let mut source =
        json!({"name": format!("{id}.txt"), "sha256": "0".repeat(64), "bytes": 10, "words": 2, "paragraphs": 3});
    if let Some(o) = outlet {
        source["outlet"] = json!(o);
    }
    if let Some(p) = published_at {
        source["published_at"] = json!(p);
    }
    json!({
        "schema": "brief/1",
        "id": id,
        "source": source,
        "headline": {"source": "Judul berita", "english": format!("Headline {id}")},
        "summary": format!("Summary of {id}."),
        "paragraphs": [{"source": "Satu.", "english": "One."}, {"source": "Dua.", "english": english}],
        "models": {"translate": model, "summarize": model},
        "summary_method": {"chunks_per_round": [1]},
        "timings": {"translate_ms": 1, "summarize_ms": 1, "total_ms": 2},
        "created_at": created_at,
        "dropped": [],
    })
}

/// Stores `briefs` in the SQLite store of `cache_dir`, as the service would.
pub fn fill(cache_dir: &std::path::Path, briefs: &[Value]) {
    let config = StoreConfig {
        url: StoreUrl::Sqlite(cache_dir.join(FILE_NAME)),
        max_bytes: 1 << 30,
        verify: Verify::None,
        prefix: String::new(),
        text_ttl: std::time::Duration::from_secs(60),
    };
    let store = Store::open(&config).unwrap();
    for b in briefs {
        let brief: brief::service::Brief = serde_json::from_value(b.clone()).unwrap();
        store.put_brief(&brief::service::stored(&brief)).unwrap();
    }
}

/// Seven briefs, newest first a1..a7: four from Kompas, two from Tempo, one without an outlet; a3 alone
/// mentions Subang, in its translation.
fn seven() -> Vec<Value> {
    let at = |d: u32| format!("2026-01-{d:02}T08:00:00Z");
    vec![
        brief_json("a1", &at(9), Some("Kompas"), Some("2024-05-07T08:00:00+07:00"), "Prices rose."),
        brief_json("a2", &at(9), Some("Tempo"), Some("2024-05-06T08:00:00Z"), "Prices fell."),
        brief_json("a3", &at(9), Some("Kompas"), Some("2024-05-05T08:00:00Z"), "A dam opened in Subang."),
        brief_json("a4", &at(9), None, Some("2024-05-04T08:00:00Z"), "Rain fell."),
        brief_json("a5", &at(9), Some("Kompas"), Some("2024-05-03T08:00:00Z"), "Rice rose."),
        brief_json("a6", &at(9), Some("Tempo"), Some("2024-05-02T08:00:00Z"), "Rice fell."),
        brief_json("a7", &at(9), Some("Kompas"), Some("2024-05-01T08:00:00Z"), "Trade grew."),
    ]
}

fn reader() -> (Server, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    fill(cache.path(), &seven());
    let mut args = base_args(cache.path());
    args.extend(["--reader-page-size".to_string(), "3".to_string()]);
    (Server::start(&args, cache.path()), cache)
}

/// The ids of the cards on a list page, in order.
fn cards(html: &str) -> Vec<String> {
    html.split("<h2><a href=\"/briefs/").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
}

#[test]
fn the_list_is_paged_with_exact_links() {
    let (server, _cache) = reader();
    let (status, html) = server.get("/");
    assert_eq!(status, 200);
    assert_eq!(cards(&html), ["a1", "a2", "a3"]);
    assert!(html.contains("7 briefs, newest first · page 1 of 3"), "{html}");
    assert!(html.contains(r#"<a rel="next" href="/?page=2">"#), "{html}");
    assert!(!html.contains(r#"rel="prev""#));
    // The card shows the outlet and the publication day.
    assert!(html.contains(r#"<span class="outlet">Kompas</span> · published <time datetime="2024-05-07T08:00:00+07:00">2024-05-07</time>"#), "{html}");

    let (status, html) = server.get("/?page=2");
    assert_eq!((status, cards(&html)), (200, vec!["a4".to_string(), "a5".into(), "a6".into()]));
    assert!(html.contains(r#"<a rel="prev" href="/">"#), "{html}");
    assert!(html.contains(r#"<a rel="next" href="/?page=3">"#), "{html}");
    assert!(html.contains("page 2 of 3"));

    let (status, html) = server.get("/?page=3");
    assert_eq!((status, cards(&html)), (200, vec!["a7".to_string()]));
    assert!(html.contains(r#"<a rel="prev" href="/?page=2">"#) && !html.contains(r#"rel="next""#), "{html}");

    let (status, html) = server.get("/?page=4");
    assert_eq!(status, 404);
    assert!(cards(&html).is_empty());
    assert!(html.contains(r#"There is no page 4: the last is <a href="/?page=3">page 3</a>."#), "{html}");
}

#[test]
fn search_outlet_and_dates_filter_the_list_and_links_keep_them() {
    let (server, _cache) = reader();
    let (status, html) = server.get("/?q=subang");
    assert_eq!((status, cards(&html)), (200, vec!["a3".to_string()]));
    assert!(html.contains("1 brief matches, newest first · page 1 of 1"), "{html}");
    assert!(html.contains(r#"name="q" value="subang""#));

    let (status, html) = server.get("/?q=zebra+%22AND%22+*");
    assert_eq!(status, 200);
    assert!(html.contains(r#"No brief matches “zebra &quot;AND&quot; *”."#), "{html}");

    let (status, html) = server.get("/?outlet=Kompas");
    assert_eq!((status, cards(&html)), (200, vec!["a1".to_string(), "a3".into(), "a5".into()]));
    assert!(html.contains(r#"<a rel="next" href="/?outlet=Kompas&amp;page=2">"#), "{html}");
    assert!(html.contains(r#"<option value="Kompas" selected>Kompas</option>"#), "{html}");
    assert!(html.contains(r#"<option value="Tempo">Tempo</option>"#), "{html}");
    let (_, html) = server.get("/?outlet=Kompas&page=2");
    assert_eq!(cards(&html), ["a7"]);
    assert!(html.contains(r#"<a rel="prev" href="/?outlet=Kompas">"#), "{html}");

    let (_, html) = server.get("/?q=rice&from=2024-05-02&to=2024-05-07");
    assert_eq!(cards(&html), ["a5", "a6"]);
    let (_, html) = server.get("/?from=2024-05-02&to=2024-05-06");
    assert_eq!(cards(&html), ["a2", "a3", "a4"]);
    assert!(html.contains(r#"<a rel="next" href="/?from=2024-05-02&amp;to=2024-05-06&amp;page=2">"#), "{html}");
    let (_, html) = server.get("/?outlet=Tempo%20%26%20Co");
    assert!(html.contains("No brief matches from Tempo &amp; Co."), "{html}");
}

#[test]
fn malformed_parameters_get_400_pages_and_errors() {
    let (server, _cache) = reader();
    for (query, needle) in [
        ("page=abc", "page must be a whole number, not &quot;abc&quot;"),
        ("page=0", "page must be from 1"),
        ("from=2024-13-01", "from must be a date as YYYY-MM-DD, not &quot;2024-13-01&quot;"),
        ("to=yesterday", "to must be a date as YYYY-MM-DD"),
        ("from=2024-05-02&to=2024-05-01", "from (2024-05-02) must not be after to (2024-05-01)"),
        ("page=1&page=2", "page is given more than once"),
    ] {
        let (status, html) = server.get(&format!("/?{query}"));
        assert_eq!(status, 400, "{query}");
        assert!(html.contains(needle), "{query}: {html}");
    }
    let long = "a".repeat(201);
    assert_eq!(server.get(&format!("/?q={long}")).0, 400);
    for query in ["page=abc", "offset=-1", "limit=x", "page=1&offset=3", "from=2024-02-30"] {
        let (status, body) = server.get(&format!("/v1/briefs?{query}"));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, body["error_type"].as_str()), (400, Some("invalid_request")), "{query}: {body}");
    }
}

#[test]
fn the_json_list_takes_the_same_parameters() {
    let (server, _cache) = reader();
    let list = |query: &str| -> Value {
        let (status, body) = server.get(&format!("/v1/briefs{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let ids = |v: &Value| -> Vec<String> {
        v["briefs"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_string()).collect()
    };
    let all = list("");
    assert_eq!((ids(&all).len(), all["total"].as_u64()), (7, Some(7)));
    assert!(all.get("partial").is_none());
    assert_eq!(all["briefs"][0]["outlet"], "Kompas");
    assert_eq!(all["briefs"][0]["published_at"], "2024-05-07T08:00:00+07:00");
    assert!(all["briefs"][3].get("outlet").is_none());
    assert_eq!(ids(&list("?offset=2&limit=2")), ["a3", "a4"]);
    let page = list("?page=2");
    assert_eq!((ids(&page), page["total"].as_u64()), (vec!["a4".to_string(), "a5".into(), "a6".into()], Some(7)));
    assert_eq!(ids(&list("?page=2&limit=2")), ["a3", "a4"]);
    let tempo = list("?outlet=Tempo");
    assert_eq!((ids(&tempo), tempo["total"].as_u64()), (vec!["a2".to_string(), "a6".into()], Some(2)));
    assert_eq!(ids(&list("?q=Subang")), ["a3"]);
    assert_eq!(ids(&list("?from=2024-05-06")), ["a1", "a2"]);
    assert_eq!(list("?q=zebra")["total"], 0);
}

#[test]
fn the_stored_fields_are_those_a_migration_reads_from_the_json() {
    for b in seven() {
        let brief: brief::service::Brief = serde_json::from_value(b).unwrap();
        let stored = brief::service::stored(&brief);
        let facets = brief::store::BriefFacets::of_json(&stored.json);
        assert_eq!((&facets.outlet, &facets.published_at), (&stored.outlet, &stored.published_at));
        assert_eq!(facets.translation, stored.translation);
        assert_eq!(stored.translation, format!("One.\n{}", brief.paragraphs[1].english));
    }
}
