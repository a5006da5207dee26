//! The store behind the service: cached texts (`get_many`/`put_many`), briefs (newest first, a page at a time,
//! searched and filtered by outlet and date),
//! rate-limit buckets and health, over one of two backends: a SQLite file (one machine, the default) or a
//! Redis/Valkey server that many replicas share.
//!
//! The face is an enum over the backends rather than a trait object: there are two, known here, and the SQLite
//! one also answers what only a file can (`brief cache stats/check/clear`, reached by [`Store::sqlite`]) without
//! downcasting, while the Redis one has an async bucket take the HTTP layer awaits.

pub mod buckets;
pub mod health;
pub mod keys;
pub mod redis;
pub mod sqlite;

use std::path::PathBuf;
use std::time::Duration;

pub use buckets::{MemoryBuckets, Take};
pub use health::StoreHealth;
pub use keys::{CacheKey, KeyParts};
pub use redis::RedisStore;
pub use sqlite::{default_dir, SqliteStore, Verify, FILE_NAME};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache {}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("cache {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A Redis call failed or timed out (`url` is without its password).
    #[error("store {url}: {message}")]
    Redis { url: String, message: String },
    /// A `--store` URL that names no backend this build has.
    #[error("--store {0}")]
    Url(String),
}

impl StoreError {
    /// Whether SQLite found the file damaged or not a database at all.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
                if matches!(e.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    }
}

/// A generated text to store, with what it was made from (kept for inspection and verification).
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub key: CacheKey,
    pub task: &'a str,
    pub model: &'a str,
    pub params: &'a str,
    pub input: &'a str,
    pub output: &'a str,
}

/// What a lookup found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// For each key, in order, the stored text if there is a sound one.
    pub outputs: Vec<Option<String>>,
    /// Entries found whose checksum did not match: dropped, and counted as misses.
    pub corrupt: usize,
}

impl Lookup {
    /// `n` misses: what a lookup without a (readable) cache finds.
    pub fn misses(n: usize) -> Self {
        Self { outputs: vec![None; n], corrupt: 0 }
    }
}

/// A brief in the store: the JSON and the fields that lists, filters and search need (all derived from the
/// brief itself: see [`BriefFacets`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredBrief {
    pub id: String,
    pub name: String,
    /// The English headline.
    pub headline: String,
    pub summary: String,
    /// RFC 3339, when the brief was made.
    pub created_at: String,
    pub json: String,
    /// The news site or paper (`source.outlet`), when known.
    pub outlet: Option<String>,
    /// When the article was published (`source.published_at`, RFC 3339), when known.
    pub published_at: Option<String>,
    /// The English translation, one paragraph a line (searched with the headline and the summary).
    pub translation: String,
}

impl StoredBrief {
    /// When the brief is listed: its publication time, else the time it was made (Unix ms; 0 when neither
    /// parses). Lists are newest first by it, ties by id (descending), and the date filter uses it.
    pub fn listed_at_ms(&self) -> i64 {
        let parse = |t: &str| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        };
        self.published_at.as_deref().and_then(parse).or_else(|| parse(&self.created_at)).unwrap_or(0)
    }
}

/// What a brief's JSON (schema `brief/1`) gives the store's lists and index: read from the JSON when an older
/// store is migrated, and equal to what the service sets from the brief itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BriefFacets {
    pub outlet: Option<String>,
    pub published_at: Option<String>,
    pub translation: String,
}

impl BriefFacets {
    /// The facets of a brief's JSON; what is missing (or not JSON at all) is absent or empty.
    pub fn of_json(json: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let text = |p: &str| v.pointer(p).and_then(|s| s.as_str()).map(str::to_string);
        let paragraphs = v.get("paragraphs").and_then(|p| p.as_array()).cloned().unwrap_or_default();
        Self {
            outlet: text("/source/outlet"),
            published_at: text("/source/published_at"),
            translation: translation_text(paragraphs.iter().filter_map(|p| p.get("english")?.as_str())),
        }
    }
}

/// The English paragraphs as the store keeps them for search: one a line.
pub fn translation_text<'a>(paragraphs: impl IntoIterator<Item = &'a str>) -> String {
    paragraphs.into_iter().collect::<Vec<_>>().join("\n")
}

