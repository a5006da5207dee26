//! The Redis (or Valkey) store that many replicas share: cached texts with a time to live and the checksums of
//! the SQLite store, briefs that never expire in a sorted set by creation time, and rate-limit buckets taken by
//! one Lua script. Every call has a bounded time, and the connection manager reconnects by itself.
//!
//! Keys, under the prefix `P` (`--store-prefix`, `brief:`):
//! - `P text:<key hex>`: a string, the 32-byte checksum then the text; `EX --store-ttl-secs`, renewed by each hit.
//! - `P brief:<id>`: a hash (`id name headline summary created_at json checksum outlet published_at
//!   translation`), no expiry. The checksum covers the first six fields; the last three are derived from `json`.
//! - `P briefs`: a sorted set of brief ids scored by listing time (publication time, else creation time; Unix
//!   ms), no expiry. Ties are listed by id, descending (Redis's own order for equal scores, as in SQLite).
//! - `P outlet:<outlet>`: the same, for the briefs of one outlet; `P outlets`: a set of the outlets' names.
//!
//! Redis (without RediSearch, as Debian ships it) has no full-text index: a search reads the English text of
//! the newest [`SEARCH_SCAN`] briefs that pass the other filters and matches whole words here; the page says
//! when older briefs were not looked at ([`BriefPage::partial`]). Briefs stored before outlets were indexed
//! are found by outlet once stored again.
//! - `P rate:<key hash>:<bucket>`: a hash (`level at`), expiring a minute after its last take (full again).
//!
//! The service calls the store from blocking threads: this store owns a small tokio runtime and blocks on it
//! there; the HTTP layer awaits [`RedisStore::take_async`] instead.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script, Value};

use super::buckets::{Take, REFILL_PERIOD};
use super::health::{Op, StoreHealth, Tracker};
use super::keys::{brief_checksum_of, entry_checksum, CacheKey};
use super::{redact, BriefPage, BriefQuery, Entry, Lookup, StoreError, StoredBrief};

/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest the server may take to answer one command.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest one store call may take in all (connecting included): past it the call fails, nothing hangs.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const BRIEF_FIELDS: [&str; 10] =
    ["id", "name", "headline", "summary", "created_at", "json", "checksum", "outlet", "published_at", "translation"];

/// How many of the newest briefs (that pass the outlet and date filters) a search reads.
pub const SEARCH_SCAN: usize = 1000;

