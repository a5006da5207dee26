//! Request parsing and validation through the real router, with no models loaded: whatever the method, path,
//! content type and body, the answer is never a 500 (a valid request gets 503 `loading`).
#![no_main]
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use brief::http::{router, AppState, Defaults, ServerConfig};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const PATHS: &[&str] =
    &["/translate", "/detect", "/languages", "/v1/translate", "/v1/summarize", "/v1/briefs", "/v1/briefs/x", "/health"];
const TYPES: &[&str] =
    &["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""];

fn runtime() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

fuzz_target!(|input: (u8, u8, bool, &[u8])| {
    let (path, kind, post, body) = input;
    let state = AppState {
        service: Arc::new(OnceLock::new()),
        metrics: Arc::new(brief::metrics::Metrics::new()),
        config: Arc::new(ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 4096,
            request_timeout: std::time::Duration::from_secs(1),
            access: Default::default(),
            watch_interval: None,
        }),
        defaults: Arc::new(Defaults::default()),
    };
    let mut request = Request::builder()
        .method(if post { "POST" } else { "GET" })
        .uri(PATHS[path as usize % PATHS.len()]);
    let content_type = TYPES[kind as usize % TYPES.len()];
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let status = runtime().block_on(router(state).oneshot(request)).unwrap().status();
    assert!(status.as_u16() < 500 || status.as_u16() == 503, "{status} for {input:?}");
});
