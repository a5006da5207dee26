//! The LibreTranslate clients people already run, each sending its exact requests (method, path, encoding,
//! fields) to `brief serve` and reading the response fields it reads. Where each request shape comes from is
//! named at each test (the client's source file). The real `libretranslatepy` and `deep-translator` run against
//! a server in scripts/lt_clients.sh (called by .ci/run).

mod common;

use common::server::{base_args, Server};
use serde_json::{json, Value};

fn start(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut args = base_args(cache.path());
    args.extend(extra.iter().map(|s| s.to_string()));
    (Server::start(&args, cache.path()), cache)
}

/// A response as a client sees it.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` with `headers` and `body` (none: no body at all).
fn send(server: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let mut request = ureq::request(method, &server.url(path));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    Answer { status, headers, body: response.into_string().unwrap() }
}

fn urlencoded(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

const BOUNDARY: &str = "----brief-test-7d1f0a";

/// A multipart/form-data body as browsers (FormData) and Guzzle write it.
fn multipart(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body.into_bytes()
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

const ID: &str = "Harga beras naik lagi.";
const ID_2: &str = "Presiden meresmikan bendungan baru di Jawa Barat.";

/// What the server gives for `text` through the plainest request (JSON, source id): the answer every other
/// encoding must reproduce exactly.
fn reference(server: &Server, text: &str) -> String {
    let (status, body) = server.post_json("/translate", &json!({"q": text, "source": "id", "target": "en"}));
    assert_eq!(status, 200, "{body}");
    body["translatedText"].as_str().unwrap().to_string()
}

/// Mastodon (app/lib/translation_service/libre_translate.rb): JSON `{q: [texts], source, target, format: "html",
/// api_key: nil}` with `Content-Type: application/json`; reads `translatedText[i]` and
/// `detectedLanguage[i].language`; `GET /languages` for `code` and `targets`.
#[test]
fn mastodon() {
    let (server, _cache) = start(&[]);
    let body = json!({"q": [format!("<p>{ID}</p>"), format!("<p>{ID_2}</p>")], "source": "auto", "target": "en",
        "format": "html", "api_key": null});
    let answer =
        send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(body.to_string().as_bytes()));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let data = answer.json();
    assert_eq!(
        data["translatedText"],
        json!([format!("<p>{}</p>", reference(&server, ID)), format!("<p>{}</p>", reference(&server, ID_2))])
    );
    assert_eq!(data["detectedLanguage"][0]["language"], "id");
    assert_eq!(data["detectedLanguage"][1]["language"], "id");
    let languages = send(&server, "GET", "/languages", &[("Content-Type", "application/json")], None).json();
    let targets: Vec<(&str, Vec<&str>)> = languages
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["code"].as_str().unwrap(),
                l["targets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(targets, vec![("id", vec!["en"]), ("en", vec![])]);
}

/// Akkoma (lib/pleroma/akkoma/translators/libre_translate.ex): JSON `{q, source: from || "auto", target,
/// format: "html", api_key: nil}`; reads `translatedText` and `detectedLanguage.language`; `GET /languages`.
#[test]
fn akkoma() {
    let (server, _cache) = start(&[]);
    let body = json!({"q": ID, "source": "auto", "target": "en", "format": "html", "api_key": null});
    let answer =
        send(&server, "POST", "/translate", &[("content-type", "application/json")], Some(body.to_string().as_bytes()));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let data = answer.json();
    assert_eq!(data["translatedText"], reference(&server, ID));
    assert_eq!(data["detectedLanguage"]["language"], "id");
    let languages = send(&server, "GET", "/languages", &[], None).json();
    assert_eq!(languages[0]["code"], "id");
    assert_eq!(languages[0]["name"], "Indonesian");
}

/// Weblate (weblate/machinery/libretranslate.py): `GET /languages` for codes, then JSON with `q` a list (up to
/// 20 texts) and `api_key: ""` when none is set, reading `translatedText`; older releases sent a urlencoded form.
#[test]
fn weblate() {
    let (server, _cache) = start(&[]);
    let codes: Vec<String> = send(&server, "GET", "/languages", &[], None)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, ["id", "en"]);
    let body = json!({"api_key": "", "q": [ID, ID_2], "source": "id", "target": "en"}).to_string();
    let answer = send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(body.as_bytes()));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["translatedText"], json!([reference(&server, ID), reference(&server, ID_2)]));
    let form = urlencoded(&[("api_key", ""), ("q", ID), ("source", "id"), ("target", "en")]);
    let answer = send(
        &server,
        "POST",
        "/translate",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    );
    assert_eq!(answer.json()["translatedText"], reference(&server, ID));
}

