//! AVX2 + FMA micro-kernels, blocked for 16 ymm registers: 6 rows × 16 columns (12 accumulators, two weight
//! vectors, one broadcast) over each half of a 32-column panel, or 1–2 rows × 32 columns when the batch is that
//! small (memory bound: each weight is read once). f32 FMA; bf16 widened to f32 in registers; int8 either with
//! AVX-VNNI `vpdpbusd` or, on plain AVX2, `vpmaddubsw` + `vpmaddwd`: on weights packed in 7 bits, activations
//! offset to unsigned (6 × 16 tiles; a pair sums to at most 2·255·63 < 2¹⁵), or on full-range weights with
//! `vpsignb` first (4 × 16 tiles; at most 2·127² < 2¹⁵). Both are exact.
#![cfg_attr(not(target_arch = "x86_64"), allow(unused))]

use super::{MR, NR};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Calls `$f::<R>` for `R` = `$rows` (1 to 6).
macro_rules! by_rows {
    ($rows:expr, $f:ident, $($arg:expr),*) => {
        match $rows {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            _ => $f::<6>($($arg),*),
        }
    };
}

/// Rows of the f32, bf16 and AVX-VNNI sub-tiles, and of the plain-AVX2 int8 ones.
const SUB: usize = 6;
const SUB_INT8: usize = 4;

/// Calls `f(r0, rows_left, h)` for each sub-tile of `sub` rows among the first `rows`, and each 16-column half
/// `h` of the panel that holds valid columns.
#[inline(always)]
fn sub_tiles(rows: usize, cols: usize, sub: usize, mut f: impl FnMut(usize, usize, usize)) {
    let halves = if cols > 16 { 2 } else { 1 };
    for r0 in (0..rows).step_by(sub) {
        for h in 0..halves {
            f(r0, rows - r0, h);
        }
    }
}

/// Adds the f32 products of `k` steps of an activation panel (`[k][MR]`) and a weight panel (`[k][NR]`) to the
/// first `rows` rows and `cols` columns of `acc`.
///
/// # Safety
/// AVX2 and FMA must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn f32(k: usize, a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR], rows: usize, cols: usize) {
    assert!(a.len() >= k * MR && b.len() >= k * NR && rows <= MR, "panel sizes");
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the panels hold `k` steps (checked above); sub-tiles stay inside the MR × NR block.
    unsafe {
        match rows {
            1 => f32_wide::<1>(k, ap, bp, acc),
            2 => f32_wide::<2>(k, ap, bp, acc),
            rows => sub_tiles(rows, cols, SUB, |r0, left, h| by_rows!(left, f32_sub, k, ap, bp, r0, h, acc)),
        }
    }
}

/// Rows `r0..r0 + R`, columns `16h..16h + 16`.
///
/// # Safety
/// `ap` and `bp` point to panels of `k` steps; `r0 + R ≤ MR`, `h < 2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_sub<const R: usize>(
    k: usize,
    ap: *const f32,
    bp: *const f32,
    r0: usize,
    h: usize,
    acc: &mut [[f32; NR]; MR],
) {
    let mut c: [[__m256; 2]; R] = std::array::from_fn(|i| load_half(&acc[r0 + i], h));
    for kk in 0..k {
        // SAFETY: step `kk < k` of each panel, rows and columns inside it.
        unsafe {
            let w = bp.add(kk * NR + 16 * h);
            let (w0, w1) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
            for (i, ci) in c.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*ap.add(kk * MR + r0 + i));
                ci[0] = _mm256_fmadd_ps(x, w0, ci[0]);
                ci[1] = _mm256_fmadd_ps(x, w1, ci[1]);
            }
        }
    }
    for (i, ci) in c.iter().enumerate() {
        store_half(&mut acc[r0 + i], h, ci);
    }
}

