//! GFLOP/s of the attention kernel (`q·kᵀ`, softmax, `·v`; 4·b·h·m·n·d operations) on every family this CPU
//! runs, at the shapes of T5 and Marian: encoders over long and short inputs, and the cross and self attention of
//! one decoding step of 32 sources × 4 beams.
//! cargo run --release --example attention [-- --isa avx2,portable] [--threads N] [--shapes BxHxMxNxD,...]
use brief::models::kernels::attention::{attend_on, Shape, View};
use std::time::Instant;

mod kernel_flags;

fn main() -> anyhow::Result<()> {
    let flags = kernel_flags::Flags::from_env();
    let isas = flags.families()?;
    // T5 encoder (16 × 512 tokens), opus-mt encoder (32 × 40), a step's cross attention (32 sources, the 4 beams
    // as queries, 45 source tokens) and self attention (128 rows, 24 past positions).
    let default = "16x12x512x512x64,32x8x40x40x64,32x12x4x45x64,128x12x1x24x64";
    let shapes = parse_shapes(&flags.value("--shapes").unwrap_or_else(|| default.to_string()))?;
    print!("{:>4} {:>3} {:>4} {:>4} {:>4}", "b", "h", "m", "n", "d");
    for isa in &isas {
        print!(" {:>10}", isa.to_string());
    }
    println!();
    for shape in shapes {
        let Shape { b, h, m, n, d } = shape;
        let fill = |len: usize, seed: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * seed) % 1000) as f32 / 1000.0 - 0.5).collect()
        };
        let (q, k, v) = (fill(b * h * m * d, 7919), fill(b * h * n * d, 104729), fill(b * h * n * d, 15485863));
        let mut out = vec![0f32; b * m * h * d];
        let flops = 4.0 * (b * h * m * n * d) as f64;
        let reps = ((2e9 / flops) as usize).clamp(3, 2000);
        print!("{b:>4} {h:>3} {m:>4} {n:>4} {d:>4}");
        for &isa in &isas {
            let run = |out: &mut [f32]| {
                let (q, k, v) = (view(&q, h, m, d), view(&k, h, n, d), view(&v, h, n, d));
                attend_on(isa, shape, q, k, v, None, 0.125, out);
            };
            run(&mut out);
            let t = Instant::now();
            for _ in 0..reps {
                run(&mut out);
            }
            print!(" {:>10.1}", flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        println!();
    }
    Ok(())
}

/// `data` as a contiguous `[b, h, rows, d]` view.
fn view(data: &[f32], h: usize, rows: usize, d: usize) -> View<'_> {
    View::new(data, 0, [h * rows * d, rows * d, d])
}

/// `BxHxMxNxD,…` as attention shapes.
fn parse_shapes(list: &str) -> anyhow::Result<Vec<Shape>> {
    list.split(',')
        .map(|shape| match shape.split('x').map(str::parse).collect::<Result<Vec<usize>, _>>()?.as_slice() {
            &[b, h, m, n, d] => Ok(Shape { b, h, m, n, d }),
            _ => anyhow::bail!("--shapes takes BxHxMxNxD,… (not '{shape}')"),
        })
        .collect()
}
