//! `brief serve` over a real TCP socket with tiny models: every endpoint, every error status, dynamic batching
//! under 64 concurrent clients, the cache across restarts and a SIGKILL, graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::server::{base_args, response, Server};
use serde_json::{json, Value};

fn start(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut args = base_args(cache.path());
    args.extend(extra.iter().map(|s| s.to_string()));
    (Server::start(&args, cache.path()), cache)
}

fn error_type(body: &Value) -> &str {
    body["error_type"].as_str().unwrap_or_default()
}

#[test]
fn libretranslate_endpoints_answer_as_libretranslate_does() {
    let (server, _cache) = start(&[]);
    let (status, body) =
        server.post_json("/translate", &json!({"q": "Harga beras naik lagi.", "source": "id", "target": "en"}));
    assert_eq!(status, 200);
    assert!(body["translatedText"].is_string() && body.get("detectedLanguage").is_none(), "{body}");

    let (status, body) = server
        .post_json("/translate", &json!({"q": ["Harga beras naik.", "Apa kabar?"], "source": "auto", "target": "en"}));
    assert_eq!(status, 200);
    assert_eq!(body["translatedText"].as_array().unwrap().len(), 2);
    assert_eq!(body["detectedLanguage"][0]["language"], "id");
    assert!(body["detectedLanguage"][1]["confidence"].is_number());

    // Form bodies are read as Flask's `request.values`: the first of a repeated field wins (as in
    // LibreTranslate), and api_key is ignored without --api-key.
    let form = ureq::post(&server.url("/translate")).send_form(&[
        ("q", "Harga beras naik."),
        ("q", "Apa kabar?"),
        ("source", "id"),
        ("target", "en"),
        ("api_key", "x"),
    ]);
    let (status, body) = response(form);
    assert_eq!(status, 200);
    let (_, alone) = server.post_json("/translate", &json!({"q": "Harga beras naik.", "source": "id", "target": "en"}));
    assert_eq!(body["translatedText"], alone["translatedText"], "{body}");
    let (status, body) = response(ureq::post(&server.url("/translate")).send_form(&[
        ("q", "Halo"),
        ("source", "auto"),
        ("target", "en"),
    ]));
    assert_eq!(status, 200);
    assert!(body["translatedText"].is_string() && body["detectedLanguage"]["language"] == "id");

    // HTML: tags and attributes kept, the result well-formed.
    let html = "<div class=\"berita\"><p>Harga <b>beras</b> naik.<br></p><img src=\"a.png\" alt=\"x\"></div><p>Apa";
    let (status, body) =
        server.post_json("/translate", &json!({"q": html, "source": "id", "target": "en", "format": "html"}));
    assert_eq!(status, 200);
    let out = body["translatedText"].as_str().unwrap();
    assert!(
        out.starts_with("<div class=\"berita\"><p>")
            && out.contains("<b>")
            && out.contains("<img src=\"a.png\" alt=\"x\">"),
        "{out}"
    );
    assert_well_formed(out);

    let (status, body) = server.post_json("/detect", &json!({"q": "Harga beras naik lagi di pasar."}));
    assert_eq!((status, body[0]["language"].as_str()), (200, Some("id")));
    let (status, langs) = server.get("/languages");
    let langs: Value = serde_json::from_str(&langs).unwrap();
    assert_eq!(status, 200);
    assert_eq!(langs[0], json!({"code": "id", "name": "Indonesian", "targets": ["en"]}));
}

