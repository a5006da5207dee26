//! The store's contract, the same test functions against SQLite (a temporary file) and Redis (a `redis-server`
//! this test starts on a free loopback port). Without `redis-server` on the PATH the Redis half fails, unless
//! `BRIEF_SKIP_REDIS=1`.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brief::store::{
    CacheKey, Entry, KeyParts, Lookup, Store, StoreConfig, StoreUrl, StoredBrief, Take, Verify, FILE_NAME,
};

mod common;

use common::redis::RedisServer;

const TTL: Duration = Duration::from_secs(3600);

/// A store under test and what it lives in.
struct Backend {
    store: Arc<Store>,
    redis: Option<RedisServer>,
    dir: tempfile::TempDir,
}

const PREFIX: &str = "test:";

fn config(url: StoreUrl) -> StoreConfig {
    StoreConfig { url, max_bytes: 1 << 30, verify: Verify::Quick, prefix: PREFIX.into(), text_ttl: TTL }
}

fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(StoreUrl::Sqlite(dir.path().join(FILE_NAME)))).unwrap();
    Some(Backend { store: Arc::new(store), redis: None, dir })
}

fn redis() -> Option<Backend> {
    let server = RedisServer::start()?;
    let store = Store::open(&config(StoreUrl::Redis(server.url()))).unwrap();
    Some(Backend { store: Arc::new(store), redis: Some(server), dir: tempfile::tempdir().unwrap() })
}

fn key(input: &str) -> CacheKey {
    KeyParts { model_id: "m", revision: "r", weights: "w", task: "translate", options: "{}", input }.key()
}

fn entry<'a>(key: CacheKey, input: &'a str, output: &'a str) -> Entry<'a> {
    Entry { key, task: "translate", model: "m@r", params: "{}", input, output }
}

fn brief(id: &str, day: u32) -> StoredBrief {
    StoredBrief {
        id: id.into(),
        name: format!("{id}.txt"),
        headline: "Harga beras naik".into(),
        summary: "Rice prices rose.".into(),
        created_at: format!("2026-01-{day:02}T08:00:00Z"),
        json: format!("{{\"id\":\"{id}\"}}"),
        ..StoredBrief::default()
    }
}

/// Changes the stored text of `input` behind the store's back (a bit flip, a hand edit, another writer).
fn tamper(b: &Backend, input: &str) {
    match &b.redis {
        Some(server) => {
            let name = format!("{PREFIX}text:{}", key(input).hex());
            let mut value: Vec<u8> = redis::cmd("GET").arg(&name).query(&mut server.conn()).unwrap();
            *value.last_mut().unwrap() ^= 1;
            redis::cmd("SET").arg(&name).arg(value).query::<()>(&mut server.conn()).unwrap();
        }
        None => {
            let db = rusqlite::Connection::open(b.dir.path().join(FILE_NAME)).unwrap();
            db.execute("UPDATE entries SET output = 'Rice prices fell.' WHERE input = ?1", [input]).unwrap();
        }
    }
}

fn texts_round_trip(b: Backend) {
    let s = &b.store;
    s.put_many(&[entry(key("a"), "a", "Rice prices rose."), entry(key("b"), "b", "Ya.")]).unwrap();
    assert_eq!(
        s.get_many(&[key("a"), key("c"), key("b")]).unwrap(),
        Lookup { outputs: vec![Some("Rice prices rose.".into()), None, Some("Ya.".into())], corrupt: 0 }
    );
    s.put_many(&[entry(key("a"), "a", "Rice prices rose again.")]).unwrap();
    assert_eq!(s.get_many(&[key("a")]).unwrap().outputs, vec![Some("Rice prices rose again.".into())]);
    assert_eq!(s.get_many(&[]).unwrap().outputs, Vec::<Option<String>>::new());
    assert_eq!(s.health().status, "ok");
}

fn a_checksum_mismatch_is_a_counted_miss(b: Backend) {
    let s = &b.store;
    s.put_many(&[entry(key("a"), "a", "Rice prices rose."), entry(key("b"), "b", "B")]).unwrap();
    tamper(&b, "a");
    assert_eq!(
        s.get_many(&[key("a"), key("b")]).unwrap(),
        Lookup { outputs: vec![None, Some("B".into())], corrupt: 1 }
    );
    let health = s.health();
    assert_eq!((health.status.as_str(), health.corrupt_dropped), ("ok", 1));
    // Dropped: the next lookup is a plain miss, and a recomputed text is served again.
    assert_eq!(s.get_many(&[key("a")]).unwrap(), Lookup { outputs: vec![None], corrupt: 0 });
    s.put_many(&[entry(key("a"), "a", "Rice prices rose.")]).unwrap();
    assert_eq!(s.get_many(&[key("a")]).unwrap().outputs, vec![Some("Rice prices rose.".into())]);
}

fn briefs_newest_first_a_page_at_a_time(b: Backend) {
    let s = &b.store;
    for (i, day) in [3, 1, 5, 2, 4].into_iter().enumerate() {
        s.put_brief(&brief(&format!("b{i}-{day}"), day)).unwrap();
    }
    let ids =
        |offset, limit| -> Vec<String> { s.briefs(offset, limit).unwrap().briefs.into_iter().map(|b| b.id).collect() };
    assert_eq!(ids(0, u64::MAX), ["b2-5", "b4-4", "b0-3", "b3-2", "b1-1"]);
    assert_eq!(ids(1, 2), ["b4-4", "b0-3"]);
    assert_eq!(ids(4, 10), ["b1-1"]);
    assert!(ids(5, 10).is_empty());
    assert_eq!(s.briefs(2, 0).unwrap().total, 5);
    assert_eq!(s.briefs(0, 2).unwrap().total, 5);
    // Replacing a brief keeps one of it.
    s.put_brief(&StoredBrief { summary: "Rice prices fell.".into(), ..brief("b0-3", 3) }).unwrap();
    assert_eq!(s.briefs(0, 100).unwrap().total, 5);
    assert_eq!(s.brief("b0-3").unwrap().unwrap().summary, "Rice prices fell.");
    assert_eq!(s.brief("nope").unwrap(), None);
}

