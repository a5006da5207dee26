//! Who may call the API: optional API keys, each with its own request and character rate limits.
//!
//! Keys come from `--api-keys FILE` (one per line: `KEY [requests_per_minute=N] [chars_per_minute=N]`, `#`
//! comments) and/or `--api-key KEY`; keys without limits of their own get the server's defaults. Limits are token
//! buckets that refill continuously: a key may spend a minute's allowance at once, then waits for the refill. Keys
//! are compared in constant time and never written anywhere; a key is named in logs by a short hash.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
#[cfg(test)]
use std::time::Instant;

use crate::store::{keys::bucket_id, MemoryBuckets, Store, Take};

/// A key's allowance per minute (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub chars_per_minute: Option<u64>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Denied {
    /// No key, or one that is not configured.
    Key,
    /// The key is over a limit; it may try again after this long.
    Rate { what: &'static str, retry_after: Duration },
    /// This one request is larger than the key's whole per-minute character allowance.
    TooLarge { chars: u64, limit: u64 },
}

/// The configured keys and where their buckets are. With no keys, everything is open.
///
/// With a shared store (Redis), the buckets are in the store, so that every replica spends from the same
/// allowance (one script refills and takes atomically and says how long to wait). When the store does not
/// answer, each replica falls back to buckets in its own memory (logged once, and once when the store answers
/// again): during an outage a key may then get its allowance from each replica, which was chosen over refusing
/// every request (the store would become a single point of failure of the API) and over no limits at all.
#[derive(Debug, Default)]
pub struct Access {
    keys: Vec<(Vec<u8>, Key)>,
    protect_metrics: bool,
    local: MemoryBuckets,
    shared: Option<Arc<Store>>,
    /// Whether the shared store failed and the local buckets serve.
    fallen_back: AtomicBool,
}

#[derive(Debug)]
struct Key {
    limits: Limits,
    /// The buckets' name: a hash of the key.
    bucket: String,
}

impl Access {
    /// Keys with their limits (a key listed twice keeps its last limits).
    pub fn new(keys: Vec<(String, Limits)>, protect_metrics: bool) -> Self {
        let mut unique: HashMap<String, Limits> = HashMap::new();
        for (key, limits) in keys {
            unique.insert(key, limits);
        }
        let keys = unique
            .into_iter()
            .map(|(key, limits)| {
                let bucket = bucket_id(&key);
                (key.into_bytes(), Key { limits, bucket })
            })
            .collect();
        Self { keys, protect_metrics, ..Self::default() }
    }

    /// Keeps the buckets in `store` when it is shared by replicas (Redis); else they stay in memory.
    pub fn with_store(mut self, store: Option<Arc<Store>>) -> Self {
        self.shared = store.filter(|s| s.is_shared());
        self
    }

    /// Whether keys are required at all.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `/metrics` needs a key too.
    pub fn metrics_protected(&self) -> bool {
        self.enabled() && self.protect_metrics
    }

