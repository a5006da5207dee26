//! The SQLite store (WAL mode): generated texts bounded in size with least-recently-used eviction, and the briefs,
//! which are never evicted; with the migration of older files, the quarantine of damaged ones, and the check
//! and repair of `brief cache check`. Every write is one `BEGIN IMMEDIATE` transaction (so after a crash an
//! entry is either complete or absent, and several processes can share the file), reads never write inside
//! their transaction, and the size bound is kept in the file itself, so it holds across processes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::health::{Op, StoreHealth, Tracker};
use super::keys::{brief_checksum_of, entry_checksum, CacheKey};
use super::{BriefFacets, BriefPage, BriefQuery, Entry, Lookup, StoreError, StoredBrief};

/// File name of the store inside the cache directory.
pub const FILE_NAME: &str = "brief-cache.sqlite3";

/// How long a write waits for another process's write to finish before it fails (SQLite's busy timeout). Writes
/// are short (one batch of texts, one brief), so 5 s is many of them queued, not one slow one.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Version of the store's tables (`PRAGMA user_version`). 1 added the checksums, 2 the `totals` table that
/// triggers keep equal to the texts' size, 3 the briefs' outlet, publication time, listing time and English
/// translation, their indexes, and the full-text index `briefs_fts` that triggers keep equal to `briefs`.
const SCHEMA_VERSION: i64 = 3;

/// The columns a brief is read with ([`checked_brief`] reads them in this order).
const BRIEF_COLUMNS: &str =
    "id, name, headline, summary, created_at, json, checksum, outlet, published_at, translation";

/// The checksum stored with a brief.
fn brief_checksum(b: &StoredBrief) -> [u8; 32] {
    brief_checksum_of([&b.id, &b.name, &b.headline, &b.summary, &b.created_at, &b.json].map(|f| f.as_bytes()))
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

/// A brief row as stored ([`BRIEF_COLUMNS`]), and whether it passes its checksum: the brief when it does. The
/// checksum covers the JSON and the fields made from it before version 3; the later columns are derived from
/// the JSON (an index, like `briefs_fts`) and are not part of it, so that older stores keep their checksums.
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
        outlet: r.get(7).ok().flatten(),
        published_at: r.get(8).ok().flatten(),
        translation: r.get::<_, Option<String>>(9).ok().flatten().unwrap_or_default(),
    }))
}

struct Inner {
    conn: Connection,
}

pub struct SqliteStore {
    inner: Mutex<Inner>,
    /// Rate limits: one machine, so the buckets live in this process.
    buckets: super::buckets::MemoryBuckets,
    tracker: Tracker,
    path: PathBuf,
    max_bytes: u64,
    quarantined: Option<PathBuf>,
}

/// Per-row overhead counted against the size bound (key, indexes, bookkeeping).
const ROW_OVERHEAD: u64 = 96;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Whether `SqliteStore::open` also runs SQLite's quick check of every page (about 0.3 s per 230 MB here), so
/// that a damaged store is found and replaced at start rather than failing reads later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    None,
    Quick,
}

/// The texts' size as the file keeps it (`totals`, maintained by triggers in every transaction that changes
/// `entries`, whichever process runs it).
fn total_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT bytes FROM totals WHERE id = 0", [], |r| r.get::<_, i64>(0))
        .optional()
        .map(|b| b.unwrap_or(0).max(0) as u64)
}

