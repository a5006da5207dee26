//! The AVX2 + FMA attention loops for head widths that are multiples of 8 up to 128: the weighted sum of values
//! held in registers, eight keys' dot products at a time.

use std::arch::x86_64::*;

use super::{add_bias, Inputs, Shape};
use crate::models::kernels::math::avx2 as math;

/// # Safety
/// AVX2 and FMA present, `d` a multiple of 8 up to 128, and the views and `out` as for
/// [`super::Kernel::pair`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn pair(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
    // SAFETY: the caller's contract.
    unsafe { crate::by_chunks!(x.shape.d / 8, pair_c, x, bi, hi, scores, out) }
}

/// [`pair`] for heads of `8·C` values.
///
/// # Safety
/// As [`pair`], with `d = 8·C`.
#[target_feature(enable = "avx2,fma")]
unsafe fn pair_c<const C: usize>(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
    let Shape { h, m, n, d, .. } = x.shape;
    // SAFETY: the caller's contract.
    unsafe { scores_of::<C>(x, bi, hi, scores) };
    for (mi, row) in scores[..m * n].chunks_exact_mut(n.max(1)).enumerate() {
        add_bias(x, bi, hi, mi, row);
        // SAFETY: the features are present.
        unsafe { softmax(row) };
    }
    // Where output row `mi` of this pair starts (its `d` columns are the pair's: the caller's contract).
    let out_row = |mi: usize| out.wrapping_add((bi * m + mi) * h * d + hi * d);
    let mut mi = 0;
    // Four queries at a time, two chunks of columns at a time: each value chunk loaded once serves four rows.
    while mi + 4 <= m {
        let weights: [&[f32]; 4] = std::array::from_fn(|r| &scores[(mi + r) * n..(mi + r + 1) * n]);
        // SAFETY: the caller's contract, and four output rows of this pair.
        unsafe { weighted_sum::<C, 4, 2>(x, bi, hi, weights, [0, 1, 2, 3].map(|r| out_row(mi + r))) };
        mi += 4;
    }
    for mi in mi..m {
        // SAFETY: as above, for one row, its `C` chunks all held in registers.
        unsafe { weighted_sum::<C, 1, C>(x, bi, hi, [&scores[mi * n..(mi + 1) * n]], [out_row(mi)]) };
    }
}

/// `out_r = Σ_j w_r[j] · v_j` for the `R` weight rows, `W` chunks of 8 columns at a time (`R·W` accumulators);
/// each sum is one chain over the keys in order, whatever `R` and `W` are.
///
/// # Safety
/// AVX2 and FMA present, `d = 8·C`, value rows `0..n` (`n` the weight rows' length) of pair (`bi`, `hi`) inside
/// the view, and `out` pointing to `R` rows of `d` writable values no other thread uses.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn weighted_sum<const C: usize, const R: usize, const W: usize>(
    x: &Inputs,
    bi: usize,
    hi: usize,
    weights: [&[f32]; R],
    out: [*mut f32; R],
) {
    let vp = x.v.data.as_ptr();
    let n = weights[0].len();
    // (Equal lengths let the compiler drop the bounds checks of `w[j]` below.)
    assert!(weights.iter().all(|w| w.len() == n), "weight rows of one length");
    for c0 in (0..C).step_by(W) {
        let width = W.min(C - c0);
        let mut acc = [[_mm256_setzero_ps(); W]; R];
        for j in 0..n {
            // SAFETY: value row `j` of this pair lies inside the view (the caller's contract).
            let vj = unsafe { vp.add(x.v.at(bi, hi, j) + c0 * 8) };
            for (a, w) in acc.iter_mut().zip(&weights) {
                let p = _mm256_set1_ps(w[j]);
                for (c, a) in a.iter_mut().enumerate().take(width) {
                    // SAFETY: chunk `c0 + c < C` of the value row.
                    *a = _mm256_fmadd_ps(p, unsafe { _mm256_loadu_ps(vj.add(c * 8)) }, *a);
                }
            }
        }
        for (a, o) in acc.iter().zip(out) {
            for (c, &a) in a.iter().enumerate().take(width) {
                // SAFETY: chunk `c0 + c < C` of an output row (the caller's contract).
                unsafe { _mm256_storeu_ps(o.add((c0 + c) * 8), a) };
            }
        }
    }
}

