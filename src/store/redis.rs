//! The Redis (or Valkey) store that many replicas share: cached texts with a time to live and the checksums of
//! the SQLite store, briefs that never expire in a sorted set by creation time, and rate-limit buckets taken by
//! one Lua script. Every call has a bounded time, and the connection manager reconnects by itself.
//!
//! Keys, under the prefix `P` (`--store-prefix`, `brief:`):
//! - `P text:<key hex>`: a string, the 32-byte checksum then the text; `EX --store-ttl-secs`, renewed by each hit.
//! - `P brief:<id>`: a hash (`id name headline summary created_at json checksum`), no expiry.
//! - `P briefs`: a sorted set of brief ids scored by creation time (Unix ms), no expiry.
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
use super::{redact, BriefPage, Entry, Lookup, StoreError, StoredBrief};

/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest the server may take to answer one command.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest one store call may take in all (connecting included): past it the call fails, nothing hangs.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const BRIEF_FIELDS: [&str; 7] = ["id", "name", "headline", "summary", "created_at", "json", "checksum"];

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
        let fields = [&brief.id, &brief.name, &brief.headline, &brief.summary, &brief.created_at, &brief.json];
        let sum = brief_checksum_of(fields.map(|f| f.as_bytes()));
        let created = time::OffsetDateTime::parse(&brief.created_at, &time::format_description::well_known::Rfc3339)
            .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        let mut pipe = redis::pipe();
        pipe.atomic();
        let hash = self.brief_key(&brief.id);
        pipe.cmd("DEL").arg(&hash).ignore();
        let mut hset = redis::cmd("HSET");
        hset.arg(&hash);
        for (name, value) in BRIEF_FIELDS.iter().zip(fields) {
            hset.arg(*name).arg(value.as_str());
        }
        hset.arg("checksum").arg(&sum[..]);
        pipe.add_command(hset).ignore();
        pipe.cmd("ZADD").arg(self.briefs_key()).arg(created).arg(&brief.id).ignore();
        let mut conn = self.conn.clone();
        let result = self.block(async move { pipe.query_async::<()>(&mut conn).await });
        self.tracker.track(Op::Write, result)
    }

    pub fn brief(&self, id: &str) -> Result<Option<StoredBrief>, StoreError> {
        let result = self.read_briefs(&[id.to_string()]).map(|mut v| v.pop());
        self.tracker.track(Op::Read, result)
    }

    pub fn briefs(&self, offset: u64, limit: u64) -> Result<BriefPage, StoreError> {
        let result = (|| {
            if limit == 0 {
                let mut conn = self.conn.clone();
                let key = self.briefs_key();
                let total = self.block(async move { redis::cmd("ZCARD").arg(key).query_async(&mut conn).await })?;
                return Ok(BriefPage { briefs: Vec::new(), total });
            }
            let start = offset.min(i64::MAX as u64) as i64;
            let stop = offset.checked_add(limit - 1).filter(|&s| s < i64::MAX as u64).map_or(-1, |s| s as i64);
            let mut pipe = redis::pipe();
            pipe.cmd("ZCARD").arg(self.briefs_key());
            pipe.cmd("ZREVRANGE").arg(self.briefs_key()).arg(start).arg(stop);
            let mut conn = self.conn.clone();
            let (total, ids): (u64, Vec<String>) = self.block(async move { pipe.query_async(&mut conn).await })?;
            Ok(BriefPage { briefs: self.read_briefs(&ids)?, total })
        })();
        self.tracker.track(Op::Read, result)
    }

    /// The sound briefs of `ids`, in order; damaged ones are deleted and left out, ids without a hash dropped
    /// from the list.
    fn read_briefs(&self, ids: &[String]) -> Result<Vec<StoredBrief>, StoreError> {
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
            if sum.as_deref() != Some(&brief_checksum_of(fields.each_ref().map(Vec::as_slice))[..]) {
                damaged += 1;
                gone.push(id.clone());
                continue;
            }
            // The checksum was made over the strings stored, so they are valid UTF-8.
            let [id, name, headline, summary, created_at, json] =
                fields.map(|f| String::from_utf8_lossy(&f).into_owned());
            sound.push(StoredBrief { id, name, headline, summary, created_at, json });
        }
        self.tracker.dropped_corrupt("stored briefs", damaged);
        if !gone.is_empty() {
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("ZREM").arg(self.briefs_key()).arg(&gone).ignore();
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

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context: let its threads end on their own.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