    /// Whether `given` is a configured key (no allowance spent: for `/metrics` scrapes).
    pub fn is_key(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| self.keys.iter().fold(false, |hit, (key, _)| hit | constant_time_eq(key, g.as_bytes())))
    }

    /// A stable short name for a key in logs (a hash prefix; the key itself is never logged).
    pub fn log_name(given: &str) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        given.hash(&mut h);
        format!("key#{:08x}", h.finish() as u32)
    }

    /// The key `given` is, and what a request of `chars` characters takes from its buckets.
    fn plan(&self, given: Option<&str>, chars: u64) -> Result<(&Key, Vec<Take>), Denied> {
        let given = given.ok_or(Denied::Key)?.as_bytes();
        // Every configured key is compared, each in constant time, so timing does not tell which prefix matched.
        let mut found = None;
        for (key, state) in &self.keys {
            if constant_time_eq(key, given) {
                found = Some(state);
            }
        }
        let key = found.ok_or(Denied::Key)?;
        let limits = key.limits;
        if let Some(limit) = limits.chars_per_minute {
            if chars > limit {
                return Err(Denied::TooLarge { chars, limit });
            }
        }
        let takes = [("requests", limits.requests_per_minute, 1), ("chars", limits.chars_per_minute, chars)]
            .into_iter()
            .filter_map(|(bucket, capacity, amount)| capacity.map(|capacity| Take { bucket, capacity, amount }))
            .collect();
        Ok((key, takes))
    }

    /// Admits a request carrying `given` with `chars` characters of text, spending its allowance; refuses without
    /// spending anything.
    pub async fn admit(&self, given: Option<&str>, chars: u64) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        let (key, takes) = self.plan(given, chars)?;
        let waits = match &self.shared {
            Some(store) => match store.take_async(&key.bucket, &takes).await {
                Ok(waits) => {
                    if self.fallen_back.swap(false, Ordering::Relaxed) {
                        tracing::warn!(store = %store.location(), "rate limits are kept in the shared store again");
                    }
                    waits
                }
                Err(e) => {
                    if !self.fallen_back.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "the shared store does not answer: rate limits are kept per replica until it does");
                    }
                    self.local.take(&key.bucket, &takes)
                }
            },
            None => self.local.take(&key.bucket, &takes),
        };
        verdict(&takes, &waits)
    }

    #[cfg(test)]
    fn admit_at(&self, given: Option<&str>, chars: u64, now: Instant) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        let (key, takes) = self.plan(given, chars)?;
        verdict(&takes, &self.local.take_at(&key.bucket, &takes, now))
    }
}

