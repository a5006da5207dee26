//! GFLOP/s (int8: GOP/s) of the packed kernels on every family this CPU runs, and of candle's matmul, on the
//! shapes of a Marian decoder step.
//! cargo run --release --example gemm [-- --isa avx2,portable] [--threads N] [--shapes MxNxK,...] [--peak]
//! (int8 weights as each family packs them: 7 bits on plain AVX2; BRIEF_INT8_WEIGHT_BITS=8 packs all of them in 8)
use brief::models::kernels::{PackedMatrix, Precision};
use std::time::Instant;

mod kernel_flags;

fn main() -> anyhow::Result<()> {
    let flags = kernel_flags::Flags::from_env();
    let isas = flags.families()?;
    #[cfg(target_arch = "x86_64")]
    if flags.has("--peak") {
        peak();
        return Ok(());
    }
    // Default: the products of an opus-mt decoder step (and an encoder batch); --shapes 128x768x768,… for others.
    let default =
        "128x512x512,128x2048x512,128x512x2048,128x54796x512,32x54796x512,4x54796x512,1x2048x512,1280x512x512";
    let shapes = parse_shapes(&flags.value("--shapes").unwrap_or_else(|| default.to_string()))?;
    print!("{:>6} {:>6} {:>6}", "m", "n", "k");
    for isa in &isas {
        for p in ["f32", "bf16", "int8"] {
            print!(" {:>16}", format!("{isa} {p}"));
        }
    }
    println!(" {:>10}", "candle f32");
    for (m, n, k) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let flops = 2.0 * (m * n * k) as f64;
        let reps = ((1e10 / flops) as usize).clamp(2, 100);
        let mut out = vec![0f32; m * n];
        print!("{m:>6} {n:>6} {k:>6}");
        for &isa in &isas {
            for p in [Precision::F32, Precision::Bf16, Precision::Int8] {
                // int8 weights as each family packs them by default, or all of the width BRIEF_INT8_WEIGHT_BITS sets.
                let packed = match std::env::var_os("BRIEF_INT8_WEIGHT_BITS") {
                    Some(_) => PackedMatrix::pack(&w, n, k, p),
                    None => PackedMatrix::pack_for(isa, &w, n, k, p),
                };
                packed.matmul_on(isa, &a, m, None, None, &mut out);
                let t = Instant::now();
                for _ in 0..reps {
                    packed.matmul_on(isa, &a, m, None, None, &mut out);
                }
                print!(" {:>16.1}", flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
        }
        let at = candle_core::Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu)?;
        let wt = candle_core::Tensor::from_vec(w.clone(), (n, k), &candle_core::Device::Cpu)?.t()?;
        at.matmul(&wt)?;
        let t = Instant::now();
        for _ in 0..reps {
            at.matmul(&wt)?;
        }
        println!(" {:>10.1}", flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    Ok(())
}

/// `MxNxK,MxNxK,…` as `(m, n, k)` triples.
fn parse_shapes(list: &str) -> anyhow::Result<Vec<(usize, usize, usize)>> {
    list.split(',')
        .map(|shape| match shape.split('x').map(str::parse).collect::<Result<Vec<usize>, _>>()?.as_slice() {
            &[m, n, k] => Ok((m, n, k)),
            _ => anyhow::bail!("--shapes takes MxNxK,… (not '{shape}')"),
        })
        .collect()
}

/// The FMA peak of this machine, measured: `--peak` runs independent FMA chains (enough to cover the latency)
/// on every thread of the pool, for AVX-512 (16 lanes) and AVX2 (8 lanes).
#[cfg(target_arch = "x86_64")]
pub fn peak() {
    use rayon::prelude::*;
    use std::arch::x86_64::*;
    const ITERS: usize = 100_000_000;
    #[target_feature(enable = "avx2,fma")]
    fn avx2() -> f32 {
        let mut acc = [_mm256_set1_ps(1.0); 12];
        let (x, y) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..ITERS / 12 {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        acc.iter().map(|&a| _mm256_cvtss_f32(a)).sum()
    }
    #[target_feature(enable = "avx512f")]
    fn avx512() -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); 12];
        let (x, y) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..ITERS / 12 {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }
    let threads = rayon::current_num_threads();
    let run = |lanes: usize, f: &(dyn Fn() -> f32 + Sync)| {
        let t = Instant::now();
        let s: f32 = (0..threads).into_par_iter().map(|_| f()).sum();
        let gflops = (threads * ITERS / 12 * 12 * lanes * 2) as f64 / t.elapsed().as_secs_f64() / 1e9;
        (gflops, s)
    };
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected.
        let (g, _) = run(8, &|| unsafe { avx2() });
        println!("AVX2 FMA peak, {threads} threads: {g:.1} GFLOP/s");
    }
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was detected.
        let (g, _) = run(16, &|| unsafe { avx512() });
        println!("AVX-512 FMA peak, {threads} threads: {g:.1} GFLOP/s");
    }
}