fn buckets_are_atomic_under_concurrency(b: Backend) {
    let takes = [Take { bucket: "requests", capacity: 20, amount: 1 }];
    let granted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..10).filter(|_| b.store.take("k1", &takes).unwrap().iter().all(Duration::is_zero)).count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(granted, 20, "8 threads x 10 takes from a bucket of 20");
    // Empty: the next request is 60 s / 20 = 3 s away (less what refilled since).
    let wait = b.store.take("k1", &takes).unwrap()[0];
    assert!(wait > Duration::from_millis(2000) && wait <= Duration::from_secs(3), "{wait:?}");
    // A refusal takes nothing from the other buckets of the request; other keys have their own.
    let both = [Take { bucket: "chars", capacity: 100, amount: 60 }, takes[0]];
    assert!(!b.store.take("k1", &both).unwrap()[1].is_zero());
    assert!(b.store.take("k1", &both[..1]).unwrap()[0].is_zero(), "the 60 characters were not spent");
    assert!(b.store.take("k2", &takes).unwrap()[0].is_zero());
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(#[test] fn $name() { if let Some(b) = super::sqlite() { super::$name(b) } })*
        }
        mod redis_store {
            $(#[test] fn $name() { if let Some(b) = super::redis() { super::$name(b) } })*
        }
    };
}

contract!(
    texts_round_trip,
    a_checksum_mismatch_is_a_counted_miss,
    briefs_newest_first_a_page_at_a_time,
    buckets_are_atomic_under_concurrency,
);

#[test]
fn redis_texts_expire_and_briefs_do_not() {
    let Some(b) = redis() else { return };
    let server = b.redis.as_ref().unwrap();
    b.store.put_many(&[entry(key("a"), "a", "A")]).unwrap();
    b.store.put_brief(&brief("x", 1)).unwrap();
    let ttl = |name: String| -> i64 { redis::cmd("TTL").arg(name).query(&mut server.conn()).unwrap() };
    let text_ttl = ttl(format!("{PREFIX}text:{}", key("a").hex()));
    assert!(text_ttl > 3500 && text_ttl <= 3600, "a text lives --store-ttl-secs: {text_ttl}");
    assert_eq!(ttl(format!("{PREFIX}brief:x")), -1, "a brief never expires");
    assert_eq!(ttl(format!("{PREFIX}briefs")), -1, "nor does the list of briefs");
    // A hit renews the text's life.
    redis::cmd("EXPIRE")
        .arg(format!("{PREFIX}text:{}", key("a").hex()))
        .arg(10)
        .query::<()>(&mut server.conn())
        .unwrap();
    b.store.get_many(&[key("a")]).unwrap();
    assert!(ttl(format!("{PREFIX}text:{}", key("a").hex())) > 3500);
    // Nothing is written without the prefix.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut server.conn()).unwrap();
    assert!(keys.iter().all(|k| k.starts_with(PREFIX)), "{keys:?}");
}

#[test]
fn redis_down_mid_run_fails_calls_in_bounded_time_then_recovers_on_restart() {
    let Some(mut b) = redis() else { return };
    let takes = [Take { bucket: "requests", capacity: 20, amount: 1 }];
    b.store.put_many(&[entry(key("a"), "a", "A")]).unwrap();
    b.redis.as_mut().unwrap().kill();
    let started = Instant::now();
    assert!(b.store.get_many(&[key("a")]).is_err());
    assert!(b.store.put_many(&[entry(key("b"), "b", "B")]).is_err());
    assert!(b.store.put_brief(&brief("x", 1)).is_err());
    assert!(b.store.briefs(0, 10).is_err());
    assert!(b.store.take("k", &takes).is_err());
    let health = b.store.health();
    let took = started.elapsed();
    eprintln!("six calls against a dead server: {took:?}");
    assert!(took < Duration::from_secs(12), "each call is bounded: {took:?}");
    assert_eq!((health.status.as_str(), health.backend), ("degraded", "redis"));
    assert!(health.read_error.is_some() && health.write_error.is_some(), "{health:?}");

    b.redis.as_mut().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.store.put_many(&[entry(key("b"), "b", "B")]).is_err() {
        assert!(Instant::now() < deadline, "the store reconnects within 10 s of the server's return");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("reconnected {:?} after the restart began", started.elapsed() - took);
    assert_eq!(b.store.get_many(&[key("b"), key("a")]).unwrap().outputs, vec![Some("B".into()), None]);
    assert!(b.store.take("k", &takes).unwrap()[0].is_zero());
    assert_eq!(b.store.health().status, "ok");
}

#[test]
fn redis_unreachable_at_start_opens_and_reports() {
    if RedisServer::start().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let store = Store::open(&config(StoreUrl::Redis(format!("redis://127.0.0.1:{port}/0")))).unwrap();
    assert!(store.get_many(&[key("a")]).is_err());
    let health = store.health();
    assert_eq!(health.status, "degraded");
    assert_eq!(health.url.as_deref(), Some(format!("redis://127.0.0.1:{port}/0").as_str()));
}
