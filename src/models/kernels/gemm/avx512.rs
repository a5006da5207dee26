//! AVX-512 micro-kernels: `R` rows × 32 columns in `2R` zmm registers (R is 12, or fewer for small batches,
//! which are memory bound): f32 FMA, bf16 `vdpbf16ps` (AVX512-BF16) and int8 `vpdpbusd` (AVX512-VNNI).
#![cfg_attr(not(target_arch = "x86_64"), allow(unused))]

use super::{Tile, MR, NR};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows handled by one call of a tile function for `rows` valid rows: 1, 2, 4 or a full `MR`.
macro_rules! by_rows {
    ($rows:expr, $f:ident, $($arg:expr),*) => {
        match $rows {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 | 4 => $f::<4>($($arg),*),
            _ => $f::<MR>($($arg),*),
        }
    };
}

/// f32 products of an activation panel (`[k][MR]`) and a weight panel (`[k][NR]`).
///
/// # Safety
/// AVX-512F must be present; `tile` as [`Tile::store`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn f32(k: usize, a: &[f32], b: &[f32], tile: &Tile) {
    assert!(a.len() >= k * MR && b.len() >= k * NR, "panel sizes");
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // SAFETY: the panels hold `k` steps (checked above).
    unsafe { by_rows!(tile.rows, f32_tile, k, a.as_ptr(), b.as_ptr(), &mut acc) };
    // SAFETY: the caller's contract.
    unsafe { finish(&acc, tile) }
}

/// # Safety
/// `ap` and `bp` point to panels of `k` steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn f32_tile<const R: usize>(k: usize, ap: *const f32, bp: *const f32, acc: &mut [[__m512; 2]; MR]) {
    let mut c = [[_mm512_setzero_ps(); 2]; R];
    for kk in 0..k {
        // SAFETY: step `kk < k` of each panel.
        unsafe {
            let w0 = _mm512_loadu_ps(bp.add(kk * NR));
            let w1 = _mm512_loadu_ps(bp.add(kk * NR + 16));
            for (i, ci) in c.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*ap.add(kk * MR + i));
                ci[0] = _mm512_fmadd_ps(x, w0, ci[0]);
                ci[1] = _mm512_fmadd_ps(x, w1, ci[1]);
            }
        }
    }
    acc[..R].copy_from_slice(&c);
}

/// bf16 products of packed pairs (`[k2][MR]` and `[k2][NR][2]`) with `vdpbf16ps`.
///
/// # Safety
/// AVX-512F and AVX512-BF16 must be present; `tile` as [`Tile::store`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn bf16(k2: usize, a: &[u32], b: &[u16], tile: &Tile) {
    assert!(a.len() >= k2 * MR && b.len() >= k2 * NR * 2, "panel sizes");
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // SAFETY: the panels hold `k2` steps (checked above).
    unsafe { by_rows!(tile.rows, bf16_tile, k2, a.as_ptr(), b.as_ptr(), &mut acc) };
    // SAFETY: the caller's contract.
    unsafe { finish(&acc, tile) }
}

/// # Safety
/// `ap` and `bp` point to panels of `k2` steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_tile<const R: usize>(k2: usize, ap: *const u32, bp: *const u16, acc: &mut [[__m512; 2]; MR]) {
    let mut c = [[_mm512_setzero_ps(); 2]; R];
    for kp in 0..k2 {
        // SAFETY: step `kp < k2` of each panel; the transmutes reinterpret 512 bits as 32 bf16.
        unsafe {
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(kp * NR * 2) as *const _));
            let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(kp * NR * 2 + 32) as *const _));
            for (i, ci) in c.iter_mut().enumerate() {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(kp * MR + i) as i32));
                ci[0] = _mm512_dpbf16_ps(ci[0], x, w0);
                ci[1] = _mm512_dpbf16_ps(ci[1], x, w1);
            }
        }
    }
    acc[..R].copy_from_slice(&c);
}

