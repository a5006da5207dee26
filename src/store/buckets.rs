//! Token buckets in this process's memory: each holds up to its capacity and refills continuously, a capacity
//! per minute. What the SQLite store (one machine) limits with, and what a shared store falls back to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One amount to take from one of a key's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// The bucket's name within its key (`requests`, `chars`).
    pub bucket: &'static str,
    /// Most it holds; it refills this much per minute.
    pub capacity: u64,
    pub amount: u64,
}

/// The refill period: a bucket's capacity comes back over one minute.
pub const REFILL_PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Bucket {
    level: f64,
    at: Instant,
}

/// Buckets by key and name, created full on first use.
#[derive(Debug, Default)]
pub struct MemoryBuckets {
    buckets: Mutex<HashMap<(String, &'static str), Bucket>>,
}

impl MemoryBuckets {
    /// Takes every amount of `takes` from `key`'s buckets at once, or none: the wait until each is available
    /// (all zero: taken).
    pub fn take(&self, key: &str, takes: &[Take]) -> Vec<Duration> {
        self.take_at(key, takes, Instant::now())
    }

    pub fn take_at(&self, key: &str, takes: &[Take], now: Instant) -> Vec<Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let waits: Vec<Duration> = takes
            .iter()
            .map(|t| {
                let b = buckets
                    .entry((key.to_string(), t.bucket))
                    .or_insert_with(|| Bucket { level: t.capacity as f64, at: now });
                refill(b, t.capacity, now);
                wait(b.level, t)
            })
            .collect();
        if waits.iter().all(Duration::is_zero) {
            for t in takes {
                if let Some(b) = buckets.get_mut(&(key.to_string(), t.bucket)) {
                    b.level -= t.amount as f64;
                }
            }
        }
        waits
    }
}

fn rate(capacity: u64) -> f64 {
    capacity as f64 / REFILL_PERIOD.as_secs_f64()
}

fn refill(b: &mut Bucket, capacity: u64, now: Instant) {
    b.level = (b.level + now.saturating_duration_since(b.at).as_secs_f64() * rate(capacity)).min(capacity as f64);
    b.at = now;
}

fn wait(level: f64, t: &Take) -> Duration {
    let amount = t.amount as f64;
    if level >= amount || t.capacity == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64((amount - level) / rate(t.capacity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_all_or_nothing_and_refills_per_minute() {
        let b = MemoryBuckets::default();
        let t0 = Instant::now();
        let takes =
            [Take { bucket: "requests", capacity: 2, amount: 1 }, Take { bucket: "chars", capacity: 600, amount: 500 }];
        assert!(b.take_at("k", &takes, t0).iter().all(Duration::is_zero));
        // The chars bucket has 100 left: both refused, the request not spent.
        assert_eq!(b.take_at("k", &takes, t0), [Duration::ZERO, Duration::from_secs(40)]);
        let one = [Take { bucket: "requests", capacity: 2, amount: 1 }];
        assert_eq!(b.take_at("k", &one, t0), [Duration::ZERO]);
        assert_eq!(b.take_at("k", &one, t0), [Duration::from_secs(30)]);
        assert_eq!(b.take_at("other", &one, t0), [Duration::ZERO]);
    }
}