/// `R` (1 or 2) rows × all 32 columns: each weight is loaded once.
///
/// # Safety
/// `ap` and `bp` point to panels of `k` steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_wide<const R: usize>(k: usize, ap: *const f32, bp: *const f32, acc: &mut [[f32; NR]; MR]) {
    // SAFETY: 8 values at `8·o` of a 32-value row.
    let mut c: [[__m256; 4]; R] =
        std::array::from_fn(|i| [0, 1, 2, 3].map(|o| unsafe { _mm256_loadu_ps(acc[i].as_ptr().add(8 * o)) }));
    for kk in 0..k {
        // SAFETY: step `kk < k` of each panel.
        unsafe {
            let w = bp.add(kk * NR);
            let ws = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(w.add(o)));
            for (i, ci) in c.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*ap.add(kk * MR + i));
                for (cv, &wv) in ci.iter_mut().zip(&ws) {
                    *cv = _mm256_fmadd_ps(x, wv, *cv);
                }
            }
        }
    }
    for (row, ci) in acc.iter_mut().zip(&c) {
        for (o, cv) in ci.iter().enumerate() {
            // SAFETY: 8 values at `8·o` of a 32-value row.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * o), *cv) };
        }
    }
}

/// bf16 products: weights (`[k2][NR][2]`) widened to f32 in registers (a shift for the even k, a mask for the
/// odd), activations already rounded to bf16 and stored as f32 pairs (`[k2][MR][2]`).
///
/// # Safety
/// AVX2 and FMA must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn bf16(k2: usize, a: &[f32], b: &[u16], acc: &mut [[f32; NR]; MR], rows: usize, cols: usize) {
    assert!(a.len() >= 2 * k2 * MR && b.len() >= k2 * NR * 2 && rows <= MR, "panel sizes");
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the panels hold `k2` steps (checked above); sub-tiles stay inside the block.
    sub_tiles(rows, cols, SUB, |r0, left, h| unsafe { by_rows!(left, bf16_sub, k2, ap, bp, r0, h, acc) });
}

/// # Safety
/// As [`f32_sub`], with panels of `k2` pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bf16_sub<const R: usize>(
    k2: usize,
    ap: *const f32,
    bp: *const u16,
    r0: usize,
    h: usize,
    acc: &mut [[f32; NR]; MR],
) {
    let mut c: [[__m256; 2]; R] = std::array::from_fn(|i| load_half(&acc[r0 + i], h));
    let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
    for kp in 0..k2 {
        // SAFETY: pair `kp < k2` of each panel, rows and columns inside it.
        unsafe {
            let w = bp.add((kp * NR + 16 * h) * 2);
            let (v0, v1) = (_mm256_loadu_si256(w as *const _), _mm256_loadu_si256(w.add(16) as *const _));
            for (parity, (w0, w1)) in [
                (_mm256_slli_epi32::<16>(v0), _mm256_slli_epi32::<16>(v1)),
                (_mm256_and_si256(v0, high), _mm256_and_si256(v1, high)),
            ]
            .into_iter()
            .enumerate()
            {
                let (w0, w1) = (_mm256_castsi256_ps(w0), _mm256_castsi256_ps(w1));
                for (i, ci) in c.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*ap.add((kp * MR + r0 + i) * 2 + parity));
                    ci[0] = _mm256_fmadd_ps(x, w0, ci[0]);
                    ci[1] = _mm256_fmadd_ps(x, w1, ci[1]);
                }
            }
        }
    }
    for (i, ci) in c.iter().enumerate() {
        store_half(&mut acc[r0 + i], h, ci);
    }
}

/// Exact i32 sums of int8 quads on plain AVX2: `|x|` times `w` with the sign of `x` (`vpsignb`), pairs
/// summed to i16 (`vpmaddubsw`), then to i32 (`vpmaddwd` by ones). The activations come as `[k4][MR][2]`
/// quads of `|x|` and `x` ([`super::pack::ActLayout::Int8WithAbs`]).
///
/// # Safety
/// AVX2 must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn int8(k4: usize, a: &[u32], b: &[i8], acc: &mut [[i32; NR]; MR], rows: usize, cols: usize) {
    assert!(a.len() >= k4 * MR * 2 && b.len() >= k4 * NR * 4 && rows <= MR, "panel sizes");
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the panels hold `k4` steps (checked above); sub-tiles stay inside the block.
    sub_tiles(rows, cols, SUB_INT8, |r0, left, h| unsafe {
        match left {
            1 => int8_sub::<1>(k4, ap, bp, r0, h, acc),
            2 => int8_sub::<2>(k4, ap, bp, r0, h, acc),
            3 => int8_sub::<3>(k4, ap, bp, r0, h, acc),
            _ => int8_sub::<4>(k4, ap, bp, r0, h, acc),
        }
    });
}

