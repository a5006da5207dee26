//! `out = a · wᵀ (+ bias)` for static weights packed once at load: f32, or bf16 (with f32 accumulation) for the
//! reduced-precision CPU mode. AVX-512 (and AVX512-BF16) kernels where the CPU has them, portable loops elsewhere.
//!
//! Weights `w` are `[n, k]` (out × in, as `nn.Linear` stores them). They are packed into panels of `NR` output
//! columns, k-major, so that a micro-kernel streams one panel and keeps an `MR × NR` block of outputs in
//! registers. Activations are packed per call into `MR`-row panels. Work is split over output panels, so each
//! thread reads its own share of the weights once.

use rayon::prelude::*;

/// Output columns per packed panel (two 16-lane registers).
pub const NR: usize = 32;
/// Rows per micro-kernel tile.
pub const MR: usize = 12;

/// How the packed weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// bfloat16 weights and activations in the product, f32 accumulation (AVX512-BF16 `vdpbf16ps`).
    Bf16,
}

#[derive(Debug, Clone)]
enum Panels {
    /// `[panel][k][NR]`.
    F32(Vec<f32>),
    /// `[panel][k / 2][NR][2]`: the two k values of a column side by side, as `vdpbf16ps` reads them.
    Bf16(Vec<u16>),
}

/// A weight matrix packed for [`PackedMatrix::matmul`].
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    panels: Panels,
}

fn f32_to_bf16(x: f32) -> u16 {
    // Round to nearest even, as `vcvtne2ps2bf16` does; NaN stays NaN.
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    ((bits + rounding) >> 16) as u16
}

