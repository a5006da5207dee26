//! Process-wide settings for CPU inference, applied once at start-up before any thread pool exists: the kernel
//! family, the width of int8 weights, the thread count, how long idle pool threads spin, and how the allocator
//! treats the large per-step buffers.

use super::kernels::{self, isa, Isa};
use super::ModelError;

/// Applies the settings and returns the kernel family that runs: `cpu_isa` (from `--cpu-isa` or
/// `BRIEF_CPU_ISA`) when given, else the best this CPU has; a name this CPU cannot run is an error.
/// `int8_weight_bits` (from `--int8-weight-bits` or `BRIEF_INT8_WEIGHT_BITS`; 7 or 8) sets the width of int8
/// weights, by default 7 on plain AVX2 and 8 elsewhere ([`kernels::gemm::int8_weight_bits`]). `threads` (when
/// given) sets the size of the compute pools. Settings the user already made in the environment are kept.
///
/// * `CANDLE_BARRIER_POOL_SPIN_LIMIT` defaults to 0: candle's element-wise pool otherwise spins for a while after
///   each operation, taking a core from the matrix kernels that run next (measured in docs/BENCHMARKS.md).
/// * On glibc, buffers up to 32 MiB (e.g. the logits of a batch) come from the heap rather than fresh mappings,
///   and freed memory is kept for the next step instead of being returned and faulted in again.
///
/// Call it before starting other threads: it changes the environment.
pub fn configure(
    threads: Option<usize>,
    cpu_isa: Option<&str>,
    int8_weight_bits: Option<u32>,
) -> Result<Isa, ModelError> {
    let isa = isa::choose(cpu_isa).map_err(|e| ModelError::Device(format!("cpu: {e} (--cpu-isa, BRIEF_CPU_ISA)")))?;
    kernels::gemm::set_int8_weight_bits(int8_weight_bits)
        .map_err(|e| ModelError::Device(format!("cpu: {e} (--int8-weight-bits, BRIEF_INT8_WEIGHT_BITS)")))?;
    let int8_bits = kernels::gemm::int8_weight_bits_in_use();
    tracing::info!(cpu_isa = %isa.describe(), best = %isa::best().describe(), int8_weight_bits = int8_bits, "CPU kernels");
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
    Ok(isa)
}