/// Discourse (discourse-translator, LibreTranslate provider): urlencoded forms posted with
/// `URI.encode_www_form`: `/detect` with `q` and `api_key`, reading `[0].language`; `/languages` POSTed with
/// `api_key` only; `/translate` with `q`, `source`, `target`, `format: "html"`, `api_key`.
#[test]
fn discourse() {
    let (server, _cache) = start(&[]);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let detect = send(&server, "POST", "/detect", &[form], Some(urlencoded(&[("q", ID), ("api_key", "")]).as_bytes()));
    assert_eq!(detect.status, 200, "{}", detect.body);
    assert_eq!(detect.json()[0]["language"], "id");
    let languages = send(&server, "POST", "/languages", &[form], Some(urlencoded(&[("api_key", "")]).as_bytes()));
    assert_eq!(languages.status, 200, "{}", languages.body);
    assert!(languages.json().as_array().unwrap().iter().any(|l| l["code"] == "id"));
    let fields = [("q", ID), ("source", "id"), ("target", "en"), ("format", "html"), ("api_key", "")];
    let answer = send(&server, "POST", "/translate", &[form], Some(urlencoded(&fields).as_bytes()));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["translatedText"], reference(&server, ID));
}

/// Nextcloud (integration_libretranslate, through the jefs42/libretranslate PHP library): `POST /` (answer
/// ignored), `GET /frontend/settings` and `/languages`; `POST /detect?q=…&api_key=` with an empty body;
/// `POST /translate` as multipart/form-data (`q`, `source`, `target`, `format: html`, `api_key: ""`).
#[test]
fn nextcloud() {
    let (server, _cache) = start(&[]);
    // It first POSTs the bare URL and ignores the answer.
    assert_eq!(send(&server, "POST", "/", &[], Some(b"")).status, 405);
    let settings = send(&server, "GET", "/frontend/settings", &[], None);
    assert_eq!(settings.status, 200);
    assert_eq!(settings.json()["language"]["source"]["code"], "id");
    let query = urlencoded(&[("q", ID), ("api_key", "")]);
    let detect = send(&server, "POST", &format!("/detect?{query}"), &[], Some(b""));
    assert_eq!(detect.status, 200, "{}", detect.body);
    assert_eq!(detect.json()[0]["language"], "id");
    let body = multipart(&[("q", ID), ("source", "id"), ("target", "en"), ("format", "html"), ("api_key", "")]);
    let answer = send(&server, "POST", "/translate", &[("Content-Type", &multipart_type())], Some(&body));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["translatedText"], reference(&server, ID));
}