fn bf16_to_f32(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

impl PackedMatrix {
    /// Packs `w` (`[n, k]`, row-major).
    pub fn pack(w: &[f32], n: usize, k: usize, precision: Precision) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        let panels = n.div_ceil(NR);
        let data = match precision {
            Precision::F32 => {
                let mut data = vec![0f32; panels * k * NR];
                data.par_chunks_mut(k * NR).enumerate().for_each(|(p, panel)| {
                    for j in 0..NR.min(n - p * NR) {
                        let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
                        for (kk, &v) in row.iter().enumerate() {
                            panel[kk * NR + j] = v;
                        }
                    }
                });
                Panels::F32(data)
            }
            Precision::Bf16 => {
                let k2 = k.div_ceil(2);
                let mut data = vec![0u16; panels * k2 * NR * 2];
                data.par_chunks_mut(k2 * NR * 2).enumerate().for_each(|(p, panel)| {
                    for j in 0..NR.min(n - p * NR) {
                        let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
                        for (kk, &v) in row.iter().enumerate() {
                            panel[((kk / 2) * NR + j) * 2 + kk % 2] = f32_to_bf16(v);
                        }
                    }
                });
                Panels::Bf16(data)
            }
        };
        Self { n, k, panels: data }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn precision(&self) -> Precision {
        match self.panels {
            Panels::F32(_) => Precision::F32,
            Panels::Bf16(_) => Precision::Bf16,
        }
    }

    /// Bytes the packed weights take.
    pub fn bytes(&self) -> usize {
        match &self.panels {
            Panels::F32(v) => v.len() * 4,
            Panels::Bf16(v) => v.len() * 2,
        }
    }

    /// `out[m, n] = a[m, k] · wᵀ + bias`.
    pub fn matmul(&self, a: &[f32], m: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        self.matmul_then(a, m, bias, None, out)
    }

    /// [`matmul`](Self::matmul) followed by `epilogue` (an element-wise activation) on each output tile while it
    /// is still in cache.
    pub fn matmul_then(
        &self,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        epilogue: Option<fn(&mut [f32])>,
        out: &mut [f32],
    ) {
        let (n, k) = (self.n, self.k);
        assert_eq!(a.len(), m * k, "activation size");
        assert_eq!(out.len(), m * n, "output size");
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias size");
        }
        if m == 0 || n == 0 {
            return;
        }
        let m_panels = m.div_ceil(MR);
        let n_panels = n.div_ceil(NR);
        let out_ptr = SendPtr(out.as_mut_ptr());
        // Rows are taken in blocks whose packed activations stay in a core's L2 while it sweeps the weights; within
        // a block, the output panels are split into a few tasks per thread, each writing its own columns.
        let elem = match self.panels {
            Panels::F32(_) => 4,
            Panels::Bf16(_) => 2,
        };
        let block_panels = (A_BLOCK_BYTES / (k * MR * elem)).clamp(1, m_panels);
        let m_blocks = m_panels.div_ceil(block_panels);
        let tasks = (rayon::current_num_threads() * 4).div_ceil(m_blocks).clamp(1, n_panels);
        let per_task = n_panels.div_ceil(tasks);
        let n_tasks = n_panels.div_ceil(per_task);
        let tile = |t: usize| {
            let (block, task) = (t / n_tasks, t % n_tasks);
            let panels = task * per_task..((task + 1) * per_task).min(n_panels);
            let row_panels = block * block_panels..((block + 1) * block_panels).min(m_panels);
            (panels, row_panels)
        };
        match &self.panels {
            Panels::F32(b) => {
                let packed_a = pack_a_f32(a, m, k);
                let kernel = f32_kernel();
                (0..m_blocks * n_tasks).into_par_iter().for_each(|t| {
                    let out = out_ptr;
                    let (panels, row_panels) = tile(t);
                    for p in panels {
                        let cols = NR.min(n - p * NR);
                        let panel = &b[p * k * NR..(p + 1) * k * NR];
                        let bias = bias.map(|b| &b[p * NR..p * NR + cols]);
                        for q in row_panels.clone() {
                            let rows = MR.min(m - q * MR);
                            let a_panel = &packed_a[q * k * MR..(q + 1) * k * MR];
                            // SAFETY: the tile (rows q*MR.., columns p*NR..) is written by this task only.
                            unsafe {
                                kernel(k, a_panel, panel, out.0.add(q * MR * n + p * NR), n, rows, cols, bias);
                                apply(epilogue, out.0.add(q * MR * n + p * NR), n, rows, cols);
                            }
                        }
                    }
                });
            }
            Panels::Bf16(b) => {
                let k2 = k.div_ceil(2);
                let packed_a = pack_a_bf16(a, m, k);
                let kernel = bf16_kernel();
                (0..m_blocks * n_tasks).into_par_iter().for_each(|t| {
                    let out = out_ptr;
                    let (panels, row_panels) = tile(t);
                    for p in panels {
                        let cols = NR.min(n - p * NR);
                        let panel = &b[p * k2 * NR * 2..(p + 1) * k2 * NR * 2];
                        let bias = bias.map(|b| &b[p * NR..p * NR + cols]);
                        for q in row_panels.clone() {
                            let rows = MR.min(m - q * MR);
                            let a_panel = &packed_a[q * k2 * MR..(q + 1) * k2 * MR];
                            // SAFETY: as above, a disjoint tile per task.
                            unsafe {
                                kernel(k2, a_panel, panel, out.0.add(q * MR * n + p * NR), n, rows, cols, bias);
                                apply(epilogue, out.0.add(q * MR * n + p * NR), n, rows, cols);
                            }
                        }
                    }
                });
            }
        }
    }
}

/// Runs `epilogue` over the `rows × cols` tile at `c` (row stride `ldc`).
///
/// # Safety
/// The tile must be valid and written by the caller's task only.
#[inline]
unsafe fn apply(epilogue: Option<fn(&mut [f32])>, c: *mut f32, ldc: usize, rows: usize, cols: usize) {
    if let Some(f) = epilogue {
        for i in 0..rows {
            f(std::slice::from_raw_parts_mut(c.add(i * ldc), cols));
        }
    }
}

