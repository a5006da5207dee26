//! The on-disk store (SQLite in WAL mode): generated texts keyed by model, options and input, bounded in size
//! with least-recently-used eviction, and the briefs, which are never evicted. Every write is one transaction,
//! so after a crash an entry is either complete or absent.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::ValueRef;
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

/// Version of the store's tables (`PRAGMA user_version`). 1 added the checksums.
const SCHEMA_VERSION: i64 = 1;

/// The checksum stored with a cached text: SHA-256 over its key and the text, so that a text changed on disk,
/// or a row that is not the one asked for, is never served.
fn entry_checksum(key: &[u8], output: impl AsRef<[u8]>) -> [u8; 32] {
    let output = output.as_ref();
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_le_bytes());
    h.update(key);
    h.update((output.len() as u64).to_le_bytes());
    h.update(output);
    h.finalize().into()
}

/// The checksum stored with a brief: SHA-256 over every field, each length-prefixed.
fn brief_checksum(b: &StoredBrief) -> [u8; 32] {
    brief_checksum_of([&b.id, &b.name, &b.headline, &b.summary, &b.created_at, &b.json].map(|f| f.as_bytes()))
}

fn brief_checksum_of(fields: [&[u8]; 6]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in fields {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// A column's bytes, whatever SQLite holds there (text that is not valid UTF-8 included), so that damage is
/// caught by the checksum instead of failing the whole read.
fn raw_bytes(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
        // Numbers or NULL where text was stored fail the checksum like any other damage.
        _ => None,
    })
}