/// Checks that `fragment` is well-formed XML (every element closed, nesting right).
fn assert_well_formed(fragment: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = fragment;
    while let Some(lt) = rest.find('<') {
        assert!(!rest[..lt].contains('>'), "a stray '>' in text: {fragment}");
        let end = rest[lt..].find('>').expect("every tag ends") + lt;
        let tag = &rest[lt + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "{fragment}");
        } else if !tag.ends_with('/') && !tag.starts_with('!') {
            let name = tag.split_whitespace().next().unwrap();
            // HTML's void elements have no end tag (html5ever writes `<br>`, not `<br />`).
            if !["br", "img", "hr", "wbr", "input", "meta", "link", "area", "col", "embed", "source", "track"]
                .contains(&name)
            {
                stack.push(name.to_string());
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?} in {fragment}");
}

#[test]
fn native_endpoints_translate_summarize_and_store_briefs() {
    let (server, _cache) = start(&[]);
    let (status, body) = server
        .post_json("/v1/translate", &json!({"texts": ["Harga beras naik lagi.\n\nApa kabar?", ""], "num_beams": 1}));
    assert_eq!(status, 200, "{body}");
    let translations = body["translations"].as_array().unwrap();
    assert_eq!(translations.len(), 2);
    assert_eq!(translations[0]["text"].as_str().unwrap().split('\n').count(), 3, "paragraphs kept");
    assert_eq!(translations[1]["text"], "");
    assert_eq!(translations[0]["cached"], false);
    assert!(body["model"]["id"].as_str().unwrap().ends_with("tiny") && body["timings"]["total_ms"].is_number());
    let (_, again) =
        server.post_json("/v1/translate", &json!({"texts": ["Harga beras naik lagi.\n\nApa kabar?"], "num_beams": 1}));
    assert_eq!(again["translations"][0]["cached"], true);
    assert_eq!(again["translations"][0]["text"], translations[0]["text"]);

    let text = "Rice prices rose again on Tuesday. The government promised to act. Farmers were worried.";
    let (status, body) = server.post_json("/v1/summarize", &json!({"text": text, "num_beams": 2}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chunks_per_round"], json!([1]));
    assert!(!body["summary"].as_str().unwrap().is_empty() && body["model"]["model_type"] == "t5");

    let article = std::fs::read_to_string(common::shared().join("seeds").join("004_86ab6c33f251c52c.txt")).unwrap();
    let created = ureq::post(&server.url("/v1/briefs")).send_json(json!({"text": article, "name": "004.txt"})).unwrap();
    assert_eq!(created.status(), 201);
    let location = created.header("location").unwrap().to_string();
    let brief: Value = created.into_json().unwrap();
    common::assert_valid_brief_json(&brief);
    assert_eq!(brief["dropped"].as_array().unwrap().len(), 3, "boilerplate is left out by default: {brief}");
    assert_eq!(location, format!("/v1/briefs/{}", brief["id"].as_str().unwrap()));
    let (status, stored) = server.get(&location);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&stored).unwrap(), brief);
    let (status, list) = server.get("/v1/briefs");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(status, 200);
    assert_eq!(list["briefs"][0]["id"], brief["id"]);
    assert_eq!(list["briefs"][0]["name"], "004.txt");
    assert!(brief["source"].get("outlet").is_none() && brief["source"].get("url").is_none(), "{brief}");

    // The article's metadata, normalised, is kept with the brief.
    let meta = json!({"text": "Harga cabai naik\n\nPedagang mengeluh.", "name": "m.txt", "outlet": " Antara ",
        "url": "https://www.antaranews.com/berita/1", "published_at": "2024-05-01T08:30:00+07:00"});
    let (status, made) = server.post_json("/v1/briefs", &meta);
    assert_eq!(status, 201, "{made}");
    common::assert_valid_brief_json(&made);
    assert_eq!(made["source"]["outlet"], "Antara");
    assert_eq!(made["source"]["url"], "https://www.antaranews.com/berita/1");
    assert_eq!(made["source"]["published_at"], "2024-05-01T08:30:00+07:00");
    // The brief page shows it, and downloads the brief as Markdown and as text.
    let id = made["id"].as_str().unwrap();
    let (status, page) = server.get(&format!("/briefs/{id}"));
    assert_eq!(status, 200);
    for needle in [
        r#"<span id="outlet">Antara</span>"#,
        r#"<time id="published" datetime="2024-05-01T08:30:00+07:00">2024-05-01 08:30 +07:00</time>"#,
        // minijinja escapes `/` in attributes too (`&#x2f;`), which browsers read back as `/`.
        r#"<a id="original-link" href="https:&#x2f;&#x2f;www.antaranews.com&#x2f;berita&#x2f;1" rel="noopener noreferrer nofollow">"#,
        &format!(r#"<a id="download-md" href="/briefs/{id}.md" download>"#),
        &format!(r#"<a id="download-txt" href="/briefs/{id}.txt" download>"#),
    ] {
        assert!(page.contains(needle), "{needle} not in {page}");
    }
    for (ext, mime, start) in [("md", "text/markdown; charset=utf-8", "# "), ("txt", "text/plain; charset=utf-8", "")] {
        let r = ureq::get(&server.url(&format!("/briefs/{id}.{ext}"))).call().unwrap();
        assert_eq!(r.content_type(), mime.split(';').next().unwrap());
        assert_eq!(r.header("content-disposition").unwrap(), format!("attachment; filename=\"brief-{id}.{ext}\""));
        let body = r.into_string().unwrap();
        let english = made["headline"]["english"].as_str().unwrap();
        assert!(
            body.starts_with(&format!("{start}{}", english.split_whitespace().collect::<Vec<_>>().join(" "))),
            "{body}"
        );
        assert!(
            body.contains("Antara · published 2024-05-01T08:30:00+07:00 · https://www.antaranews.com/berita/1"),
            "{body}"
        );
    }
    assert_eq!(server.get("/briefs/0000000000000000.md").0, 404);

    let (status, health) = server.get("/health");
    assert_eq!(status, 200);
    assert!(health.contains("\"status\":\"ready\""));
    let (status, openapi) = server.get("/openapi.json");
    let openapi: Value = serde_json::from_str(&openapi).unwrap();
    assert_eq!(status, 200);
    for path in [
        "/translate",
        "/detect",
        "/languages",
        "/v1/translate",
        "/v1/summarize",
        "/v1/briefs",
        "/v1/briefs/{id}",
        "/health",
        "/metrics",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "openapi.json lacks {path}");
    }
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "brief_http_requests_total",
        "brief_http_request_duration_seconds_bucket",
        "brief_batch_size_bucket",
        "brief_queue_depth",
        "brief_cache_hits_total",
        "brief_cache_misses_total",
        "brief_tokens_generated_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
}

#[test]
fn client_mistakes_get_4xx_json_errors() {
    let (server, _cache) = start(&["--max-body-bytes", "2000"]);
    let post = |path: &str, body: Value| server.post_json(path, &body);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/translate", json!({"source": "id", "target": "en"}), 422, "validation_error"),
        ("/translate", json!({"q": "x", "source": "fr", "target": "en"}), 400, "unsupported_language_pair"),
        ("/translate", json!({"q": "x", "source": "id", "target": "de"}), 400, "unsupported_language_pair"),
        (
            "/translate",
            json!({"q": "The price of rice rose again in the market.", "source": "auto", "target": "en"}),
            400,
            "unsupported_language_pair",
        ),
        ("/translate", json!({"q": "x", "source": "id", "target": "en", "format": "pdf"}), 422, "validation_error"),
        ("/translate", json!({"q": 5, "source": "id", "target": "en"}), 422, "validation_error"),
        ("/v1/translate", json!({"texts": ["x"], "num_beams": 0}), 422, "validation_error"),
        // 1e39 is infinite as an f32: refused, not searched with (a NaN once made every batch empty).
        ("/v1/translate", json!({"texts": ["x"], "length_penalty": 1e39}), 422, "validation_error"),
        ("/v1/summarize", json!({"text": "x", "length_penalty": -1e39}), 422, "validation_error"),
        ("/v1/translate", json!({"texts": ["x"], "max_new_tokens": 100000}), 422, "validation_error"),
        // Found by schemathesis: widths and lengths that would need terabytes of KV cache abort the process.
        ("/v1/translate", json!({"texts": ["x"], "num_beams": 13_715_021_128u64}), 422, "validation_error"),
        ("/v1/translate", json!({"texts": ["x"], "num_beams": 33}), 422, "validation_error"),
        ("/v1/translate", json!({"texts": ["x"], "max_new_tokens": u64::MAX}), 422, "validation_error"),
        (
            "/v1/summarize",
            json!({"text": "Rice prices rose.", "max_new_tokens": 1_000_000_000}),
            422,
            "validation_error",
        ),
        ("/v1/briefs", json!({"text": "Harga naik.", "translate": {"num_beams": 1_000_000}}), 422, "validation_error"),
        ("/v1/translate", json!({"texts": ["x"], "beams": 2}), 422, "validation_error"),
        ("/v1/translate", json!({"text": "x"}), 422, "validation_error"),
        ("/v1/summarize", json!({"text": "x", "chunk_tokens": 3}), 422, "validation_error"),
        ("/v1/briefs", json!({"text": "  \n "}), 422, "validation_error"),
        ("/v1/briefs", json!({"text": "Judul", "name": "../etc/passwd"}), 422, "validation_error"),
        ("/v1/briefs", json!({"text": "Judul", "url": "javascript:alert(1)"}), 422, "validation_error"),
        ("/v1/briefs", json!({"text": "Judul", "published_at": "1 Mei 2024"}), 422, "validation_error"),
        ("/v1/briefs", json!({"text": "Judul", "outlet": "x".repeat(201)}), 422, "validation_error"),
        ("/v1/translate", json!({"texts": ["x".repeat(3000)]}), 413, "payload_too_large"),
    ];
    for (path, body, status, kind) in cases {
        let (got, answer) = post(path, body.clone());
        assert_eq!((got, error_type(&answer)), (status, kind), "{path} {body}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer}");
    }
    let raw = |path: &str, content_type: &str, body: &str| {
        response(ureq::post(&server.url(path)).set("Content-Type", content_type).send_string(body))
    };
    let (status, answer) = raw("/translate", "application/json", "{not json");
    assert_eq!((status, error_type(&answer)), (400, "invalid_json"));
    let (status, answer) = raw("/v1/translate", "text/plain", "hello");
    assert_eq!((status, error_type(&answer)), (415, "unsupported_media_type"));
    let (status, answer) = raw("/translate", "application/x-www-form-urlencoded", "source=id&target=en");
    assert_eq!((status, error_type(&answer)), (422, "validation_error"));
    let (status, body) = server.get("/v1/briefs/0000000000000000");
    assert_eq!((status, body.contains("not_found")), (404, true));
    let (status, body) = server.get("/nowhere");
    assert_eq!((status, body.contains("not_found")), (404, true));
    // (GET /translate is the translate page.)
    let (status, body) = server.get("/detect");
    assert_eq!((status, body.contains("method_not_allowed")), (405, true));
    // Nothing above was the server's fault.
    assert_eq!(server.metric("brief_http_requests_total{route=\"/translate\",status=\"500\"}"), 0.0);
}

#[test]
fn keep_boilerplate_in_a_brief_request_overrides_the_servers_default() {
    let (server, _cache) = start(&["--keep-boilerplate"]);
    let article = std::fs::read_to_string(common::shared().join("seeds").join("004_86ab6c33f251c52c.txt")).unwrap();
    let dropped = |body: &Value| body["dropped"].as_array().map(|d| d.iter().map(|d| d["line"].clone()).collect());
    let translate = json!({"num_beams": 1, "max_new_tokens": 4});
    for (keep, status, lines) in [
        (None, 201, Some(vec![])),
        (Some(json!(true)), 201, Some(vec![])),
        (Some(json!(false)), 201, Some(vec![json!(2), json!(8), json!(14)])),
        (Some(json!("yes")), 422, None),
        (Some(json!(null)), 201, Some(vec![])),
    ] {
        let mut request = json!({"text": article, "name": "004.txt", "translate": translate});
        if let Some(keep) = &keep {
            request["keep_boilerplate"] = keep.clone();
        }
        let (got, body) = server.post_json("/v1/briefs", &request);
        assert_eq!((got, dropped(&body)), (status, lines), "keep_boilerplate {keep:?}: {body}");
        if status == 422 {
            assert_eq!(error_type(&body), "validation_error");
        }
    }
    let only = "SCROLL TO CONTINUE WITH CONTENT\nBaca juga: Harga cabai naik\n";
    let (got, body) = server.post_json("/v1/briefs", &json!({"text": only, "keep_boilerplate": false}));
    assert_eq!((got, error_type(&body)), (422, "validation_error"), "{body}");
    assert!(body["error"].as_str().unwrap().contains("nothing but boilerplate"), "{body}");
    let (got, body) = server.post_json("/v1/briefs", &json!({"text": only, "translate": translate}));
    assert_eq!((got, body["headline"]["source"].as_str()), (201, Some("SCROLL TO CONTINUE WITH CONTENT")), "{body}");
}

#[test]
fn an_api_key_is_required_when_configured() {
    let (server, _cache) = start(&["--api-key", "sesame"]);
    let (status, body) = server.post_json("/translate", &json!({"q": "Halo", "source": "id", "target": "en"}));
    assert_eq!((status, error_type(&body)), (403, "forbidden"));
    let (status, _) =
        server.post_json("/translate", &json!({"q": "Halo", "source": "id", "target": "en", "api_key": "sesame"}));
    assert_eq!(status, 200);
    let (status, _) = response(
        ureq::post(&server.url("/v1/translate"))
            .set("Authorization", "Bearer sesame")
            .send_json(json!({"texts": ["Halo"]})),
    );
    assert_eq!(status, 200);
    let (status, _) = server.post_json("/v1/translate", &json!({"texts": ["Halo"]}));
    assert_eq!(status, 403);
}

#[test]
fn the_translate_page_is_a_self_contained_form_linked_from_the_reader() {
    let (server, _cache) = start(&["--api-key", "sesame"]);
    let page = ureq::get(&server.url("/translate")).call().expect("GET /translate is public");
    assert_eq!(page.status(), 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = page.into_string().unwrap();
    for part in [
        "<textarea id=\"text\"",
        "type=\"file\"",
        "accept=\".txt,.md,.html",
        "id=\"format-html\"",
        "<button type=\"submit\" id=\"translate\">Translate</button>",
        "id=\"make-brief\"",
        "role=\"alert\"",
        "<meta name=\"viewport\"",
        "/frontend/settings",
        "/v1/translate",
        "/v1/briefs",
    ] {
        assert!(html.contains(part), "the page lacks {part}");
    }
    // Nothing is loaded from elsewhere: no src or href to another host, no protocol-relative URL.
    let lower = html.to_lowercase();
    for attr in ["src=", "href="] {
        for (at, _) in lower.match_indices(attr) {
            let value = lower[at + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                !value.starts_with("http:") && !value.starts_with("https:") && !value.starts_with("//"),
                "an outside resource: {}",
                &html[at..(at + 80).min(html.len())]
            );
        }
    }
    assert!(!lower.contains("@import") && !lower.contains("url("), "CSS loads nothing");
    // The LibreTranslate API on the same path still wants its key.
    assert_eq!(server.post_json("/translate", &json!({"q": "Halo", "source": "id", "target": "en"})).0, 403);
    // The reader's header links to the page.
    let (status, index) = server.get("/");
    assert_eq!(status, 200);
    assert!(index.contains("<a href=\"/translate\">Translate</a>"), "{index}");
}

#[test]
fn keys_from_a_file_with_per_key_rate_limits_and_public_pages() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "# test keys\nwire-7f3a requests_per_minute=2\ndesk-91c2 chars_per_minute=20\nops-5d0e\n")
        .unwrap();
    let (server, _cache) = start(&["--api-keys", keys.to_str().unwrap(), "--protect-metrics", "--log", "info"]);
    let post = |path: &str, key: Option<&str>, body: Value| {
        let mut request = ureq::post(&server.url(path));
        if let Some(key) = key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        match request.send_json(body) {
            Ok(r) => (r.status(), r.header("retry-after").map(str::to_string), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => {
                (code, r.header("retry-after").map(str::to_string), r.into_json().unwrap_or(Value::Null))
            }
            Err(e) => panic!("{path}: {e}"),
        }
    };
    let lt = |q: &str| json!({"q": q, "source": "id", "target": "en"});

    // Public without a key: the reader, health, languages, the API description.
    for path in ["/", "/translate", "/health", "/languages", "/openapi.json", "/frontend/settings"] {
        assert_eq!(server.get(path).0, 200, "{path}");
    }
    // Everything else needs a configured key, in the body or as a bearer token.
    assert_eq!(post("/translate", None, lt("Halo")).0, 403);
    assert_eq!(post("/translate", Some("wire-7f3a-not"), lt("Halo")).0, 403);
    assert_eq!(post("/v1/summarize", None, json!({"text": "Rice prices rose again."})).0, 403);
    assert_eq!(server.get("/v1/briefs").0, 403);
    assert_eq!(server.get("/metrics").0, 403);
    let metrics = || {
        let r = ureq::get(&server.url("/metrics")).set("Authorization", "Bearer ops-5d0e").call().unwrap();
        (r.status(), r.into_string().unwrap())
    };
    let (status, text) = metrics();
    assert_eq!(status, 200);
    assert!(text.contains("brief_http_requests_total"));

    // Two requests per minute: the third waits 30 s.
    assert_eq!(post("/translate", Some("wire-7f3a"), lt("Halo")).0, 200);
    let mut with_field = lt("Halo");
    with_field["api_key"] = json!("wire-7f3a");
    assert_eq!(post("/translate", None, with_field).0, 200);
    let (status, retry, body) = post("/v1/translate", Some("wire-7f3a"), json!({"texts": ["Halo"]}));
    assert_eq!((status, error_type(&body)), (429, "rate_limited"));
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    // Other keys have their own buckets.
    assert_eq!(post("/translate", Some("ops-5d0e"), lt("Halo")).0, 200);

    // Twenty characters per minute: 15 pass, 10 more wait, 25 at once can never pass.
    assert_eq!(post("/translate", Some("desk-91c2"), lt("Harga beras naik")).0, 200);
    let (status, retry, body) = post("/translate", Some("desk-91c2"), lt("Beras naik"));
    assert_eq!((status, error_type(&body)), (429, "rate_limited"));
    assert!(retry.is_some());
    let (status, _, body) = post("/translate", Some("desk-91c2"), lt("Harga beras naik lagi hari ini"));
    assert_eq!((status, error_type(&body)), (413, "payload_too_large"));
    assert!(body["error"].as_str().unwrap().contains("allowance of 20 per minute"), "{body}");

    let text = metrics().1;
    assert!(text.contains("brief_rate_limited_total{limit=\"requests\"} 1"), "{text}");
    assert!(text.contains("brief_rate_limited_total{limit=\"characters\"} 1"), "{text}");
    // The keys themselves never reach the log (rate-limit lines name a hash).
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("rate limited"), "{log}");
    for key in ["wire-7f3a", "desk-91c2", "ops-5d0e"] {
        assert!(!log.contains(key), "{key} in the log:\n{log}");
    }
}