/// Bytes of packed activations per row block (a share of a core's L2, next to a weight panel).
const A_BLOCK_BYTES: usize = 384 << 10;

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint tiles through it (see `matmul`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `[m_panel][k][MR]`, rows beyond `m` zero.
fn pack_a_f32(a: &[f32], m: usize, k: usize) -> Vec<f32> {
    let m_panels = m.div_ceil(MR);
    let mut packed = vec![0f32; m_panels * k * MR];
    let pack = |(q, panel): (usize, &mut [f32])| {
        for i in 0..MR.min(m - q * MR) {
            let row = &a[(q * MR + i) * k..(q * MR + i + 1) * k];
            for (kk, &v) in row.iter().enumerate() {
                panel[kk * MR + i] = v;
            }
        }
    };
    if m_panels > 4 {
        packed.par_chunks_mut(k * MR).enumerate().for_each(pack);
    } else {
        packed.chunks_mut(k * MR).enumerate().for_each(pack);
    }
    packed
}

/// `[m_panel][k / 2][MR]` pairs of bf16 (the even k in the low half), rows beyond `m` and a last odd k zero.
fn pack_a_bf16(a: &[f32], m: usize, k: usize) -> Vec<u32> {
    let k2 = k.div_ceil(2);
    let m_panels = m.div_ceil(MR);
    let mut packed = vec![0u32; m_panels * k2 * MR];
    let pack = |(q, panel): (usize, &mut [u32])| {
        for i in 0..MR.min(m - q * MR) {
            let row = &a[(q * MR + i) * k..(q * MR + i + 1) * k];
            for kp in 0..k2 {
                let lo = f32_to_bf16(row[2 * kp]) as u32;
                let hi = row.get(2 * kp + 1).map_or(0, |&v| f32_to_bf16(v) as u32);
                panel[kp * MR + i] = lo | (hi << 16);
            }
        }
    };
    if m_panels > 4 {
        packed.par_chunks_mut(k2 * MR).enumerate().for_each(pack);
    } else {
        packed.chunks_mut(k2 * MR).enumerate().for_each(pack);
    }
    packed
}

type F32Kernel = unsafe fn(usize, &[f32], &[f32], *mut f32, usize, usize, usize, Option<&[f32]>);
type Bf16Kernel = unsafe fn(usize, &[u32], &[u16], *mut f32, usize, usize, usize, Option<&[f32]>);

fn f32_kernel() -> F32Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return x86::f32_avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return x86::f32_avx2;
        }
    }
    f32_portable
}

fn bf16_kernel() -> Bf16Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512f") {
            return x86::bf16_avx512;
        }
    }
    bf16_portable
}

/// Whether the CPU multiplies bf16 natively (otherwise the bf16 mode is correct but slow).
pub fn bf16_is_native() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The micro-kernel in plain Rust: an `MR × NR` accumulator block over the whole `k`.
///
/// # Safety
/// `c` must point at a tile with `rows` valid rows of `ldc` columns and `cols` valid columns.
#[allow(clippy::too_many_arguments)] // a microkernel: pointers, strides and sizes
#[inline(always)]
unsafe fn f32_generic(
    k: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
) {
    let mut acc = [[0f32; NR]; MR];
    for kk in 0..k {
        let bk: &[f32; NR] = b[kk * NR..(kk + 1) * NR].try_into().expect("panel width");
        let ak = &a[kk * MR..(kk + 1) * MR];
        for i in 0..MR {
            let av = ak[i];
            for j in 0..NR {
                acc[i][j] += av * bk[j];
            }
        }
    }
    store(&acc, c, ldc, rows, cols, bias);
}

#[inline(always)]
unsafe fn store(acc: &[[f32; NR]; MR], c: *mut f32, ldc: usize, rows: usize, cols: usize, bias: Option<&[f32]>) {
    for (i, row) in acc.iter().enumerate().take(rows) {
        for j in 0..cols {
            *c.add(i * ldc + j) = row[j] + bias.map_or(0.0, |b| b[j]);
        }
    }
}

#[allow(clippy::too_many_arguments)] // a microkernel: pointers, strides and sizes
unsafe fn f32_portable(
    k: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
) {
    f32_generic(k, a, b, c, ldc, rows, cols, bias)
}