/// Dialect (dialect/providers/modules/libretrans.py): checks `GET /spec` and `GET /frontend/settings`
/// (`charLimit`, `apiKeys`, `keyRequired`, `suggestions`), lists `GET /languages`, translates with JSON
/// `{q, source, target, api_key}`, and tells errors apart by their texts.
#[test]
fn dialect() {
    let (server, _cache) = start(&["--api-key", "sesame", "--char-limit", "40"]);
    let spec = send(&server, "GET", "/spec", &[], None);
    assert_eq!(spec.status, 200);
    assert_eq!(spec.json()["info"]["title"], "LibreTranslate", "Dialect accepts an instance by this title");
    let settings = send(&server, "GET", "/frontend/settings", &[], None).json();
    assert_eq!(
        settings,
        json!({"charLimit": 40, "frontendTimeout": 500, "apiKeys": true, "keyRequired": true, "suggestions": false,
            "filesTranslation": true, "supportedFilesFormat": [".txt", ".md", ".html", ".htm"],
            "language": {"source": {"code": "id", "name": "Indonesian"}, "target": {"code": "en", "name": "English"}}})
    );
    let translate = |body: Value| {
        send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(body.to_string().as_bytes()))
    };
    let ok = translate(json!({"q": ID, "source": "id", "target": "en", "api_key": "sesame"}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["translatedText"], reference_with_key(&server, ID, "sesame"));
    let error = |answer: Answer| (answer.status, answer.json()["error"].as_str().unwrap().to_string());
    assert_eq!(
        error(translate(json!({"q": ID, "source": "id", "target": "en"}))),
        (403, "Please contact the server operator to obtain an API key".into())
    );
    assert_eq!(
        error(translate(json!({"q": ID, "source": "id", "target": "en", "api_key": "wrong"}))),
        (403, "Invalid API key".into())
    );
    let (status, text) = error(translate(json!({"q": ID, "source": "fr", "target": "en", "api_key": "sesame"})));
    assert!(status == 400 && text.contains("is not supported"), "{status} {text}");
    let long = "Harga beras naik lagi di pasar tradisional kota.";
    assert_eq!(
        error(translate(json!({"q": long, "source": "id", "target": "en", "api_key": "sesame"}))),
        (400, format!("Invalid request: request ({}) exceeds text limit (40)", long.chars().count()))
    );
    let suggest = send(&server, "POST", "/suggest", &[("Content-Type", "application/json")], Some(b"{}"));
    assert_eq!(
        (suggest.status, suggest.json()["error"].as_str().unwrap()),
        (403, "Suggestions are disabled on this server.")
    );
}

fn reference_with_key(server: &Server, text: &str, key: &str) -> String {
    let body = json!({"q": text, "source": "id", "target": "en", "api_key": key});
    let (status, body) = server.post_json("/translate", &body);
    assert_eq!(status, 200, "{body}");
    body["translatedText"].as_str().unwrap().to_string()
}

/// Crow Translate (QOnlineTranslator src/qonlinetranslator.cpp): `/detect` first, then `/translate`, each a
/// urlencoded body written by hand that starts with `&` (`&q=<QUrl::toPercentEncoding>&source=…&target=…
/// &api_key=<raw, empty without a key>`); reads `[0].language` and `translatedText`.
#[test]
fn crow_translate() {
    let (server, _cache) = start(&[]);
    let text = "Harga beras naik 5% (lagi) & petani senang?";
    let body = format!("&q={}&source=id&target=en&api_key=", percent_encode_all(text));
    let answer = send(
        &server,
        "POST",
        "/translate",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["translatedText"], reference(&server, text));
    let detect = send(
        &server,
        "POST",
        "/detect",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(format!("&q={}&api_key=", percent_encode_all(ID)).as_bytes()),
    );
    assert_eq!(detect.json()[0]["language"], "id");
}

/// Every byte but unreserved ones as %XX, as `QUrl::toPercentEncoding` writes it (spaces as %20).
fn percent_encode_all(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// libretranslatepy (`LibreTranslateAPI.translate`): urllib's `Request(url, data=urlencode(params))`, a
/// urlencoded POST of `q`, `source`, `target` (and `api_key` when set); `detect` the same with `q`.
#[test]
fn libretranslatepy_shape() {
    let (server, _cache) = start(&[]);
    let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("User-Agent", "Python-urllib/3.11")];
    let body = urlencoded(&[("q", ID), ("source", "id"), ("target", "en")]);
    let answer = send(&server, "POST", "/translate", &headers, Some(body.as_bytes()));
    assert_eq!(answer.json()["translatedText"], reference(&server, ID));
    let detect = send(&server, "POST", "/detect", &headers, Some(urlencoded(&[("q", ID)]).as_bytes()));
    assert_eq!(detect.json(), json!([{"confidence": detect.json()[0]["confidence"], "language": "id"}]));
}

