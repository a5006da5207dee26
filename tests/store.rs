//! The store's contract, the same test functions against SQLite (a temporary file) and Redis (a `redis-server`
//! this test starts on a free loopback port). Without `redis-server` on the PATH the Redis half fails, unless
//! `BRIEF_SKIP_REDIS=1`.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brief::store::{
    BriefQuery, CacheKey, Entry, KeyParts, Lookup, Store, StoreConfig, StoreUrl, StoredBrief, Take, Verify, FILE_NAME,
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

/// The ids `query` finds, and the total.
fn found(s: &Store, query: &BriefQuery) -> (Vec<String>, u64) {
    let page = s.find(query).unwrap();
    (page.briefs.into_iter().map(|b| b.id).collect(), page.total)
}

fn all(q: BriefQuery) -> BriefQuery {
    BriefQuery { limit: u64::MAX, ..q }
}

fn day(text: &str) -> time::Date {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).unwrap()
}

fn pages_never_repeat_or_skip(b: Backend) {
    let s = &b.store;
    // Five briefs a day over five days: ties in listing time are broken by id, descending.
    for i in 0..25u32 {
        s.put_brief(&brief(&format!("b{i:02}"), i % 5 + 1)).unwrap();
    }
    // Published later than it was made: listed by its publication time (03:00 UTC on 1 February).
    let late = StoredBrief { published_at: Some("2026-02-01T10:00:00+07:00".into()), ..brief("a-late", 1) };
    s.put_brief(&late).unwrap();
    let mut expected: Vec<(u32, String)> = (0..25u32).map(|i| (i % 5 + 1, format!("b{i:02}"))).collect();
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> =
        std::iter::once("a-late".to_string()).chain(expected.into_iter().map(|(_, id)| id)).collect();
    assert_eq!(expected[..7], ["a-late", "b24", "b19", "b14", "b09", "b04", "b23"]);
    let mut paged = Vec::new();
    for page in 0..7 {
        let (ids, total) = found(s, &BriefQuery::page(page * 4, 4));
        assert_eq!(total, 26);
        assert_eq!(ids.len(), if page < 6 { 4 } else { 2 }, "page {page}");
        paged.extend(ids);
    }
    assert_eq!(paged, expected, "the pages together are the whole list, in order");
    assert_eq!(found(s, &BriefQuery::page(26, 4)), (vec![], 26));
}

/// Briefs with English text to search: only `translation` holds the words searched for.
fn searchable(id: &str, day: u32, translation: &str) -> StoredBrief {
    StoredBrief {
        headline: "Prices move".into(),
        summary: "Markets changed.".into(),
        translation: translation.into(),
        json: format!("{{\"id\":\"{id}\",\"headline\":{{\"source\":\"Harga bergerak\"}}}}"),
        ..brief(id, day)
    }
}

fn search_finds_words_of_the_english_text(b: Backend) {
    let s = &b.store;
    s.put_brief(&searchable("dam", 1, "The president opened a new dam in Subang.\nFarmers welcomed it.")).unwrap();
    s.put_brief(&searchable("rice", 2, "Rice prices rose in Jakarta.\nTraders blamed the weather.")).unwrap();
    s.put_brief(&searchable("both", 3, "Rice farmers near the dam had a good harvest.")).unwrap();
    let q = |text: &str| all(BriefQuery { text: Some(text.into()), ..Default::default() });
    assert_eq!(found(s, &q("subang")), (vec!["dam".to_string()], 1), "a word of the translation only");
    assert_eq!(found(s, &q("SUBANG,  dam!")), (vec!["dam".to_string()], 1), "all words, any case");
    assert_eq!(found(s, &q("dam")), (vec!["both".to_string(), "dam".to_string()], 2), "newest first");
    assert_eq!(found(s, &q("markets")).1, 3, "the summary is searched");
    assert_eq!(found(s, &q("prices move")).1, 3, "and the headline");
    assert_eq!(found(s, &q("zebra")), (vec![], 0));
    assert_eq!(found(s, &q("harga")), (vec![], 0), "the Indonesian is not searched");
    assert_eq!(found(s, &q("subang zebra")), (vec![], 0));
    for hostile in
        ["\"", "AND", "*", "-", "rice OR", "NEAR(rice dam)", "dam*", "'", "\\", ")(", "^rice", "-rice", "a:b"]
    {
        let page = s.find(&q(hostile));
        assert!(page.is_ok(), "{hostile:?}: {page:?}");
    }
    assert_eq!(found(s, &q("\"")), (vec![], 0), "no words: nothing found");
    assert_eq!(found(s, &q("-rice")).1, 2, "a minus is no operator");
    assert_eq!(found(s, &q("dam*")).1, 2, "nor is a star");
    // With paging and filters.
    let page = BriefQuery { text: Some("rice".into()), offset: 1, limit: 1, ..Default::default() };
    assert_eq!(found(s, &page), (vec!["rice".to_string()], 2));
    let newer = all(BriefQuery { text: Some("dam".into()), from: Some(day("2026-01-02")), ..Default::default() });
    assert_eq!(found(s, &newer), (vec!["both".to_string()], 1));
    // A replaced brief is found by its new words only.
    s.put_brief(&searchable("dam", 1, "The president opened a new bridge.")).unwrap();
    assert_eq!(found(s, &q("subang")), (vec![], 0));
    assert_eq!(found(s, &q("bridge")), (vec!["dam".to_string()], 1));
}