/// Most words of a search used (the rest are ignored).
pub const MAX_SEARCH_TERMS: usize = 16;

/// Which briefs to list: all of them by default, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BriefQuery {
    /// Words that must all occur (whole words, any case) in the English headline, summary or translation.
    pub text: Option<String>,
    /// Only briefs of this outlet (exactly as stored).
    pub outlet: Option<String>,
    /// Only briefs listed on or after this day (UTC).
    pub from: Option<time::Date>,
    /// Only briefs listed on or before this day (UTC).
    pub to: Option<time::Date>,
    pub offset: u64,
    /// Most briefs in the page (`u64::MAX`: all).
    pub limit: u64,
}

impl BriefQuery {
    /// Every brief, `limit` of them from `offset`.
    pub fn page(offset: u64, limit: u64) -> Self {
        Self { offset, limit, ..Self::default() }
    }

    /// The search's words: runs of letters and digits, lower-cased, at most [`MAX_SEARCH_TERMS`]; `None` for no
    /// search. A search of no words at all (only punctuation) is `Some(empty)`: it finds nothing.
    pub fn terms(&self) -> Option<Vec<String>> {
        let text = self.text.as_deref()?;
        let mut terms: Vec<String> = Vec::new();
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let word = word.to_lowercase();
            if !terms.contains(&word) && terms.len() < MAX_SEARCH_TERMS {
                terms.push(word);
            }
        }
        Some(terms)
    }

    /// The listing times allowed, in Unix ms: from the start of `from` (inclusive) to the end of `to`
    /// (exclusive); unbounded ends are `i64::MIN`/`i64::MAX`.
    pub fn range_ms(&self) -> (i64, i64) {
        let ms = |d: time::Date| (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let from = self.from.map_or(i64::MIN, ms);
        let to = self.to.map_or(i64::MAX, |d| d.next_day().map_or(i64::MAX, ms));
        (from, to)
    }
}

/// One page of briefs, newest first, and how many match in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BriefPage {
    pub briefs: Vec<StoredBrief>,
    pub total: u64,
    /// The search looked at only the newest briefs (Redis: see [`redis::SEARCH_SCAN`]), so older ones that
    /// match are not counted.
    pub partial: bool,
}

/// Where the store is: `sqlite:PATH` (a file) or `redis://[user:pass@]host:port/db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Redis(String),
}

impl StoreUrl {
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Url(
                    "sqlite: needs a file path, e.g. sqlite:/var/cache/brief/brief-cache.sqlite3".into(),
                ));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("rediss://") {
            return Err(StoreError::Url(
                "rediss:// (TLS) is not built in: reach Redis over a TLS tunnel (stunnel, a service mesh) as redis://"
                    .into(),
            ));
        }
        if text.starts_with("redis://") {
            // The redis crate reads the rest (user, password, host, port, database).
            ::redis::Client::open(text).map_err(|e| StoreError::Url(format!("{}: {e}", redact(text))))?;
            return Ok(StoreUrl::Redis(text.to_string()));
        }
        Err(StoreError::Url(format!("{:?} is neither sqlite:PATH nor redis://host:port/db", redact(text))))
    }
}

/// A URL without its password, for logs and `/health`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: StoreUrl,
    /// SQLite: the size bound of the cached texts (Redis bounds memory with its own `maxmemory` policy).
    pub max_bytes: u64,
    /// SQLite: check every page at open (see [`Verify`]).
    pub verify: Verify,
    /// Redis: put before every key, so that several deployments can share one server.
    pub prefix: String,
    /// Redis: how long a cached text lives unread (each hit renews it). Briefs never expire.
    pub text_ttl: Duration,
}

/// The store, over one backend.
pub enum Store {
    Sqlite(SqliteStore),
    Redis(RedisStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({} {})", self.backend(), self.location())
    }
}

