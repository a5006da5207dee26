//! Scaled dot-product attention on the CPU straight from strided views: queries, keys and values as they come
//! out of the projections and the caches (no head-splitting copies), the output written with heads merged.
//! Per (item, head): `softmax(q·kᵀ·scale + bias)·v`, the softmax normalised before the weighted sum as the
//! reference computes it. AVX-512 or AVX2 + FMA on the active kernel family ([`super::isa`]), portable loops
//! elsewhere and for head widths those kernels do not take.
//!
//! (Keys stored transposed, positions last, were tried for the decoder caches: no faster, since at decoding
//! time these products are bound by reading the caches, and appending a transposed key costs more.)

use rayon::prelude::*;

use super::isa::{self, Isa};
use super::SendPtr;

/// Calls `$f::<C>(args)` for `C` = `$chunks` (1 to 16 registers per head row), so that the kernels keep a head's
/// rows in registers rather than in an array on the stack.
#[macro_export]
#[doc(hidden)]
macro_rules! by_chunks {
    ($chunks:expr, $f:ident, $($arg:expr),*) => {
        match $chunks {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            9 => $f::<9>($($arg),*),
            10 => $f::<10>($($arg),*),
            11 => $f::<11>($($arg),*),
            12 => $f::<12>($($arg),*),
            13 => $f::<13>($($arg),*),
            14 => $f::<14>($($arg),*),
            15 => $f::<15>($($arg),*),
            _ => $f::<16>($($arg),*),
        }
    };
}

/// A strided 4-d f32 view whose last dimension is contiguous; `strides` are those of the first three.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub strides: [usize; 3],
    /// Where the rows of each item lie, when not at the item's own index: see [`RowMap`].
    pub rows: Option<RowMap<'a>>,
}

/// For a view of a decoder cache whose beams are never moved: row `i` of item `b` is stored in item
/// `map[b * per + i]`, the hypothesis that computed that position (its own index, or an ancestor's before a beam
/// reordering).
#[derive(Clone, Copy, Debug)]
pub struct RowMap<'a> {
    pub map: &'a [u32],
    /// Entries per item (at least the rows read).
    pub per: usize,
}

impl<'a> View<'a> {
    /// A view with each item's rows at its own index.
    pub fn new(data: &'a [f32], offset: usize, strides: [usize; 3]) -> Self {
        Self { data, offset, strides, rows: None }
    }

    /// Whether `b × h × rows` rows of `width` values at these strides (and through the row map) lie inside
    /// `data`.
    fn fits(&self, b: usize, h: usize, rows: usize, width: usize) -> bool {
        if b == 0 || h == 0 || rows == 0 || width == 0 {
            return true;
        }
        // With a map, the item indices reached are the entries it holds for the rows read.
        let items = match self.rows {
            None => b,
            Some(RowMap { map, per }) => {
                if rows > per
                    || (b - 1).checked_mul(per).and_then(|x| x.checked_add(rows)).is_none_or(|end| end > map.len())
                {
                    return false;
                }
                let read = (0..b).flat_map(|bi| &map[bi * per..bi * per + rows]);
                read.max().map_or(0, |&most| most as usize + 1)
            }
        };
        let [s0, s1, s2] = self.strides;
        let end = [(items - 1, s0), (h - 1, s1), (rows - 1, s2)]
            .into_iter()
            .try_fold(self.offset.checked_add(width), |acc, (i, s)| Some(acc?.checked_add(i.checked_mul(s)?)));
        end.flatten().is_some_and(|end| end <= self.data.len())
    }

    #[inline(always)]
    fn at(&self, b: usize, h: usize, i: usize) -> usize {
        let b = match self.rows {
            None => b,
            Some(r) => r.map[b * r.per + i] as usize,
        };
        self.offset + b * self.strides[0] + h * self.strides[1] + i * self.strides[2]
    }
}

/// The shape of one attention call: batch `b`, heads `h`, queries `m`, keys `n`, head width `d`.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub b: usize,
    pub h: usize,
    pub m: usize,
    pub n: usize,
    pub d: usize,
}

