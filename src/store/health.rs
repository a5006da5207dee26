//! How a store is doing: the errors of the last reads and writes while they fail (each change logged once) and
//! the entries dropped for a bad checksum, as `/health` shows them.

use std::path::PathBuf;
use std::sync::Mutex;

use super::StoreError;

/// How the store is doing, for `/health` and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreHealth {
    /// `ok`, or `degraded` while reads or writes fail (the service then computes what it cannot read and keeps
    /// what it cannot store only in its answers); `unavailable` when it could not be opened, `off` for none.
    pub status: String,
    /// `sqlite` or `redis` (empty when there is no store).
    pub backend: &'static str,
    /// The SQLite file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The Redis server, without its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The error of the last read, while reads fail.
    pub read_error: Option<String>,
    /// The error of the last write, while writes fail (a full disk, an unreachable server).
    pub write_error: Option<String>,
    /// Stored texts and briefs dropped since start because their checksum did not match.
    pub corrupt_dropped: u64,
    /// Where an unreadable SQLite file found at start was moved (a fresh one took its place).
    pub quarantined: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
}

#[derive(Debug, Default)]
struct Faults {
    read_error: Option<String>,
    write_error: Option<String>,
    corrupt_dropped: u64,
}

/// The faults of one store, shared by its operations.
#[derive(Debug)]
pub(crate) struct Tracker {
    /// Where the store is, for log lines (a path, or a URL without password).
    location: String,
    faults: Mutex<Faults>,
}

impl Tracker {
    pub fn new(location: String) -> Self {
        Self { location, faults: Mutex::new(Faults::default()) }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes how an operation went: the first failure after success (and the first success after failure) of
    /// reads or of writes is logged once, and `/health` shows the failure while it lasts.
    pub fn track<T>(&self, op: Op, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let mut faults = self.faults();
        let slot = match op {
            Op::Read => &mut faults.read_error,
            Op::Write => &mut faults.write_error,
        };
        let what = if op == Op::Read { "reads" } else { "writes" };
        match &result {
            Ok(_) if slot.is_some() => {
                *slot = None;
                tracing::warn!(store = %self.location, "cache {what} work again");
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

    /// Counts entries dropped for a bad checksum.
    pub fn dropped_corrupt(&self, what: &str, n: usize) {
        if n > 0 {
            self.faults().corrupt_dropped += n as u64;
            tracing::warn!(store = %self.location, count = n, "{what} failed their checksum: dropped (never served)");
        }
    }

    /// The health of a store of `backend`, `path` or `url` naming where it is.
    pub fn health(&self, backend: &'static str, path: Option<PathBuf>, url: Option<String>) -> StoreHealth {
        let faults = self.faults();
        let degraded = faults.read_error.is_some() || faults.write_error.is_some();
        StoreHealth {
            status: if degraded { "degraded" } else { "ok" }.to_string(),
            backend,
            path,
            url,
            read_error: faults.read_error.clone(),
            write_error: faults.write_error.clone(),
            corrupt_dropped: faults.corrupt_dropped,
            quarantined: None,
        }
    }
}