impl SqliteStore {
    /// Opens (creating if needed) the store file `path`, bounded to `max_bytes` of cached texts. A file SQLite
    /// cannot read as a database (or that fails the quick check with [`Verify::Quick`]) is moved aside to
    /// `<file>.corrupt-<unix time>` and a fresh store is made in its place; the log says so.
    pub fn open(path: &Path, max_bytes: u64, verify: Verify) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        match Self::open_file(path, max_bytes, verify) {
            Err(e) if e.is_corruption() => {
                let aside = quarantine(path)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    error = %e,
                    "the cache file is damaged: moved it aside and started an empty cache (stored briefs are in the \
                     moved file; the batch output folders still have them as files)"
                );
                let mut cache = Self::open_file(path, max_bytes, Verify::None)?;
                cache.quarantined = Some(aside);
                Ok(cache)
            }
            other => other,
        }
    }

    /// Opens the store file at `path` as it is: no quick check, nothing moved aside (for `brief cache check`).
    pub fn open_existing(path: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        Self::open_file(path, max_bytes, Verify::None)
    }

    fn open_file(path: &Path, max_bytes: u64, verify: Verify) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
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
        // Reading the size proves the texts' table is readable at start (as summing it did before).
        total_bytes(&conn).map_err(err)?;
        Ok(Self {
            inner: Mutex::new(Inner { conn }),
            buckets: Default::default(),
            tracker: Tracker::new(path.display().to_string()),
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

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// The rate-limit buckets (in memory).
    pub fn buckets(&self) -> &super::buckets::MemoryBuckets {
        &self.buckets
    }

    /// How the store is doing.
    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            quarantined: self.quarantined.clone(),
            ..self.tracker.health("sqlite", Some(self.path.clone()), None)
        }
    }

    /// The outputs stored for `keys` (in order), marking the hits as just used. A stored text whose checksum
    /// does not match is deleted and reported as a miss.
    pub fn get_many(&self, keys: &[CacheKey]) -> Result<Lookup, StoreError> {
        let result = self.read_entries(keys);
        if let Ok((lookup, hits, damaged)) = &result {
            self.tracker.dropped_corrupt("cached texts", lookup.corrupt);
            // Marking hits as used (or deleting damaged entries) is a write of its own: when it fails, the hits
            // still count; when it works, writes work again.
            if !hits.is_empty() || !damaged.is_empty() {
                let _ = self.tracker.track(Op::Write, self.touch(hits, damaged));
            }
        }
        self.tracker.track(Op::Read, result.map(|(lookup, _, _)| lookup))
    }

    /// The lookup in one read transaction (never upgraded to a write, which in WAL mode fails at once when
    /// another process wrote meanwhile), with the keys of the hits and of the damaged entries.
    fn read_entries(&self, keys: &[CacheKey]) -> Result<(Lookup, Vec<CacheKey>, Vec<CacheKey>), StoreError> {
        let mut inner = self.lock();
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(self.err())?;
        let mut lookup = Lookup { outputs: Vec::with_capacity(keys.len()), corrupt: 0 };
        let (mut hits, mut damaged) = (Vec::new(), Vec::new());
        {
            let mut select =
                tx.prepare_cached("SELECT output, checksum FROM entries WHERE key = ?1").map_err(self.err())?;
            for key in keys {
                let row: Option<[Option<Vec<u8>>; 2]> = select
                    .query_row([&key.0[..]], |r| Ok([raw_bytes(r, 0)?, raw_bytes(r, 1)?]))
                    .optional()
                    .map_err(self.err())?;
                let output = match row {
                    None => None,
                    Some([Some(output), Some(sum)]) if sum[..] == entry_checksum(&key.0, &output) => {
                        hits.push(*key);
                        // Checksummed as the string that was stored, so valid UTF-8.
                        String::from_utf8(output).ok()
                    }
                    Some(_) => {
                        lookup.corrupt += 1;
                        damaged.push(*key);
                        None
                    }
                };
                lookup.outputs.push(output);
            }
        }
        tx.commit().map_err(self.err())?;
        Ok((lookup, hits, damaged))
    }

    /// Marks `hits` as just used and deletes `damaged`, in one write transaction.
    fn touch(&self, hits: &[CacheKey], damaged: &[CacheKey]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let now = now_ms();
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.err())?;
        {
            let mut touch =
                tx.prepare_cached("UPDATE entries SET last_used = ?2 WHERE key = ?1").map_err(self.err())?;
            for key in hits {
                touch.execute(params![&key.0[..], now]).map_err(self.err())?;
            }
            let mut drop = tx.prepare_cached("DELETE FROM entries WHERE key = ?1").map_err(self.err())?;
            for key in damaged {
                drop.execute([&key.0[..]]).map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())
    }

    /// Stores `entries` in one transaction, then evicts the least recently used entries beyond the size bound.
    pub fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let result = self.put_many_inner(entries);
        self.tracker.track(Op::Write, result)
    }

    fn put_many_inner(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let now = now_ms();
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.err())?;
        {
            // An upsert, not INSERT OR REPLACE: a replace deletes without firing the triggers that keep `totals`.
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO entries (key, task, model, params, input, output, bytes, created, last_used, checksum)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)
                     ON CONFLICT(key) DO UPDATE SET task = excluded.task, model = excluded.model,
                         params = excluded.params, input = excluded.input, output = excluded.output,
                         bytes = excluded.bytes, last_used = excluded.last_used, checksum = excluded.checksum",
                )
                .map_err(self.err())?;
            for e in entries {
                let bytes = (e.task.len() + e.model.len() + e.params.len() + e.input.len() + e.output.len()) as i64
                    + ROW_OVERHEAD as i64;
                let sum = entry_checksum(&e.key.0, e.output);
                insert
                    .execute(params![&e.key.0[..], e.task, e.model, e.params, e.input, e.output, bytes, now, &sum[..]])
                    .map_err(self.err())?;
            }
        }
        let over = total_bytes(&tx).map_err(self.err())? > self.max_bytes;
        tx.commit().map_err(self.err())?;
        if over {
            self.evict(&mut inner)?;
        }
        Ok(())
    }

    /// Deletes least recently used entries until the store is back under 90% of its bound. Each round reads
    /// the size inside its own write transaction, so processes evicting together do not evict twice.
    fn evict(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let target = self.max_bytes / 10 * 9;
        loop {
            let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.err())?;
            let mut bytes = total_bytes(&tx).map_err(self.err())?;
            if bytes <= target {
                return tx.commit().map_err(self.err());
            }
            let freed = {
                let mut oldest = tx
                    .prepare_cached("SELECT key, bytes FROM entries ORDER BY last_used, key LIMIT 256")
                    .map_err(self.err())?;
                let victims: Vec<(Vec<u8>, i64)> = oldest
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(self.err())?
                    .collect::<Result<_, _>>()
                    .map_err(self.err())?;
                let mut delete = tx.prepare_cached("DELETE FROM entries WHERE key = ?1").map_err(self.err())?;
                let mut freed = 0;
                for (key, size) in victims {
                    if bytes <= target {
                        break;
                    }
                    delete.execute([&key]).map_err(self.err())?;
                    bytes = bytes.saturating_sub(size.max(0) as u64);
                    freed += 1;
                }
                freed
            };
            tx.commit().map_err(self.err())?;
            if freed == 0 {
                return Ok(());
            }
        }
    }

    /// Every stored entry (for inspection and the crash-safety check).
    pub fn entries(&self) -> Result<Vec<StoredEntry>, StoreError> {
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

    pub fn stats(&self) -> Result<CacheStats, StoreError> {
        let inner = self.lock();
        let entries: i64 =
            inner.conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0)).map_err(self.err())?;
        let briefs: i64 = inner.conn.query_row("SELECT COUNT(*) FROM briefs", [], |r| r.get(0)).map_err(self.err())?;
        Ok(CacheStats {
            path: self.path.clone(),
            entries: entries as u64,
            bytes: total_bytes(&inner.conn).map_err(self.err())?,
            max_bytes: self.max_bytes,
            briefs: briefs as u64,
        })
    }

    /// Checks the whole store: SQLite's integrity check, then (when the pages are sound) every stored text and
    /// brief against its checksum.
    /// Reads only; [`SqliteStore::drop_damaged`] deletes what fails.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
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
        let mut stmt = inner.conn.prepare(&format!("SELECT {BRIEF_COLUMNS} FROM briefs")).map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(row) = rows.next().map_err(self.err())? {
            report.briefs += 1;
            if let Err(id) = checked_brief(row).map_err(self.err())? {
                report.damaged_briefs.push(id);
            }
        }
        Ok(report)
    }

    /// Deletes the entries and briefs that [`SqliteStore::check`] found damaged.
    pub fn drop_damaged(&self, report: &CheckReport) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.err())?;
        for key in &report.damaged_entries {
            tx.execute("DELETE FROM entries WHERE key = ?1", [key]).map_err(self.err())?;
        }
        for id in &report.damaged_briefs {
            tx.execute("DELETE FROM briefs WHERE id = ?1", [id]).map_err(self.err())?;
        }
        // The triggers kept the index through the deletes; rebuilding it also mends an index damaged by itself.
        tx.execute_batch("INSERT INTO briefs_fts(briefs_fts) VALUES ('rebuild')").map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Deletes every cached text (briefs too when `briefs`), and returns the space to the file system.
    pub fn clear(&self, briefs: bool) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.err())?;
        tx.execute("DELETE FROM entries", []).map_err(self.err())?;
        if briefs {
            tx.execute("DELETE FROM briefs", []).map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        inner.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;").map_err(self.err())
    }

    /// Stores (or replaces) a brief; the triggers update the full-text index in the same transaction.
    pub fn put_brief(&self, brief: &StoredBrief) -> Result<(), StoreError> {
        let result = (|| {
            let mut inner = self.lock();
            let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.err())?;
            // An upsert, not INSERT OR REPLACE: a replace deletes without firing the triggers that keep the index.
            tx.execute(
                "INSERT INTO briefs (id, name, headline, summary, created_at, json, checksum, outlet, published_at,
                     listed_ms, translation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, headline = excluded.headline,
                     summary = excluded.summary, created_at = excluded.created_at, json = excluded.json,
                     checksum = excluded.checksum, outlet = excluded.outlet, published_at = excluded.published_at,
                     listed_ms = excluded.listed_ms, translation = excluded.translation",
                params![
                    brief.id,
                    brief.name,
                    brief.headline,
                    brief.summary,
                    brief.created_at,
                    brief.json,
                    &brief_checksum(brief)[..],
                    brief.outlet,
                    brief.published_at,
                    brief.listed_at_ms(),
                    brief.translation,
                ],
            )
            .map_err(self.err())?;
            tx.commit().map_err(self.err())
        })();
        self.tracker.track(Op::Write, result)
    }

    /// The brief `id`; a brief whose checksum does not match is deleted and reported as absent.
    pub fn brief(&self, id: &str) -> Result<Option<StoredBrief>, StoreError> {
        let result = self.read_briefs("WHERE id = ?1", &[id.to_string().into()]).map(|mut v| v.pop());
        self.tracker.track(Op::Read, result)
    }

    /// The sound briefs `query` asks for, newest first by listing time then id (both descending, so pages never
    /// repeat or skip), and how many match. Search is FTS5 over the English headline, summary and translation,
    /// each word quoted (so no input is FTS5 syntax), all words required; matches are newest first too.
    pub fn find(&self, query: &BriefQuery) -> Result<BriefPage, StoreError> {
        let result = (|| {
            let terms = query.terms();
            if terms.as_ref().is_some_and(Vec::is_empty) {
                return Ok(BriefPage::default());
            }
            let (from, to) = query.range_ms();
            let mut conditions = vec!["listed_ms >= ?1 AND listed_ms < ?2".to_string()];
            let mut args: Vec<rusqlite::types::Value> = vec![from.into(), to.into()];
            if let Some(outlet) = &query.outlet {
                args.push(outlet.clone().into());
                conditions.push(format!("outlet = ?{}", args.len()));
            }
            if let Some(terms) = &terms {
                let fts: Vec<String> = terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect();
                args.push(fts.join(" ").into());
                conditions
                    .push(format!("rowid IN (SELECT rowid FROM briefs_fts WHERE briefs_fts MATCH ?{})", args.len()));
            }
            let filter = format!("WHERE {}", conditions.join(" AND "));
            // A search walks the list index (which holds the listing time, id and outlet) and looks each entry up
            // in the matches: left to itself, SQLite reads every matching row (JSON and all) to filter and sort.
            let from_list = if terms.is_some() { "briefs INDEXED BY briefs_listed" } else { "briefs" };
            let total: i64 = self
                .lock()
                .conn
                .prepare_cached(&format!("SELECT COUNT(*) FROM {from_list} {filter}"))
                .and_then(|mut s| s.query_row(rusqlite::params_from_iter(&args), |r| r.get(0)))
                .map_err(self.err())?;
            let limit = query.limit.min(i64::MAX as u64);
            let order = "ORDER BY listed_ms DESC, id DESC";
            let page = format!("{order} LIMIT {limit} OFFSET {}", query.offset.min(i64::MAX as u64));
            let clause = if terms.is_some() {
                format!("WHERE rowid IN (SELECT rowid FROM {from_list} {filter} {page}) {order}")
            } else {
                format!("{filter} {page}")
            };
            let briefs = if limit == 0 { Vec::new() } else { self.read_briefs(&clause, &args)? };
            Ok(BriefPage { briefs, total: total.max(0) as u64, partial: false })
        })();
        self.tracker.track(Op::Read, result)
    }

    /// The outlets of the stored briefs, each once, sorted.
    pub fn outlets(&self) -> Result<Vec<String>, StoreError> {
        let result = (|| {
            let inner = self.lock();
            let mut stmt = inner
                .conn
                .prepare_cached("SELECT DISTINCT outlet FROM briefs WHERE outlet IS NOT NULL ORDER BY outlet")
                .map_err(self.err())?;
            let outlets = stmt.query_map([], |r| r.get(0)).map_err(self.err())?.collect::<Result<Vec<String>, _>>();
            outlets.map_err(self.err())
        })();
        self.tracker.track(Op::Read, result)
    }

    fn read_briefs(&self, clause: &str, args: &[rusqlite::types::Value]) -> Result<Vec<StoredBrief>, StoreError> {
        let inner = self.lock();
        let sql = format!("SELECT {BRIEF_COLUMNS} FROM briefs {clause}");
        let mut stmt = inner.conn.prepare_cached(&sql).map_err(self.err())?;
        let rows: Vec<Result<StoredBrief, String>> = stmt
            .query_map(rusqlite::params_from_iter(args), checked_brief)
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        let (sound, damaged): (Vec<_>, Vec<_>) = rows.into_iter().partition(Result::is_ok);
        if !damaged.is_empty() {
            for id in damaged.iter().filter_map(|r| r.as_ref().err()) {
                // Best effort, in its own (autocommit) write: a damaged brief that cannot be deleted now is left
                // out again next time.
                let _ = inner.conn.execute("DELETE FROM briefs WHERE id = ?1", [id]);
            }
            drop(stmt);
            drop(inner);
            self.tracker.dropped_corrupt("stored briefs", damaged.len());
        }
        Ok(sound.into_iter().flatten().collect())
    }
}