/// Exact i32 sums of int8 quads with `vpdpbusd`: the activations are offset to unsigned (`q + 128`, by
/// flipping the sign bit), which [`super::pack::dequantize`] takes back out with the weights' sums.
///
/// # Safety
/// AVX-512F and AVX512-VNNI must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
pub unsafe fn int8_vnni(k4: usize, a: &[u32], b: &[i8], rows: usize) -> [[i32; NR]; MR] {
    assert!(a.len() >= k4 * MR && b.len() >= k4 * NR * 4, "panel sizes");
    let mut acc = [[_mm512_setzero_si512(); 2]; MR];
    // SAFETY: the panels hold `k4` steps (checked above).
    unsafe { by_rows!(rows, int8_tile, k4, a.as_ptr(), b.as_ptr(), &mut acc) };
    let mut out = [[0i32; NR]; MR];
    for (o, c) in out.iter_mut().zip(&acc) {
        // SAFETY: each row of `out` holds 32 i32, two registers' worth.
        unsafe {
            _mm512_storeu_si512(o.as_mut_ptr() as *mut _, c[0]);
            _mm512_storeu_si512(o.as_mut_ptr().add(16) as *mut _, c[1]);
        }
    }
    out
}

/// # Safety
/// `ap` and `bp` point to panels of `k4` steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn int8_tile<const R: usize>(k4: usize, ap: *const u32, bp: *const i8, acc: &mut [[__m512i; 2]; MR]) {
    let mut c = [[_mm512_setzero_si512(); 2]; R];
    let flip = _mm512_set1_epi32(0x8080_8080u32 as i32);
    for kp in 0..k4 {
        // SAFETY: step `kp < k4` of each panel.
        unsafe {
            let w0 = _mm512_loadu_si512(bp.add(kp * NR * 4) as *const _);
            let w1 = _mm512_loadu_si512(bp.add(kp * NR * 4 + 64) as *const _);
            for (i, ci) in c.iter_mut().enumerate() {
                let x = _mm512_xor_si512(_mm512_set1_epi32(*ap.add(kp * MR + i) as i32), flip);
                ci[0] = _mm512_dpbusd_epi32(ci[0], x, w0);
                ci[1] = _mm512_dpbusd_epi32(ci[1], x, w1);
            }
        }
    }
    acc[..R].copy_from_slice(&c);
}

/// Adds the bias and stores the valid part of the tile with masks.
///
/// # Safety
/// AVX-512F must be present; `tile` as [`Tile::store`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn finish(acc: &[[__m512; 2]; MR], tile: &Tile) {
    let lanes = |from: usize| -> __mmask16 {
        let left = tile.cols.saturating_sub(from).min(16);
        ((1u32 << left) - 1) as u16
    };
    let (m0, m1) = (lanes(0), lanes(16));
    // SAFETY: the bias holds NR = 32 values.
    let (b0, b1) = unsafe { (_mm512_loadu_ps(tile.bias.as_ptr()), _mm512_loadu_ps(tile.bias.as_ptr().add(16))) };
    for (i, row) in acc.iter().enumerate().take(tile.rows) {
        // SAFETY: row `i < rows` of the tile, the masks keep its `cols` columns (the caller's contract).
        unsafe {
            let out = tile.c.add(i * tile.ldc);
            _mm512_mask_storeu_ps(out, m0, _mm512_add_ps(row[0], b0));
            if m1 != 0 {
                _mm512_mask_storeu_ps(out.add(16), m1, _mm512_add_ps(row[1], b1));
            }
        }
    }
}

// Never called off x86-64 (the kernels are chosen only where the CPU has them); these keep the dispatch simple.

/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn f32(_: usize, _: &[f32], _: &[f32], _: &Tile) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn bf16(_: usize, _: &[u32], _: &[u16], _: &Tile) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn int8_vnni(_: usize, _: &[u32], _: &[i8], _: usize) -> [[i32; NR]; MR] {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