/// # Safety
/// `ap` and `bp` point to panels of `k4` quads (pairs of quads for `ap`); `r0 + R ≤ MR`, `h < 2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn int8_sub<const R: usize>(
    k4: usize,
    ap: *const u32,
    bp: *const i8,
    r0: usize,
    h: usize,
    acc: &mut [[i32; NR]; MR],
) {
    let mut c: [[__m256i; 2]; R] = std::array::from_fn(|i| load_i32(&acc[r0 + i], h));
    let ones = _mm256_set1_epi16(1);
    for kp in 0..k4 {
        // SAFETY: quad `kp < k4` of each panel, rows and columns inside it.
        unsafe {
            let w = bp.add((kp * NR + 16 * h) * 4);
            let (w0, w1) = (_mm256_loadu_si256(w as *const _), _mm256_loadu_si256(w.add(32) as *const _));
            for (i, ci) in c.iter_mut().enumerate() {
                let at = (kp * MR + r0 + i) * 2;
                let (ax, x) = (_mm256_set1_epi32(*ap.add(at) as i32), _mm256_set1_epi32(*ap.add(at + 1) as i32));
                let p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, x));
                let p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, x));
                ci[0] = _mm256_add_epi32(ci[0], _mm256_madd_epi16(p0, ones));
                ci[1] = _mm256_add_epi32(ci[1], _mm256_madd_epi16(p1, ones));
            }
        }
    }
    store_i32(&c, r0, h, acc);
}

/// Exact i32 sums of int8 quads on plain AVX2 for weights packed in [-63, 63]
/// ([`super::pack::WeightPanels::Int8`] with `bits` 7): the activations offset to unsigned (`q + 128`, packed as
/// for `vpdpbusd`) times the weights, pairs summed to i16 by `vpmaddubsw` (at most 2·255·63 < 2¹⁵, so it never
/// saturates), then to i32 by `vpmaddwd` with ones: three instructions per 32 multiply-adds where the full-range
/// kernel ([`int8`]) needs four.
///
/// # Safety
/// AVX2 must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn int8_7bit(k4: usize, a: &[u32], b: &[i8], acc: &mut [[i32; NR]; MR], rows: usize, cols: usize) {
    assert!(a.len() >= k4 * MR && b.len() >= k4 * NR * 4 && rows <= MR, "panel sizes");
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the panels hold `k4` steps (checked above); sub-tiles stay inside the block.
    sub_tiles(rows, cols, SUB, |r0, left, h| unsafe { by_rows!(left, int8_7bit_sub, k4, ap, bp, r0, h, acc) });
}

/// # Safety
/// As [`int8_sub`], with activation panels of single quads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn int8_7bit_sub<const R: usize>(
    k4: usize,
    ap: *const u32,
    bp: *const i8,
    r0: usize,
    h: usize,
    acc: &mut [[i32; NR]; MR],
) {
    let ones = _mm256_set1_epi16(1);
    let dot = |c, x, w| _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones));
    // SAFETY: the caller's contract.
    unsafe { quad_sub::<R>(k4, ap, bp, (r0, h), acc, dot) }
}

/// Exact i32 sums of int8 quads with AVX-VNNI `vpdpbusd`, activations packed offset to unsigned as for the
/// AVX-512 kernel.
///
/// # Safety
/// AVX2 and AVX-VNNI must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn int8_vnni(k4: usize, a: &[u32], b: &[i8], acc: &mut [[i32; NR]; MR], rows: usize, cols: usize) {
    assert!(a.len() >= k4 * MR && b.len() >= k4 * NR * 4 && rows <= MR, "panel sizes");
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the panels hold `k4` steps (checked above); sub-tiles stay inside the block.
    sub_tiles(rows, cols, SUB, |r0, left, h| unsafe { by_rows!(left, vnni_sub, k4, ap, bp, r0, h, acc) });
}

