//! The store behind the service: cached texts (`get_many`/`put_many`), briefs (newest first, a page at a time),
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

/// A brief in the store: the JSON and the fields lists show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBrief {
    pub id: String,
    pub name: String,
    pub headline: String,
    pub summary: String,
    /// RFC 3339; the briefs are listed newest first by it.
    pub created_at: String,
    pub json: String,
}

/// One page of briefs, newest first, and how many are stored in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BriefPage {
    pub briefs: Vec<StoredBrief>,
    pub total: u64,
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
        match self {
            Store::Sqlite(s) => s.briefs(offset, limit),
            Store::Redis(r) => r.briefs(offset, limit),
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