/// `exp(s - max) / Σ` in place.
///
/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax(row: &mut [f32]) {
    // SAFETY: the features are present.
    let max = unsafe { math::max(row) };
    let mv = _mm256_set1_ps(max);
    let mut sum = _mm256_setzero_ps();
    let chunks = row.len() / 8;
    let p = row.as_mut_ptr();
    for c in 0..chunks {
        // SAFETY: chunk `c` lies inside `row`.
        unsafe {
            let e = math::exp_neg(_mm256_sub_ps(_mm256_loadu_ps(p.add(c * 8)), mv));
            _mm256_storeu_ps(p.add(c * 8), e);
            sum = _mm256_add_ps(sum, e);
        }
    }
    let mut total = math::reduce_add(sum);
    for s in &mut row[chunks * 8..] {
        *s = (*s - max).exp();
        total += *s;
    }
    let inv = _mm256_set1_ps(total);
    for c in 0..chunks {
        // SAFETY: chunk `c` lies inside `row`.
        unsafe {
            let w = _mm256_div_ps(_mm256_loadu_ps(p.add(c * 8)), inv);
            // Weights too small to matter become exactly 0 rather than subnormal (see `super::flush`).
            let w = _mm256_and_ps(w, _mm256_cmp_ps::<_CMP_GE_OQ>(w, _mm256_set1_ps(f32::MIN_POSITIVE)));
            _mm256_storeu_ps(p.add(c * 8), w);
        }
    }
    for s in &mut row[chunks * 8..] {
        *s = super::flush(*s / total);
    }
}

/// `q·k · scale` for all queries and keys, eight keys at a time: eight independent FMA chains cover the FMA's
/// latency (four left it half idle), and one load of a query chunk serves the eight.
///
/// # Safety
/// AVX2 and FMA present, `d` a multiple of 8 up to 128, and the views as for [`super::Kernel::pair`].
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_of<const C: usize>(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32]) {
    let Shape { m, n, .. } = x.shape;
    let scale = _mm_set1_ps(x.scale);
    for mi in 0..m {
        // SAFETY: query row `mi` of this pair lies inside the view (the caller's contract).
        let qp = unsafe { x.q.data.as_ptr().add(x.q.at(bi, hi, mi)) };
        let row = &mut scores[mi * n..(mi + 1) * n];
        let mut j = 0;
        while j + 8 <= n {
            // SAFETY: key rows `j..j + 8 ≤ n` of this pair, `C` chunks each (the caller's contract).
            let a = unsafe { dots::<C, 8>(qp, key_rows(x, bi, hi, j)) };
            let (first, last) =
                (math::reduce_add4([a[0], a[1], a[2], a[3]]), math::reduce_add4([a[4], a[5], a[6], a[7]]));
            let eight = _mm256_set_m128(_mm_mul_ps(last, scale), _mm_mul_ps(first, scale));
            // SAFETY: scores `j..j + 8` lie inside `row` (checked by the slice).
            unsafe { _mm256_storeu_ps(row[j..j + 8].as_mut_ptr(), eight) };
            j += 8;
        }
        if j + 4 <= n {
            // SAFETY: as above, for keys `j..j + 4 ≤ n`.
            let four = math::reduce_add4(unsafe { dots::<C, 4>(qp, key_rows(x, bi, hi, j)) });
            // SAFETY: scores `j..j + 4` lie inside `row` (checked by the slice).
            unsafe { _mm_storeu_ps(row[j..j + 4].as_mut_ptr(), _mm_mul_ps(four, scale)) };
            j += 4;
        }
        for (jj, s) in row.iter_mut().enumerate().skip(j) {
            // SAFETY: as above, for key `jj < n`.
            let [a] = unsafe { dots::<C, 1>(qp, key_rows(x, bi, hi, jj)) };
            *s = math::reduce_add(a) * x.scale;
        }
    }
}

/// Where key rows `j..j + K` of pair (`bi`, `hi`) start.
#[inline(always)]
fn key_rows<const K: usize>(x: &Inputs, bi: usize, hi: usize, j: usize) -> [*const f32; K] {
    let kp = x.k.data.as_ptr();
    let mut rows = [kp; K];
    for (o, r) in rows.iter_mut().enumerate() {
        // `wrapping_add`: a pointer, not a read; the readers' contract is that the row lies inside the view.
        *r = kp.wrapping_add(x.k.at(bi, hi, j + o));
    }
    rows
}

/// The `K` dot products of the `8·C` values at `q` with those at each of `keys`, as lanes still to be summed:
/// each in one chain over the chunks in order, as [`math::reduce_add`] then sums it.
///
/// # Safety
/// AVX2 and FMA present; `q` and every key point to `8·C` readable values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dots<const C: usize, const K: usize>(q: *const f32, keys: [*const f32; K]) -> [__m256; K] {
    let mut acc = [_mm256_setzero_ps(); K];
    for c in 0..C {
        // SAFETY: chunk `c < C` of the query row and of each key row (the caller's contract).
        unsafe {
            let qc = _mm256_loadu_ps(q.add(c * 8));
            for (a, kr) in acc.iter_mut().zip(keys) {
                *a = _mm256_fmadd_ps(qc, _mm256_loadu_ps(kr.add(c * 8)), *a);
            }
        }
    }
    acc
}
