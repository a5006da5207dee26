//! The micro-kernels in plain Rust: an `MR × NR` block of sums over a block of k steps, vectorised by the
//! compiler for the build's baseline (SSE2 on x86-64, NEON on aarch64).

use super::pack::bf16_to_f32;
use super::{MR, NR};

/// Adds the f32 products of `steps` steps of an activation panel `a` (`[k][MR]`) and a weight panel `b`
/// (`[k][NR]`) to `acc`.
pub fn f32(steps: usize, a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR]) {
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(steps) {
        for i in 0..MR {
            let av = ak[i];
            for j in 0..NR {
                acc[i][j] += av * bk[j];
            }
        }
    }
}

/// Adds the bf16 products of packed pairs (`a` `[k2][MR]`, `b` `[k2][NR][2]`), summed in f32, to `acc`.
pub fn bf16(steps: usize, a: &[u32], b: &[u16], acc: &mut [[f32; NR]; MR]) {
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR * 2)).take(steps) {
        for i in 0..MR {
            let pair = ak[i];
            let (a0, a1) = (bf16_to_f32(pair as u16), bf16_to_f32((pair >> 16) as u16));
            for j in 0..NR {
                acc[i][j] += a0 * bf16_to_f32(bk[2 * j]) + a1 * bf16_to_f32(bk[2 * j + 1]);
            }
        }
    }
}

/// Adds the exact i32 sums of int8 quads (`a` `[k4][MR]` quads, `b` `[k4][NR][4]`) to `acc`.
pub fn int8(steps: usize, a: &[u32], b: &[i8], acc: &mut [[i32; NR]; MR]) {
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR * 4)).take(steps) {
        for i in 0..MR {
            let q = ak[i].to_le_bytes().map(|v| i32::from(v as i8));
            for j in 0..NR {
                let w = &bk[4 * j..4 * j + 4];
                acc[i][j] +=
                    q[0] * i32::from(w[0]) + q[1] * i32::from(w[1]) + q[2] * i32::from(w[2]) + q[3] * i32::from(w[3]);
            }
        }
    }
}