/// deep-translator (deep_translator/libre.py): `requests.post(base_url + "translate", params=…)`: every field
/// in the query string and no body; reads `translatedText`, and takes any status but 200 as a failure.
#[test]
fn deep_translator_shape() {
    let (server, _cache) = start(&[]);
    let query = urlencoded(&[("q", ID), ("source", "id"), ("target", "en"), ("format", "text")]);
    let answer = send(&server, "POST", &format!("/translate?{query}"), &[("Content-Length", "0")], Some(b""));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["translatedText"], reference(&server, ID));
    let auto = urlencoded(&[("q", ID), ("source", "auto"), ("target", "en"), ("format", "text")]);
    let answer = send(&server, "POST", &format!("/translate?{auto}"), &[], Some(b""));
    assert_eq!(answer.json()["translatedText"], reference(&server, ID));
}

/// The npm `translate` package (src/engines/libre.js): JSON `{q, source, target, api_key}` with the key
/// `undefined` (so absent), reading `translatedText`, and `error` on failure.
#[test]
fn npm_translate() {
    let (server, _cache) = start(&[]);
    let body = json!({"q": ID, "source": "id", "target": "en"});
    let answer =
        send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(body.to_string().as_bytes()));
    assert_eq!(answer.json()["translatedText"], reference(&server, ID));
    let bad = json!({"q": ID, "source": "de", "target": "en"});
    let answer =
        send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(bad.to_string().as_bytes()));
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"].as_str().unwrap().starts_with("de is not supported"));
}

/// LibreTranslate's own page (static/js/app.js): `GET /frontend/settings`, then multipart FormData with `q`,
/// `source`, `target`, `format`, `alternatives: 3` and `api_key: ""`; reads `translatedText`, `alternatives`
/// and, for `auto`, `detectedLanguage`.
#[test]
fn libretranslate_web_page() {
    let (server, _cache) = start(&[]);
    let settings = send(&server, "GET", "/frontend/settings", &[], None).json();
    assert_eq!(settings["charLimit"], -1);
    assert_eq!(settings["language"]["target"]["code"], "en");
    let body = multipart(&[
        ("q", ID),
        ("source", "auto"),
        ("target", "en"),
        ("format", "text"),
        ("alternatives", "3"),
        ("api_key", ""),
    ]);
    let answer = send(&server, "POST", "/translate", &[("Content-Type", &multipart_type())], Some(&body));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let data = answer.json();
    assert_eq!(data["translatedText"], reference(&server, ID));
    assert_eq!(data["detectedLanguage"]["language"], "id");
    assert_eq!(data["alternatives"], json!(expected_alternatives(ID, 3)), "{data}");
    let html = multipart(&[
        ("q", "<b>Harga</b> naik."),
        ("source", "id"),
        ("target", "en"),
        ("format", "html"),
        ("alternatives", "3"),
    ]);
    let answer = send(&server, "POST", "/translate", &[("Content-Type", &multipart_type())], Some(&html)).json();
    assert_eq!(answer["alternatives"], json!([]), "LibreTranslate gives no alternatives for html");
}