fn filters_by_outlet_and_date(b: Backend) {
    let s = &b.store;
    let at = |id: &str, outlet: Option<&str>, published: Option<&str>| StoredBrief {
        outlet: outlet.map(str::to_string),
        published_at: published.map(str::to_string),
        ..brief(id, 20)
    };
    s.put_brief(&at("k1", Some("Kompas"), Some("2024-05-01T08:00:00+07:00"))).unwrap();
    // 01:30 UTC on 2 May: a day later than its local date.
    s.put_brief(&at("k2", Some("Kompas"), Some("2024-05-01T23:30:00-02:00"))).unwrap();
    s.put_brief(&at("t1", Some("Tempo"), Some("2024-05-03T00:00:00Z"))).unwrap();
    s.put_brief(&at("none", None, None)).unwrap(); // made 2026-01-20
    assert_eq!(s.outlets().unwrap(), ["Kompas", "Tempo"]);
    let q = |outlet: Option<&str>, from: Option<&str>, to: Option<&str>| {
        let ids = found(
            s,
            &all(BriefQuery {
                outlet: outlet.map(str::to_string),
                from: from.map(day),
                to: to.map(day),
                ..Default::default()
            }),
        );
        ids.0
    };
    assert_eq!(q(None, None, None), ["none", "t1", "k2", "k1"]);
    assert_eq!(q(Some("Kompas"), None, None), ["k2", "k1"]);
    assert_eq!(q(Some("Tempo"), None, None), ["t1"]);
    assert!(q(Some("kompas"), None, None).is_empty(), "outlets are matched exactly");
    assert_eq!(q(None, Some("2024-05-02"), Some("2024-05-02")), ["k2"], "days are UTC days");
    assert_eq!(q(None, Some("2024-05-01"), Some("2024-05-01")), ["k1"]);
    assert_eq!(q(None, Some("2024-05-02"), None), ["none", "t1", "k2"]);
    assert_eq!(q(None, None, Some("2024-05-02")), ["k2", "k1"]);
    assert_eq!(q(Some("Kompas"), Some("2024-05-02"), None), ["k2"]);
    let counted = s.find(&BriefQuery { outlet: Some("Kompas".into()), limit: 1, ..Default::default() }).unwrap();
    assert_eq!((counted.briefs.len(), counted.total), (1, 2));
    // A brief that changes outlet leaves the old one's list.
    s.put_brief(&at("t1", Some("Kompas"), Some("2024-05-03T00:00:00Z"))).unwrap();
    assert_eq!(q(Some("Kompas"), None, None), ["t1", "k2", "k1"]);
    assert!(q(Some("Tempo"), None, None).is_empty());
    assert_eq!(s.outlets().unwrap(), ["Kompas"]);
    let back = s.brief("k2").unwrap().unwrap();
    assert_eq!(
        (back.outlet.as_deref(), back.published_at.as_deref()),
        (Some("Kompas"), Some("2024-05-01T23:30:00-02:00"))
    );
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
    pages_never_repeat_or_skip,
    search_finds_words_of_the_english_text,
    filters_by_outlet_and_date,
);

#[test]
fn redis_search_reads_the_newest_briefs_only_and_says_so() {
    let Some(b) = redis() else { return };
    let s = &b.store;
    let scan = brief::store::redis::SEARCH_SCAN as u32;
    for i in 0..scan + 5 {
        let word = if i < 5 { "ancient" } else { "recent" };
        let mut made = searchable(&format!("x{i:05}"), 1, &format!("A {word} story."));
        made.created_at = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
        s.put_brief(&made).unwrap();
    }
    let q = |text: &str| s.find(&BriefQuery { text: Some(text.into()), limit: 3, ..Default::default() }).unwrap();
    let old = q("ancient");
    assert_eq!((old.total, old.partial), (0, true), "the 5 oldest are beyond the scan");
    let new = q("recent");
    assert_eq!((new.total, new.partial, new.briefs[0].id.as_str()), (u64::from(scan), true, "x01004"));
    let few = s.find(&BriefQuery { text: Some("recent".into()), from: Some(day("2027-01-01")), ..Default::default() });
    assert_eq!(few.unwrap(), Default::default(), "within the scan: not partial");
}

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