/// Everything one (item, head) pair reads.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    shape: Shape,
    q: View<'a>,
    k: View<'a>,
    v: View<'a>,
    bias: Option<View<'a>>,
    scale: f32,
}

/// Computes attention for `q` `[b, h, m, d]`, `k`/`v` `[b, h, n, d]` and an optional additive `bias` view
/// `[b, h, m, n]` (strides may be 0 to broadcast), writing `out` `[b, m, h·d]`, on the active kernel family.
///
/// # Panics
/// If `out` or a view is too short for `shape` (checked once, before any work).
pub fn attend(shape: Shape, q: View, k: View, v: View, bias: Option<View>, scale: f32, out: &mut [f32]) {
    attend_on(isa::active(), shape, q, k, v, bias, scale, out)
}

/// [`attend`] on the kernels of `isa` (the portable ones where this CPU cannot run it).
#[allow(clippy::too_many_arguments)] // the shape, four views, the scale and the output, as `attend`
pub fn attend_on(isa: Isa, shape: Shape, q: View, k: View, v: View, bias: Option<View>, scale: f32, out: &mut [f32]) {
    let Shape { b, h, m, n, d } = shape;
    assert_eq!(out.len(), b * m * h * d, "output size");
    let inputs = Inputs { shape, q, k, v, bias, scale };
    inputs.check();
    let kernel = Kernel::choose(isa, d);
    let out_ptr = SendPtr(out.as_mut_ptr());
    // SAFETY: the views hold what `shape` reads (checked above) and `out` holds `b·m·h·d` values, of which each
    // (item, head) pair writes only its own `d` columns of its own `m` rows.
    run_pairs(b * h, m * n, |p, scores| unsafe { kernel.pair(&inputs, p / h, p % h, scores, out_ptr.get()) });
}

/// One sequence of a batch stored without padding: rows `start..start + len` of the packed rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

/// Self-attention of each span of packed rows over its own rows alone: for every span, `softmax(q·kᵀ·scale +
/// bias)·v` over its `len` queries and keys, as [`attend`] computes one item of a padded batch (whose padding
/// keys get weight 0, so the span's values are the same). `q`, `k` and `v` are `[1, h, rows, d]` views of the
/// packed rows (`strides[2]` from one row to the next); the optional `bias` view `[1, h, len, len]` is shared by
/// every span, which reads its first `len` queries and keys (T5's relative position bias). `out` is `[rows, h·d]`
/// and `rows` the end of the last span.
///
/// # Panics
/// If `out` or a view is too short for a span (checked once, before any work).
#[allow(clippy::too_many_arguments)] // as `attend`, with the spans in place of the batch
pub fn attend_spans<'a>(
    isa: Isa,
    (h, d): (usize, usize),
    spans: &[Span],
    (q, k, v): (View<'a>, View<'a>, View<'a>),
    bias: Option<View<'a>>,
    scale: f32,
    out: &mut [f32],
) {
    let rows = spans.iter().map(|s| s.start + s.len).max().unwrap_or(0);
    assert_eq!(out.len(), rows * h * d, "output size");
    let inputs: Vec<Inputs> = spans
        .iter()
        .map(|s| {
            let shift = |view: View<'a>| View { offset: view.offset + s.start * view.strides[2], ..view };
            let shape = Shape { b: 1, h, m: s.len, n: s.len, d };
            Inputs { shape, q: shift(q), k: shift(k), v: shift(v), bias, scale }
        })
        .collect();
    inputs.iter().for_each(Inputs::check);
    let kernel = Kernel::choose(isa, d);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let longest = spans.iter().map(|s| s.len).max().unwrap_or(0);
    run_pairs(spans.len() * h, longest * longest, |p, scores| {
        let (x, span) = (&inputs[p / h], spans[p / h]);
        // SAFETY: each span's views hold what its shape reads (checked above); `out` holds `rows` rows of `h·d`
        // values, span rows lie below `rows`, and each (span, head) pair writes only its own `d` columns of its
        // own rows; the kernel runs only where the CPU has its features.
        unsafe { kernel.pair(x, 0, p % h, &mut scores[..span.len * span.len], out_ptr.get().add(span.start * h * d)) }
    });
}

