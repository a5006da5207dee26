//! The micro-kernels in plain Rust: one `MR × NR` accumulator block over the whole `k`, vectorised by the
//! compiler for the build's baseline (SSE2 on x86-64, NEON on aarch64) and reused under AVX2 by `avx2.rs`.

use super::pack::bf16_to_f32;
use super::{Tile, MR, NR};

/// f32 products of an activation panel `a` (`[k][MR]`) and a weight panel `b` (`[k][NR]`).
///
/// # Safety
/// `tile` as [`Tile::store`].
#[inline(always)]
pub unsafe fn f32(k: usize, a: &[f32], b: &[f32], tile: &Tile) {
    let mut acc = [[0f32; NR]; MR];
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(k) {
        for i in 0..MR {
            let av = ak[i];
            for j in 0..NR {
                acc[i][j] += av * bk[j];
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe { tile.store(&acc) }
}

/// bf16 products of packed pairs (`a` `[k2][MR]`, `b` `[k2][NR][2]`) summed in f32.
///
/// # Safety
/// `tile` as [`Tile::store`].
pub unsafe fn bf16(k2: usize, a: &[u32], b: &[u16], tile: &Tile) {
    let mut acc = [[0f32; NR]; MR];
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR * 2)).take(k2) {
        for i in 0..MR {
            let pair = ak[i];
            let (a0, a1) = (bf16_to_f32(pair as u16), bf16_to_f32((pair >> 16) as u16));
            for j in 0..NR {
                acc[i][j] += a0 * bf16_to_f32(bk[2 * j]) + a1 * bf16_to_f32(bk[2 * j + 1]);
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe { tile.store(&acc) }
}

/// Exact i32 sums of int8 quads (`a` `[k4][MR]` quads, `b` `[k4][NR][4]`).
#[inline(always)]
pub fn int8(k4: usize, a: &[u32], b: &[i8]) -> [[i32; NR]; MR] {
    let mut acc = [[0i32; NR]; MR];
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR * 4)).take(k4) {
        for i in 0..MR {
            let q = ak[i].to_le_bytes().map(|v| i32::from(v as i8));
            for j in 0..NR {
                let w = &bk[4 * j..4 * j + 4];
                acc[i][j] +=
                    q[0] * i32::from(w[0]) + q[1] * i32::from(w[1]) + q[2] * i32::from(w[2]) + q[3] * i32::from(w[3]);
            }
        }
    }
    acc
}