/// Refills every bucket of `KEYS` (ARGV: the keys' time to live in ms, then capacity and amount per key) by
/// the time since its last take at `capacity` per minute, on the server's clock; takes every amount when all are
/// available, else none. Returns each bucket's wait in ms (all 0: taken).
const TAKE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels, waits, all = {}, {}, true
for i = 1, #KEYS do
  local cap, amount = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local rate = cap / tonumber(ARGV[#ARGV])
  local v = redis.call('HMGET', KEYS[i], 'level', 'at')
  local level, at = tonumber(v[1]) or cap, tonumber(v[2]) or now
  if now > at then level = math.min(cap, level + (now - at) * rate) end
  levels[i] = level
  if cap == 0 or level >= amount then
    waits[i] = 0
  else
    waits[i] = math.ceil((amount - level) / rate)
    all = false
  end
end
if all then
  for i = 1, #KEYS do
    redis.call('HSET', KEYS[i], 'level', tostring(levels[i] - tonumber(ARGV[2 * i + 1])), 'at', now)
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return waits
";

pub struct RedisStore {
    /// Runs the connection's tasks and the blocking calls; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    conn: ConnectionManager,
    /// Without its password.
    url: String,
    prefix: String,
    ttl: Duration,
    tracker: Tracker,
    take: Script,
}

impl RedisStore {
    /// A store on the server at `url`, keys under `prefix`, texts living `ttl`. Does not wait for the server:
    /// the first call connects (within [`CALL_TIMEOUT`]).
    pub fn open(url: &str, prefix: &str, ttl: Duration) -> Result<Self, StoreError> {
        let shown = redact(url);
        let fail = |e: &dyn std::fmt::Display| StoreError::Redis { url: shown.clone(), message: e.to_string() };
        let client = redis::Client::open(url).map_err(|e| fail(&e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("brief-redis")
            .enable_all()
            .build()
            .map_err(|e| fail(&e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = {
            // The manager spawns its tasks on the runtime it is made in.
            let _guard = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| fail(&e))?
        };
        Ok(Self {
            runtime: Some(runtime),
            conn,
            url: shown.clone(),
            prefix: prefix.to_string(),
            ttl: ttl.max(Duration::from_secs(1)),
            tracker: Tracker::new(shown),
            take: Script::new(TAKE_LUA),
        })
    }

    /// The server, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn text_key(&self, key: &CacheKey) -> String {
        format!("{}text:{}", self.prefix, key.hex())
    }

    fn brief_key(&self, id: &str) -> String {
        format!("{}brief:{id}", self.prefix)
    }

    fn briefs_key(&self) -> String {
        format!("{}briefs", self.prefix)
    }

    fn outlet_key(&self, outlet: &str) -> String {
        format!("{}outlet:{outlet}", self.prefix)
    }

    fn outlets_key(&self) -> String {
        format!("{}outlets", self.prefix)
    }

    fn error(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Redis { url: self.url.clone(), message: message.to_string() }
    }

    /// `call` within [`CALL_TIMEOUT`], as a store result.
    async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.error(format!("no answer within {} s", CALL_TIMEOUT.as_secs()))),
        }
    }

    /// Blocks this (non-async) thread on `call`, within [`CALL_TIMEOUT`].
    fn block<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        match &self.runtime {
            Some(rt) => rt.block_on(self.bounded(call)),
            None => Err(self.error("the store is closing")),
        }
    }

    pub fn get_many(&self, keys: &[CacheKey]) -> Result<Lookup, StoreError> {
        if keys.is_empty() {
            return Ok(Lookup::default());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("GETEX").arg(self.text_key(key)).arg("EX").arg(self.ttl.as_secs());
        }
        let mut conn = self.conn.clone();
        let found = self.block(async move { pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await });
        let found = self.tracker.track(Op::Read, found)?;
        let mut lookup = Lookup { outputs: Vec::with_capacity(keys.len()), corrupt: 0 };
        let mut damaged = Vec::new();
        for (key, value) in keys.iter().zip(found) {
            let output = match value {
                None => None,
                Some(v) if v.len() >= 32 && v[..32] == entry_checksum(&key.0, &v[32..]) => {
                    // Checksummed as the string that was stored, so valid UTF-8.
                    String::from_utf8(v[32..].to_vec()).ok()
                }
                Some(_) => {
                    lookup.corrupt += 1;
                    damaged.push(self.text_key(key));
                    None
                }
            };
            lookup.outputs.push(output);
        }
        if !damaged.is_empty() {
            self.tracker.dropped_corrupt("cached texts", damaged.len());
            let mut conn = self.conn.clone();
            let deleted = self.block(async move { redis::cmd("DEL").arg(damaged).query_async::<()>(&mut conn).await });
            let _ = self.tracker.track(Op::Write, deleted);
        }
        Ok(lookup)
    }

    pub fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for e in entries {
            let mut value = entry_checksum(&e.key.0, e.output).to_vec();
            value.extend_from_slice(e.output.as_bytes());
            pipe.cmd("SET").arg(self.text_key(&e.key)).arg(value).arg("EX").arg(self.ttl.as_secs()).ignore();
        }
        let mut conn = self.conn.clone();
        let result = self.block(async move { pipe.query_async::<()>(&mut conn).await });
        self.tracker.track(Op::Write, result)
    }

    pub fn put_brief(&self, brief: &StoredBrief) -> Result<(), StoreError> {
        let result = self.put_brief_inner(brief);
        self.tracker.track(Op::Write, result)
    }

    fn put_brief_inner(&self, brief: &StoredBrief) -> Result<(), StoreError> {
        let fields = [&brief.id, &brief.name, &brief.headline, &brief.summary, &brief.created_at, &brief.json];
        let sum = brief_checksum_of(fields.map(|f| f.as_bytes()));
        let listed = brief.listed_at_ms();
        let hash = self.brief_key(&brief.id);
        // The outlet it is listed under now, if another: it leaves that list (a replace between this read and
        // the write below by another replica could leave it in both; the next read of that list drops it).
        let mut conn = self.conn.clone();
        let key = hash.clone();
        let old: Option<String> =
            self.block(async move { redis::cmd("HGET").arg(key).arg("outlet").query_async(&mut conn).await })?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg(&hash).ignore();
        let mut hset = redis::cmd("HSET");
        hset.arg(&hash);
        for (name, value) in BRIEF_FIELDS.iter().zip(fields) {
            hset.arg(*name).arg(value.as_str());
        }
        hset.arg("checksum").arg(&sum[..]);
        for (name, value) in [("outlet", &brief.outlet), ("published_at", &brief.published_at)] {
            if let Some(v) = value {
                hset.arg(name).arg(v.as_str());
            }
        }
        hset.arg("translation").arg(brief.translation.as_str());
        pipe.add_command(hset).ignore();
        pipe.cmd("ZADD").arg(self.briefs_key()).arg(listed).arg(&brief.id).ignore();
        if let Some(old) = old.filter(|o| Some(o) != brief.outlet.as_ref()) {
            pipe.cmd("ZREM").arg(self.outlet_key(&old)).arg(&brief.id).ignore();
        }
        if let Some(outlet) = &brief.outlet {
            pipe.cmd("ZADD").arg(self.outlet_key(outlet)).arg(listed).arg(&brief.id).ignore();
            pipe.cmd("SADD").arg(self.outlets_key()).arg(outlet).ignore();
        }
        let mut conn = self.conn.clone();
        self.block(async move { pipe.query_async::<()>(&mut conn).await })
    }

    pub fn brief(&self, id: &str) -> Result<Option<StoredBrief>, StoreError> {
        let result = self.read_briefs(&[id.to_string()], None).map(|mut v| v.pop());
        self.tracker.track(Op::Read, result)
    }

    /// The briefs `query` asks for, newest first: the outlet's sorted set (or all briefs'), between the
    /// scores of the dates; a search reads the newest [`SEARCH_SCAN`] of those and matches their words here.
    pub fn find(&self, query: &BriefQuery) -> Result<BriefPage, StoreError> {
        let result = (|| {
            let terms = query.terms();
            if terms.as_ref().is_some_and(Vec::is_empty) {
                return Ok(BriefPage::default());
            }
            let list = query.outlet.as_deref().map_or_else(|| self.briefs_key(), |o| self.outlet_key(o));
            let (from, to) = query.range_ms();
            let min = if from == i64::MIN { "-inf".to_string() } else { from.to_string() };
            let max = if to == i64::MAX { "+inf".to_string() } else { format!("({to}") };
            let Some(terms) = terms else {
                let count = if query.limit > i64::MAX as u64 { -1 } else { query.limit as i64 };
                let mut pipe = redis::pipe();
                pipe.cmd("ZCOUNT").arg(&list).arg(&min).arg(&max);
                if count != 0 {
                    pipe.cmd("ZREVRANGEBYSCORE").arg(&list).arg(&max).arg(&min).arg("LIMIT");
                    pipe.arg(query.offset.min(i64::MAX as u64)).arg(count);
                }
                let mut conn = self.conn.clone();
                let (total, ids): (u64, Vec<String>) = if count == 0 {
                    let (total,): (u64,) = self.block(async move { pipe.query_async(&mut conn).await })?;
                    (total, Vec::new())
                } else {
                    self.block(async move { pipe.query_async(&mut conn).await })?
                };
                return Ok(BriefPage { briefs: self.read_briefs(&ids, Some(&list))?, total, partial: false });
            };
            let mut pipe = redis::pipe();
            pipe.cmd("ZCOUNT").arg(&list).arg(&min).arg(&max);
            pipe.cmd("ZREVRANGEBYSCORE").arg(&list).arg(&max).arg(&min).arg("LIMIT").arg(0).arg(SEARCH_SCAN);
            let mut conn = self.conn.clone();
            let (within, ids): (u64, Vec<String>) = self.block(async move { pipe.query_async(&mut conn).await })?;
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HMGET").arg(self.brief_key(id)).arg(&["headline", "summary", "translation"]);
            }
            let mut conn = self.conn.clone();
            let texts: Vec<Vec<Option<String>>> =
                if ids.is_empty() { Vec::new() } else { self.block(async move { pipe.query_async(&mut conn).await })? };
            let matching: Vec<String> = ids
                .into_iter()
                .zip(texts)
                .filter(|(_, fields)| has_words(fields.iter().flatten().map(String::as_str), &terms))
                .map(|(id, _)| id)
                .collect();
            let start = (query.offset.min(usize::MAX as u64) as usize).min(matching.len());
            let end = start.saturating_add(query.limit.min(usize::MAX as u64) as usize).min(matching.len());
            Ok(BriefPage {
                briefs: self.read_briefs(&matching[start..end], Some(&list))?,
                total: matching.len() as u64,
                partial: within > SEARCH_SCAN as u64,
            })
        })();
        self.tracker.track(Op::Read, result)
    }

    /// The outlets that still have briefs, sorted.
    pub fn outlets(&self) -> Result<Vec<String>, StoreError> {
        let result = (|| {
            let mut conn = self.conn.clone();
            let key = self.outlets_key();
            let mut names: Vec<String> =
                self.block(async move { redis::cmd("SMEMBERS").arg(key).query_async(&mut conn).await })?;
            names.sort();
            if names.is_empty() {
                return Ok(names);
            }
            let mut pipe = redis::pipe();
            for name in &names {
                pipe.cmd("ZCARD").arg(self.outlet_key(name));
            }
            let mut conn = self.conn.clone();
            let counts: Vec<u64> = self.block(async move { pipe.query_async(&mut conn).await })?;
            Ok(names.into_iter().zip(counts).filter(|(_, n)| *n > 0).map(|(name, _)| name).collect())
        })();
        self.tracker.track(Op::Read, result)
    }

    /// The sound briefs of `ids`, in order; damaged ones are deleted and left out, ids without a hash dropped
    /// from the list.
    fn read_briefs(&self, ids: &[String], list: Option<&str>) -> Result<Vec<StoredBrief>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET").arg(self.brief_key(id)).arg(&BRIEF_FIELDS[..]);
        }
        let mut conn = self.conn.clone();
        let rows: Vec<Vec<Option<Vec<u8>>>> = self.block(async move { pipe.query_async(&mut conn).await })?;
        let (mut sound, mut gone, mut damaged) = (Vec::new(), Vec::new(), 0);
        for (id, row) in ids.iter().zip(rows) {
            if row.iter().all(Option::is_none) {
                gone.push(id.clone());
                continue;
            }
            let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let fields: [Vec<u8>; 6] = std::array::from_fn(field);
            let sum = row.get(6).cloned().flatten();
            let derived = |i: usize| row.get(i).cloned().flatten().map(|f| String::from_utf8_lossy(&f).into_owned());
            if sum.as_deref() != Some(&brief_checksum_of(fields.each_ref().map(Vec::as_slice))[..]) {
                damaged += 1;
                gone.push(id.clone());
                continue;
            }
            // The checksum was made over the strings stored, so they are valid UTF-8.
            let [id, name, headline, summary, created_at, json] =
                fields.map(|f| String::from_utf8_lossy(&f).into_owned());
            let (outlet, published_at, translation) = (derived(7), derived(8), derived(9).unwrap_or_default());
            sound.push(StoredBrief {
                id,
                name,
                headline,
                summary,
                created_at,
                json,
                outlet,
                published_at,
                translation,
            });
        }
        self.tracker.dropped_corrupt("stored briefs", damaged);
        if !gone.is_empty() {
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("ZREM").arg(self.briefs_key()).arg(&gone).ignore();
            if let Some(list) = list.filter(|l| *l != self.briefs_key()) {
                pipe.cmd("ZREM").arg(list).arg(&gone).ignore();
            }
            pipe.cmd("DEL").arg(gone.iter().map(|id| self.brief_key(id)).collect::<Vec<_>>()).ignore();
            let mut conn = self.conn.clone();
            // Best effort: what cannot be deleted now is left out again next time.
            let _ = self.block(async move { pipe.query_async::<()>(&mut conn).await });
        }
        Ok(sound)
    }

    /// The buckets' keys and the script's arguments for `takes` of `key`.
    fn take_invocation(&self, key: &str, takes: &[Take]) -> redis::ScriptInvocation<'_> {
        let mut call = self.take.prepare_invoke();
        call.arg((REFILL_PERIOD + Duration::from_secs(1)).as_millis() as u64);
        for t in takes {
            call.key(format!("{}rate:{key}:{}", self.prefix, t.bucket));
            call.arg(t.capacity).arg(t.amount);
        }
        call.arg(REFILL_PERIOD.as_millis() as u64);
        call
    }

    pub fn take(&self, key: &str, takes: &[Take]) -> Result<Vec<Duration>, StoreError> {
        if takes.is_empty() {
            return Ok(Vec::new());
        }
        let call = self.take_invocation(key, takes);
        let mut conn = self.conn.clone();
        let waits: Vec<u64> = self.block(async move { call.invoke_async(&mut conn).await })?;
        Ok(waits.into_iter().map(Duration::from_millis).collect())
    }

    /// [`RedisStore::take`] on the caller's runtime.
    pub async fn take_async(&self, key: &str, takes: &[Take]) -> Result<Vec<Duration>, StoreError> {
        if takes.is_empty() {
            return Ok(Vec::new());
        }
        let call = self.take_invocation(key, takes);
        let mut conn = self.conn.clone();
        let waits: Vec<u64> = self.bounded(async move { call.invoke_async(&mut conn).await }).await?;
        Ok(waits.into_iter().map(Duration::from_millis).collect())
    }

    /// Asks the server (`PING`, within the call timeout): an answer clears the errors of earlier calls (the
    /// server is back), no answer is a read error.
    pub fn health(&self) -> StoreHealth {
        let mut conn = self.conn.clone();
        let ping = self.block(async move { redis::cmd("PING").query_async::<Value>(&mut conn).await });
        match ping {
            Ok(_) => {
                let _ = self.tracker.track(Op::Read, Ok(()));
                let _ = self.tracker.track(Op::Write, Ok(()));
            }
            Err(e) => {
                let _ = self.tracker.track::<()>(Op::Read, Err(e));
            }
        }
        self.tracker.health("redis", None, Some(self.url.clone()))
    }
}

/// Whether every one of `terms` (lower-case words) is a word of `texts`, in any case: whole words, as SQLite's
/// full-text index matches them (without its folding of diacritics).
fn has_words<'a>(texts: impl Iterator<Item = &'a str>, terms: &[String]) -> bool {
    let words: std::collections::HashSet<String> = texts
        .flat_map(|t| t.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    terms.iter().all(|t| words.contains(t))
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context: let its threads end on their own.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