#[test]
fn a_bad_keys_file_stops_the_server_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "good-key\nsecret-key per_hour=5\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_brief"))
        .args(["serve", "--bind", "127.0.0.1:0", "--api-keys", keys.to_str().unwrap()])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2: unknown limit \"per_hour\""), "{stderr}");
    assert!(!stderr.contains("secret-key"), "{stderr}");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    // One sequence may wait; the first request waits a second for company, so a second request finds it full.
    let (server, _cache) = start(&["--max-queue", "1", "--batch-wait-ms", "1500", "--no-cache"]);
    let url = server.url("/v1/translate");
    let first =
        std::thread::spawn(move || response(ureq::post(&url).send_json(json!({"texts": ["Harga beras naik lagi."]}))));
    std::thread::sleep(Duration::from_millis(400));
    let second = ureq::post(&server.url("/v1/translate")).send_json(json!({"texts": ["Apa kabar?"]}));
    match second {
        Err(ureq::Error::Status(503, r)) => {
            let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
            assert!(retry >= 1);
            let body: Value = r.into_json().unwrap();
            assert_eq!(error_type(&body), "overloaded");
        }
        other => panic!("expected 503, got {:?}", other.map(|r| r.status())),
    }
    assert_eq!(first.join().unwrap().0, 200, "the queued request still succeeds");
    assert_eq!(server.metric("brief_http_requests_total{route=\"/v1/translate\",status=\"503\"}"), 1.0);
}