impl Inputs<'_> {
    /// Panics unless every view holds the values `shape` reads.
    fn check(&self) {
        let Shape { b, h, m, n, d } = self.shape;
        for (name, view, rows, width) in
            [("q", Some(self.q), m, d), ("k", Some(self.k), n, d), ("v", Some(self.v), n, d), ("bias", self.bias, m, n)]
        {
            if let Some(view) = view {
                assert!(view.fits(b, h, rows, width), "attention: the {name} view is too short for {:?}", self.shape);
            }
        }
    }
}

/// Runs `pair(p, scores)` for every pair `p < pairs`, in parallel tasks of several pairs, each task with its own
/// scratch of `scratch` scores.
fn run_pairs(pairs: usize, scratch: usize, pair: impl Fn(usize, &mut [f32]) + Sync) {
    if pairs == 0 {
        return;
    }
    // Enough pairs per task to amortise scheduling, enough tasks to balance.
    let per_task = pairs.div_ceil(rayon::current_num_threads() * 8).max(1);
    let run = |range: std::ops::Range<usize>| {
        let mut scores = vec![0f32; scratch];
        range.for_each(|p| pair(p, &mut scores));
    };
    if pairs <= per_task || rayon::current_num_threads() == 1 {
        run(0..pairs);
    } else {
        (0..pairs.div_ceil(per_task)).into_par_iter().for_each(|t| run(t * per_task..pairs.min((t + 1) * per_task)));
    }
}

/// Which loops run one (item, head) pair.
#[derive(Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// The portable loops compiled for AVX2 + FMA (head widths the AVX kernels do not take).
    #[cfg(target_arch = "x86_64")]
    Avx2Loops,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The family's kernel where the CPU has it and it takes head width `d`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn choose(isa: Isa, d: usize) -> Kernel {
        if !isa.supported() {
            return Kernel::Portable;
        }
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if d.is_multiple_of(16) && d <= 256 => Kernel::Avx512,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx2 | Isa::Avx2Vnni if d.is_multiple_of(8) && d <= 128 => Kernel::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx2 | Isa::Avx2Vnni => Kernel::Avx2Loops,
            _ => Kernel::Portable,
        }
    }

    /// # Safety
    /// The views hold what `x.shape` reads; `out` points to `b·m·h·d` values, of which no other thread uses this
    /// pair's; the kernel was chosen by [`Kernel::choose`].
    unsafe fn pair(self, x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
        // SAFETY: the caller's contract; `choose` picks a kernel only where the CPU has its features.
        unsafe {
            match self {
                Kernel::Portable => portable_pair(x, bi, hi, scores, out),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 => avx2::pair(x, bi, hi, scores, out),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2Loops => portable_pair_avx2(x, bi, hi, scores, out),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => avx512::pair(x, bi, hi, scores, out),
            }
        }
    }
}

/// The plain loops compiled for AVX2 and FMA.
///
/// # Safety
/// As [`portable_pair`], and AVX2 and FMA must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn portable_pair_avx2(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
    portable_pair(x, bi, hi, scores, out)
}

/// The whole computation for one pair in plain loops.
///
/// # Safety
/// `out` points to `b·m·h·d` values, of which no other thread uses this pair's.
#[inline(always)]
unsafe fn portable_pair(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
    let Shape { h, m, n, d, .. } = x.shape;
    for mi in 0..m {
        let qo = x.q.at(bi, hi, mi);
        let qrow = &x.q.data[qo..qo + d];
        let row = &mut scores[mi * n..(mi + 1) * n];
        for (j, s) in row.iter_mut().enumerate() {
            let ko = x.k.at(bi, hi, j);
            *s = dot(qrow, &x.k.data[ko..ko + d]) * x.scale;
        }
        add_bias(x, bi, hi, mi, row);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for s in row.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        for s in row.iter_mut() {
            *s = flush(*s / sum);
        }
        // SAFETY: in bounds, and this pair's alone (see `pair`).
        let orow = std::slice::from_raw_parts_mut(out.add((bi * m + mi) * h * d + hi * d), d);
        orow.fill(0.0);
        for (j, &p) in row.iter().enumerate() {
            let vo = x.v.at(bi, hi, j);
            for (o, &val) in orow.iter_mut().zip(&x.v.data[vo..vo + d]) {
                *o = p.mul_add(val, *o);
            }
        }
    }
}

