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
pub unsafe fn bf16(_: usize, _: &[u32], _: &[u16], _: &mut [[f32; NR]; MR], _: usize) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn int8_vnni(_: usize, _: &[u32], _: &[i8], _: &mut [[i32; NR]; MR], _: usize) {
    unreachable!("AVX-512 kernels exist on x86-64 only")
}