#[test]
fn a_request_past_its_time_limit_gets_504() {
    let (server, _cache) = start(&["--request-timeout-secs", "1", "--batch-wait-ms", "2500", "--no-cache"]);
    let (status, body) = server.post_json("/v1/translate", &json!({"texts": ["Harga beras naik lagi."]}));
    assert_eq!((status, error_type(&body)), (504, "timeout"));
}

#[test]
fn health_is_503_until_the_models_are_loaded() {
    use tower::ServiceExt;
    let files = tempfile::tempdir().unwrap();
    let state = brief::http::AppState {
        service: Arc::new(std::sync::OnceLock::new()),
        metrics: Arc::new(brief::metrics::Metrics::new()),
        config: Arc::new(brief::http::ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(5),
            access: Default::default(),
            watch_interval: None,
            limits: brief::http::LtLimits { chars: None, batch: None, alternatives: 10 },
            cors: brief::http::CorsOrigins::Any,
            files: brief::http::files::FilesConfig {
                store: Arc::new(brief::service::files::FileStore::open(files.path(), Duration::from_secs(60)).unwrap()),
                max_bytes: 1 << 20,
            },
            feed: Default::default(),
            reader_page_size: 20,
        }),
        defaults: Arc::new(brief::http::Defaults::default()),
    };
    let app = brief::http::router(state);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let request = axum::http::Request::get("/health").body(axum::body::Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 503);
        let request = axum::http::Request::post("/v1/translate")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"texts":["x"]}"#))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
    });
}