#[allow(clippy::too_many_arguments)] // a microkernel: pointers, strides and sizes
unsafe fn bf16_portable(
    k2: usize,
    a: &[u32],
    b: &[u16],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
) {
    let mut acc = [[0f32; NR]; MR];
    for kp in 0..k2 {
        for i in 0..MR {
            let pair = a[kp * MR + i];
            let (a0, a1) = (bf16_to_f32(pair as u16), bf16_to_f32((pair >> 16) as u16));
            for j in 0..NR {
                let b0 = bf16_to_f32(b[(kp * NR + j) * 2]);
                let b1 = bf16_to_f32(b[(kp * NR + j) * 2 + 1]);
                acc[i][j] += a0 * b0 + a1 * b1;
            }
        }
    }
    store(&acc, c, ldc, rows, cols, bias);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    /// The generic micro-kernel compiled for AVX2 + FMA (the compiler vectorizes the 32-wide rows).
    #[allow(clippy::too_many_arguments)] // a microkernel: pointers, strides and sizes
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn f32_avx2(
        k: usize,
        a: &[f32],
        b: &[f32],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        bias: Option<&[f32]>,
    ) {
        super::f32_generic(k, a, b, c, ldc, rows, cols, bias)
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn finish(
        acc0: &[__m512; MR],
        acc1: &[__m512; MR],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        bias: Option<&[f32]>,
    ) {
        let m0: __mmask16 = if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as u16 };
        let m1: __mmask16 = if cols >= 32 {
            0xffff
        } else if cols > 16 {
            ((1u32 << (cols - 16)) - 1) as u16
        } else {
            0
        };
        let (b0, b1) = match bias {
            Some(b) => (_mm512_maskz_loadu_ps(m0, b.as_ptr()), _mm512_maskz_loadu_ps(m1, b.as_ptr().add(16))),
            None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
        };
        for i in 0..rows {
            let row = c.add(i * ldc);
            _mm512_mask_storeu_ps(row, m0, _mm512_add_ps(acc0[i], b0));
            if m1 != 0 {
                _mm512_mask_storeu_ps(row.add(16), m1, _mm512_add_ps(acc1[i], b1));
            }
        }
    }

    /// `R` rows × 32 columns in `2R` registers; each k step loads two weight vectors and broadcasts `R`
    /// activations (`R` is 12, or 4 for small batches, which are memory bound).
    #[target_feature(enable = "avx512f")]
    unsafe fn f32_tile<const R: usize>(
        k: usize,
        ap: *const f32,
        bp: *const f32,
        acc0: &mut [__m512; MR],
        acc1: &mut [__m512; MR],
    ) {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for kk in 0..k {
            let w0 = _mm512_loadu_ps(bp.add(kk * NR));
            let w1 = _mm512_loadu_ps(bp.add(kk * NR + 16));
            for i in 0..R {
                let x = _mm512_set1_ps(*ap.add(kk * MR + i));
                c0[i] = _mm512_fmadd_ps(x, w0, c0[i]);
                c1[i] = _mm512_fmadd_ps(x, w1, c1[i]);
            }
        }
        acc0[..R].copy_from_slice(&c0);
        acc1[..R].copy_from_slice(&c1);
    }

    #[allow(clippy::too_many_arguments)] // a microkernel: pointers, strides and sizes
    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32_avx512(
        k: usize,
        a: &[f32],
        b: &[f32],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        bias: Option<&[f32]>,
    ) {
        debug_assert!(a.len() >= k * MR && b.len() >= k * NR);
        let mut acc0 = [_mm512_setzero_ps(); MR];
        let mut acc1 = [_mm512_setzero_ps(); MR];
        // Fewer rows than a full tile (a batch of one, greedy or a single beam) multiply only what is there.
        match rows {
            1 => f32_tile::<1>(k, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
            2 => f32_tile::<2>(k, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
            3 | 4 => f32_tile::<4>(k, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
            _ => f32_tile::<MR>(k, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
        }
        finish(&acc0, &acc1, c, ldc, rows, cols, bias);
    }

    /// The same tile with `vdpbf16ps`: each step multiplies two k values of `R` rows by 32 columns.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn bf16_tile<const R: usize>(
        k2: usize,
        ap: *const u32,
        bp: *const u16,
        acc0: &mut [__m512; MR],
        acc1: &mut [__m512; MR],
    ) {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for kp in 0..k2 {
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(kp * NR * 2) as *const _));
            let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(kp * NR * 2 + 32) as *const _));
            for i in 0..R {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(kp * MR + i) as i32));
                c0[i] = _mm512_dpbf16_ps(c0[i], x, w0);
                c1[i] = _mm512_dpbf16_ps(c1[i], x, w1);
            }
        }
        acc0[..R].copy_from_slice(&c0);
        acc1[..R].copy_from_slice(&c1);
    }

    #[allow(clippy::too_many_arguments)] // a microkernel: pointers, strides and sizes
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn bf16_avx512(
        k2: usize,
        a: &[u32],
        b: &[u16],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        bias: Option<&[f32]>,
    ) {
        debug_assert!(a.len() >= k2 * MR && b.len() >= k2 * NR * 2);
        let mut acc0 = [_mm512_setzero_ps(); MR];
        let mut acc1 = [_mm512_setzero_ps(); MR];
        // Fewer rows than a full tile (a batch of one, greedy or a single beam) multiply only what is there.
        match rows {
            1 => bf16_tile::<1>(k2, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
            2 => bf16_tile::<2>(k2, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
            3 | 4 => bf16_tile::<4>(k2, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
            _ => bf16_tile::<MR>(k2, a.as_ptr(), b.as_ptr(), &mut acc0, &mut acc1),
        }
        finish(&acc0, &acc1, c, ldc, rows, cols, bias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f32], w: &[f32], m: usize, n: usize, k: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for kk in 0..k {
                    s += a[i * k + kk] as f64 * w[j * k + kk] as f64;
                }
                out[i * n + j] = s as f32 + bias.map_or(0.0, |b| b[j]);
            }
        }
        out
    }

    fn pseudo(len: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn packed_products_match_a_float64_reference_for_ragged_shapes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 70, 40),
            (2, 40, 33),
            (3, 33, 7),
            (12, 32, 16),
            (13, 65, 31),
            (29, 100, 64),
            (4, 7, 129),
            (40, 96, 3),
        ] {
            let a = pseudo(m * k, 1);
            let w = pseudo(n * k, 2);
            let bias = pseudo(n, 3);
            let want = reference(&a, &w, m, n, k, Some(&bias));
            let mut got = vec![0f32; m * n];
            PackedMatrix::pack(&w, n, k, Precision::F32).matmul(&a, m, Some(&bias), &mut got);
            for (g, r) in got.iter().zip(&want) {
                assert!((g - r).abs() <= 1e-4 * (1.0 + r.abs()), "f32 {m}x{n}x{k}: {g} vs {r}");
            }
            let mut got16 = vec![0f32; m * n];
            PackedMatrix::pack(&w, n, k, Precision::Bf16).matmul(&a, m, None, &mut got16);
            let want16 = reference(&a, &w, m, n, k, None);
            for (g, r) in got16.iter().zip(&want16) {
                assert!((g - r).abs() <= 0.02 * (1.0 + (k as f32).sqrt()), "bf16 {m}x{n}x{k}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn the_portable_kernels_agree_with_the_simd_ones() {
        let (m, n, k) = (14, 40, 37);
        let a = pseudo(m * k, 4);
        let w = pseudo(n * k, 5);
        let packed = PackedMatrix::pack(&w, n, k, Precision::F32);
        let mut fast = vec![0f32; m * n];
        packed.matmul(&a, m, None, &mut fast);
        let Panels::F32(panels) = &packed.panels else { unreachable!() };
        let pa = pack_a_f32(&a, m, k);
        let mut slow = vec![0f32; m * n];
        for p in 0..n.div_ceil(NR) {
            for q in 0..m.div_ceil(MR) {
                unsafe {
                    f32_portable(
                        k,
                        &pa[q * k * MR..(q + 1) * k * MR],
                        &panels[p * k * NR..(p + 1) * k * NR],
                        slow.as_mut_ptr().add(q * MR * n + p * NR),
                        n,
                        MR.min(m - q * MR),
                        NR.min(n - p * NR),
                        None,
                    )
                }
            }
        }
        for (x, y) in fast.iter().zip(&slow) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
    }
}
