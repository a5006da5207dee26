//! Row reductions for scoring logits on the host — maximum, `Σ exp(x - m)` with a vectorised exponential, the
//! indices of the largest values — and the activations fused into matrix products; each one pass over a row,
//! on the active kernel family ([`super::isa`]): AVX-512, AVX2 or plain loops.

use super::isa::{self, Isa};

/// The family to run for `isa`: itself where this CPU has it, else the portable loops.
#[inline(always)]
fn family(isa: Isa) -> Isa {
    if isa.supported() {
        isa
    } else {
        Isa::Portable
    }
}

/// The largest value of `row` (`-inf` for an empty row; NaN is ignored).
pub fn max(row: &[f32]) -> f32 {
    max_on(isa::active(), row)
}

/// [`max`] on the kernels of `isa`.
pub fn max_on(isa: Isa, row: &[f32]) -> f32 {
    match family(isa) {
        // SAFETY: `family` returns only families this CPU runs.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::max(row) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx2Vnni => unsafe { avx2::max(row) },
        _ => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    }
}

/// `Σ exp(x - m)` over `row`.
pub fn sum_exp(row: &[f32], m: f32) -> f32 {
    sum_exp_on(isa::active(), row, m)
}

/// [`sum_exp`] on the kernels of `isa`.
pub fn sum_exp_on(isa: Isa, row: &[f32], m: f32) -> f32 {
    match family(isa) {
        // SAFETY: `family` returns only families this CPU runs.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::sum_exp(row, m) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx2Vnni => unsafe { avx2::sum_exp(row, m) },
        _ => row.iter().map(|&x| (x - m).exp()).sum(),
    }
}

/// The `k` largest values of `row` with their indices, best first; equal values keep index order. Entries for
/// which `skip(index)` is true are left out.
pub fn top_k(row: &[f32], k: usize, skip: impl Fn(usize) -> bool) -> Vec<(f32, u32)> {
    top_k_on(isa::active(), row, k, skip)
}

/// [`top_k`] on the kernels of `isa`.
pub fn top_k_on(isa: Isa, row: &[f32], k: usize, skip: impl Fn(usize) -> bool) -> Vec<(f32, u32)> {
    top_k_above_on(isa, row, k, f32::NEG_INFINITY, skip)
}

/// [`top_k`] of the values above `floor` only (all of them for `-inf`): for a scan that continues another,
/// whose `k`-th best so far is `floor`, so that most of the row is passed over.
pub fn top_k_above(row: &[f32], k: usize, floor: f32, skip: impl Fn(usize) -> bool) -> Vec<(f32, u32)> {
    top_k_above_on(isa::active(), row, k, floor, skip)
}

/// [`top_k_above`] on the kernels of `isa`.
pub fn top_k_above_on(isa: Isa, row: &[f32], k: usize, floor: f32, skip: impl Fn(usize) -> bool) -> Vec<(f32, u32)> {
    let floored = floor != f32::NEG_INFINITY;
    let mut top = TopK { k, best: Vec::with_capacity(k + 1), threshold: floor, floored };
    if k == 0 {
        return top.best;
    }
    match family(isa) {
        // SAFETY: `family` returns only families this CPU runs.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::top_k(row, &mut top, &skip) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx2Vnni => unsafe { avx2::top_k(row, &mut top, &skip) },
        _ => portable_top_k(row, &mut top, &skip),
    }
    top.best
}

fn portable_top_k(row: &[f32], top: &mut TopK, skip: &impl Fn(usize) -> bool) {
    const LANES: usize = 16;
    let chunks = row.len() / LANES;
    for c in 0..chunks {
        let base = c * LANES;
        let block = &row[base..base + LANES];
        // Most blocks hold nothing above the current threshold once `best` is full.
        if top.gates() && block_max(block) <= top.threshold {
            continue;
        }
        for (j, &x) in block.iter().enumerate() {
            top.consider(base + j, x, skip);
        }
    }
    for (i, &x) in row.iter().enumerate().skip(chunks * LANES) {
        top.consider(i, x, skip);
    }
}

/// The running best `k` of a scan.
struct TopK {
    k: usize,
    best: Vec<(f32, u32)>,
    /// The worst kept value once `k` are kept; before that, the floor.
    threshold: f32,
    /// Whether values at or below the floor are left out before `k` are kept.
    floored: bool,
}

impl TopK {
    #[inline(always)]
    fn is_full(&self) -> bool {
        self.best.len() == self.k
    }

    /// Whether a value must beat `threshold` to be kept.
    #[inline(always)]
    fn gates(&self) -> bool {
        self.floored || self.is_full()
    }