/// # Safety
/// As [`int8_sub`], with activation panels of single quads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn vnni_sub<const R: usize>(
    k4: usize,
    ap: *const u32,
    bp: *const i8,
    r0: usize,
    h: usize,
    acc: &mut [[i32; NR]; MR],
) {
    // SAFETY: the caller's contract.
    unsafe { quad_sub::<R>(k4, ap, bp, (r0, h), acc, |c, x, w| _mm256_dpbusd_avx_epi32(c, x, w)) }
}

/// Rows `r0..r0 + R`, columns `16h..16h + 16`: each activation quad (`[k4][MR]`, one `u32` a row and step)
/// broadcast and multiplied into the sums with the weight quads by `dot(sums, x, w)`. Inlined into its callers,
/// which carry the CPU features `dot` needs.
///
/// # Safety
/// As [`int8_sub`], with activation panels of single quads; the CPU has the features of the caller.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn quad_sub<const R: usize>(
    k4: usize,
    ap: *const u32,
    bp: *const i8,
    (r0, h): (usize, usize),
    acc: &mut [[i32; NR]; MR],
    dot: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
) {
    // SAFETY: AVX2 is present (the caller's contract); the loads below stay inside the panels.
    unsafe {
        let mut c: [[__m256i; 2]; R] = std::array::from_fn(|i| load_i32(&acc[r0 + i], h));
        for kp in 0..k4 {
            let w = bp.add((kp * NR + 16 * h) * 4);
            let (w0, w1) = (_mm256_loadu_si256(w as *const _), _mm256_loadu_si256(w.add(32) as *const _));
            for (i, ci) in c.iter_mut().enumerate() {
                let x = _mm256_set1_epi32(*ap.add(kp * MR + r0 + i) as i32);
                ci[0] = dot(ci[0], x, w0);
                ci[1] = dot(ci[1], x, w1);
            }
        }
        store_i32(&c, r0, h, acc);
    }
}

/// Columns `16h..16h + 16` of a row of sums, in two registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn load_half(row: &[f32; NR], h: usize) -> [__m256; 2] {
    let half = &row[16 * h..16 * h + 16];
    // SAFETY: `half` holds 16 values.
    unsafe { [_mm256_loadu_ps(half.as_ptr()), _mm256_loadu_ps(half.as_ptr().add(8))] }
}

/// Writes `acc` plus the bias into the valid part of `tile`, as [`super::Tile::store`] does: a whole tile in
/// ymm registers, a partial one (the last panel of a row) through `Tile::store`.
///
/// # Safety
/// AVX2 must be present, and the contract of [`super::Tile::store`] holds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn store(acc: &[[f32; NR]; MR], tile: &super::Tile) {
    if tile.cols < NR {
        // SAFETY: the caller's contract.
        return unsafe { tile.store(acc) };
    }
    let bias = [load_half(tile.bias, 0), load_half(tile.bias, 1)];
    for (i, row) in acc.iter().enumerate().take(tile.rows) {
        let c = [load_half(row, 0), load_half(row, 1)];
        // SAFETY: row `i < rows` of the tile holds NR values (the caller's contract).
        unsafe {
            let out = tile.c.add(i * tile.ldc);
            for (h, (ch, bh)) in c.iter().zip(&bias).enumerate() {
                _mm256_storeu_ps(out.add(16 * h), _mm256_add_ps(ch[0], bh[0]));
                _mm256_storeu_ps(out.add(16 * h + 8), _mm256_add_ps(ch[1], bh[1]));
            }
        }
    }
}

