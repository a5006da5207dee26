//! LibreTranslate's file translation over a real socket with the tiny models: `.txt`, `.md` and `.html` uploads
//! come back as `/translate` gives their text, with their structure; the errors; names that would reach outside
//! the folder; expiry.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::server::{base_args, response, Server};
use serde_json::{json, Value};

fn start(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut args = base_args(cache.path());
    args.extend(extra.iter().map(|s| s.to_string()));
    (Server::start(&args, cache.path()), cache)
}

const BOUNDARY: &str = "brief-test-boundary-7d1f";

/// One part of a multipart body: a field name, a file name (for a file) and the content.
struct Part<'a>(&'a str, Option<&'a str>, &'a [u8]);

fn multipart(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for Part(name, file_name, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file_name {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes())
            }
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// POSTs `parts` to /translate_file with `headers`: (status, JSON body).
fn upload_with(server: &Server, parts: &[Part], headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = ureq::post(&server.url("/translate_file"))
        .set("Content-Type", &format!("multipart/form-data; boundary={BOUNDARY}"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    response(request.send_bytes(&multipart(parts)))
}

fn upload(server: &Server, file_name: &str, content: &str) -> (u16, Value) {
    upload_with(
        server,
        &[Part("source", None, b"id"), Part("file", Some(file_name), content.as_bytes()), Part("target", None, b"en")],
        &[],
    )
}

/// GETs a URL: (status, Content-Type, Content-Disposition, body).
fn download(url: &str) -> (u16, String, String, String) {
    let r = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let header = |name: &str| r.header(name).unwrap_or_default().to_string();
    let (status, content_type, disposition) = (r.status(), header("content-type"), header("content-disposition"));
    (status, content_type, disposition, r.into_string().unwrap())
}

/// Uploads `content` as `file_name` and downloads the translation, checking the URL and the attachment's name.
fn translated_file(server: &Server, file_name: &str, content: &str) -> (String, String) {
    let (status, body) = upload(server, file_name, content);
    assert_eq!(status, 200, "{body}");
    let url = body["translatedFileUrl"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let name = url.strip_prefix(&format!("{}/download_file/", server.url)).expect(url);
    let (id, rest) = name.split_at(32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{name}");
    assert_eq!(rest, format!(".{file_name}"));
    let (status, content_type, disposition, text) = download(url);
    assert_eq!(status, 200);
    assert_eq!(disposition, format!("attachment; filename=\"{file_name}\""));
    (content_type, text)
}

fn translate(server: &Server, q: Value, format: &str) -> Value {
    let (status, body) =
        server.post_json("/translate", &json!({"q": q, "source": "id", "target": "en", "format": format}));
    assert_eq!(status, 200, "{body}");
    body["translatedText"].clone()
}

#[test]
fn files_come_back_translated_as_translate_gives_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    // Without the cache, so that both sides are computed.
    let (server, _cache) = start(&["--no-cache", "--files-dir", files.to_str().unwrap()]);

    let text = "Harga beras naik lagi.\n\nPemerintah berjanji bertindak. Petani khawatir.\n";
    let (content_type, english) = translated_file(&server, "berita.txt", text);
    assert_eq!(content_type, "text/plain; charset=utf-8");
    assert_eq!(english, translate(&server, json!(text), "text"));
    // A byte-order mark and CRLF line ends come back as they went in.
    let (_, english) = translated_file(&server, "crlf.txt", &format!("\u{feff}{}", text.replace('\n', "\r\n")));
    let lf = translate(&server, json!(text), "text");
    assert_eq!(english, format!("\u{feff}{}", lf.as_str().unwrap().replace('\n', "\r\n")));

    let markdown = "# Harga Beras Naik\n\
        \n\
        Harga beras di [pasar induk](https://example.id/pasar?a=1) naik lagi.\n\
        \n\
        - Petani senang.\n\
        - Pedagang `kode_ini` khawatir.\n\
        \n\
        > Pemerintah berjanji bertindak.\n\
        \n\
        ```sh\n\
        echo \"jangan diterjemahkan\"\n\
        ```\n\
        \n\
        \x20   kode terindentasi tetap\n\
        \n\
        1. Satu dua tiga.\n";
    let pieces = [
        "Harga Beras Naik",
        "Harga beras di",
        "pasar induk",
        "naik lagi.",
        "Petani senang.",
        "Pedagang",
        "khawatir.",
        "Pemerintah berjanji bertindak.",
        "Satu dua tiga.",
    ];
    let t: Vec<String> = translate(&server, json!(pieces), "text")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected = format!(
        "# {}\n\n{} [{}](https://example.id/pasar?a=1) {}\n\n- {}\n- {} `kode_ini` {}\n\n> {}\n\n\
         ```sh\necho \"jangan diterjemahkan\"\n```\n\n    kode terindentasi tetap\n\n1. {}\n",
        t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8]
    );
    let (content_type, english) = translated_file(&server, "berita.md", markdown);
    assert_eq!(content_type, "text/markdown; charset=utf-8");
    assert_eq!(english, expected);

    let html = "<!DOCTYPE html>\n<html><head><title>Harga beras</title></head>\n\
        <body><p>Harga <b>beras</b> naik.</p><pre>kode</pre><a href=\"https://example.id\">Baca</a></body></html>\n";
    let (content_type, english) = translated_file(&server, "berita.HTML", html);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert_eq!(english, translate(&server, json!(html), "html"));

    // Behind a proxy, the URL is the one the client used.
    let (status, body) = upload_with(
        &server,
        &[Part("file", Some("a.txt"), b"Halo."), Part("source", None, b"id"), Part("target", None, b"en")],
        &[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "berita.example:8443, proxy.internal")],
    );
    assert_eq!(status, 200);
    let url = body["translatedFileUrl"].as_str().unwrap();
    assert!(url.starts_with("https://berita.example:8443/download_file/") && url.ends_with(".a.txt"), "{url}");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 5, "each upload is kept");
}

#[test]
fn bad_uploads_get_libretranslate_errors() {
    let (server, _cache) = start(&["--file-max-bytes", "64", "--api-key", "k"]);
    let error = |message: &str, error_type: &str| json!({"error": message, "error_type": error_type});
    let with_key = |file: Part<'static>| {
        vec![Part("api_key", None, b"k"), Part("source", None, b"id"), Part("target", None, b"en"), file]
    };

    let (status, body) = upload_with(&server, &with_key(Part("file", Some("berita.txt"), b"Halo.")), &[]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = upload(&server, "berita.txt", "Halo.");
    assert_eq!((status, body), (403, error("Please contact the server operator to obtain an API key", "forbidden")));
    let (status, body) = upload_with(
        &server,
        &with_key(Part("file", Some("berita.txt"), b"Halo.")).split_off(1),
        &[("Authorization", "Bearer k")],
    );
    assert_eq!(status, 200, "{body}");

    let cases: Vec<(Vec<Part>, u16, Value)> = vec![
        (
            with_key(Part("file", Some("berita.docx"), b"PK")),
            400,
            error("Invalid request: file format not supported", "invalid_request"),
        ),
        (
            with_key(Part("file", Some("berita"), b"Halo.")),
            400,
            error("Invalid request: file format not supported", "invalid_request"),
        ),
        (
            with_key(Part("note", None, b"no file here")),
            400,
            error("Invalid request: missing file parameter", "invalid_request"),
        ),
        (with_key(Part("file", Some(""), b"Halo.")), 400, error("Invalid request: empty file", "invalid_request")),
        (
            with_key(Part("file", Some("berita.txt"), b"Harga \xff naik.")),
            400,
            error("Invalid request: the file is not UTF-8 text", "invalid_request"),
        ),
        (
            vec![Part("api_key", None, b"k"), Part("target", None, b"en"), Part("file", Some("a.txt"), b"Halo.")],
            400,
            error("Invalid request: missing source parameter", "invalid_request"),
        ),
        (
            vec![Part("api_key", None, b"k"), Part("source", None, b"id"), Part("file", Some("a.txt"), b"Halo.")],
            400,
            error("Invalid request: missing target parameter", "invalid_request"),
        ),
        (
            with_key(Part("file", Some("berita.txt"), &[b'a'; 65])),
            413,
            error("Invalid request: the file is larger than this server's limit of 64 bytes", "payload_too_large"),
        ),
    ];
    for (parts, code, expected) in cases {
        let (status, body) = upload_with(&server, &parts, &[]);
        assert_eq!((status, &body), (code, &expected));
    }
    let (status, body) = upload_with(&server, &with_key(Part("file", Some("berita.txt"), &[b'a'; 64])), &[]);
    assert_eq!(status, 200, "exactly the limit is accepted: {body}");

    let (status, body) = upload_with(
        &server,
        &[
            Part("api_key", None, b"k"),
            Part("source", None, b"id"),
            Part("target", None, b"de"),
            Part("file", Some("a.txt"), b"Halo."),
        ],
        &[],
    );
    assert_eq!(
        (status, body),
        (
            400,
            error(
                "de is not supported as a target: brief translates Indonesian (id) into English (en)",
                "unsupported_language_pair"
            )
        )
    );
    // As LibreTranslate: a form without a file part has no file.
    let (status, body) =
        response(ureq::post(&server.url("/translate_file")).send_form(&[("api_key", "k"), ("source", "id")]));
    assert_eq!((status, body), (400, error("Invalid request: missing file parameter", "invalid_request")));
}

/// (status, body) of a GET sent as written, so that no client normalizes the path first.
fn raw_get(server: &Server, path: &str) -> (u16, String) {
    let addr = server.url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), body.to_string())
}