    #[inline(always)]
    fn consider(&mut self, i: usize, x: f32, skip: &impl Fn(usize) -> bool) {
        if (self.gates() && x <= self.threshold) || x.is_nan() || skip(i) {
            return;
        }
        let at = self.best.partition_point(|&(v, _)| v >= x);
        self.best.insert(at, (x, i as u32));
        self.best.truncate(self.k);
        if self.is_full() {
            self.threshold = self.best[self.k - 1].0;
        }
    }
}

/// `x·σ(x)` (SiLU, swish) in place.
pub fn silu(xs: &mut [f32]) {
    silu_on(isa::active(), xs)
}

/// [`silu`] on the kernels of `isa`.
pub fn silu_on(isa: Isa, xs: &mut [f32]) {
    match family(isa) {
        // SAFETY: `family` returns only families this CPU runs.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::silu(xs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx2Vnni => unsafe { avx2::silu(xs) },
        _ => xs.iter_mut().for_each(|x| *x = silu_one(*x)),
    }
}

/// `x / (1 + e^-x)`, written with `e^-|x|` so that nothing overflows.
#[inline(always)]
fn silu_one(x: f32) -> f32 {
    let e = (-x.abs()).exp();
    let sigmoid = if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    x * sigmoid
}

/// `max(x, 0)` in place.
pub fn relu(xs: &mut [f32]) {
    for x in xs {
        *x = x.max(0.0);
    }
}