/// A brief row as stored (columns id, name, headline, summary, created_at, json, checksum), and whether it
/// passes its checksum: the brief when it does.
fn checked_brief(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredBrief, String>> {
    let mut fields: Vec<Vec<u8>> = Vec::with_capacity(6);
    for i in 0..6 {
        fields.push(raw_bytes(r, i)?.unwrap_or_default());
    }
    let sum = raw_bytes(r, 6)?;
    let parts: [&[u8]; 6] = std::array::from_fn(|i| fields[i].as_slice());
    if sum.as_deref() != Some(&brief_checksum_of(parts)[..]) {
        return Ok(Err(String::from_utf8_lossy(&fields[0]).into_owned()));
    }
    // The checksum was made over the strings that were stored, so they are valid UTF-8 and nothing is replaced.
    let text = |i: usize| String::from_utf8_lossy(&fields[i]).into_owned();
    Ok(Ok(StoredBrief {
        id: text(0),
        name: text(1),
        headline: text(2),
        summary: text(3),
        created_at: text(4),
        json: text(5),
    }))
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

/// How the store is doing, for `/health` and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheHealth {
    /// `ok`, or `degraded` while reads or writes fail (the service then computes what it cannot read and keeps
    /// what it cannot store only in its answers).
    pub status: String,
    pub path: PathBuf,
    /// The error of the last read, while reads fail.
    pub read_error: Option<String>,
    /// The error of the last write, while writes fail (a full disk, say).
    pub write_error: Option<String>,
    /// Stored texts and briefs dropped since start because their checksum did not match.
    pub corrupt_dropped: u64,
    /// Where an unreadable store found at start was moved (a fresh one took its place).
    pub quarantined: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Faults {
    read_error: Option<String>,
    write_error: Option<String>,
    corrupt_dropped: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

struct Inner {
    conn: Connection,
    bytes: u64,
}

pub struct Cache {
    inner: Mutex<Inner>,
    faults: Mutex<Faults>,
    path: PathBuf,
    max_bytes: u64,
    quarantined: Option<PathBuf>,
}

/// Per-row overhead counted against the size bound (key, indexes, bookkeeping).
const ROW_OVERHEAD: u64 = 96;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl CacheError {
    /// Whether SQLite found the file damaged or not a database at all.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            CacheError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
                if matches!(e.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    }
}

/// Whether `Cache::open` also runs SQLite's quick check of every page (about 0.3 s per 230 MB here), so that a
/// damaged store is found and replaced at start rather than failing reads later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    None,
    Quick,
}

impl Cache {
    /// Opens (creating if needed) the store in `dir`, bounded to `max_bytes` of cached texts. A file SQLite
    /// cannot read as a database (or that fails the quick check with [`Verify::Quick`]) is moved aside to
    /// `brief-cache.sqlite3.corrupt-<unix time>` and a fresh store is made in its place; the log says so.
    pub fn open(dir: &Path, max_bytes: u64, verify: Verify) -> Result<Self, CacheError> {
        std::fs::create_dir_all(dir).map_err(|source| CacheError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join(FILE_NAME);
        match Self::open_file(&path, max_bytes, verify) {
            Err(e) if e.is_corruption() => {
                let aside = quarantine(&path)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    error = %e,
                    "the cache file is damaged: moved it aside and started an empty cache (stored briefs are in the \
                     moved file; the batch output folders still have them as files)"
                );
                let mut cache = Self::open_file(&path, max_bytes, Verify::None)?;
                cache.quarantined = Some(aside);
                Ok(cache)
            }
            other => other,
        }
    }

    /// Opens the store file at `path` as it is: no quick check, nothing moved aside (for `brief cache check`).
    pub fn open_existing(path: &Path, max_bytes: u64) -> Result<Self, CacheError> {
        Self::open_file(path, max_bytes, Verify::None)
    }

    fn open_file(path: &Path, max_bytes: u64, verify: Verify) -> Result<Self, CacheError> {
        let err = |source| CacheError::Sqlite { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").map_err(err)?;
        if verify == Verify::Quick {
            // The first few problems are enough to say what is wrong (the first line may be a header).
            let mut stmt = conn.prepare("PRAGMA quick_check(4)").map_err(err)?;
            let verdict: Vec<String> =
                stmt.query_map([], |r| r.get(0)).map_err(err)?.collect::<Result<_, _>>().map_err(err)?;
            if verdict != ["ok"] {
                return Err(err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(format!("quick check: {}", verdict.join("; ").replace('\n', "; "))),
                )));
            }
        }
        migrate(&conn).map_err(err)?;
        let bytes: i64 =
            conn.query_row("SELECT COALESCE(SUM(bytes), 0) FROM entries", [], |r| r.get(0)).map_err(err)?;
        Ok(Self {
            inner: Mutex::new(Inner { conn, bytes: bytes as u64 }),
            faults: Mutex::new(Faults::default()),
            path: path.to_path_buf(),
            max_bytes,
            quarantined: None,
        })
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // SQLite keeps its own consistency; a panic elsewhere while holding the lock leaves nothing half-done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> CacheError + '_ {
        move |source| CacheError::Sqlite { path: self.path.clone(), source }
    }

    /// Notes how an operation went: the first failure after success (and the first success after failure) of
    /// reads or of writes is logged once, and `/health` shows the failure while it lasts.
    fn track<T>(&self, op: Op, result: Result<T, CacheError>) -> Result<T, CacheError> {
        let mut faults = self.faults();
        let slot = match op {
            Op::Read => &mut faults.read_error,
            Op::Write => &mut faults.write_error,
        };
        let what = if op == Op::Read { "reads" } else { "writes" };
        match &result {
            Ok(_) if slot.is_some() => {
                *slot = None;
                tracing::warn!(path = %self.path.display(), "cache {what} work again");
            }
            Ok(_) => {}
            Err(e) => {
                if slot.is_none() {
                    let consequence = if op == Op::Read {
                        "computing what cannot be read"
                    } else {
                        "answering without storing results"
                    };
                    let advice = if e.is_corruption() {
                        "; the file is damaged: `brief cache check` reports, a restart moves it aside"
                    } else {
                        ""
                    };
                    tracing::error!(error = %e, "cache {what} fail: {consequence} until they work again{advice}");
                }
                *slot = Some(e.to_string());
            }
        }
        result
    }

    fn dropped_corrupt(&self, what: &str, n: usize) {
        if n > 0 {
            self.faults().corrupt_dropped += n as u64;
            tracing::warn!(path = %self.path.display(), count = n, "{what} failed their checksum: dropped (never served)");
        }
    }

    /// How the store is doing.
    pub fn health(&self) -> CacheHealth {
        let faults = self.faults();
        let degraded = faults.read_error.is_some() || faults.write_error.is_some();
        CacheHealth {
            status: if degraded { "degraded" } else { "ok" }.to_string(),
            path: self.path.clone(),
            read_error: faults.read_error.clone(),
            write_error: faults.write_error.clone(),
            corrupt_dropped: faults.corrupt_dropped,
            quarantined: self.quarantined.clone(),
        }
    }

    /// The outputs stored for `keys` (in order), marking the hits as just used. A stored text whose checksum
    /// does not match is deleted and reported as a miss.
    pub fn get_many(&self, keys: &[CacheKey]) -> Result<Lookup, CacheError> {
        let (result, bookkeeping) = self.get_many_inner(keys);
        // Marking hits as used (or deleting damaged entries) is a write: when it fails, the hits still count;
        // when it works, writes work again.
        if let Some(written) = bookkeeping {
            let _ = self.track(Op::Write, written);
        }
        if let Ok(lookup) = &result {
            self.dropped_corrupt("cached texts", lookup.corrupt);
        }
        self.track(Op::Read, result)
    }

    /// The lookup, and the outcome of its bookkeeping writes (`None` when there were none).
    fn get_many_inner(&self, keys: &[CacheKey]) -> (Result<Lookup, CacheError>, Option<Result<(), CacheError>>) {
        const TOUCH: &str = "UPDATE entries SET last_used = ?2 WHERE key = ?1";
        const DROP: &str = "DELETE FROM entries WHERE key = ?1";
        let mut inner = self.lock();
        let tx = match inner.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => return (Err(self.err()(e)), None),
        };
        let now = now_ms();
        let mut lookup = Lookup { outputs: Vec::with_capacity(keys.len()), corrupt: 0 };
        let mut wrote = false;
        let mut failed = None;
        let read = (|| {
            let mut select =
                tx.prepare_cached("SELECT output, checksum FROM entries WHERE key = ?1").map_err(self.err())?;
            for key in keys {
                let row: Option<[Option<Vec<u8>>; 2]> = select
                    .query_row([&key.0[..]], |r| Ok([raw_bytes(r, 0)?, raw_bytes(r, 1)?]))
                    .optional()
                    .map_err(self.err())?;
                let (written, output) = match row {
                    None => (Ok(0), None),
                    Some([Some(output), Some(sum)]) if sum[..] == entry_checksum(&key.0, &output) => {
                        let touched = tx.prepare_cached(TOUCH).and_then(|mut s| s.execute(params![&key.0[..], now]));
                        // Checksummed as the string that was stored, so valid UTF-8.
                        (touched, String::from_utf8(output).ok())
                    }
                    Some(_) => {
                        lookup.corrupt += 1;
                        (tx.prepare_cached(DROP).and_then(|mut s| s.execute([&key.0[..]])), None)
                    }
                };
                match written {
                    Ok(n) => wrote |= n > 0,
                    Err(e) => {
                        failed.get_or_insert(self.err()(e));
                    }
                }
                lookup.outputs.push(output);
            }
            Ok::<_, CacheError>(())
        })();
        if let Err(e) = read {
            return (Err(e), None);
        }
        let committed = tx.commit().map_err(self.err());
        let bookkeeping = match (failed, committed) {
            (Some(e), _) | (None, Err(e)) => Some(Err(e)),
            (None, Ok(())) => wrote.then_some(Ok(())),
        };
        (Ok(lookup), bookkeeping)
    }

    /// Stores `entries` in one transaction, then evicts the least recently used entries beyond the size bound.
    pub fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let result = self.put_many_inner(entries);
        self.track(Op::Write, result)
    }

    fn put_many_inner(&self, entries: &[Entry<'_>]) -> Result<(), CacheError> {
        let mut inner = self.lock();
        let now = now_ms();
        let mut added: i64 = 0;
        let tx = inner.conn.transaction().map_err(self.err())?;
        {
            let mut old = tx.prepare_cached("SELECT bytes FROM entries WHERE key = ?1").map_err(self.err())?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO entries
                         (key, task, model, params, input, output, bytes, created, last_used, checksum)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
                )
                .map_err(self.err())?;
            for e in entries {
                let bytes = (e.task.len() + e.model.len() + e.params.len() + e.input.len() + e.output.len()) as i64
                    + ROW_OVERHEAD as i64;
                let previous: Option<i64> =
                    old.query_row([&e.key.0[..]], |r| r.get(0)).optional().map_err(self.err())?;
                let sum = entry_checksum(&e.key.0, e.output);
                insert
                    .execute(params![&e.key.0[..], e.task, e.model, e.params, e.input, e.output, bytes, now, &sum[..]])
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

    /// Checks the whole store: SQLite's integrity check, then (when the pages are sound) every stored text and
    /// brief against its checksum.
    /// Reads only; [`Cache::drop_damaged`] deletes what fails.
    pub fn check(&self) -> Result<CheckReport, CacheError> {
        let inner = self.lock();
        let integrity = (|| {
            let mut stmt = inner.conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(self.err());
        let integrity = match integrity {
            Ok(lines) => lines,
            // Damage bad enough that the check itself stops is its own verdict.
            Err(e) if e.is_corruption() => vec![e.to_string()],
            Err(e) => return Err(e),
        };
        let mut report = CheckReport { integrity, ..CheckReport::default() };
        if report.integrity != ["ok"] {
            // Damaged pages: the rows cannot all be read, and the whole file is to be replaced anyway.
            return Ok(report);
        }
        let mut stmt = inner.conn.prepare("SELECT key, output, checksum FROM entries").map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(row) = rows.next().map_err(self.err())? {
            let read = |i| raw_bytes(row, i).map_err(self.err());
            let (key, output, sum) = (read(0)?.unwrap_or_default(), read(1)?.unwrap_or_default(), read(2)?);
            report.entries += 1;
            if sum.as_deref() != Some(&entry_checksum(&key, &output)[..]) {
                report.damaged_entries.push(key);
            }
        }
        let mut stmt = inner
            .conn
            .prepare("SELECT id, name, headline, summary, created_at, json, checksum FROM briefs")
            .map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(row) = rows.next().map_err(self.err())? {
            report.briefs += 1;
            if let Err(id) = checked_brief(row).map_err(self.err())? {
                report.damaged_briefs.push(id);
            }
        }
        Ok(report)
    }

    /// Deletes the entries and briefs that [`Cache::check`] found damaged.
    pub fn drop_damaged(&self, report: &CheckReport) -> Result<(), CacheError> {
        let mut inner = self.lock();
        let tx = inner.conn.transaction().map_err(self.err())?;
        for key in &report.damaged_entries {
            tx.execute("DELETE FROM entries WHERE key = ?1", [key]).map_err(self.err())?;
        }
        for id in &report.damaged_briefs {
            tx.execute("DELETE FROM briefs WHERE id = ?1", [id]).map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        let bytes: i64 = inner
            .conn
            .query_row("SELECT COALESCE(SUM(bytes), 0) FROM entries", [], |r| r.get(0))
            .map_err(self.err())?;
        inner.bytes = bytes as u64;
        Ok(())
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
        let result = self
            .lock()
            .conn
            .execute(
                "INSERT OR REPLACE INTO briefs (id, name, headline, summary, created_at, json, checksum)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    brief.id,
                    brief.name,
                    brief.headline,
                    brief.summary,
                    brief.created_at,
                    brief.json,
                    &brief_checksum(brief)[..]
                ],
            )
            .map(drop)
            .map_err(self.err());
        self.track(Op::Write, result)
    }

    /// The brief `id`; a brief whose checksum does not match is deleted and reported as absent.
    pub fn brief(&self, id: &str) -> Result<Option<StoredBrief>, CacheError> {
        let result = self.read_briefs("WHERE id = ?1", &[id]).map(|mut v| v.pop());
        self.track(Op::Read, result)
    }

    /// All sound briefs, newest first (damaged ones are deleted and left out).
    pub fn briefs(&self) -> Result<Vec<StoredBrief>, CacheError> {
        let result = self.read_briefs("ORDER BY created_at DESC, id", &[]);
        self.track(Op::Read, result)
    }

    fn read_briefs(&self, clause: &str, args: &[&str]) -> Result<Vec<StoredBrief>, CacheError> {
        let inner = self.lock();
        let sql = format!("SELECT id, name, headline, summary, created_at, json, checksum FROM briefs {clause}");
        let mut stmt = inner.conn.prepare_cached(&sql).map_err(self.err())?;
        let rows: Vec<Result<StoredBrief, String>> = stmt
            .query_map(rusqlite::params_from_iter(args), checked_brief)
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        let (sound, damaged): (Vec<_>, Vec<_>) = rows.into_iter().partition(Result::is_ok);
        if !damaged.is_empty() {
            for id in damaged.iter().filter_map(|r| r.as_ref().err()) {
                // Best effort: a damaged brief that cannot be deleted now is left out again next time.
                let _ = inner.conn.execute("DELETE FROM briefs WHERE id = ?1", [id]);
            }
            drop(stmt);
            drop(inner);
            self.dropped_corrupt("stored briefs", damaged.len());
        }
        Ok(sound.into_iter().flatten().collect())
    }
}

/// What [`Cache::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// SQLite's integrity check: `["ok"]` when every page is sound.
    pub integrity: Vec<String>,
    pub entries: u64,
    pub briefs: u64,
    /// Keys of stored texts whose checksum does not match.
    pub damaged_entries: Vec<Vec<u8>>,
    /// Ids of briefs whose checksum does not match.
    pub damaged_briefs: Vec<String>,
}

impl CheckReport {
    pub fn is_sound(&self) -> bool {
        self.integrity == ["ok"] && self.damaged_entries.is_empty() && self.damaged_briefs.is_empty()
    }
}

/// Creates the tables, or brings an older store up to [`SCHEMA_VERSION`]: version 0 stores get their checksums
/// computed from what they hold (trusted as they are). A store from a newer `brief` is refused.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the cache was written by a newer brief (schema {version}, this one knows {SCHEMA_VERSION}): \
                 use another --cache-dir"
            )),
        ));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS entries (
             key BLOB PRIMARY KEY,
             task TEXT NOT NULL,
             model TEXT NOT NULL,
             params TEXT NOT NULL,
             input TEXT NOT NULL,
             output TEXT NOT NULL,
             bytes INTEGER NOT NULL,
             created INTEGER NOT NULL,
             last_used INTEGER NOT NULL,
             checksum BLOB
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS entries_last_used ON entries(last_used);
         CREATE TABLE IF NOT EXISTS briefs (
             id TEXT PRIMARY KEY,
             name TEXT NOT NULL,
             headline TEXT NOT NULL,
             summary TEXT NOT NULL,
             created_at TEXT NOT NULL,
             json TEXT NOT NULL,
             checksum BLOB
         );
         CREATE INDEX IF NOT EXISTS briefs_created ON briefs(created_at);",
    )?;
    let done = (|| {
        // Another process may have migrated between our version read and the lock.
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version >= SCHEMA_VERSION {
            return Ok(());
        }
        for table in ["entries", "briefs"] {
            let has_checksum: bool = conn.query_row(
                &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = 'checksum'"),
                [],
                |r| r.get(0),
            )?;
            if !has_checksum {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN checksum BLOB"))?;
            }
        }
        let entries: Vec<(Vec<u8>, String)> = conn
            .prepare("SELECT key, output FROM entries WHERE checksum IS NULL")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (key, output) in entries {
            conn.execute(
                "UPDATE entries SET checksum = ?2 WHERE key = ?1",
                params![key, &entry_checksum(&key, &output)[..]],
            )?;
        }
        let briefs: Vec<StoredBrief> = conn
            .prepare("SELECT id, name, headline, summary, created_at, json FROM briefs WHERE checksum IS NULL")?
            .query_map([], row_to_brief)?
            .collect::<Result<_, _>>()?;
        for b in briefs {
            conn.execute("UPDATE briefs SET checksum = ?2 WHERE id = ?1", params![b.id, &brief_checksum(&b)[..]])?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
    })();
    match done {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Moves a damaged store (and its `-wal` and `-shm` files) aside; returns the new path of the store.
fn quarantine(path: &Path) -> Result<PathBuf, CacheError> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let aside = path.with_file_name(format!("{FILE_NAME}.corrupt-{stamp}"));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(CacheError::Io { path: from, source }),
        }
    }
    Ok(aside)
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
        let cache = Cache::open(dir.path(), 1 << 20, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "A"), entry(key("b"), "b", "B")]).unwrap();
        assert_eq!(
            cache.get_many(&[key("a"), key("c"), key("b")]).unwrap().outputs,
            vec![Some("A".into()), None, Some("B".into())]
        );
        drop(cache);
        let cache = Cache::open(dir.path(), 1 << 20, Verify::None).unwrap();
        assert_eq!(cache.get_many(&[key("b")]).unwrap().outputs, vec![Some("B".into())]);
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
        let cache = Cache::open(dir.path(), 2000, Verify::None).unwrap();
        let big = "x".repeat(300);
        for i in 0..4 {
            cache.put_many(&[entry(key(&i.to_string()), &i.to_string(), &big)]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        // Touch 0 so that 1 is now the least recently used.
        assert!(cache.get_many(&[key("0")]).unwrap().outputs[0].is_some());
        std::thread::sleep(std::time::Duration::from_millis(3));
        for i in 4..8 {
            cache.put_many(&[entry(key(&i.to_string()), &i.to_string(), &big)]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let stats = cache.stats().unwrap();
        assert!(stats.bytes <= 2000, "{stats:?}");
        let present: Vec<bool> =
            (0..8).map(|i| cache.get_many(&[key(&i.to_string())]).unwrap().outputs[0].is_some()).collect();
        assert!(present[7] && present[6], "the newest stay: {present:?}");
        assert!(!present[1] && !present[2], "the least recently used go first: {present:?}");
        cache.clear(false).unwrap();
        assert_eq!(cache.stats().unwrap().entries, 0);
    }

    #[test]
    fn briefs_are_stored_listed_and_not_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 10, Verify::None).unwrap();
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

    impl Cache {
        /// Makes the file unable to grow beyond `pages` pages: SQLite then answers SQLITE_FULL, as it does on a
        /// full disk.
        fn limit_pages(&self, pages: u64) {
            self.lock().conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(())).unwrap();
        }
    }

    /// A second connection to the store file, as another program (or a disk fault) would change it.
    fn raw(dir: &Path) -> Connection {
        Connection::open(dir.join(FILE_NAME)).unwrap()
    }

    #[test]
    fn a_text_changed_on_disk_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "Rice prices rose."), entry(key("b"), "b", "B")]).unwrap();
        // One byte of the stored text changes (a bit flip on disk, or a hand edit).
        raw(dir.path()).execute("UPDATE entries SET output = 'Rice prices fell.' WHERE input = 'a'", []).unwrap();
        let lookup = cache.get_many(&[key("a"), key("b")]).unwrap();
        assert_eq!(lookup, Lookup { outputs: vec![None, Some("B".into())], corrupt: 1 });
        assert_eq!(cache.health().corrupt_dropped, 1);
        assert_eq!(cache.stats().unwrap().entries, 1, "the damaged entry is deleted");
        // Recomputed and stored again, it is served again.
        cache.put_many(&[entry(key("a"), "a", "Rice prices rose.")]).unwrap();
        assert_eq!(cache.get_many(&[key("a")]).unwrap().outputs, vec![Some("Rice prices rose.".into())]);
        assert_eq!(cache.health().status, "ok");
    }

    #[test]
    fn a_flipped_byte_that_breaks_utf8_is_a_checksum_miss_not_a_failed_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "é"), entry(key("b"), "b", "B")]).unwrap();
        let brief = StoredBrief {
            id: "x".into(),
            name: "x.txt".into(),
            headline: "é".into(),
            summary: "S".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            json: "{}".into(),
        };
        cache.put_brief(&brief).unwrap();
        // "é" is C3 A9; C3 28 is not UTF-8.
        let db = raw(dir.path());
        db.execute("UPDATE entries SET output = CAST(X'C328' AS TEXT) WHERE input = 'a'", []).unwrap();
        db.execute("UPDATE briefs SET headline = CAST(X'C328' AS TEXT)", []).unwrap();
        assert_eq!(cache.check().unwrap().damaged_briefs, ["x"]);
        assert_eq!(
            cache.get_many(&[key("a"), key("b")]).unwrap(),
            Lookup { outputs: vec![None, Some("B".into())], corrupt: 1 }
        );
        assert_eq!(cache.briefs().unwrap(), vec![]);
        let health = cache.health();
        assert_eq!((health.status.as_str(), health.corrupt_dropped), ("ok", 2));
    }

    #[test]
    fn a_text_stored_under_another_key_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "A")]).unwrap();
        raw(dir.path()).execute("UPDATE entries SET key = ?1", [&key("b").0[..]]).unwrap();
        assert_eq!(cache.get_many(&[key("b")]).unwrap(), Lookup { outputs: vec![None], corrupt: 1 });
    }

    #[test]
    fn a_file_that_is_not_a_store_is_moved_aside_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = b"these bytes are not a SQLite database ".repeat(200);
        std::fs::write(dir.path().join(FILE_NAME), &garbage).unwrap();
        let cache = Cache::open(dir.path(), 1 << 20, Verify::None).unwrap();
        let aside = cache.health().quarantined.expect("moved aside");
        assert!(aside.file_name().unwrap().to_str().unwrap().starts_with("brief-cache.sqlite3.corrupt-"), "{aside:?}");
        assert_eq!(std::fs::read(&aside).unwrap(), garbage, "kept as it was");
        cache.put_many(&[entry(key("a"), "a", "A")]).unwrap();
        assert_eq!(cache.get_many(&[key("a")]).unwrap().outputs, vec![Some("A".into())]);
        assert_eq!(cache.health().status, "ok");
    }

    /// A store of 300 briefs (and no texts), closed, with the bytes of pages 10 to 19 overwritten: pages of
    /// the briefs, so that opening (which sums the texts' sizes) still works.
    fn store_with_damaged_pages(dir: &Path) {
        let cache = Cache::open(dir, 1 << 30, Verify::None).unwrap();
        for i in 0..300 {
            cache
                .put_brief(&StoredBrief {
                    id: format!("{i:04}"),
                    name: format!("{i}.txt"),
                    headline: "H".into(),
                    summary: format!("summary {i} ").repeat(40),
                    created_at: format!("2026-01-01T00:00:{:02}Z", i % 60),
                    json: "{}".into(),
                })
                .unwrap();
        }
        cache.lock().conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        drop(cache);
        let path = dir.join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 40 * 4096, "{} bytes", bytes.len());
        for b in &mut bytes[9 * 4096..19 * 4096] {
            *b = 0xA5;
        }
        std::fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn damaged_pages_are_found_at_open_by_the_quick_check() {
        let dir = tempfile::tempdir().unwrap();
        store_with_damaged_pages(dir.path());
        let cache = Cache::open(dir.path(), 1 << 30, Verify::Quick).unwrap();
        assert!(cache.health().quarantined.is_some());
        assert_eq!(cache.stats().unwrap().briefs, 0, "a fresh store");
    }

    #[test]
    fn damaged_pages_found_later_fail_reads_which_health_shows() {
        let dir = tempfile::tempdir().unwrap();
        store_with_damaged_pages(dir.path());
        let cache = Cache::open(dir.path(), 1 << 30, Verify::None).unwrap();
        assert_eq!(cache.health().status, "ok");
        let error = cache.briefs().unwrap_err();
        assert!(error.is_corruption(), "{error}");
        let health = cache.health();
        assert_eq!(health.status, "degraded");
        assert!(health.read_error.unwrap().contains("malformed"), "{:?}", cache.health());
        let report = cache.check().unwrap();
        assert!(!report.is_sound() && report.integrity != ["ok"], "{report:?}");
    }

    #[test]
    fn a_full_disk_fails_writes_but_not_reads_until_there_is_room_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 30, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "A")]).unwrap();
        let pages: i64 = cache.lock().conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        cache.limit_pages(pages as u64);
        let big = "x".repeat(20_000);
        let error = cache.put_many(&[entry(key("b"), "b", &big)]).unwrap_err();
        assert!(error.to_string().contains("full"), "{error}");
        let health = cache.health();
        assert_eq!((health.status.as_str(), health.read_error.is_none()), ("degraded", true));
        assert!(health.write_error.unwrap().contains("full"));
        // Reads go on, and the failed write left nothing half-done.
        assert_eq!(cache.get_many(&[key("a"), key("b")]).unwrap().outputs, vec![Some("A".into()), None]);
        let brief = StoredBrief {
            id: "x".into(),
            name: "x.txt".into(),
            headline: "H".into(),
            summary: big.clone(),
            created_at: "2026-01-01T00:00:00Z".into(),
            json: "{}".into(),
        };
        assert!(cache.put_brief(&brief).is_err());
        // Room again: the next write works and health is back to ok.
        cache.limit_pages(1 << 30);
        cache.put_many(&[entry(key("b"), "b", &big)]).unwrap();
        assert_eq!(cache.health().status, "ok");
        assert_eq!(cache.get_many(&[key("b")]).unwrap().outputs, vec![Some(big)]);
    }

    #[test]
    fn a_damaged_brief_is_left_out_and_reported_by_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20, Verify::None).unwrap();
        let brief = |id: &str| StoredBrief {
            id: id.into(),
            name: format!("{id}.txt"),
            headline: "Rice prices rose".into(),
            summary: "S".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            json: "{}".into(),
        };
        cache.put_brief(&brief("a")).unwrap();
        cache.put_brief(&brief("b")).unwrap();
        cache.put_many(&[entry(key("x"), "x", "X")]).unwrap();
        let db = raw(dir.path());
        db.execute("UPDATE briefs SET headline = 'Rice prices fell' WHERE id = 'a'", []).unwrap();
        db.execute("UPDATE entries SET output = 'Y'", []).unwrap();
        let report = cache.check().unwrap();
        assert_eq!(report.integrity, ["ok"]);
        assert_eq!((report.entries, report.briefs), (1, 2));
        assert_eq!((report.damaged_entries.len(), report.damaged_briefs.clone()), (1, vec!["a".to_string()]));
        assert_eq!(cache.briefs().unwrap().iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(cache.brief("a").unwrap(), None);
        cache.drop_damaged(&report).unwrap();
        assert!(cache.check().unwrap().is_sound());
        assert_eq!(cache.stats().unwrap().entries, 0);
    }

    #[test]
    fn a_store_without_checksums_is_migrated_and_keeps_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let db = raw(dir.path());
        db.execute_batch(
            "CREATE TABLE entries (key BLOB PRIMARY KEY, task TEXT NOT NULL, model TEXT NOT NULL, params TEXT NOT NULL,
                 input TEXT NOT NULL, output TEXT NOT NULL, bytes INTEGER NOT NULL, created INTEGER NOT NULL,
                 last_used INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE briefs (id TEXT PRIMARY KEY, name TEXT NOT NULL, headline TEXT NOT NULL,
                 summary TEXT NOT NULL, created_at TEXT NOT NULL, json TEXT NOT NULL);",
        )
        .unwrap();
        db.execute("INSERT INTO entries VALUES (?1, 'translate', 'm', '{}', 'a', 'A', 100, 1, 1)", [&key("a").0[..]])
            .unwrap();
        db.execute("INSERT INTO briefs VALUES ('b', 'b.txt', 'H', 'S', '2026-01-01T00:00:00Z', '{}')", []).unwrap();
        drop(db);
        let cache = Cache::open(dir.path(), 1 << 20, Verify::Quick).unwrap();
        assert_eq!(cache.get_many(&[key("a")]).unwrap(), Lookup { outputs: vec![Some("A".into())], corrupt: 0 });
        assert_eq!(cache.brief("b").unwrap().unwrap().name, "b.txt");
        let version: i64 = raw(dir.path()).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A store from a newer brief is refused, not rewritten.
        raw(dir.path()).execute_batch("PRAGMA user_version = 99").unwrap();
        drop(cache);
        let error = Cache::open(dir.path(), 1 << 20, Verify::None).err().unwrap();
        assert!(error.to_string().contains("newer brief"), "{error}");
    }
}