/// [`super::pack::dequantize`] in ymm registers for a whole tile, with the same operations in the same order
/// (a product, then a sum, no fused multiply-add), so that the values are the same bit for bit; a partial tile
/// through `pack::dequantize`.
///
/// # Safety
/// AVX2 must be present, and the contract of [`super::Tile::store`] holds; `scale.cols` and `scale.sums`
/// hold the tile's `cols` columns and `scale.rows` its `rows` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn dequantize(acc: &[[i32; NR]; MR], offset: bool, scale: &super::pack::Int8Scales, tile: &super::Tile) {
    if tile.cols < NR {
        // SAFETY: the caller's contract.
        return unsafe { super::pack::dequantize(acc, offset, scale, tile) };
    }
    let cols: &[f32; NR] = scale.cols[..NR].try_into().expect("NR column scales");
    let sums: &[i32; NR] = scale.sums[..NR].try_into().expect("NR column sums");
    let col_scale = [load_half(cols, 0), load_half(cols, 1)];
    let bias = [load_half(tile.bias, 0), load_half(tile.bias, 1)];
    let shift = if offset {
        [0, 1].map(|h| load_i32(sums, h).map(|v| _mm256_slli_epi32::<7>(v)))
    } else {
        [[_mm256_setzero_si256(); 2]; 2]
    };
    for (i, row) in acc.iter().enumerate().take(tile.rows) {
        let s = _mm256_set1_ps(scale.rows[i]);
        let a = [load_i32(row, 0), load_i32(row, 1)];
        // SAFETY: row `i < rows` of the tile holds NR values (the caller's contract).
        unsafe {
            let out = tile.c.add(i * tile.ldc);
            for h in 0..2 {
                for j in 0..2 {
                    let x = _mm256_cvtepi32_ps(_mm256_sub_epi32(a[h][j], shift[h][j]));
                    let v = _mm256_add_ps(_mm256_mul_ps(x, _mm256_mul_ps(s, col_scale[h][j])), bias[h][j]);
                    _mm256_storeu_ps(out.add(16 * h + 8 * j), v);
                }
            }
        }
    }
}

/// Stores two registers into columns `16h..16h + 16` of a row of sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store_half(row: &mut [f32; NR], h: usize, c: &[__m256; 2]) {
    let half = &mut row[16 * h..16 * h + 16];
    // SAFETY: `half` holds 16 values.
    unsafe {
        _mm256_storeu_ps(half.as_mut_ptr(), c[0]);
        _mm256_storeu_ps(half.as_mut_ptr().add(8), c[1]);
    }
}

/// As [`load_half`], for i32 sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn load_i32(row: &[i32; NR], h: usize) -> [__m256i; 2] {
    let half = &row[16 * h..16 * h + 16];
    // SAFETY: `half` holds 16 values.
    unsafe { [_mm256_loadu_si256(half.as_ptr() as *const _), _mm256_loadu_si256(half.as_ptr().add(8) as *const _)] }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store_i32<const R: usize>(c: &[[__m256i; 2]; R], r0: usize, h: usize, acc: &mut [[i32; NR]; MR]) {
    for (i, ci) in c.iter().enumerate() {
        let row = &mut acc[r0 + i][16 * h..16 * h + 16];
        // SAFETY: `row` holds 16 values, two registers' worth.
        unsafe {
            _mm256_storeu_si256(row.as_mut_ptr() as *mut _, ci[0]);
            _mm256_storeu_si256(row.as_mut_ptr().add(8) as *mut _, ci[1]);
        }
    }
}

// Never called off x86-64 (kernels are chosen only where the CPU has them); they keep the dispatch simple.

/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn f32(_: usize, _: &[f32], _: &[f32], _: &mut [[f32; NR]; MR], _: usize, _: usize) {
    unreachable!("AVX2 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn dequantize(_: &[[i32; NR]; MR], _: bool, _: &super::pack::Int8Scales, _: &super::Tile) {
    unreachable!("AVX2 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn store(_: &[[f32; NR]; MR], _: &super::Tile) {
    unreachable!("AVX2 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn bf16(_: usize, _: &[f32], _: &[u16], _: &mut [[f32; NR]; MR], _: usize, _: usize) {
    unreachable!("AVX2 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn int8(_: usize, _: &[u32], _: &[i8], _: &mut [[i32; NR]; MR], _: usize, _: usize) {
    unreachable!("AVX2 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn int8_vnni(_: usize, _: &[u32], _: &[i8], _: &mut [[i32; NR]; MR], _: usize, _: usize) {
    unreachable!("AVX2 kernels exist on x86-64 only")
}
/// # Safety
/// Never called: it panics.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn int8_7bit(_: usize, _: &[u32], _: &[i8], _: &mut [[i32; NR]; MR], _: usize, _: usize) {
    unreachable!("AVX2 kernels exist on x86-64 only")
}