/// Exact GELU `x·Φ(x)` in place (candle's error function, as its `gelu_erf`).
pub fn gelu_erf(xs: &mut [f32]) {
    for x in xs {
        *x = (candle_core::cpu::erf::erf_f32(*x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * *x;
    }
}

const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;

/// GELU's tanh approximation (`gelu_new`, T5 v1.1 and FLAN-T5) in place.
pub fn gelu_tanh(xs: &mut [f32]) {
    gelu_tanh_on(isa::active(), xs)
}

/// [`gelu_tanh`] on the kernels of `isa`: the SIMD ones compute `x·σ(2y)`, equal to `½x(1 + tanh y)`, with the
/// vectorised exponential (the scalar `tanh` took as long as the feed-forward products of FLAN-T5).
pub fn gelu_tanh_on(isa: Isa, xs: &mut [f32]) {
    match family(isa) {
        // SAFETY: `family` returns only families this CPU runs.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::gelu_tanh(xs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx2Vnni => unsafe { avx2::gelu_tanh(xs) },
        _ => portable_gelu_tanh(xs),
    }
}

fn portable_gelu_tanh(xs: &mut [f32]) {
    for x in xs {
        let v = *x;
        *x = 0.5 * v * (1.0 + f32::tanh(SQRT_TWO_OVER_PI * v * (1.0 + 0.044715 * v * v)));
    }
}

#[inline(always)]
fn block_max(block: &[f32]) -> f32 {
    let mut m = f32::NEG_INFINITY;
    for &x in block {
        m = if x > m { x } else { m };
    }
    m
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! The AVX-512 versions.
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn max(row: &[f32]) -> f32 {
        let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
        let chunks = row.len() / 16;
        for c in 0..chunks {
            acc = _mm512_max_ps(acc, _mm512_loadu_ps(row.as_ptr().add(c * 16)));
        }
        let mut m = _mm512_reduce_max_ps(acc);
        for &x in &row[chunks * 16..] {
            m = m.max(x);
        }
        m
    }

    /// `exp(d)` for `d ≤ 0`: `2^n · p(r)` with `d = n ln 2 + r`, a degree-6 polynomial on `|r| ≤ ln2/2`
    /// (relative error below 2e-7), inputs under -87 (and NaN) give exactly 0.
    ///
    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn exp_neg(d: __m512) -> __m512 {
        // Exactly 0 below -87 (as libm's exp gives 0 far below), never a subnormal: Intel CPUs take a slow
        // microcode path for every product with one, and masked attention weights are all such products.
        let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(d, _mm512_set1_ps(-87.0));
        let d = _mm512_max_ps(d, _mm512_set1_ps(-87.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            d,
            _mm512_set1_ps(std::f32::consts::LOG2_E),
        ));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), d);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 120.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 24.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 6.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
        _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n))
    }

    /// The scan of [`super::top_k`]: one comparison per 16 values against the current threshold, the values
    /// above it considered in index order.
    ///
    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn top_k(row: &[f32], top: &mut super::TopK, skip: &impl Fn(usize) -> bool) {
        let chunks = row.len() / 16;
        for c in 0..chunks {
            let x = _mm512_loadu_ps(row.as_ptr().add(c * 16));
            // Ordered comparison: NaN never passes; before `k` are kept the threshold is the floor (-inf by default).
            let mut mask = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(top.threshold)) as u32;
            if !top.gates() {
                mask = 0xffff;
            }
            while mask != 0 {
                let j = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                top.consider(c * 16 + j, row[c * 16 + j], skip);
            }
        }
        for (i, &x) in row.iter().enumerate().skip(chunks * 16) {
            top.consider(i, x, skip);
        }
    }

    /// `x·σ(x)` with `e = exp(-|x|)`: σ = 1/(1+e) for x ≥ 0, e/(1+e) below.
    ///
    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn silu_block(x: __m512) -> __m512 {
        x_sigmoid(x, x)
    }

    /// `x·σ(z)` with `e = exp(-|z|)`: σ = 1/(1+e) for z ≥ 0, e/(1+e) below (nothing overflows).
    ///
    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn x_sigmoid(x: __m512, z: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let e = exp_neg(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(z)));
        let positive = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(z, _mm512_setzero_ps());
        let num = _mm512_mask_blend_ps(positive, e, one);
        _mm512_mul_ps(x, _mm512_div_ps(num, _mm512_add_ps(one, e)))
    }

    /// GELU's tanh approximation as `x·σ(2y)` (the same as `½x(1 + tanh y)`), y = √(2/π)(x + 0.044715x³).
    ///
    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn gelu_tanh_block(x: __m512) -> __m512 {
        let c = _mm512_set1_ps(2.0 * super::SQRT_TWO_OVER_PI);
        let c3 = _mm512_set1_ps(2.0 * super::SQRT_TWO_OVER_PI * 0.044715);
        let z = _mm512_mul_ps(x, _mm512_fmadd_ps(c3, _mm512_mul_ps(x, x), c));
        x_sigmoid(x, z)
    }

    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gelu_tanh(xs: &mut [f32]) {
        let chunks = xs.len() / 16;
        let p = xs.as_mut_ptr();
        for c in 0..chunks {
            _mm512_storeu_ps(p.add(c * 16), gelu_tanh_block(_mm512_loadu_ps(p.add(c * 16))));
        }
        let tail = xs.len() - chunks * 16;
        if tail > 0 {
            let mask: __mmask16 = ((1u32 << tail) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(mask, p.add(chunks * 16));
            _mm512_mask_storeu_ps(p.add(chunks * 16), mask, gelu_tanh_block(x));
        }
    }

    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn silu(xs: &mut [f32]) {
        let chunks = xs.len() / 16;
        let p = xs.as_mut_ptr();
        for c in 0..chunks {
            _mm512_storeu_ps(p.add(c * 16), silu_block(_mm512_loadu_ps(p.add(c * 16))));
        }
        let tail = xs.len() - chunks * 16;
        if tail > 0 {
            let mask: __mmask16 = ((1u32 << tail) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(mask, p.add(chunks * 16));
            _mm512_mask_storeu_ps(p.add(chunks * 16), mask, silu_block(x));
        }
    }

    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum_exp(row: &[f32], m: f32) -> f32 {
        let mv = _mm512_set1_ps(m);
        let mut acc = _mm512_setzero_ps();
        let chunks = row.len() / 16;
        for c in 0..chunks {
            let x = _mm512_loadu_ps(row.as_ptr().add(c * 16));
            acc = _mm512_add_ps(acc, exp_neg(_mm512_sub_ps(x, mv)));
        }
        let tail = row.len() - chunks * 16;
        if tail > 0 {
            let mask: __mmask16 = ((1u32 << tail) - 1) as u16;
            let x = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), mask, row.as_ptr().add(chunks * 16));
            let e = exp_neg(_mm512_sub_ps(x, mv));
            acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mask, e));
        }
        _mm512_reduce_add_ps(acc)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_and_sum_exp_agree_with_libm_on_every_family() {
        let row: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 2003) as f32 / 37.0 - 30.0).collect();
        for isa in isa::available() {
            let m = max_on(isa, &row);
            assert_eq!(m, row.iter().copied().fold(f32::NEG_INFINITY, f32::max), "{isa}");
            let want: f64 = row.iter().map(|&x| ((x - m) as f64).exp()).sum();
            let got = sum_exp_on(isa, &row, m) as f64;
            assert!((got - want).abs() / want < 1e-6, "{isa}: {got} vs {want}");
            // Very negative differences underflow to nothing, as they should.
            assert_eq!(sum_exp_on(isa, &[0.0, -1000.0, f32::NEG_INFINITY], 0.0), 1.0, "{isa}");
            let odd = [1.0f32, 2.0, 3.0];
            assert!((sum_exp_on(isa, &odd, 3.0) - (1.0 + (-1f32).exp() + (-2f32).exp())).abs() < 1e-6, "{isa}");
            assert_eq!(max_on(isa, &[]), f32::NEG_INFINITY, "{isa}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn four_sums_at_once_are_the_one_at_a_time_sums_bit_for_bit() {
        use std::arch::x86_64::*;
        if !Isa::Avx2.supported() {
            return;
        }
        // Magnitudes far apart, so that a different order of the additions would round differently.
        let lanes: Vec<f32> = (0..32)
            .map(|i| ((i * 7919) % 211) as f32 * 10f32.powi(i % 7 - 3) * [1.0, -1.0][i as usize % 3 % 2])
            .collect();
        // SAFETY: AVX2 and FMA are present (checked above); each load reads 8 of the 32 values.
        let (four, one) = unsafe {
            let a: [__m256; 4] = std::array::from_fn(|k| _mm256_loadu_ps(lanes[k * 8..].as_ptr()));
            let mut four = [0f32; 4];
            _mm_storeu_ps(four.as_mut_ptr(), avx2::reduce_add4(a));
            (four, a.map(|v| avx2::reduce_add(v)))
        };
        assert_eq!(four.map(f32::to_bits), one.map(f32::to_bits), "{four:?} vs {one:?}");
        let serial: Vec<f32> = lanes.chunks(8).map(|c| c.iter().sum()).collect();
        assert_ne!(serial, one, "the values are chosen so that the order of the additions shows");
    }

    #[test]
    fn silu_matches_the_scalar_formula_on_every_family() {
        let mut base: Vec<f32> = (0..77).map(|i| (i as f32 - 38.0) * 0.7).collect();
        base.extend([100.0, -100.0, 0.0, -0.0]);
        let want: Vec<f32> = base.iter().map(|&x| (x as f64 / (1.0 + (-x as f64).exp())) as f32).collect();
        for isa in isa::available() {
            let mut xs = base.clone();
            silu_on(isa, &mut xs);
            for (g, w) in xs.iter().zip(&want) {
                assert!((g - w).abs() <= 2e-6 * w.abs().max(1e-3), "{isa}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn gelu_tanh_matches_the_reference_formula_on_every_family() {
        let mut base: Vec<f32> = (0..203).map(|i| (i as f32 - 101.0) * 0.09).collect();
        base.extend([30.0, -30.0, 0.0, -0.0, 1e-6, -1e-6]);
        let want: Vec<f64> = base
            .iter()
            .map(|&x| {
                let x = x as f64;
                0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
            })
            .collect();
        for isa in isa::available() {
            let mut xs = base.clone();
            gelu_tanh_on(isa, &mut xs);
            for ((g, w), x) in xs.iter().zip(&want).zip(&base) {
                // (The portable loops use the f32 formula of the reference, which cancels to 0 far left.)
                assert!((*g as f64 - w).abs() <= 2e-6 * w.abs() + 6e-8 * x.abs() as f64, "{isa} at {x}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn top_k_keeps_the_best_with_index_order_on_ties_on_every_family() {
        let mut row = vec![0f32; 100];
        row[7] = 5.0;
        row[3] = 5.0;
        row[99] = 9.0;
        row[50] = f32::NAN;
        row[20] = 7.0;
        for isa in isa::available() {
            assert_eq!(top_k_on(isa, &row, 3, |_| false), vec![(9.0, 99), (7.0, 20), (5.0, 3)], "{isa}");
            assert_eq!(top_k_on(isa, &row, 3, |i| i == 99 || i == 3), vec![(7.0, 20), (5.0, 7), (0.0, 0)], "{isa}");
            assert_eq!(top_k_on(isa, &row[..5], 10, |_| false).len(), 5, "{isa}");
            let long: Vec<f32> = (0..1003).map(|i| ((i * 7919) % 2003) as f32).collect();
            let mut sorted: Vec<(f32, u32)> = long.iter().enumerate().map(|(i, &v)| (v, i as u32)).collect();
            sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            assert_eq!(top_k_on(isa, &long, 8, |_| false), sorted[..8].to_vec(), "{isa}");
            // Above a floor: only values greater than it, the floor itself left out.
            let floor = sorted[5].0;
            assert_eq!(top_k_above_on(isa, &long, 8, floor, |_| false), sorted[..5].to_vec(), "{isa}");
            assert_eq!(top_k_above_on(isa, &long, 2, floor, |_| false), sorted[..2].to_vec(), "{isa}");
        }
    }
}