/// Admitted when nothing must wait; else the limit that refused, and how long until the whole request fits.
fn verdict(takes: &[Take], waits: &[Duration]) -> Result<(), Denied> {
    let wait_of =
        |bucket: &str| takes.iter().zip(waits).find(|(t, _)| t.bucket == bucket).map_or(Duration::ZERO, |(_, w)| *w);
    let (request_wait, char_wait) = (wait_of("requests"), wait_of("chars"));
    if !request_wait.is_zero() {
        return Err(Denied::Rate { what: "requests", retry_after: request_wait.max(char_wait) });
    }
    if !char_wait.is_zero() {
        return Err(Denied::Rate { what: "characters", retry_after: char_wait });
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Reads a keys file: one key per line, optionally followed by `requests_per_minute=N` and/or
/// `chars_per_minute=N` (else `defaults`); blank lines and `#` comments are skipped. Errors name the line but
/// never repeat a key.
pub fn read_keys_file(path: &Path, defaults: Limits) -> Result<Vec<(String, Limits)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_keys(&text, defaults).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_keys(text: &str, defaults: Limits) -> Result<Vec<(String, Limits)>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let key = fields.next().unwrap_or_default();
        if key.contains('=') {
            return Err(format!("line {}: a line starts with the key, then its limits", n + 1));
        }
        let mut limits = defaults;
        for field in fields {
            let (name, value) =
                field.split_once('=').ok_or_else(|| format!("line {}: {field:?} is not NAME=N", n + 1))?;
            let value: u64 = value
                .parse()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("line {}: {name} must be a positive whole number", n + 1))?;
            match name {
                "requests_per_minute" => limits.requests_per_minute = Some(value),
                "chars_per_minute" => limits.chars_per_minute = Some(value),
                other => {
                    return Err(format!(
                        "line {}: unknown limit {other:?} (requests_per_minute, chars_per_minute)",
                        n + 1
                    ))
                }
            }
        }
        keys.push((key.to_string(), limits));
    }
    if keys.is_empty() {
        return Err("no keys in the file".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(r: Option<u64>, c: Option<u64>) -> Limits {
        Limits { requests_per_minute: r, chars_per_minute: c }
    }

    #[test]
    fn no_keys_means_open() {
        let access = Access::new(vec![], true);
        assert!(!access.enabled() && !access.metrics_protected());
        assert_eq!(access.admit_at(None, 10_000_000, Instant::now()), Ok(()));
    }

    #[test]
    fn keys_must_match_exactly() {
        let access = Access::new(vec![("sesame".into(), Limits::default())], false);
        let now = Instant::now();
        assert_eq!(access.admit_at(None, 1, now), Err(Denied::Key));
        assert_eq!(access.admit_at(Some("sesam"), 1, now), Err(Denied::Key));
        assert_eq!(access.admit_at(Some("sesame!"), 1, now), Err(Denied::Key));
        assert_eq!(access.admit_at(Some(""), 1, now), Err(Denied::Key));
        assert_eq!(access.admit_at(Some("sesame"), 1, now), Ok(()));
        assert!(constant_time_eq(b"", b"") && !constant_time_eq(b"a", b"") && !constant_time_eq(b"", b"a"));
    }

    #[test]
    fn request_bucket_refills_per_minute() {
        let access = Access::new(vec![("k".into(), limits(Some(2), None))], false);
        let t0 = Instant::now();
        assert_eq!(access.admit_at(Some("k"), 5, t0), Ok(()));
        assert_eq!(access.admit_at(Some("k"), 5, t0), Ok(()));
        // Two per minute: the next one is possible 30 s later.
        assert_eq!(
            access.admit_at(Some("k"), 5, t0),
            Err(Denied::Rate { what: "requests", retry_after: Duration::from_secs(30) })
        );
        assert!(matches!(access.admit_at(Some("k"), 5, t0 + Duration::from_secs(29)), Err(Denied::Rate { .. })));
        assert_eq!(access.admit_at(Some("k"), 5, t0 + Duration::from_secs(30)), Ok(()));
    }

    #[test]
    fn character_bucket_and_oversized_requests() {
        let access = Access::new(vec![("k".into(), limits(None, Some(600)))], false);
        let t0 = Instant::now();
        assert_eq!(access.admit_at(Some("k"), 601, t0), Err(Denied::TooLarge { chars: 601, limit: 600 }));
        assert_eq!(access.admit_at(Some("k"), 500, t0), Ok(()));
        // 100 left, 10 per second come back: 200 characters need 10 s more.
        assert_eq!(
            access.admit_at(Some("k"), 200, t0),
            Err(Denied::Rate { what: "characters", retry_after: Duration::from_secs(10) })
        );
        // A refusal spends nothing.
        assert_eq!(access.admit_at(Some("k"), 100, t0), Ok(()));
    }

    #[test]
    fn keys_are_limited_independently() {
        let access = Access::new(vec![("a".into(), limits(Some(1), None)), ("b".into(), limits(Some(1), None))], false);
        let t0 = Instant::now();
        assert_eq!(access.admit_at(Some("a"), 1, t0), Ok(()));
        assert!(access.admit_at(Some("a"), 1, t0).is_err());
        assert_eq!(access.admit_at(Some("b"), 1, t0), Ok(()));
    }

    #[test]
    fn keys_file_syntax() {
        let defaults = limits(Some(60), None);
        let keys = parse_keys(
            "# newsroom keys\nalpha\n\nbeta requests_per_minute=5 chars_per_minute=1000  # the wire desk\n",
            defaults,
        )
        .unwrap();
        assert_eq!(keys, vec![("alpha".into(), defaults), ("beta".into(), limits(Some(5), Some(1000)))]);
        for (bad, needle) in [
            ("k rpm=5", "unknown limit \"rpm\""),
            ("k requests_per_minute=0", "line 1: requests_per_minute must be a positive whole number"),
            ("k requests_per_minute", "is not NAME=N"),
            ("requests_per_minute=5", "starts with the key"),
            ("# only a comment", "no keys"),
        ] {
            let e = parse_keys(bad, defaults).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
        let e = parse_keys("ok\nsecret-key bogus=1", defaults).unwrap_err();
        assert!(e.starts_with("line 2") && !e.contains("secret-key"), "{e}");
    }
}
