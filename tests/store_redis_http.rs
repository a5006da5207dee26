//! `brief serve` on a Redis store that goes away and comes back: every request is still answered (computed,
//! not stored), a brief made meanwhile is 200 without `Location`, `/health` is degraded with the reason, rate
//! limits fall back to the replica, and all is back once the server answers again.

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::server::{base_args, Server};
use serde_json::json;

fn post(server: &Server, path: &str, body: &serde_json::Value) -> (u16, Option<String>) {
    let response = ureq::post(&server.url(path)).set("Authorization", "Bearer sesame").send_json(body.clone());
    match response {
        Ok(r) => (r.status(), r.header("location").map(str::to_string)),
        Err(ureq::Error::Status(code, r)) => (code, r.header("location").map(str::to_string)),
        Err(e) => panic!("{e}"),
    }
}

fn health(server: &Server) -> serde_json::Value {
    serde_json::from_str(&server.get("/health").1).unwrap()
}

#[test]
fn a_redis_store_that_goes_away_loses_no_request_and_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut redis) = RedisServer::start() else { return };
    let port = redis.port;
    let cache = tmp.path().join("cache");
    let mut args = base_args(&cache);
    args.extend(["--store".into(), format!("redis://127.0.0.1:{port}/0"), "--api-key".into(), "sesame".into()]);
    let server = Server::start(&args, &cache);
    let article = json!({"name": "a.txt", "text": "Harga beras naik\n\nHarga beras naik lagi di Jakarta."});
    let translate = json!({"texts": ["Harga beras naik."]});

    assert_eq!(post(&server, "/v1/translate", &translate).0, 200);
    let (status, location) = post(&server, "/v1/briefs", &article);
    assert_eq!((status, location.is_some()), (201, true));
    let h = health(&server);
    assert_eq!((h["status"].as_str(), h["checks"]["cache"]["backend"].as_str()), (Some("ready"), Some("redis")));

    redis.kill();
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(post(&server, "/v1/translate", &json!({"texts": ["Harga cabai turun."]})).0, 200);
    }
    let (status, location) = post(&server, "/v1/briefs", &article);
    assert_eq!((status, location), (200, None), "a brief that cannot be stored is answered, without Location");
    let h = health(&server);
    eprintln!("down: 5 requests and /health in {:?}; health {}", started.elapsed(), h["checks"]["cache"]);
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["checks"]["cache"]["status"], "degraded");
    assert!(h["checks"]["cache"]["read_error"].is_string());
    let list = ureq::get(&server.url("/v1/briefs")).set("Authorization", "Bearer sesame").call();
    assert!(matches!(list, Err(ureq::Error::Status(503, _))), "the list cannot be read: 503, not 500");
    assert!(server.logged("rate limits are kept per replica"));

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while health(&server)["status"] != "ready" {
        assert!(Instant::now() < deadline, "health is ready again once Redis answers");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, location) = post(&server, "/v1/briefs", &article);
    assert_eq!((status, location.is_some()), (201, true));
    assert_eq!(post(&server, "/v1/translate", &translate).0, 200);
    assert!(server.logged("rate limits are kept in the shared store again"));
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log.matches("rate limits are kept per replica").count(), 1, "logged once:\n{log}");
}