/// What [`SqliteStore::check`] found.
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
         CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
         CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries
             BEGIN UPDATE totals SET bytes = bytes + NEW.bytes WHERE id = 0; END;
         CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries
             BEGIN UPDATE totals SET bytes = bytes - OLD.bytes WHERE id = 0; END;
         CREATE TRIGGER IF NOT EXISTS entries_resized AFTER UPDATE OF bytes ON entries
             BEGIN UPDATE totals SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 0; END;",
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
        if version < 3 {
            index_briefs(conn)?;
        }
        // Version 2: the size of what is there now (the triggers keep it from here on).
        conn.execute(
            "INSERT OR REPLACE INTO totals (id, bytes) VALUES (0, (SELECT COALESCE(SUM(bytes), 0) FROM entries))",
            [],
        )?;
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
fn quarantine(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let name = path.file_name().map_or_else(|| FILE_NAME.into(), |n| n.to_string_lossy());
    let aside = path.with_file_name(format!("{name}.corrupt-{stamp}"));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path: from, source }),
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
        ..StoredBrief::default()
    })
}

/// Version 3, inside the migration's transaction: the briefs' new columns, filled from each brief's JSON; the
/// indexes of the newest-first lists (all, and by outlet); and the full-text index over the English headline,
/// summary and translation, built from what is stored and kept by triggers from here on.
fn index_briefs(conn: &Connection) -> rusqlite::Result<()> {
    for (column, kind) in [
        ("outlet", "TEXT"),
        ("published_at", "TEXT"),
        ("listed_ms", "INTEGER NOT NULL DEFAULT 0"),
        ("translation", "TEXT NOT NULL DEFAULT ''"),
    ] {
        let present: bool =
            conn.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('briefs') WHERE name = ?1", [column], |r| {
                r.get(0)
            })?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE briefs ADD COLUMN {column} {kind}"))?;
        }
    }
    let briefs: Vec<(String, String, String)> = conn
        .prepare("SELECT id, created_at, json FROM briefs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    {
        let mut update = conn.prepare(
            "UPDATE briefs SET outlet = ?2, published_at = ?3, listed_ms = ?4, translation = ?5 WHERE id = ?1",
        )?;
        for (id, created_at, json) in briefs {
            let facets = BriefFacets::of_json(&json);
            let listed =
                StoredBrief { created_at, published_at: facets.published_at.clone(), ..StoredBrief::default() }
                    .listed_at_ms();
            update.execute(params![id, facets.outlet, facets.published_at, listed, facets.translation])?;
        }
    }
    conn.execute_batch(
        "DROP INDEX IF EXISTS briefs_created;
         CREATE INDEX IF NOT EXISTS briefs_listed ON briefs(listed_ms DESC, id DESC, outlet);
         CREATE INDEX IF NOT EXISTS briefs_outlet_listed ON briefs(outlet, listed_ms DESC, id DESC);
         CREATE VIRTUAL TABLE IF NOT EXISTS briefs_fts USING fts5(headline, summary, translation,
             content = 'briefs', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2');
         CREATE TRIGGER IF NOT EXISTS briefs_fts_added AFTER INSERT ON briefs BEGIN
             INSERT INTO briefs_fts(rowid, headline, summary, translation)
                 VALUES (NEW.rowid, NEW.headline, NEW.summary, NEW.translation);
         END;
         CREATE TRIGGER IF NOT EXISTS briefs_fts_removed AFTER DELETE ON briefs BEGIN
             INSERT INTO briefs_fts(briefs_fts, rowid, headline, summary, translation)
                 VALUES ('delete', OLD.rowid, OLD.headline, OLD.summary, OLD.translation);
         END;
         CREATE TRIGGER IF NOT EXISTS briefs_fts_changed AFTER UPDATE ON briefs BEGIN
             INSERT INTO briefs_fts(briefs_fts, rowid, headline, summary, translation)
                 VALUES ('delete', OLD.rowid, OLD.headline, OLD.summary, OLD.translation);
             INSERT INTO briefs_fts(rowid, headline, summary, translation)
                 VALUES (NEW.rowid, NEW.headline, NEW.summary, NEW.translation);
         END;
         INSERT INTO briefs_fts(briefs_fts) VALUES ('rebuild');",
    )
}