/// A page on another origin: the browser's preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-*`), then the request; both allowed for any origin by default (as LibreTranslate's
/// flask-cors does), and only for the listed ones with `--cors-origins`.
#[test]
fn a_page_on_another_origin() {
    let (server, _cache) = start(&[]);
    let preflight = [
        ("Origin", "https://news.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
    ];
    let answer = send(&server, "OPTIONS", "/translate", &preflight, None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert!(answer.header("access-control-allow-methods").is_some());
    let body = json!({"q": ID, "source": "id", "target": "en"}).to_string();
    let answer = send(
        &server,
        "POST",
        "/translate",
        &[("Origin", "https://news.example"), ("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!((answer.status, answer.header("access-control-allow-origin")), (200, Some("*")));

    let (listed, _cache) = start(&["--cors-origins", "https://desk.example"]);
    let allowed =
        send(&listed, "OPTIONS", "/translate", &[("Origin", "https://desk.example"), preflight[1], preflight[2]], None);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://desk.example"));
    let other = send(&listed, "OPTIONS", "/translate", &preflight, None);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// Requests the encodings share: the same limits and codes in each, `null`/`""` keys as none, and a request id.
#[test]
fn every_encoding_gets_the_same_checks() {
    let (server, _cache) = start(&["--char-limit", "30", "--batch-limit", "2"]);
    let too_long = "Harga beras naik lagi di pasar kota.";
    let message = format!("Invalid request: request ({}) exceeds text limit (30)", too_long.chars().count());
    let json_body = json!({"q": too_long, "source": "id", "target": "en"}).to_string();
    let form_body = urlencoded(&[("q", too_long), ("source", "id"), ("target", "en")]);
    let multipart_body = multipart(&[("q", too_long), ("source", "id"), ("target", "en")]);
    let query = format!("/translate?{form_body}");
    let answers = [
        send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(json_body.as_bytes())),
        send(
            &server,
            "POST",
            "/translate",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(form_body.as_bytes()),
        ),
        send(&server, "POST", "/translate", &[("Content-Type", &multipart_type())], Some(&multipart_body)),
        send(&server, "POST", &query, &[], Some(b"")),
    ];
    for answer in &answers {
        assert_eq!(
            (answer.status, answer.json()["error"].as_str().unwrap()),
            (400, message.as_str()),
            "{}",
            answer.body
        );
    }
    let batch = json!({"q": ["Satu.", "Dua.", "Tiga."], "source": "id", "target": "en"}).to_string();
    let answer = send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(batch.as_bytes()));
    assert_eq!(
        (answer.status, answer.json()["error"].as_str().unwrap()),
        (400, "Invalid request: request (3) exceeds text limit (2)")
    );
    // A leading `&`, and fields split between the query and the body (the query's first).
    let split = format!("&q={}&source=fr", percent_encode_all("Harga naik."));
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let answer = send(&server, "POST", "/translate?source=id", &[form], Some(split.as_bytes()));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["translatedText"], reference(&server, "Harga naik."));
    for missing in [json!({"source": "id", "target": "en"}), json!({"q": "", "source": "id"}), json!({"q": null})] {
        let answer = send(
            &server,
            "POST",
            "/translate",
            &[("Content-Type", "application/json")],
            Some(missing.to_string().as_bytes()),
        );
        assert_eq!(
            (answer.status, answer.json()["error"].as_str().unwrap()),
            (422, "Invalid request: missing q parameter")
        );
    }
    let answer = send(&server, "POST", "/translate", &[("Content-Type", "application/json")], Some(b"[1, 2]"));
    assert_eq!((answer.status, answer.json()["error"].as_str().unwrap()), (400, "Invalid JSON format"));
    let answer = send(&server, "POST", "/translate?alternatives=two&q=Halo", &[], None);
    assert_eq!(
        (answer.status, answer.json()["error"].as_str().unwrap()),
        (422, "Invalid request: alternatives parameter is not a number")
    );
    assert!(answer.header("x-request-id").is_some_and(|id| id.len() == 36), "{:?}", answer.headers);
}

/// `api_key` as `""` or `null` counts as absent, in every encoding.
#[test]
fn empty_and_null_keys_count_as_absent() {
    let (server, _cache) = start(&["--api-key", "sesame"]);
    for body in [json!({"q": ID, "api_key": ""}), json!({"q": ID, "api_key": null})] {
        let answer = send(
            &server,
            "POST",
            "/translate",
            &[("Content-Type", "application/json")],
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(
            (answer.status, answer.json()["error"].as_str().unwrap()),
            (403, "Please contact the server operator to obtain an API key")
        );
    }
    let answer = send(
        &server,
        "POST",
        "/translate?api_key=",
        &[("Authorization", "Bearer sesame"), ("Content-Type", "application/x-www-form-urlencoded")],
        Some(urlencoded(&[("q", ID)]).as_bytes()),
    );
    assert_eq!(answer.status, 200, "an empty api_key field leaves the Authorization header to count: {}", answer.body);
}

/// Responses are gzip-compressed for clients that ask (tower-http), and identical once decompressed. (Raw HTTP:
/// ureq, with the features hf-hub turns on, would decompress it out of sight.)
#[test]
fn responses_are_compressed_when_asked() {
    use std::io::{Read, Write};
    let (server, _cache) = start(&[]);
    let plain = send(&server, "GET", "/openapi.json", &[], None);
    assert_eq!(plain.header("content-encoding"), None);
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let request =
        format!("GET /openapi.json HTTP/1.1\r\nHost: {address}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip") && head.contains("transfer-encoding: chunked"), "{head}");
    let compressed = dechunk(&raw[split + 4..]);
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..]).read_to_string(&mut text).unwrap();
    assert!(compressed.len() < text.len() / 2, "{} of {}", compressed.len(), text.len());
    assert_eq!(text, plain.body);
}

/// The payload of a chunked HTTP/1.1 body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
}

