//! The AVX2 + FMA versions of the row reductions (8 lanes), with the same exponential as the AVX-512 ones.

use std::arch::x86_64::*;

/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn max(row: &[f32]) -> f32 {
    let chunks = row.len() / 8;
    let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
    for c in 0..chunks {
        // SAFETY: chunk `c` lies inside `row`.
        acc = _mm256_max_ps(acc, unsafe { _mm256_loadu_ps(row.as_ptr().add(c * 8)) });
    }
    let mut m = reduce_max(acc);
    for &x in &row[chunks * 8..] {
        m = m.max(x);
    }
    m
}

#[target_feature(enable = "avx2,fma")]
fn reduce_max(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
    _mm_cvtss_f32(m)
}

#[target_feature(enable = "avx2,fma")]
pub fn reduce_add(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
    _mm_cvtss_f32(s)
}

/// The sums of four vectors' lanes, `[reduce_add(a[0]), …, reduce_add(a[3])]`, bit for bit: each sum adds its
/// lanes in [`reduce_add`]'s order (`i + 4`, then `i + 2`, then `i + 1`), but the four share the shuffles.
#[target_feature(enable = "avx2,fma")]
pub fn reduce_add4(a: [__m256; 4]) -> __m128 {
    // t_k = [a_k[i] + a_k[i + 4]], as reduce_add's first step.
    let t = a.map(|v| _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)));
    // [t_k[0] + t_k[2], t_k[1] + t_k[3]] for k, k + 1 side by side, as its second.
    let pairs =
        |x: __m128, y: __m128| _mm_add_ps(_mm_shuffle_ps::<0b01_00_01_00>(x, y), _mm_shuffle_ps::<0b11_10_11_10>(x, y));
    // Its last: the two halves of each.
    _mm_hadd_ps(pairs(t[0], t[1]), pairs(t[2], t[3]))
}

/// `exp(d)` for `d ≤ 0`: `2^n · p(r)` with `d = n ln 2 + r` and the degree-6 polynomial of the AVX-512 version;
/// inputs under -87 (and NaN) give exactly 0. `2^n` is built in the exponent bits (n ≥ -126 after the clamp).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn exp_neg(d: __m256) -> __m256 {
    // Exactly 0 below -87, never a subnormal (see the AVX-512 version).
    let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(d, _mm256_set1_ps(-87.0));
    let d = _mm256_max_ps(d, _mm256_set1_ps(-87.0));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        d,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), d);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm256_set1_ps(1.0 / 720.0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 120.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 24.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 6.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
    _mm256_and_ps(keep, _mm256_mul_ps(p, _mm256_castsi256_ps(pow2)))
}

/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_exp(row: &[f32], m: f32) -> f32 {
    let mv = _mm256_set1_ps(m);
    let mut acc = _mm256_setzero_ps();
    let chunks = row.len() / 8;
    for c in 0..chunks {
        // SAFETY: chunk `c` lies inside `row`.
        let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(c * 8)) };
        acc = _mm256_add_ps(acc, exp_neg(_mm256_sub_ps(x, mv)));
    }
    let mut sum = reduce_add(acc);
    for &x in &row[chunks * 8..] {
        sum += (x - m).exp();
    }
    sum
}

/// The scan of [`super::top_k`]: one comparison per 8 values against the current threshold.
///
/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn top_k(row: &[f32], top: &mut super::TopK, skip: &impl Fn(usize) -> bool) {
    let chunks = row.len() / 8;
    for c in 0..chunks {
        // SAFETY: chunk `c` lies inside `row`.
        let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(c * 8)) };
        // Ordered comparison: NaN never passes; before `k` are kept the threshold is the floor (-inf by default).
        let mut mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(top.threshold))) as u32;
        if !top.gates() {
            mask = 0xff;
        }
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            top.consider(c * 8 + j, row[c * 8 + j], skip);
        }
    }
    for (i, &x) in row.iter().enumerate().skip(chunks * 8) {
        top.consider(i, x, skip);
    }
}

/// `x·σ(x)` with `e = exp(-|x|)`, as the AVX-512 version.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn silu_block(x: __m256) -> __m256 {
    x_sigmoid(x, x)
}

/// `x·σ(z)`, as the AVX-512 version.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn x_sigmoid(x: __m256, z: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), z);
    let e = exp_neg(_mm256_sub_ps(_mm256_setzero_ps(), abs));
    let positive = _mm256_cmp_ps::<_CMP_GE_OQ>(z, _mm256_setzero_ps());
    let num = _mm256_blendv_ps(e, one, positive);
    _mm256_mul_ps(x, _mm256_div_ps(num, _mm256_add_ps(one, e)))
}

/// GELU's tanh approximation as `x·σ(2y)`, as the AVX-512 version.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gelu_tanh_block(x: __m256) -> __m256 {
    let c = _mm256_set1_ps(2.0 * super::SQRT_TWO_OVER_PI);
    let c3 = _mm256_set1_ps(2.0 * super::SQRT_TWO_OVER_PI * 0.044715);
    x_sigmoid(x, _mm256_mul_ps(x, _mm256_fmadd_ps(c3, _mm256_mul_ps(x, x), c)))
}

/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_tanh(xs: &mut [f32]) {
    map_blocks(xs, |x| gelu_tanh_block(x))
}

/// Applies `f` to `xs` 8 values at a time, the tail through a padded copy.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn map_blocks(xs: &mut [f32], f: impl Fn(__m256) -> __m256) {
    let (chunks, tail) = xs.as_chunks_mut::<8>();
    for c in chunks {
        // SAFETY: `c` holds 8 values.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr()))) };
    }
    if !tail.is_empty() {
        let mut buf = [0f32; 8];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` holds 8 values.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr()))) };
        let n = tail.len();
        tail.copy_from_slice(&buf[..n]);
    }
}

/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn silu(xs: &mut [f32]) {
    map_blocks(xs, |x| silu_block(x))
}
