//! AVX-512 micro-kernels: `R` rows × 32 columns in `2R` zmm registers (R is 12, or fewer for small batches,
//! which are memory bound), adding a block of k steps to the sums of a tile: f32 FMA, bf16 `vdpbf16ps`
//! (AVX512-BF16) and int8 `vpdpbusd` (AVX512-VNNI).
#![cfg_attr(not(target_arch = "x86_64"), allow(unused))]

use super::{MR, NR};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Calls `$f::<R>` for the rows handled by one call: 1, 2, 4 or a full `MR`.
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

/// Adds the f32 products of `steps` steps of an activation panel (`[k][MR]`) and a weight panel (`[k][NR]`) to
/// the first `rows` rows of `acc`.
///
/// # Safety
/// AVX-512F must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn f32(steps: usize, a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR], rows: usize) {
    assert!(a.len() >= steps * MR && b.len() >= steps * NR, "panel sizes");
    // SAFETY: the panels hold `steps` steps (checked above).
    unsafe { by_rows!(rows, f32_tile, steps, a.as_ptr(), b.as_ptr(), acc) }
}

/// # Safety
/// `ap` and `bp` point to panels of `steps` steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn f32_tile<const R: usize>(steps: usize, ap: *const f32, bp: *const f32, acc: &mut [[f32; NR]; MR]) {
    let mut c: [[__m512; 2]; R] = std::array::from_fn(|i| load_f32(&acc[i]));
    for kk in 0..steps {
        // SAFETY: step `kk < steps` of each panel.
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
    for (row, ci) in acc.iter_mut().zip(&c) {
        store_f32(row, ci);
    }
}

/// The lanes of a tile row's two halves (columns 0..16 and 16..32) that hold its first `cols` columns.
#[cfg(target_arch = "x86_64")]
fn column_masks(cols: usize) -> [__mmask16; 2] {
    [0, 16].map(|from| match cols.min(NR).saturating_sub(from) {
        0 => 0,
        c if c >= 16 => 0xffff,
        c => (1u16 << c) - 1,
    })
}

/// Writes `acc` plus the bias into the valid part of `tile`, as [`super::Tile::store`] does, in zmm registers
/// with masked stores for a partial tile.
///
/// # Safety
/// AVX-512F must be present, and the contract of [`super::Tile::store`] holds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn store(acc: &[[f32; NR]; MR], tile: &super::Tile) {
    let [m0, m1] = column_masks(tile.cols);
    let bias = load_f32(tile.bias);
    for (i, row) in acc.iter().enumerate().take(tile.rows) {
        let c = load_f32(row);
        // SAFETY: row `i < rows` of the tile holds `cols` values (the caller's contract); masked-off lanes are
        // not written, and the second half's address is formed only when it holds some of them.
        unsafe {
            let out = tile.c.add(i * tile.ldc);
            _mm512_mask_storeu_ps(out, m0, _mm512_add_ps(c[0], bias[0]));
            if m1 != 0 {
                _mm512_mask_storeu_ps(out.add(16), m1, _mm512_add_ps(c[1], bias[1]));
            }
        }
    }
}