/// SQLite's integrity check of a store file: `ok` when it is sound.
pub fn integrity_check(path: &Path) -> Result<String, StoreError> {
    let err = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
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
    use crate::store::keys::KeyParts;

    /// The store file in `dir`.
    fn open(dir: &Path, max_bytes: u64, verify: Verify) -> Result<SqliteStore, StoreError> {
        SqliteStore::open(&dir.join(FILE_NAME), max_bytes, verify)
    }

    fn all_briefs(cache: &SqliteStore) -> Result<Vec<StoredBrief>, StoreError> {
        cache.find(&BriefQuery::page(0, u64::MAX)).map(|page| page.briefs)
    }

    fn entry<'a>(key: CacheKey, input: &'a str, output: &'a str) -> Entry<'a> {
        Entry { key, task: "translate", model: "m", params: "{}", input, output }
    }

    fn key(input: &str) -> CacheKey {
        KeyParts { model_id: "m", revision: "r", weights: "w", task: "translate", options: "{}", input }.key()
    }

    #[test]
    fn stores_reads_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "A"), entry(key("b"), "b", "B")]).unwrap();
        assert_eq!(
            cache.get_many(&[key("a"), key("c"), key("b")]).unwrap().outputs,
            vec![Some("A".into()), None, Some("B".into())]
        );
        drop(cache);
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
        assert_eq!(cache.get_many(&[key("b")]).unwrap().outputs, vec![Some("B".into())]);
        assert_eq!(cache.stats().unwrap().entries, 2);
    }

    #[test]
    fn evicts_least_recently_used_beyond_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 2000, Verify::None).unwrap();
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
    fn the_size_bound_holds_across_handles_as_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (open(dir.path(), 2000, Verify::None).unwrap(), open(dir.path(), 2000, Verify::None).unwrap());
        let big = "x".repeat(300);
        for i in 0..10 {
            let store = if i % 2 == 0 { &a } else { &b };
            store.put_many(&[entry(key(&i.to_string()), &i.to_string(), &big)]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        // Replacing an entry counts its size once.
        a.put_many(&[entry(key("9"), "9", &big)]).unwrap();
        let summed: i64 =
            raw(dir.path()).query_row("SELECT COALESCE(SUM(bytes), 0) FROM entries", [], |r| r.get(0)).unwrap();
        let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
        assert_eq!((sa.bytes, sb.bytes), (summed as u64, summed as u64), "both see the file's size");
        assert!(sa.bytes <= 2000 && sa.entries >= 3, "{sa:?}");
        assert_eq!(b.get_many(&[key("9")]).unwrap().outputs, vec![Some(big.clone())]);
        a.clear(false).unwrap();
        assert_eq!(b.stats().unwrap().bytes, 0);
    }

    #[test]
    fn briefs_are_listed_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
        for i in 0..5 {
            let brief = StoredBrief {
                id: format!("b{i}"),
                name: "n".into(),
                headline: "H".into(),
                summary: "S".into(),
                created_at: format!("2026-01-0{}T00:00:00Z", i + 1),
                json: "{}".into(),
                ..StoredBrief::default()
            };
            cache.put_brief(&brief).unwrap();
        }
        let page = cache.find(&BriefQuery::page(1, 2)).unwrap();
        assert_eq!(page.total, 5);
        assert_eq!(page.briefs.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b3", "b2"]);
        assert_eq!(
            cache.find(&BriefQuery::page(5, 2)).unwrap(),
            BriefPage { briefs: vec![], total: 5, partial: false }
        );
    }

    #[test]
    fn briefs_are_stored_listed_and_not_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 10, Verify::None).unwrap();
        let brief = |id: &str, at: &str| StoredBrief {
            id: id.into(),
            name: format!("{id}.txt"),
            headline: "H".into(),
            summary: "S".into(),
            created_at: at.into(),
            json: "{}".into(),
            ..StoredBrief::default()
        };
        cache.put_brief(&brief("a", "2026-01-01T00:00:00Z")).unwrap();
        cache.put_brief(&brief("b", "2026-02-01T00:00:00Z")).unwrap();
        cache.put_many(&[entry(key("x"), "x", &"y".repeat(100))]).unwrap();
        assert_eq!(all_briefs(&cache).unwrap().iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(cache.brief("a").unwrap().unwrap().name, "a.txt");
        assert!(cache.brief("zz").unwrap().is_none());
        cache.clear(false).unwrap();
        assert_eq!(all_briefs(&cache).unwrap().len(), 2);
    }

    impl SqliteStore {
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
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
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
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "é"), entry(key("b"), "b", "B")]).unwrap();
        let brief = StoredBrief {
            id: "x".into(),
            name: "x.txt".into(),
            headline: "é".into(),
            summary: "S".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            json: "{}".into(),
            ..StoredBrief::default()
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
        assert_eq!(all_briefs(&cache).unwrap(), vec![]);
        let health = cache.health();
        assert_eq!((health.status.as_str(), health.corrupt_dropped), ("ok", 2));
    }

    #[test]
    fn a_text_stored_under_another_key_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
        cache.put_many(&[entry(key("a"), "a", "A")]).unwrap();
        raw(dir.path()).execute("UPDATE entries SET key = ?1", [&key("b").0[..]]).unwrap();
        assert_eq!(cache.get_many(&[key("b")]).unwrap(), Lookup { outputs: vec![None], corrupt: 1 });
    }

    #[test]
    fn a_file_that_is_not_a_store_is_moved_aside_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = b"these bytes are not a SQLite database ".repeat(200);
        std::fs::write(dir.path().join(FILE_NAME), &garbage).unwrap();
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
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
        let cache = open(dir, 1 << 30, Verify::None).unwrap();
        for i in 0..300 {
            cache
                .put_brief(&StoredBrief {
                    id: format!("{i:04}"),
                    name: format!("{i}.txt"),
                    headline: "H".into(),
                    summary: format!("summary {i} ").repeat(40),
                    created_at: format!("2026-01-01T00:00:{:02}Z", i % 60),
                    json: "{}".into(),
                    ..StoredBrief::default()
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
        let cache = open(dir.path(), 1 << 30, Verify::Quick).unwrap();
        assert!(cache.health().quarantined.is_some());
        assert_eq!(cache.stats().unwrap().briefs, 0, "a fresh store");
    }

    #[test]
    fn damaged_pages_found_later_fail_reads_which_health_shows() {
        let dir = tempfile::tempdir().unwrap();
        store_with_damaged_pages(dir.path());
        let cache = open(dir.path(), 1 << 30, Verify::None).unwrap();
        assert_eq!(cache.health().status, "ok");
        let error = all_briefs(&cache).unwrap_err();
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
        let cache = open(dir.path(), 1 << 30, Verify::None).unwrap();
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
            ..StoredBrief::default()
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
        let cache = open(dir.path(), 1 << 20, Verify::None).unwrap();
        let brief = |id: &str| StoredBrief {
            id: id.into(),
            name: format!("{id}.txt"),
            headline: "Rice prices rose".into(),
            summary: "S".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            json: "{}".into(),
            ..StoredBrief::default()
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
        assert_eq!(all_briefs(&cache).unwrap().iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(cache.brief("a").unwrap(), None);
        cache.drop_damaged(&report).unwrap();
        assert!(cache.check().unwrap().is_sound());
        assert_eq!(cache.stats().unwrap().entries, 0);
    }

    #[test]
    fn a_version_2_store_is_migrated_keeping_and_indexing_every_brief() {
        let dir = tempfile::tempdir().unwrap();
        let db = raw(dir.path());
        // The tables of schema 2, as brief wrote them before the reader was paged.
        db.execute_batch(
            "CREATE TABLE entries (key BLOB PRIMARY KEY, task TEXT NOT NULL, model TEXT NOT NULL, params TEXT NOT NULL,
                 input TEXT NOT NULL, output TEXT NOT NULL, bytes INTEGER NOT NULL, created INTEGER NOT NULL,
                 last_used INTEGER NOT NULL, checksum BLOB) WITHOUT ROWID;
             CREATE INDEX entries_last_used ON entries(last_used);
             CREATE TABLE briefs (id TEXT PRIMARY KEY, name TEXT NOT NULL, headline TEXT NOT NULL,
                 summary TEXT NOT NULL, created_at TEXT NOT NULL, json TEXT NOT NULL, checksum BLOB);
             CREATE INDEX briefs_created ON briefs(created_at);
             CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
             INSERT INTO totals VALUES (0, 0);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        let json = |outlet: &str, published: &str, english: &str| {
            serde_json::json!({
                "headline": {"source": "Judul", "english": "A headline"},
                "summary": "A summary.",
                "source": {"name": "a.txt", "outlet": outlet, "published_at": published},
                "paragraphs": [{"source": "Satu.", "english": "One."}, {"source": "Dua.", "english": english}],
            })
            .to_string()
        };
        let old = [
            ("a", "2026-01-05T00:00:00Z", json("Kompas", "2024-05-01T08:00:00+07:00", "The dam in Subang opened.")),
            ("b", "2026-01-04T00:00:00Z", "{}".to_string()),
        ];
        for (id, at, json) in &old {
            let b = StoredBrief {
                id: id.to_string(),
                name: format!("{id}.txt"),
                headline: "A headline".into(),
                summary: "A summary.".into(),
                created_at: at.to_string(),
                json: json.clone(),
                ..StoredBrief::default()
            };
            db.execute(
                "INSERT INTO briefs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![b.id, b.name, b.headline, b.summary, b.created_at, b.json, &brief_checksum(&b)[..]],
            )
            .unwrap();
        }
        drop(db);
        let cache = open(dir.path(), 1 << 20, Verify::Quick).unwrap();
        let version: i64 = raw(dir.path()).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Kept (checksums still good), and listed by publication time: a (2024) after b (made 2026).
        assert_eq!(all_briefs(&cache).unwrap().iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        let a = cache.brief("a").unwrap().unwrap();
        assert_eq!((a.outlet.as_deref(), a.translation.as_str()), (Some("Kompas"), "One.\nThe dam in Subang opened."));
        let ids = |q: BriefQuery| -> Vec<String> {
            cache.find(&BriefQuery { limit: 10, ..q }).unwrap().briefs.into_iter().map(|b| b.id).collect()
        };
        assert_eq!(ids(BriefQuery { text: Some("subang".into()), ..Default::default() }), ["a"]);
        assert_eq!(ids(BriefQuery { outlet: Some("Kompas".into()), ..Default::default() }), ["a"]);
        let may = time::macros::date!(2024 - 05 - 01);
        assert_eq!(ids(BriefQuery { from: Some(may), to: Some(may), ..Default::default() }), ["a"]);
        assert_eq!(cache.outlets().unwrap(), ["Kompas"]);
        assert!(cache.check().unwrap().is_sound());
        // The index follows deletes (a repair) and clears.
        let report = CheckReport { damaged_briefs: vec!["a".into()], ..CheckReport::default() };
        cache.drop_damaged(&report).unwrap();
        assert!(ids(BriefQuery { text: Some("subang".into()), ..Default::default() }).is_empty());
        cache.clear(true).unwrap();
        assert!(all_briefs(&cache).unwrap().is_empty());
        let fts: i64 = raw(dir.path())
            .query_row("SELECT COUNT(*) FROM briefs_fts WHERE briefs_fts MATCH 'headline'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fts, 0);
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
        let cache = open(dir.path(), 1 << 20, Verify::Quick).unwrap();
        assert_eq!(cache.get_many(&[key("a")]).unwrap(), Lookup { outputs: vec![Some("A".into())], corrupt: 0 });
        assert_eq!(cache.brief("b").unwrap().unwrap().name, "b.txt");
        let version: i64 = raw(dir.path()).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A store from a newer brief is refused, not rewritten.
        raw(dir.path()).execute_batch("PRAGMA user_version = 99").unwrap();
        drop(cache);
        let error = open(dir.path(), 1 << 20, Verify::None).err().unwrap();
        assert!(error.to_string().contains("newer brief"), "{error}");
    }
}
