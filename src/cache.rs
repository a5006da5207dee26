//! The on-disk store (SQLite in WAL mode): generated texts keyed by model, options and input, bounded in size
//! with least-recently-used eviction, and the briefs, which are never evicted. Every write is one transaction,
//! so after a crash an entry is either complete or absent.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// File name of the store inside the cache directory.
pub const FILE_NAME: &str = "brief-cache.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("cache {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// What makes a generated text reusable: the model (id, revision, weights), the task, the search options and
/// the normalised input.
#[derive(Debug, Clone)]
pub struct KeyParts<'a> {
    pub model_id: &'a str,
    pub revision: &'a str,
    pub weights: &'a str,
    pub task: &'a str,
    /// Canonical JSON of the resolved search options.
    pub options: &'a str,
    /// The input as the model sees it (prefix and whitespace-normalised text).
    pub input: &'a str,
}

/// A SHA-256 over the key parts, each length-prefixed so that no two different keys collide by concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl KeyParts<'_> {
    pub fn key(&self) -> CacheKey {
        let mut h = Sha256::new();
        for part in [self.model_id, self.revision, self.weights, self.task, self.options, self.input] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        CacheKey(h.finalize().into())
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

/// A stored entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub task: String,
    pub model: String,
    pub params: String,
    pub input: String,
    pub output: String,
}

/// Sizes and counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub path: PathBuf,
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub briefs: u64,
}

/// A brief in the store: the JSON and the fields lists show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBrief {
    pub id: String,
    pub name: String,
    pub headline: String,
    pub summary: String,
    pub created_at: String,
    pub json: String,
}

struct Inner {
    conn: Connection,
    bytes: u64,
}

pub struct Cache {
    inner: Mutex<Inner>,
    path: PathBuf,
    max_bytes: u64,
}