/// Distinct Indonesian sentences from the evaldata, so that no two clients ask the same thing.
fn sentences(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(common::shared().join("evaldata").join("mt").join("panl_news_test.id")).unwrap();
    let mut seen = std::collections::HashSet::new();
    text.lines().filter(|l| seen.insert(l.to_string())).take(n).map(str::to_string).collect()
}

#[test]
fn sixty_four_concurrent_clients_are_batched_and_get_their_serial_answers() {
    let (server, _cache) = start(&["--no-cache", "--batch-wait-ms", "20"]);
    let inputs = sentences(64);
    let serial: Vec<String> = inputs
        .iter()
        .map(|s| {
            server.post_json("/v1/translate", &json!({"texts": [s]})).1["translations"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let batches_before = server.metric("brief_batch_size_count{model=\"translate\"}");
    let singles_before = server.metric("brief_batch_size_bucket{le=\"1.0\",model=\"translate\"}");
    let barrier = Arc::new(std::sync::Barrier::new(64));
    let handles: Vec<_> = inputs
        .iter()
        .cloned()
        .map(|s| {
            let (url, barrier) = (server.url("/v1/translate"), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let (status, body) = response(ureq::post(&url).send_json(json!({"texts": [s]})));
                assert_eq!(status, 200, "{body}");
                body["translations"][0]["text"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let concurrent: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(concurrent, serial, "every answer equals the serial one");
    let batches = server.metric("brief_batch_size_count{model=\"translate\"}") - batches_before;
    let singles = server.metric("brief_batch_size_bucket{le=\"1.0\",model=\"translate\"}") - singles_before;
    eprintln!("64 concurrent requests: {batches} batches, {singles} of them single");
    assert!(batches < 64.0, "64 requests ran in {batches} batches");
    assert!(singles < batches, "some batches held more than one request ({singles} of {batches} were single)");
}

#[test]
fn a_repeated_request_after_a_restart_is_a_cache_hit() {
    let cache = tempfile::tempdir().unwrap();
    let args = base_args(cache.path());
    let request = json!({"texts": ["Presiden meresmikan bendungan baru di Subang."]});
    let mut first = Server::start(&args, cache.path());
    let (_, body) = first.post_json("/v1/translate", &request);
    assert_eq!(body["translations"][0]["cached"], false);
    assert_eq!(first.terminate().code(), Some(0));
    let second = Server::start(&args, cache.path());
    let (_, again) = second.post_json("/v1/translate", &request);
    assert_eq!(again["translations"][0]["cached"], true);
    assert_eq!(again["translations"][0]["text"], body["translations"][0]["text"]);
    assert_eq!(second.metric("brief_cache_hits_total{kind=\"translate\"}"), 1.0);
    assert_eq!(second.metric("brief_cache_misses_total{kind=\"translate\"}"), 0.0);
}

#[test]
fn sigkill_while_writing_leaves_every_cache_entry_complete_or_absent() {
    let cache = tempfile::tempdir().unwrap();
    let args = base_args(cache.path());
    let mut server = Server::start(&args, cache.path());
    let url = server.url("/v1/translate");
    let inputs = sentences(1500);
    let writer = std::thread::spawn(move || {
        for chunk in inputs.chunks(10) {
            if ureq::post(&url).send_json(json!({"texts": chunk})).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    writer.join().unwrap();

    let db = cache.path().join(brief::store::FILE_NAME);
    assert_eq!(brief::store::sqlite::integrity_check(&db).unwrap(), "ok", "SQLite's integrity check");
    let store = brief::store::SqliteStore::open(&db, 1 << 30, brief::store::Verify::Quick).unwrap();
    let entries = store.entries().unwrap();
    assert!(!entries.is_empty(), "the server wrote entries before it was killed");
    eprintln!("{} entries survived the SIGKILL", entries.len());
    drop(store);
    // Recompute every stored input without the cache and compare.
    let mut fresh_args = args.clone();
    fresh_args.push("--no-cache".into());
    let fresh = Server::start(&fresh_args, cache.path());
    let inputs: Vec<String> = entries.iter().map(|e| e.input.clone()).collect();
    let (status, body) = fresh.post_json("/v1/translate", &json!({"texts": inputs}));
    assert_eq!(status, 200);
    for (entry, got) in entries.iter().zip(body["translations"].as_array().unwrap()) {
        assert_eq!(entry.output, got["text"].as_str().unwrap(), "stored translation of {:?}", entry.input);
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight() {
    let (mut server, _cache) = start(&["--batch-wait-ms", "1500", "--no-cache"]);
    let url = server.url("/v1/translate");
    let request =
        std::thread::spawn(move || response(ureq::post(&url).send_json(json!({"texts": ["Harga beras naik lagi."]}))));
    std::thread::sleep(Duration::from_millis(400));
    let status = server.terminate();
    assert_eq!(request.join().unwrap().0, 200, "the request in flight was answered");
    assert_eq!(status.code(), Some(0));
}

/// The spec describes what the server accepts (schemathesis against it found a composition no body could
/// satisfy, and error codes the operations did not list).
#[test]
fn the_openapi_document_matches_the_server() {
    let doc = brief::http::openapi::openapi_document();
    for name in ["V1TranslateRequest", "V1SummarizeRequest"] {
        let schema = &doc["components"]["schemas"][name];
        assert!(schema.get("allOf").is_none(), "{name}: {schema}");
        assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        for field in ["num_beams", "max_new_tokens", "early_stopping"] {
            assert!(schema["properties"].get(field).is_some(), "{name} lacks {field}");
        }
    }
    assert_eq!(doc["components"]["schemas"]["SearchSettings"]["properties"]["num_beams"]["maximum"], json!(32));
    // Every error the operations answer is listed (the LibreTranslate ones take any encoding: no 415).
    let paths = doc["paths"].as_object().unwrap();
    let documented = |method: &str, path: &str| -> Vec<String> {
        let responses = paths[path][method]["responses"].as_object().unwrap();
        responses.keys().filter(|c| !c.starts_with('2')).cloned().collect()
    };
    for path in ["/v1/translate", "/v1/summarize", "/v1/briefs"] {
        assert_eq!(documented("post", path), ["400", "403", "413", "415", "422", "429", "503", "504"], "POST {path}");
    }
    assert_eq!(documented("post", "/translate"), ["400", "403", "413", "422", "429", "503", "504"]);
    assert_eq!(documented("post", "/detect"), ["400", "403", "413", "422", "429"]);
    assert_eq!(documented("post", "/suggest"), ["403"]);
    assert_eq!(documented("get", "/v1/briefs/{id}"), ["403", "404", "429", "503"]);
    assert_eq!(documented("get", "/v1/briefs"), ["400", "403", "429", "503"]);
    let params: Vec<&str> = paths["/v1/briefs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["offset", "limit", "page", "q", "outlet", "from", "to"]);
    assert_eq!(documented("post", "/translate_file"), ["400", "403", "413", "429", "503", "504"]);
    assert_eq!(documented("get", "/download_file/{name}"), ["400", "404"]);
    assert_eq!(documented("get", "/frontend/settings"), Vec::<String>::new());
}

// ---- Faults: the service keeps answering, says what is degraded, and never serves a wrong cached text --------

/// The tiny models copied into `dir` (so that the test can damage them), and server arguments that use them.
fn args_with_model_copies(cache_dir: &std::path::Path, dir: &std::path::Path) -> Vec<String> {
    let fixtures = common::fixtures();
    let mut args = base_args(cache_dir);
    for (flag, from) in [("--model", fixtures.join("marian/tiny")), ("--summary-model", fixtures.join("t5/t5-v1_1"))] {
        let to = dir.join(from.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(&from).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
        }
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = to.to_str().unwrap().to_string();
    }
    args
}

fn health(server: &Server) -> (u16, Value) {
    let (status, body) = server.get("/health");
    (status, serde_json::from_str(&body).unwrap())
}

fn translate(server: &Server, texts: &[&str]) -> Vec<(String, bool)> {
    let (status, body) = server.post_json("/v1/translate", &json!({ "texts": texts }));
    assert_eq!(status, 200, "{body}");
    body["translations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["text"].as_str().unwrap().to_string(), t["cached"].as_bool().unwrap()))
        .collect()
}

#[test]
fn model_files_deleted_or_truncated_after_start_change_no_answer_and_health_says_so() {
    let (cache, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut args = args_with_model_copies(cache.path(), models.path());
    args.push("--no-cache".into());
    args.extend(["--watch-interval-secs".into(), "1".into()]);
    let server = Server::start(&args, cache.path());
    let texts = ["Harga beras naik lagi.", "Presiden meresmikan bendungan baru di Subang."];
    let before = translate(&server, &texts);
    let summary = json!({"text": "Rice prices rose again on Tuesday. The government promised to act.", "num_beams": 2});
    let (status, summary_before) = server.post_json("/v1/summarize", &summary);
    assert_eq!(status, 200);
    assert_eq!(health(&server).1["status"], "ready");

    let marian = models.path().join("tiny");
    let weights = marian.join("pytorch_model.bin");
    let size = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&weights).unwrap().set_len(100).unwrap();
    std::fs::remove_file(marian.join("source.spm")).unwrap();
    std::fs::remove_file(models.path().join("t5-v1_1").join("model.safetensors")).unwrap();

    // The models in memory are the ones loaded: the same answers, computed again (no cache).
    assert_eq!(translate(&server, &texts), before);
    let (status, summary_after) = server.post_json("/v1/summarize", &summary);
    assert_eq!((status, &summary_after["summary"]), (200, &summary_before["summary"]));

    let (status, body) = health(&server);
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(body["checks"]["model_files"]["status"], "changed");
    let changes: Vec<&str> =
        body["checks"]["model_files"]["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let expect = [
        format!("{}: size changed from {size} to 100 bytes", weights.display()),
        format!("{}: deleted", marian.join("source.spm").display()),
    ];
    for line in &expect {
        assert!(changes.contains(&line.as_str()), "{line} in {changes:?}");
    }
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(body["checks"]["cache"]["status"], "ok");
    // The watcher logged it without being asked (and only once per model).
    std::thread::sleep(Duration::from_millis(1500));
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log.matches("model files changed on disk since they were loaded").count(), 2, "{log}");
}

#[test]
fn a_cached_text_changed_on_disk_is_recomputed_never_served() {
    let (server, cache) = start(&[]);
    let text = ["Harga beras naik lagi."];
    let (first, cached) = translate(&server, &text).remove(0);
    assert!(!cached);
    assert_eq!(translate(&server, &text), vec![(first.clone(), true)]);

    // Another program (or a bad disk) changes the stored text.
    let db = rusqlite::Connection::open(cache.path().join(brief::store::FILE_NAME)).unwrap();
    assert_eq!(db.execute("UPDATE entries SET output = 'The price of gold fell.'", []).unwrap(), 1);
    drop(db);

    assert_eq!(translate(&server, &text), vec![(first.clone(), false)], "recomputed, not the changed text");
    assert_eq!(translate(&server, &text), vec![(first, true)], "and stored again");
    assert_eq!(server.metric("brief_cache_corrupt_total{kind=\"translate\"}"), 1.0);
    let (status, body) = health(&server);
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    assert_eq!(body["checks"]["cache"]["corrupt_dropped"], 1);
    let isa = brief::models::kernels::isa::active().describe();
    assert_eq!(body["runtime"], serde_json::json!({"cpu_isa": isa, "translate": "f32", "summarize": "f32"}));
    assert!(server.logged("cached texts failed their checksum: dropped (never served)"));
}

/// Sets the file-size limit (`ulimit -f`) of a running process: writes beyond `bytes` then fail as on a full disk.
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let limit = bytes.unwrap_or(libc::RLIM_INFINITY);
    let new = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn a_cache_that_cannot_be_written_degrades_health_but_every_request_is_answered() {
    let (server, _cache) = start(&[]);
    let (stored, _) = translate(&server, &["Harga beras naik lagi."]).remove(0);
    limit_file_size(server.child.id(), Some(4096));

    // New texts are computed and answered; the ones stored before are still served from the cache.
    let fresh = translate(&server, &["Presiden meresmikan bendungan baru."]);
    assert!(!fresh[0].1);
    assert_eq!(translate(&server, &["Harga beras naik lagi."]), vec![(stored, true)]);
    let (status, body) = health(&server);
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(body["checks"]["cache"]["status"], "degraded");
    assert!(body["checks"]["cache"]["write_error"].is_string() && body["checks"]["cache"]["read_error"].is_null());
    assert!(server.metric("brief_cache_errors_total{op=\"write\"}") >= 1.0);

    // A brief is made and returned, but not stored: 200 without a Location, not 201.
    let article = "Harga beras naik lagi.\n\nPemerintah berjanji menurunkan harga.";
    let made = ureq::post(&server.url("/v1/briefs")).send_json(json!({"text": article, "name": "a.txt"})).unwrap();
    assert_eq!((made.status(), made.header("location")), (200, None));
    common::assert_valid_brief_json(&made.into_json().unwrap());
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log.matches("cache writes fail").count(), 1, "logged once: {log}");

    // Room again: the next write works and health is back.
    limit_file_size(server.child.id(), None);
    assert!(!translate(&server, &["Kereta cepat mulai beroperasi."])[0].1);
    assert_eq!(health(&server).1["status"], "ready");
    assert!(server.logged("cache writes work again"));
    let made = ureq::post(&server.url("/v1/briefs")).send_json(json!({"text": article, "name": "a.txt"})).unwrap();
    assert_eq!(made.status(), 201);
}

#[test]
fn a_damaged_cache_file_is_moved_aside_at_start() {
    let cache = tempfile::tempdir().unwrap();
    let garbage = b"not a database at all ".repeat(500);
    std::fs::write(cache.path().join(brief::store::FILE_NAME), &garbage).unwrap();
    let server = Server::start(&base_args(cache.path()), cache.path());
    let (status, body) = health(&server);
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");
    let aside = std::path::PathBuf::from(body["checks"]["cache"]["quarantined"].as_str().unwrap());
    assert_eq!(std::fs::read(&aside).unwrap(), garbage);
    assert!(server.logged("the cache file is damaged: moved it aside"));
    let (text, _) = translate(&server, &["Harga beras naik lagi."]).remove(0);
    assert_eq!(translate(&server, &["Harga beras naik lagi."]), vec![(text, true)], "the fresh cache works");
}

#[test]
fn a_cache_that_cannot_be_opened_leaves_the_service_answering() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("cache");
    std::fs::write(&not_a_dir, "a file where the cache directory should be").unwrap();
    let server = Server::start(&base_args(&not_a_dir), dir.path());
    let (status, body) = health(&server);
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(body["checks"]["cache"]["status"], "unavailable");
    assert!(!translate(&server, &["Harga beras naik lagi."])[0].1);
    assert!(!translate(&server, &["Harga beras naik lagi."])[0].1, "nothing is cached");
    let (status, body) = server.get("/v1/briefs");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, error_type(&body)), (503, "unavailable"));
    let (status, _) = server.get("/");
    assert_eq!(status, 503);
    assert!(server.logged("the cache cannot be opened: running without it"));
}

/// An int8 server says in `/health` how wide its int8 weights are: 7 bits on plain AVX2 by default, or as chosen.
#[test]
fn health_reports_the_int8_weight_width() {
    let expect = |args: &[&str], bits: u32| {
        let (server, _cache) = start(args);
        let (status, body) = health(&server);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["runtime"]["translate"], "int8", "{body}");
        assert_eq!(body["runtime"]["int8_weight_bits"], bits, "{args:?}: {body}");
    };
    expect(&["--dtype", "int8", "--cpu-isa", "portable"], 8);
    expect(&["--dtype", "int8", "--cpu-isa", "portable", "--int8-weight-bits", "7"], 7);
    if brief::models::kernels::Isa::Avx2.supported() {
        expect(&["--dtype", "int8", "--cpu-isa", "avx2"], 7);
    }
}
