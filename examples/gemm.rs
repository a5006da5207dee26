//! GFLOP/s of the packed kernels (f32, bf16) and candle's matmul on the shapes of a Marian decoder step.
//! cargo run --release --example gemm
use brief::models::kernels::{PackedMatrix, Precision};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let shapes = [
        (128, 512, 512),
        (128, 2048, 512),
        (128, 512, 2048),
        (128, 54796, 512),
        (32, 54796, 512),
        (4, 54796, 512),
        (1, 2048, 512),
        (1280, 512, 512),
    ];
    println!("{:>6} {:>6} {:>6} {:>10} {:>10} {:>10}", "m", "n", "k", "packed f32", "packed bf16", "candle");
    for (m, n, k) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let flops = 2.0 * (m * n * k) as f64;
        let reps = ((2e10 / flops) as usize).clamp(2, 200);
        let mut out = vec![0f32; m * n];
        let mut rates = Vec::new();
        for p in [Precision::F32, Precision::Bf16] {
            let packed = PackedMatrix::pack(&w, n, k, p);
            packed.matmul(&a, m, None, &mut out);
            let t = Instant::now();
            for _ in 0..reps {
                packed.matmul(&a, m, None, &mut out);
            }
            rates.push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        let at = candle_core::Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu)?;
        let wt = candle_core::Tensor::from_vec(w.clone(), (n, k), &candle_core::Device::Cpu)?.t()?;
        at.matmul(&wt)?;
        let t = Instant::now();
        for _ in 0..reps {
            at.matmul(&wt)?;
        }
        rates.push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
        println!("{m:>6} {n:>6} {k:>6} {:>10.1} {:>10.1} {:>10.1}", rates[0], rates[1], rates[2]);
    }
    Ok(())
}