#[test]
fn names_that_reach_outside_the_folder_are_never_served() {
    let (server, cache) = start(&[]);
    let (status, body) = upload(&server, "berita.txt", "Halo.");
    assert_eq!(status, 200, "{body}");
    let files = cache.path().join("files");
    std::fs::write(cache.path().join("secret.txt"), "SECRET").unwrap();
    std::fs::write(files.join("notes.txt"), "SECRET").unwrap();
    let id = "0123456789abcdef0123456789abcdef";
    let invalid = r#"{"error":"Invalid filename","error_type":"invalid_request"}"#;
    let cases = [
        ("/download_file/..%2Fsecret.txt".to_string(), 400, invalid),
        ("/download_file/..%2F..%2Fetc%2Fpasswd".into(), 400, invalid),
        ("/download_file/%2Fetc%2Fpasswd".into(), 400, invalid),
        (
            format!("/download_file/{}", cache.path().join("secret.txt").display().to_string().replace('/', "%2F")),
            400,
            invalid,
        ),
        ("/download_file/..%5Csecret.txt".into(), 400, invalid),
        ("/download_file/..%5C..%5Csecret.txt".into(), 400, invalid),
        (format!("/download_file/{id}.%2E%2E%2Fsecret.txt"), 400, invalid),
        (format!("/download_file/{id}.x%00.txt"), 400, invalid),
        ("/download_file/notes.txt".into(), 400, invalid),
        ("/download_file/..".into(), 400, invalid),
        ("/download_file/%FF".into(), 400, invalid),
        ("/download_file/../secret.txt".into(), 404, r#"{"error":"no such endpoint","error_type":"not_found"}"#),
        (
            format!("/download_file/{id}.berita.txt"),
            404,
            r#"{"error":"no such file: it was never made here, or it expired","error_type":"not_found"}"#,
        ),
    ];
    for (path, code, expected) in cases {
        let (status, body) = raw_get(&server, &path);
        assert_eq!((status, body.as_str()), (code, expected), "{path}");
    }
}

#[test]
fn translated_files_expire() {
    let (server, cache) = start(&["--file-ttl-secs", "1"]);
    let (status, body) = upload(&server, "berita.txt", "Harga beras naik lagi.");
    assert_eq!(status, 200, "{body}");
    let url = body["translatedFileUrl"].as_str().unwrap();
    assert_eq!(download(url).0, 200);
    std::thread::sleep(Duration::from_millis(2200));
    let (status, _, _, body) = download(url);
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"no such file: it was never made here, or it expired","error_type":"not_found"}"#)
    );
    assert_eq!(std::fs::read_dir(cache.path().join("files")).unwrap().count(), 0, "and deleted");
}
