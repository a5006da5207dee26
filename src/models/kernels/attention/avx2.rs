//! The AVX2 + FMA attention loops for head widths that are multiples of 8 up to 128: a query row and the
//! weighted sum of values held in registers, four keys' dot products at a time.

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

/// [`pair`] for heads of `8·C` values: the query row and the output row live in `C` registers each.
///
/// # Safety
/// As [`pair`], with `d = 8·C`.
#[target_feature(enable = "avx2,fma")]
unsafe fn pair_c<const C: usize>(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
    let Shape { h, m, n, d, .. } = x.shape;
    // SAFETY: the caller's contract.
    unsafe { scores_of::<C>(x, bi, hi, scores) };
    for mi in 0..m {
        let row = &mut scores[mi * n..(mi + 1) * n];
        add_bias(x, bi, hi, mi, row);
        // SAFETY: the features are present.
        unsafe { softmax(row) };
        // out = Σ_j p_j v_j, the row's chunks held in registers.
        let mut acc = [_mm256_setzero_ps(); C];
        let vp = x.v.data.as_ptr();
        for (j, &p) in row.iter().enumerate() {
            // SAFETY: value row `j` of this pair lies inside the view (the caller's contract).
            let vj = unsafe { vp.add(x.v.at(bi, hi, j)) };
            let pv = _mm256_set1_ps(p);
            for (c, a) in acc.iter_mut().enumerate() {
                // SAFETY: chunk `c < d / 8` of the value row.
                *a = _mm256_fmadd_ps(pv, unsafe { _mm256_loadu_ps(vj.add(c * 8)) }, *a);
            }
        }
        // SAFETY: this pair's `d` output columns of row `mi` (the caller's contract).
        unsafe {
            let op = out.add((bi * m + mi) * h * d + hi * d);
            for (c, &a) in acc.iter().enumerate() {
                _mm256_storeu_ps(op.add(c * 8), a);
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

/// `q·k · scale` for all queries and keys.
///
/// # Safety
/// AVX2 and FMA present, `d` a multiple of 8 up to 128, and the views as for [`super::Kernel::pair`].
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_of<const C: usize>(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32]) {
    let k = &x.k;
    let Shape { m, n, .. } = x.shape;
    let kp = k.data.as_ptr();
    for mi in 0..m {
        // SAFETY: query row `mi` of this pair lies inside the view (the caller's contract).
        let qp = unsafe { x.q.data.as_ptr().add(x.q.at(bi, hi, mi)) };
        let mut qr = [_mm256_setzero_ps(); C];
        for (c, r) in qr.iter_mut().enumerate() {
            // SAFETY: chunk `c < d / 8` of the query row.
            *r = unsafe { _mm256_loadu_ps(qp.add(c * 8)) };
        }
        let row = &mut scores[mi * n..(mi + 1) * n];
        let mut j = 0;
        while j + 4 <= n {
            // SAFETY: key rows `j..j + 4 < n` of this pair lie inside the view.
            let ks = [0, 1, 2, 3].map(|o| unsafe { kp.add(k.at(bi, hi, j + o)) });
            let mut acc = [_mm256_setzero_ps(); 4];
            for (c, &qc) in qr.iter().enumerate() {
                for (a, kr) in acc.iter_mut().zip(ks) {
                    // SAFETY: chunk `c < d / 8` of the key row.
                    *a = _mm256_fmadd_ps(qc, unsafe { _mm256_loadu_ps(kr.add(c * 8)) }, *a);
                }
            }
            for (o, a) in acc.into_iter().enumerate() {
                row[j + o] = math::reduce_add(a) * x.scale;
            }
            j += 4;
        }
        for (jj, s) in row.iter_mut().enumerate().skip(j) {
            // SAFETY: key row `jj < n` of this pair lies inside the view.
            let kr = unsafe { kp.add(k.at(bi, hi, jj)) };
            let mut a = _mm256_setzero_ps();
            for (c, &qc) in qr.iter().enumerate() {
                // SAFETY: chunk `c < d / 8` of the key row.
                a = _mm256_fmadd_ps(qc, unsafe { _mm256_loadu_ps(kr.add(c * 8)) }, a);
            }
            *s = math::reduce_add(a) * x.scale;
        }
    }
}