/// Weights too small to matter become exactly 0 rather than subnormal (slow in every later product on Intel).
#[inline(always)]
fn flush(p: f32) -> f32 {
    if p < f32::MIN_POSITIVE {
        0.0
    } else {
        p
    }
}

#[inline(always)]
fn add_bias(x: &Inputs, bi: usize, hi: usize, mi: usize, row: &mut [f32]) {
    if let Some(bias) = &x.bias {
        let (bo, n) = (bias.at(bi, hi, mi), row.len());
        for (s, &b) in row.iter_mut().zip(&bias.data[bo..bo + n]) {
            *s += b;
        }
    }
}

/// A dot product with 16 independent lanes (so that it vectorises without reassociating a single sum).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (a_chunks, b_chunks) = (a.chunks_exact(L), b.chunks_exact(L));
    let (a_tail, b_tail) = (a_chunks.remainder(), b_chunks.remainder());
    for (ca, cb) in a_chunks.zip(b_chunks) {
        for l in 0..L {
            acc[l] = ca[l].mul_add(cb[l], acc[l]);
        }
    }
    let mut tail = 0f32;
    for (&x, &y) in a_tail.iter().zip(b_tail) {
        tail = x.mul_add(y, tail);
    }
    let mut width = L / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{add_bias, Inputs, Shape};
    use crate::models::kernels::math::x86 as math;

    /// Lanes a mask keeps for the vector at `at` of a row of `n`.
    #[inline(always)]
    fn lanes(at: usize, n: usize) -> __mmask16 {
        let left = n.saturating_sub(at);
        if left >= 16 {
            0xffff
        } else {
            ((1u32 << left) - 1) as u16
        }
    }

    /// # Safety
    /// AVX-512F present, `d` a multiple of 16 up to 256, and the views and `out` as for [`super::Kernel::pair`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pair(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
        crate::by_chunks!(x.shape.d / 16, pair_c, x, bi, hi, scores, out)
    }

    /// [`pair`] for heads of `16·C` values: the query row and the output row live in `C` registers each.
    ///
    /// # Safety
    /// As [`pair`], with `d = 16·C`.
    #[target_feature(enable = "avx512f")]
    unsafe fn pair_c<const C: usize>(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32], out: *mut f32) {
        let Shape { h, m, n, d, .. } = x.shape;
        scores_of::<C>(x, bi, hi, scores);
        for mi in 0..m {
            let row = &mut scores[mi * n..(mi + 1) * n];
            add_bias(x, bi, hi, mi, row);
            softmax(row);
            // out = Σ_j p_j v_j, the row's chunks held in registers.
            let mut acc = [_mm512_setzero_ps(); C];
            let vp = x.v.data.as_ptr();
            for (j, &p) in row.iter().enumerate() {
                let vj = vp.add(x.v.at(bi, hi, j));
                let pv = _mm512_set1_ps(p);
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(pv, _mm512_loadu_ps(vj.add(c * 16)), *a);
                }
            }
            let op = out.add((bi * m + mi) * h * d + hi * d);
            for (c, &a) in acc.iter().enumerate() {
                _mm512_storeu_ps(op.add(c * 16), a);
            }
        }
    }

    /// `exp(s - max) / Σ` in place.
    ///
    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    unsafe fn softmax(row: &mut [f32]) {
        let n = row.len();
        let mv = _mm512_set1_ps(math::max(row));
        let p = row.as_mut_ptr();
        let mut sum = _mm512_setzero_ps();
        for at in (0..n).step_by(16) {
            let mask = lanes(at, n);
            let s = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), mask, p.add(at));
            let e = _mm512_maskz_mov_ps(mask, math::exp_neg(_mm512_sub_ps(s, mv)));
            _mm512_mask_storeu_ps(p.add(at), mask, e);
            sum = _mm512_add_ps(sum, e);
        }
        let sum = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
        for at in (0..n).step_by(16) {
            let mask = lanes(at, n);
            let w = _mm512_div_ps(_mm512_maskz_loadu_ps(mask, p.add(at)), sum);
            // Weights too small to matter become exactly 0 rather than subnormal (see `super::flush`).
            let w = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(w, _mm512_set1_ps(f32::MIN_POSITIVE)), w);
            _mm512_mask_storeu_ps(p.add(at), mask, w);
        }
    }

    /// `q·k · scale` for all queries and keys: four keys' dot products at a time, each reduced across its lanes.
    ///
    /// # Safety
    /// AVX-512F must be present, `d` a multiple of 16 up to 256, and the views as for [`super::Kernel::pair`].
    #[target_feature(enable = "avx512f")]
    unsafe fn scores_of<const C: usize>(x: &Inputs, bi: usize, hi: usize, scores: &mut [f32]) {
        let k = &x.k;
        let Shape { m, n, .. } = x.shape;
        let kp = k.data.as_ptr();
        for mi in 0..m {
            let qp = x.q.data.as_ptr().add(x.q.at(bi, hi, mi));
            let mut qr = [_mm512_setzero_ps(); C];
            for (c, r) in qr.iter_mut().enumerate() {
                *r = _mm512_loadu_ps(qp.add(c * 16));
            }
            let row = &mut scores[mi * n..(mi + 1) * n];
            let mut j = 0;
            while j + 4 <= n {
                let ks = [0, 1, 2, 3].map(|o| kp.add(k.at(bi, hi, j + o)));
                let mut acc = [_mm512_setzero_ps(); 4];
                for (c, &qc) in qr.iter().enumerate() {
                    for (a, kr) in acc.iter_mut().zip(ks) {
                        *a = _mm512_fmadd_ps(qc, _mm512_loadu_ps(kr.add(c * 16)), *a);
                    }
                }
                for (o, a) in acc.into_iter().enumerate() {
                    row[j + o] = _mm512_reduce_add_ps(a) * x.scale;
                }
                j += 4;
            }
            for (jj, s) in row.iter_mut().enumerate().skip(j) {
                let kr = kp.add(k.at(bi, hi, jj));
                let mut a = _mm512_setzero_ps();
                for (c, &qc) in qr.iter().enumerate() {
                    a = _mm512_fmadd_ps(qc, _mm512_loadu_ps(kr.add(c * 16)), a);
                }
                *s = _mm512_reduce_add_ps(a) * x.scale;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(shape: Shape, q: &[f32], k: &[f32], v: &[f32], bias: &[f32], scale: f32) -> Vec<f32> {
        let Shape { b, h, m, n, d } = shape;
        let mut out = vec![0f32; b * m * h * d];
        for bi in 0..b {
            for hi in 0..h {
                for mi in 0..m {
                    let qrow = &q[((bi * h + hi) * m + mi) * d..][..d];
                    let s: Vec<f64> = (0..n)
                        .map(|j| {
                            let krow = &k[((bi * h + hi) * n + j) * d..][..d];
                            let dot: f64 = qrow.iter().zip(krow).map(|(&x, &y)| x as f64 * y as f64).sum();
                            dot * scale as f64 + bias[((bi * h + hi) * m + mi) * n + j] as f64
                        })
                        .collect();
                    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..d {
                        let val: f64 = (0..n).map(|j| e[j] / sum * v[((bi * h + hi) * n + j) * d + c] as f64).sum();
                        out[((bi * m + mi) * h + hi) * d + c] = val as f32;
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919) % 1013) as f32 / 500.0 - 1.0).collect()
    }

    fn contiguous(data: &[f32], h: usize, m: usize, d: usize) -> View<'_> {
        View::new(data, 0, [h * m * d, m * d, d])
    }

    /// On every family this CPU runs, with masks and several queries, the kernels agree with a double-precision
    /// reference. The shapes reach each of their paths: vectorised widths and others, keys by eight, by four and
    /// alone, queries by four and alone, heads split into column blocks unevenly (`d` = 40, 24), the widest head.
    #[test]
    fn matches_a_double_precision_reference() {
        for shape in [
            Shape { b: 3, h: 2, m: 1, n: 5, d: 64 },
            Shape { b: 2, h: 2, m: 5, n: 13, d: 40 },
            Shape { b: 1, h: 2, m: 9, n: 21, d: 24 },
            Shape { b: 1, h: 2, m: 4, n: 9, d: 128 },
            Shape { b: 2, h: 3, m: 6, n: 70, d: 32 },
            Shape { b: 2, h: 3, m: 4, n: 7, d: 20 },
            Shape { b: 1, h: 1, m: 2, n: 1, d: 3 },
            Shape { b: 1, h: 2, m: 3, n: 130, d: 16 },
        ] {
            let Shape { b, h, m, n, d } = shape;
            let q = values(b * h * m * d, 1);
            let k = values(b * h * n * d, 2);
            let v = values(b * h * n * d, 3);
            let mut bias = values(b * h * m * n, 4);
            if n > 1 {
                bias[0] = f32::NEG_INFINITY;
            } else {
                bias.fill(0.0);
            }
            let want = naive(shape, &q, &k, &v, &bias, 0.125);
            let mut out = vec![0f32; b * m * h * d];
            let (qv, kv, vv) = (contiguous(&q, h, m, d), contiguous(&k, h, n, d), contiguous(&v, h, n, d));
            for isa in isa::available() {
                out.fill(f32::NAN);
                attend_on(isa, shape, qv, kv, vv, Some(contiguous(&bias, h, m, n)), 0.125, &mut out);
                for (g, w) in out.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "{isa} {shape:?}: {g} vs {w}");
                }
            }
        }
    }

    /// Sequences packed without padding: each span's output equals that sequence attended alone, bit for bit,
    /// on every family this CPU runs (heads wide enough for the AVX kernels and a width only the loops take),
    /// with a shared bias read for each span's own length.
    #[test]
    fn spans_equal_each_sequence_alone() {
        for (h, d) in [(2, 32), (3, 20)] {
            let spans = [Span { start: 0, len: 5 }, Span { start: 5, len: 1 }, Span { start: 6, len: 17 }];
            let (rows, len) = (23, 17);
            let (q, k, v) = (values(rows * h * d, 1), values(rows * h * d, 2), values(rows * h * d, 3));
            let bias = values(h * len * len, 4);
            let packed = |data| View::new(data, 0, [0, d, h * d]);
            let bias_view = View::new(&bias, 0, [0, len * len, len]);
            for isa in isa::available() {
                let mut got = vec![0f32; rows * h * d];
                let views = (packed(&q), packed(&k), packed(&v));
                attend_spans(isa, (h, d), &spans, views, Some(bias_view), 0.25, &mut got);
                for s in spans {
                    let shape = Shape { b: 1, h, m: s.len, n: s.len, d };
                    let alone = |data: &[f32]| data[s.start * h * d..(s.start + s.len) * h * d].to_vec();
                    let (qa, ka, va) = (alone(&q), alone(&k), alone(&v));
                    let one = |data| View::new(data, 0, [0, d, h * d]);
                    let mut want = vec![0f32; s.len * h * d];
                    attend_on(isa, shape, one(&qa), one(&ka), one(&va), Some(bias_view), 0.25, &mut want);
                    let got = &got[s.start * h * d..(s.start + s.len) * h * d];
                    assert!(got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits()), "{isa:?} {s:?} d {d}");
                }
            }
        }
    }

    /// A span longer than the shared bias is refused before any work.
    #[test]
    #[should_panic(expected = "the bias view is too short")]
    fn spans_check_the_bias() {
        let (q, bias) = (values(4 * 16, 1), values(3 * 3, 2));
        let view = View::new(&q, 0, [0, 16, 16]);
        let bias = View::new(&bias, 0, [0, 9, 3]);
        let mut out = vec![0f32; 4 * 16];
        attend_spans(
            isa::active(),
            (1, 16),
            &[Span { start: 0, len: 4 }],
            (view, view, view),
            Some(bias),
            1.0,
            &mut out,
        );
    }

    /// Keys read from a larger cache buffer (stride over a capacity) and a broadcast bias give the same result as
    /// compact copies.
    #[test]
    fn strided_keys_and_broadcast_bias() {
        let shape = Shape { b: 2, h: 2, m: 1, n: 3, d: 16 };
        let cap = 8;
        let q = values(2 * 2 * 16, 5);
        let kc = values(2 * 2 * cap * 16, 6);
        let vc = values(2 * 2 * cap * 16, 7);
        let compact = |c: &[f32]| -> Vec<f32> {
            (0..4).flat_map(|bh| c[bh * cap * 16..bh * cap * 16 + 3 * 16].to_vec()).collect()
        };
        let (k, v) = (compact(&kc), compact(&vc));
        let row_bias = vec![0.5f32, -1.0, 0.25];
        let full_bias: Vec<f32> = (0..4).flat_map(|_| row_bias.clone()).collect();
        let mut got = vec![0f32; 2 * 2 * 16];
        let strided = |data| View::new(data, 0, [2 * cap * 16, cap * 16, 16]);
        let broadcast = View::new(&row_bias, 0, [0, 0, 0]);
        attend(shape, contiguous(&q, 2, 1, 16), strided(&kc), strided(&vc), Some(broadcast), 1.0, &mut got);
        let want = naive(shape, &q, &k, &v, &full_bias, 1.0);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    /// Keys and values read through a row map give, bit for bit, what the rows it names give when gathered into
    /// place, on every family; a map naming a row the view lacks is refused before any work.
    #[test]
    fn a_row_map_reads_the_rows_it_names() {
        let (stored, h, cap, d) = (3, 2, 4, 16);
        let shape = Shape { b: 2, h, m: 1, n: 3, d };
        let (kc, vc) = (values(stored * h * cap * d, 1), values(stored * h * cap * d, 2));
        let q = values(2 * h * d, 3);
        let map = [2u32, 0, 1, 9, 1, 1, 0, 9];
        let gather = |c: &[f32]| -> Vec<f32> {
            let mut out = Vec::new();
            for b in 0..2 {
                for hi in 0..h {
                    for t in 0..3 {
                        let at = ((map[b * cap + t] as usize * h + hi) * cap + t) * d;
                        out.extend_from_slice(&c[at..at + d]);
                    }
                }
            }
            out
        };
        let (kg, vg) = (gather(&kc), gather(&vc));
        let rows = Some(RowMap { map: &map, per: cap });
        let cached = |data| View { rows, ..View::new(data, 0, [h * cap * d, cap * d, d]) };
        for isa in isa::available() {
            let (mut got, mut want) = (vec![0f32; 2 * h * d], vec![0f32; 2 * h * d]);
            let qv = contiguous(&q, h, 1, d);
            attend_on(isa, shape, qv, cached(&kc), cached(&vc), None, 0.5, &mut got);
            attend_on(isa, shape, qv, contiguous(&kg, h, 3, d), contiguous(&vg, h, 3, d), None, 0.5, &mut want);
            assert_eq!(got, want, "{isa}");
        }
        let bad = [0u32, 3, 1, 0, 1, 1, 0, 0];
        let outside =
            View { rows: Some(RowMap { map: &bad, per: cap }), ..View::new(&kc, 0, [h * cap * d, cap * d, d]) };
        let refused = std::panic::catch_unwind(|| {
            let mut out = vec![0f32; 2 * h * d];
            attend(shape, contiguous(&q, h, 1, d), outside, cached(&vc), None, 0.5, &mut out)
        });
        assert!(refused.is_err(), "a map naming row 3 of 3");
    }
}