/// What LibreTranslate's `alternatives=n` must give on the test server (`--beams 2 --max-new-tokens 8`): the
/// engine's next-best hypotheses of a beam `n + 1` wide (its n-best is token-exact with transformers'
/// `num_return_sequences`: tests/parity_*), without blanks, repeats or the translation itself.
fn expected_alternatives(text: &str, n: usize) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let options = json!({"num_beams": n + 1, "max_new_tokens": 8, "num_return_sequences": n + 1});
    let mut hypotheses =
        engine.generate_texts_nbest(&[text.to_string()], &common::overrides(&options)).unwrap().remove(0);
    let best = hypotheses.remove(0);
    let mut out: Vec<String> = Vec::new();
    for h in hypotheses {
        if !h.is_empty() && h != best && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// `alternatives` for a list (one list per text), with the same answers as each text alone, and from the cache
/// the second time; `/v1/translate` gives the raw next-best hypotheses.
#[test]
fn alternatives_for_lists_and_the_native_api() {
    let (server, _cache) = start(&[]);
    let texts = ["Gempa mengguncang Sulawesi Tengah pada Senin pagi.", ID_2];
    let body = json!({"q": texts, "source": "id", "target": "en", "alternatives": 2});
    for _ in 0..2 {
        let (status, data) = server.post_json("/translate", &body);
        assert_eq!(status, 200, "{data}");
        assert_eq!(
            data["alternatives"],
            json!([expected_alternatives(texts[0], 2), expected_alternatives(texts[1], 2)])
        );
        assert_eq!(data["translatedText"], json!([reference(&server, texts[0]), reference(&server, texts[1])]));
    }
    let (status, data) = server.post_json("/v1/translate", &json!({"texts": [texts[0]], "alternatives": 3}));
    assert_eq!(status, 200, "{data}");
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let options = json!({"num_beams": 4, "max_new_tokens": 8, "num_return_sequences": 4});
    let nbest = engine.generate_texts_nbest(&[texts[0].to_string()], &common::overrides(&options)).unwrap().remove(0);
    assert_eq!(data["translations"][0]["text"], nbest[0]);
    assert_eq!(data["translations"][0]["alternatives"], json!(nbest[1..]));
    let (status, data) = server.post_json("/v1/translate", &json!({"texts": ["x"], "alternatives": 32}));
    assert_eq!((status, data["error_type"].as_str()), (422, Some("validation_error")));
}