/// [`super::pack::dequantize`] in zmm registers, with the same operations in the same order (a product, then
/// a sum, no fused multiply-add), so that the values are the same bit for bit.
///
/// # Safety
/// AVX-512F must be present, and the contract of [`super::Tile::store`] holds; `scale.cols` and `scale.sums`
/// hold the tile's `cols` columns and `scale.rows` its `rows` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn dequantize(acc: &[[i32; NR]; MR], offset: bool, scale: &super::pack::Int8Scales, tile: &super::Tile) {
    let cols = tile.cols.min(NR);
    assert!(scale.cols.len() >= cols && scale.sums.len() >= cols && scale.rows.len() >= tile.rows, "scales");
    let masks = column_masks(cols);
    let bias = load_f32(tile.bias);
    // SAFETY: masked loads read only the valid columns (checked above), and a half's address is formed only
    // when it holds some of them.
    let half = |h: usize, values: *const f32| unsafe {
        if masks[h] == 0 {
            _mm512_setzero_ps()
        } else {
            _mm512_maskz_loadu_ps(masks[h], values.add(16 * h))
        }
    };
    let col_scale = [half(0, scale.cols.as_ptr()), half(1, scale.cols.as_ptr())];
    let shift = if offset {
        // 128 · Σw, the valid columns only (as `half`).
        [0, 1].map(|h| unsafe {
            // SAFETY: as in `half`.
            let sums = if masks[h] == 0 {
                _mm512_setzero_si512()
            } else {
                _mm512_maskz_loadu_epi32(masks[h], scale.sums.as_ptr().add(16 * h))
            };
            _mm512_slli_epi32::<7>(sums)
        })
    } else {
        [_mm512_setzero_si512(); 2]
    };
    for (i, row) in acc.iter().enumerate().take(tile.rows) {
        let s = _mm512_set1_ps(scale.rows[i]);
        // SAFETY: row `i < rows` of the tile holds `cols` values (the caller's contract); masked-off lanes are
        // not written, and the second half's address is formed only when it holds some of them.
        unsafe {
            let out = tile.c.add(i * tile.ldc);
            for h in 0..2 {
                if masks[h] == 0 {
                    continue;
                }
                let a = _mm512_loadu_si512(row.as_ptr().add(16 * h).cast());
                let x = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, shift[h]));
                let v = _mm512_add_ps(_mm512_mul_ps(x, _mm512_mul_ps(s, col_scale[h])), bias[h]);
                _mm512_mask_storeu_ps(out.add(16 * h), masks[h], v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn load_f32(row: &[f32; NR]) -> [__m512; 2] {
    // SAFETY: a row holds 32 values, two registers' worth.
    unsafe { [_mm512_loadu_ps(row.as_ptr()), _mm512_loadu_ps(row.as_ptr().add(16))] }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn store_f32(row: &mut [f32; NR], c: &[__m512; 2]) {
    // SAFETY: as in `load_f32`.
    unsafe {
        _mm512_storeu_ps(row.as_mut_ptr(), c[0]);
        _mm512_storeu_ps(row.as_mut_ptr().add(16), c[1]);
    }
}

/// Adds the bf16 products of packed pairs (`[k2][MR]` and `[k2][NR][2]`), with `vdpbf16ps`, to `acc`.
///
/// # Safety
/// AVX-512F and AVX512-BF16 must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn bf16(steps: usize, a: &[u32], b: &[u16], acc: &mut [[f32; NR]; MR], rows: usize) {
    assert!(a.len() >= steps * MR && b.len() >= steps * NR * 2, "panel sizes");
    // SAFETY: the panels hold `steps` steps (checked above).
    unsafe { by_rows!(rows, bf16_tile, steps, a.as_ptr(), b.as_ptr(), acc) }
}

/// # Safety
/// `ap` and `bp` point to panels of `steps` pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_tile<const R: usize>(steps: usize, ap: *const u32, bp: *const u16, acc: &mut [[f32; NR]; MR]) {
    let mut c: [[__m512; 2]; R] = std::array::from_fn(|i| load_f32(&acc[i]));
    for kp in 0..steps {
        // SAFETY: step `kp < steps` of each panel; the transmutes reinterpret 512 bits as 32 bf16.
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
    for (row, ci) in acc.iter_mut().zip(&c) {
        store_f32(row, ci);
    }
}

/// Adds the exact i32 sums of int8 quads, with `vpdpbusd`, to `acc`: the activations come offset to unsigned
/// (`q + 128`, packed so), which [`super::pack::dequantize`] takes back out with the weights' sums.
///
/// # Safety
/// AVX-512F and AVX512-VNNI must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
pub unsafe fn int8_vnni(steps: usize, a: &[u32], b: &[i8], acc: &mut [[i32; NR]; MR], rows: usize) {
    assert!(a.len() >= steps * MR && b.len() >= steps * NR * 4, "panel sizes");
    // SAFETY: the panels hold `steps` steps (checked above).
    unsafe { by_rows!(rows, int8_tile, steps, a.as_ptr(), b.as_ptr(), acc) }
}

/// # Safety
/// `ap` and `bp` point to panels of `steps` quads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn int8_tile<const R: usize>(steps: usize, ap: *const u32, bp: *const i8, acc: &mut [[i32; NR]; MR]) {
    // SAFETY (both closures): a row holds 32 i32, two registers' worth.
    let load = |row: &[i32; NR]| unsafe {
        [_mm512_loadu_si512(row.as_ptr() as *const _), _mm512_loadu_si512(row.as_ptr().add(16) as *const _)]
    };
    let mut c: [[__m512i; 2]; R] = std::array::from_fn(|i| load(&acc[i]));
    for kp in 0..steps {
        // SAFETY: step `kp < steps` of each panel.
        unsafe {
            let w0 = _mm512_loadu_si512(bp.add(kp * NR * 4) as *const _);
            let w1 = _mm512_loadu_si512(bp.add(kp * NR * 4 + 64) as *const _);
            for (i, ci) in c.iter_mut().enumerate() {
                let x = _mm512_set1_epi32(*ap.add(kp * MR + i) as i32);
                ci[0] = _mm512_dpbusd_epi32(ci[0], x, w0);
                ci[1] = _mm512_dpbusd_epi32(ci[1], x, w1);
            }
        }
    }
    for (row, ci) in acc.iter_mut().zip(&c) {
        // SAFETY: as in `load`.
        unsafe {
            _mm512_storeu_si512(row.as_mut_ptr() as *mut _, ci[0]);
            _mm512_storeu_si512(row.as_mut_ptr().add(16) as *mut _, ci[1]);
        }
    }
}

// Never called off x86-64 (the kernels are chosen only where the CPU has them); these keep the dispatch simple.

/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn f32(_: usize, _: &[f32], _: &[f32], _: &mut [[f32; NR]; MR], _: usize) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn dequantize(_: &[[i32; NR]; MR], _: bool, _: &super::pack::Int8Scales, _: &super::Tile) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn store(_: &[[f32; NR]; MR], _: &super::Tile) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn bf16(_: usize, _: &[u32], _: &[u16], _: &mut [[f32; NR]; MR], _: usize) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn int8_vnni(_: usize, _: &[u32], _: &[i8], _: &mut [[i32; NR]; MR], _: usize) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