/// Per-row overhead counted against the size bound (key, indexes, bookkeeping).
const ROW_OVERHEAD: u64 = 96;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Cache {
    /// Opens (creating if needed) the store in `dir`, bounded to `max_bytes` of cached texts.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, CacheError> {
        std::fs::create_dir_all(dir).map_err(|source| CacheError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join(FILE_NAME);
        let err = |source| CacheError::Sqlite { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS entries (
                 key BLOB PRIMARY KEY,
                 task TEXT NOT NULL,
                 model TEXT NOT NULL,
                 params TEXT NOT NULL,
                 input TEXT NOT NULL,
                 output TEXT NOT NULL,
                 bytes INTEGER NOT NULL,
                 created INTEGER NOT NULL,
                 last_used INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS entries_last_used ON entries(last_used);
             CREATE TABLE IF NOT EXISTS briefs (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL,
                 headline TEXT NOT NULL,
                 summary TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 json TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS briefs_created ON briefs(created_at);",
        )
        .map_err(err)?;
        let bytes: i64 =
            conn.query_row("SELECT COALESCE(SUM(bytes), 0) FROM entries", [], |r| r.get(0)).map_err(err)?;
        Ok(Self { inner: Mutex::new(Inner { conn, bytes: bytes as u64 }), path, max_bytes })
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // SQLite keeps its own consistency; a panic elsewhere while holding the lock leaves nothing half-done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> CacheError + '_ {
        move |source| CacheError::Sqlite { path: self.path.clone(), source }
    }

    /// The outputs stored for `keys` (in order), marking the hits as just used.
    pub fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<String>>, CacheError> {
        let mut inner = self.lock();
        let tx = inner.conn.transaction().map_err(self.err())?;
        let now = now_ms();
        let mut out = Vec::with_capacity(keys.len());
        {
            let mut select = tx.prepare_cached("SELECT output FROM entries WHERE key = ?1").map_err(self.err())?;
            let mut touch =
                tx.prepare_cached("UPDATE entries SET last_used = ?2 WHERE key = ?1").map_err(self.err())?;
            for key in keys {
                let output: Option<String> =
                    select.query_row([&key.0[..]], |r| r.get(0)).optional().map_err(self.err())?;
                if output.is_some() {
                    touch.execute(params![&key.0[..], now]).map_err(self.err())?;
                }
                out.push(output);
            }
        }
        tx.commit().map_err(self.err())?;
        Ok(out)
    }

    /// Stores `entries` in one transaction, then evicts the least recently used entries beyond the size bound.
    pub fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        let now = now_ms();
        let mut added: i64 = 0;
        let tx = inner.conn.transaction().map_err(self.err())?;
        {
            let mut old = tx.prepare_cached("SELECT bytes FROM entries WHERE key = ?1").map_err(self.err())?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO entries (key, task, model, params, input, output, bytes, created, last_used)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                )
                .map_err(self.err())?;
            for e in entries {
                let bytes = (e.task.len() + e.model.len() + e.params.len() + e.input.len() + e.output.len()) as i64
                    + ROW_OVERHEAD as i64;
                let previous: Option<i64> =
                    old.query_row([&e.key.0[..]], |r| r.get(0)).optional().map_err(self.err())?;
                insert
                    .execute(params![&e.key.0[..], e.task, e.model, e.params, e.input, e.output, bytes, now])
                    .map_err(self.err())?;
                added += bytes - previous.unwrap_or(0);
            }
        }
        tx.commit().map_err(self.err())?;
        inner.bytes = (inner.bytes as i64 + added).max(0) as u64;
        if inner.bytes > self.max_bytes {
            self.evict(&mut inner)?;
        }
        Ok(())
    }

    /// Deletes least recently used entries until the store is back under 90% of its bound.
    fn evict(&self, inner: &mut Inner) -> Result<(), CacheError> {
        let target = self.max_bytes / 10 * 9;
        while inner.bytes > target {
            let tx = inner.conn.transaction().map_err(self.err())?;
            let freed: i64 = {
                let mut oldest = tx
                    .prepare_cached("SELECT key, bytes FROM entries ORDER BY last_used, key LIMIT 256")
                    .map_err(self.err())?;
                let victims: Vec<(Vec<u8>, i64)> = oldest
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(self.err())?
                    .collect::<Result<_, _>>()
                    .map_err(self.err())?;
                if victims.is_empty() {
                    0
                } else {
                    let mut delete = tx.prepare_cached("DELETE FROM entries WHERE key = ?1").map_err(self.err())?;
                    let mut freed = 0;
                    for (key, bytes) in victims {
                        if inner.bytes.saturating_sub(freed as u64) <= target {
                            break;
                        }
                        delete.execute([&key]).map_err(self.err())?;
                        freed += bytes;
                    }
                    freed
                }
            };
            tx.commit().map_err(self.err())?;
            if freed == 0 {
                inner.bytes = 0;
                break;
            }
            inner.bytes = inner.bytes.saturating_sub(freed as u64);
        }
        Ok(())
    }

    /// Every stored entry (for inspection and the crash-safety check).
    pub fn entries(&self) -> Result<Vec<StoredEntry>, CacheError> {
        let inner = self.lock();
        let mut stmt =
            inner.conn.prepare("SELECT task, model, params, input, output FROM entries").map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredEntry {
                    task: r.get(0)?,
                    model: r.get(1)?,
                    params: r.get(2)?,
                    input: r.get(3)?,
                    output: r.get(4)?,
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err());
        rows
    }

    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        let inner = self.lock();
        let entries: i64 =
            inner.conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0)).map_err(self.err())?;
        let briefs: i64 = inner.conn.query_row("SELECT COUNT(*) FROM briefs", [], |r| r.get(0)).map_err(self.err())?;
        Ok(CacheStats {
            path: self.path.clone(),
            entries: entries as u64,
            bytes: inner.bytes,
            max_bytes: self.max_bytes,
            briefs: briefs as u64,
        })
    }

    /// Deletes every cached text (briefs too when `briefs`), and returns the space to the file system.
    pub fn clear(&self, briefs: bool) -> Result<(), CacheError> {
        let mut inner = self.lock();
        inner.conn.execute("DELETE FROM entries", []).map_err(self.err())?;
        if briefs {
            inner.conn.execute("DELETE FROM briefs", []).map_err(self.err())?;
        }
        inner.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;").map_err(self.err())?;
        inner.bytes = 0;
        Ok(())
    }

    /// Stores (or replaces) a brief.
    pub fn put_brief(&self, brief: &StoredBrief) -> Result<(), CacheError> {
        let inner = self.lock();
        inner
            .conn
            .execute(
                "INSERT OR REPLACE INTO briefs (id, name, headline, summary, created_at, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![brief.id, brief.name, brief.headline, brief.summary, brief.created_at, brief.json],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn brief(&self, id: &str) -> Result<Option<StoredBrief>, CacheError> {
        let inner = self.lock();
        inner
            .conn
            .query_row(
                "SELECT id, name, headline, summary, created_at, json FROM briefs WHERE id = ?1",
                [id],
                row_to_brief,
            )
            .optional()
            .map_err(self.err())
    }

    /// All briefs, newest first.
    pub fn briefs(&self) -> Result<Vec<StoredBrief>, CacheError> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare("SELECT id, name, headline, summary, created_at, json FROM briefs ORDER BY created_at DESC, id")
            .map_err(self.err())?;
        let rows =
            stmt.query_map([], row_to_brief).map_err(self.err())?.collect::<Result<Vec<_>, _>>().map_err(self.err());
        rows
    }
}