impl Store {
    /// Opens the store. SQLite fails here when the file cannot be opened; Redis never waits for the server at
    /// start (it connects on first use and reconnects by itself), so a server that is down shows in `/health`.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(match &config.url {
            StoreUrl::Sqlite(path) => Store::Sqlite(SqliteStore::open(path, config.max_bytes, config.verify)?),
            StoreUrl::Redis(url) => Store::Redis(RedisStore::open(url, &config.prefix, config.text_ttl)?),
        })
    }

    /// `sqlite` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Redis(_) => "redis",
        }
    }

    /// The file or server, for logs (no password).
    pub fn location(&self) -> String {
        match self {
            Store::Sqlite(s) => s.path().display().to_string(),
            Store::Redis(r) => r.url().to_string(),
        }
    }

    /// The SQLite store, for what only a file can do (stats, check, repair, clear).
    pub fn sqlite(&self) -> Option<&SqliteStore> {
        match self {
            Store::Sqlite(s) => Some(s),
            Store::Redis(_) => None,
        }
    }

    /// Whether several replicas share it (then rate limits are kept in it).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// The texts stored for `keys`, in order; a text whose checksum does not match is a miss, counted.
    pub fn get_many(&self, keys: &[CacheKey]) -> Result<Lookup, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_many(keys),
            Store::Redis(r) => r.get_many(keys),
        }
    }

    /// Stores generated texts.
    pub fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.put_many(entries),
            Store::Redis(r) => r.put_many(entries),
        }
    }

    /// Stores (or replaces) a brief; briefs are never evicted.
    pub fn put_brief(&self, brief: &StoredBrief) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.put_brief(brief),
            Store::Redis(r) => r.put_brief(brief),
        }
    }

    /// The brief `id`, if stored and sound.
    pub fn brief(&self, id: &str) -> Result<Option<StoredBrief>, StoreError> {
        match self {
            Store::Sqlite(s) => s.brief(id),
            Store::Redis(r) => r.brief(id),
        }
    }

    /// `limit` briefs from `offset`, newest first, and the total count.
    pub fn briefs(&self, offset: u64, limit: u64) -> Result<BriefPage, StoreError> {
        self.find(&BriefQuery::page(offset, limit))
    }

    /// The briefs `query` asks for, newest first, and how many match in all.
    pub fn find(&self, query: &BriefQuery) -> Result<BriefPage, StoreError> {
        match self {
            Store::Sqlite(s) => s.find(query),
            Store::Redis(r) => r.find(query),
        }
    }

    /// The outlets of the stored briefs, each once, sorted.
    pub fn outlets(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.outlets(),
            Store::Redis(r) => r.outlets(),
        }
    }

    /// Takes every amount of `takes` from the buckets of `key` at once, or none: the wait until each would be
    /// available (all zero: taken). SQLite keeps the buckets in this process; Redis in the server (one script).
    /// Call from a blocking thread; the HTTP layer awaits [`Store::take_async`].
    pub fn take(&self, key: &str, takes: &[Take]) -> Result<Vec<Duration>, StoreError> {
        match self {
            Store::Sqlite(s) => Ok(s.buckets().take(key, takes)),
            Store::Redis(r) => r.take(key, takes),
        }
    }

    /// [`Store::take`] for async callers.
    pub async fn take_async(&self, key: &str, takes: &[Take]) -> Result<Vec<Duration>, StoreError> {
        match self {
            Store::Sqlite(s) => Ok(s.buckets().take(key, takes)),
            Store::Redis(r) => r.take_async(key, takes).await,
        }
    }

    /// How the store is doing (Redis: asks the server, within its timeout; call off the async runtime).
    pub fn health(&self) -> StoreHealth {
        match self {
            Store::Sqlite(s) => s.health(),
            Store::Redis(r) => r.health(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(StoreUrl::parse("sqlite:/tmp/x.sqlite3").unwrap(), StoreUrl::Sqlite("/tmp/x.sqlite3".into()));
        assert_eq!(StoreUrl::parse("sqlite://rel/x").unwrap(), StoreUrl::Sqlite("rel/x".into()));
        assert!(matches!(StoreUrl::parse("redis://u:p@h:6379/2").unwrap(), StoreUrl::Redis(_)));
        for (bad, needle) in [("rediss://h", "TLS"), ("mysql://h", "neither"), ("sqlite:", "file path")] {
            let e = StoreUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        assert_eq!(redact("redis://user:secret@h:1/0"), "redis://user:***@h:1/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        let e = StoreUrl::parse("mysql://u:secret@h").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
