//! Process-wide settings for CPU inference, applied once at start-up before any thread pool exists: the thread
//! count, how long idle pool threads spin, and how the allocator treats the large per-step buffers.

/// Applies the settings; `threads` (when given) sets the size of the compute pools. Settings the user already
/// made in the environment are kept.
///
/// * `CANDLE_BARRIER_POOL_SPIN_LIMIT` defaults to 0: candle's element-wise pool otherwise spins for a while after
///   each operation, taking a core from the matrix kernels that run next (measured in docs/BENCHMARKS.md).
/// * On glibc, buffers up to 32 MiB (e.g. the logits of a batch) come from the heap rather than fresh mappings,
///   and freed memory is kept for the next step instead of being returned and faulted in again.
///
/// Call it before starting other threads: it changes the environment.
pub fn configure(threads: Option<usize>) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
    }
}