fn row_to_brief(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredBrief> {
    Ok(StoredBrief {
        id: r.get(0)?,
        name: r.get(1)?,
        headline: r.get(2)?,
        summary: r.get(3)?,
        created_at: r.get(4)?,
        json: r.get(5)?,
    })
}

/// SQLite's integrity check of a store file: `ok` when it is sound.
pub fn integrity_check(path: &Path) -> Result<String, CacheError> {
    let err = |source| CacheError::Sqlite { path: path.to_path_buf(), source };
    let conn = Connection::open(path).map_err(err)?;
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(err)
}

/// The default cache directory: `BRIEF_CACHE_DIR` is read by the CLI; otherwise `$XDG_CACHE_HOME/brief` or
/// `~/.cache/brief`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("brief");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("brief"),
        None => PathBuf::from(".brief-cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(key: CacheKey, input: &'a str, output: &'a str) -> Entry<'a> {
        Entry { key, task: "translate", model: "m", params: "{}", input, output }
    }

    fn key(input: &str) -> CacheKey {
        KeyParts { model_id: "m", revision: "r", weights: "w", task: "translate", options: "{}", input }.key()
    }

    #[test]
    fn stores_reads_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        cache.put_many(&[entry(key("a"), "a", "A"), entry(key("b"), "b", "B")]).unwrap();
        assert_eq!(
            cache.get_many(&[key("a"), key("c"), key("b")]).unwrap(),
            vec![Some("A".into()), None, Some("B".into())]
        );
        drop(cache);
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(cache.get_many(&[key("b")]).unwrap(), vec![Some("B".into())]);
        assert_eq!(cache.stats().unwrap().entries, 2);
    }

    #[test]
    fn keys_differ_in_every_part() {
        let base = KeyParts { model_id: "m", revision: "r", weights: "w", task: "t", options: "o", input: "i" };
        let variants = [
            KeyParts { model_id: "m2", ..base.clone() },
            KeyParts { revision: "r2", ..base.clone() },
            KeyParts { weights: "w2", ..base.clone() },
            KeyParts { task: "t2", ..base.clone() },
            KeyParts { options: "o2", ..base.clone() },
            KeyParts { input: "i2", ..base.clone() },
            KeyParts { model_id: "mr", revision: "", ..base.clone() },
        ];
        for v in variants {
            assert_ne!(v.key(), base.key(), "{v:?}");
        }
    }

    #[test]
    fn evicts_least_recently_used_beyond_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 2000).unwrap();
        let big = "x".repeat(300);
        for i in 0..4 {
            cache.put_many(&[entry(key(&i.to_string()), &i.to_string(), &big)]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        // Touch 0 so that 1 is now the least recently used.
        assert!(cache.get_many(&[key("0")]).unwrap()[0].is_some());
        std::thread::sleep(std::time::Duration::from_millis(3));
        for i in 4..8 {
            cache.put_many(&[entry(key(&i.to_string()), &i.to_string(), &big)]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let stats = cache.stats().unwrap();
        assert!(stats.bytes <= 2000, "{stats:?}");
        let present: Vec<bool> = (0..8).map(|i| cache.get_many(&[key(&i.to_string())]).unwrap()[0].is_some()).collect();
        assert!(present[7] && present[6], "the newest stay: {present:?}");
        assert!(!present[1] && !present[2], "the least recently used go first: {present:?}");
        cache.clear(false).unwrap();
        assert_eq!(cache.stats().unwrap().entries, 0);
    }

    #[test]
    fn briefs_are_stored_listed_and_not_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 10).unwrap();
        let brief = |id: &str, at: &str| StoredBrief {
            id: id.into(),
            name: format!("{id}.txt"),
            headline: "H".into(),
            summary: "S".into(),
            created_at: at.into(),
            json: "{}".into(),
        };
        cache.put_brief(&brief("a", "2026-01-01T00:00:00Z")).unwrap();
        cache.put_brief(&brief("b", "2026-02-01T00:00:00Z")).unwrap();
        cache.put_many(&[entry(key("x"), "x", &"y".repeat(100))]).unwrap();
        assert_eq!(cache.briefs().unwrap().iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(cache.brief("a").unwrap().unwrap().name, "a.txt");
        assert!(cache.brief("zz").unwrap().is_none());
        cache.clear(false).unwrap();
        assert_eq!(cache.briefs().unwrap().len(), 2);
    }
}
