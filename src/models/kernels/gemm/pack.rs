//! Packing for the GEMM micro-kernels: weights once at load (f32, bf16 pairs, int8 quads with a scale per
//! output row), activations at each call in the layout the chosen kernel reads, and the int8 dequantization
//! that every int8 kernel shares (so that all of them give the same floats).

use rayon::prelude::*;

use super::{Precision, Tile, MR, NR};

/// Packed weights, `NR` output columns per panel, columns beyond `n` zero.
#[derive(Debug, Clone)]
pub enum WeightPanels {
    /// `[panel][k][NR]`.
    F32(Aligned<f32>),
    /// `[panel][k / 2][NR][2]`: the two k values of a column side by side, as `vdpbf16ps` reads them.
    Bf16 { data: Aligned<u16> },
    /// `[panel][k / 4][NR][4]` int8 (four k values of a column side by side, as `vpdpbusd` reads them), with
    /// `w ≈ q · scales[row]`, `|q| ≤ 2^(bits − 1) − 1` (`bits` 8, or 7 for plain AVX2's `vpmaddubsw`), and
    /// `sums[row] = Σ q` (for kernels that offset the activations to unsigned).
    Int8 { data: Aligned<i8>, scales: Vec<f32>, sums: Vec<i32>, bits: u32 },
}

impl WeightPanels {
    /// Packs `w` (`[n, k]`); int8 weights are quantised to `int8_bits` (7 or 8) bits with a scale per row.
    pub fn pack(w: &[f32], n: usize, k: usize, precision: Precision, int8_bits: u32) -> Self {
        match precision {
            Precision::F32 => WeightPanels::F32(panels(w, n, k, 1, |v| v)),
            Precision::Bf16 => WeightPanels::Bf16 { data: panels(w, n, k, 2, f32_to_bf16) },
            Precision::Int8 => {
                assert!(matches!(int8_bits, 7 | 8), "int8 weights take 7 or 8 bits, not {int8_bits}");
                let limit = ((1 << (int8_bits - 1)) - 1) as f32;
                let scales: Vec<f32> = w.par_chunks(k.max(1)).take(n).map(|row| max_abs(row) / limit).collect();
                let q: Vec<i8> = w
                    .par_chunks(k.max(1))
                    .take(n)
                    .zip(&scales)
                    .flat_map_iter(|(row, &s)| {
                        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                        row.iter().map(move |&x| quantize_to(x, inv, limit))
                    })
                    .collect();
                let sums = q.chunks(k.max(1)).take(n).map(|row| row.iter().map(|&v| i32::from(v)).sum()).collect();
                let data = panels(&q, n, k, 4, |v| v);
                WeightPanels::Int8 { data, scales, sums, bits: int8_bits }
            }
        }
    }

    /// Asks for share `part` of `parts` of the cache lines of panel `p`'s steps `ks` (of `steps` a panel) to be
    /// brought into L2.
    pub fn prefetch(&self, p: usize, ks: std::ops::Range<usize>, steps: usize, (part, parts): (usize, usize)) {
        // Values a step of a panel holds: NR columns of 1, 2 or 4 k values.
        let span = |per: usize| (p * steps + ks.start) * NR * per..(p * steps + ks.end) * NR * per;
        match self {
            WeightPanels::F32(w) => prefetch(&w[span(1)], part, parts),
            WeightPanels::Bf16 { data } => prefetch(&data[span(2)], part, parts),
            WeightPanels::Int8 { data, .. } => prefetch(&data[span(4)], part, parts),
        }
    }

    /// Bits of the int8 weights (8 for other precisions).
    pub fn int8_bits(&self) -> u32 {
        match self {
            WeightPanels::Int8 { bits, .. } => *bits,
            _ => 8,
        }
    }

    pub fn precision(&self) -> Precision {
        match self {
            WeightPanels::F32(_) => Precision::F32,
            WeightPanels::Bf16 { .. } => Precision::Bf16,
            WeightPanels::Int8 { .. } => Precision::Int8,
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            WeightPanels::F32(v) => v.len() * 4,
            WeightPanels::Bf16 { data } => data.len() * 2,
            WeightPanels::Int8 { data, scales, sums, .. } => data.len() + scales.len() * 4 + sums.len() * 4,
        }
    }
}

/// `[panel][k / group][NR][group]` of `convert(w)`, k padded to a multiple of `group` and columns to `NR` with
/// zeros.
fn panels<T: Copy + Default + Send + Sync, U: Copy + Default + Send>(
    w: &[T],
    n: usize,
    k: usize,
    group: usize,
    convert: impl Fn(T) -> U + Sync,
) -> Aligned<U> {
    let kg = k.div_ceil(group);
    let panel_len = kg * NR * group;
    let mut data = Aligned::zeroed(n.div_ceil(NR) * panel_len);
    data.par_chunks_mut(panel_len.max(1)).enumerate().for_each(|(p, panel)| {
        for j in 0..NR.min(n - p * NR) {
            let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
            for (g, values) in row.chunks(group).enumerate() {
                let at = (g * NR + j) * group;
                for (slot, &v) in panel[at..at + values.len()].iter_mut().zip(values) {
                    *slot = convert(v);
                }
            }
        }
    });
    data
}

/// A buffer whose first value starts a cache line: every panel is a whole number of 64-byte lines long, so no
/// vector load of a weight panel splits across two lines (split loads halved the AVX-512 kernels' rate).
#[derive(Debug)]
pub struct Aligned<T> {
    buf: Vec<T>,
    start: usize,
    len: usize,
}

const LINE: usize = 64;

impl<T: Copy + Default> Aligned<T> {
    pub fn zeroed(len: usize) -> Self {
        let extra = LINE / std::mem::size_of::<T>();
        let buf = vec![T::default(); len + extra];
        let start = buf.as_ptr().align_offset(LINE).min(extra);
        Self { buf, start, len }
    }
}

impl<T: Copy + Default> Clone for Aligned<T> {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl<T> std::ops::Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl<T> std::ops::DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// Prefetches share `part` of `parts` of the cache lines of `data` into L2.
fn prefetch<T>(data: &[T], part: usize, parts: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let lines = (std::mem::size_of_val(data)).div_ceil(LINE);
        let per = lines.div_ceil(parts.max(1));
        let base = data.as_ptr() as *const i8;
        for line in (part * per)..lines.min((part + 1) * per) {
            // SAFETY: the address lies inside `data` (line < lines); a prefetch reads nothing and never faults.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(base.add(line * LINE)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, part, parts);
}

/// The activation layout a kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActLayout {
    F32,
    Bf16Pairs,
    Bf16AsF32,
    Int8,
    /// int8 offset to unsigned (`q + 128`), as `vpdpbusd` multiplies it.
    Int8Unsigned,
    /// int8 as pairs of quads, `|q|` then `q`, for the plain-AVX2 kernel: it multiplies `|q|` (`vpmaddubsw`'s
    /// unsigned operand) by the weights signed as `q` (`vpsignb`), and a second broadcast from memory costs no
    /// ALU slot where `vpabsb` on every row and step did.
    Int8WithAbs,
}

/// Activations packed in `MR`-row panels, rows beyond `m` zero.
pub enum ActPanels {
    /// `[panel][k][MR]`.
    F32 { data: Vec<f32>, k: usize },
    /// `[panel][k / 2][MR]` pairs of bf16, the even k in the low half.
    Bf16Pairs { data: Vec<u32>, k2: usize },
    /// `[panel][k / 2][MR][2]` f32 values rounded to bf16 (for kernels that widen bf16 weights to f32).
    Bf16AsF32 { data: Vec<[f32; 2]>, k2: usize },
    /// `[panel][k / 4][MR][width]` quads of int8 (`x ≈ q · scales[row]`), the first k in the low byte; for
    /// [`ActLayout::Int8Unsigned`] each byte is `q + 128`; for [`ActLayout::Int8WithAbs`] (`width` 2) each
    /// quad of `|q|` comes before the quad of `q`.
    Int8 { data: Vec<u32>, scales: Vec<f32>, k4: usize, width: usize },
}

impl ActPanels {
    pub fn pack(a: &[f32], m: usize, k: usize, layout: ActLayout) -> Self {
        let row = |i: usize| &a[i * k..(i + 1) * k];
        match layout {
            ActLayout::F32 => ActPanels::F32 { data: act_panels(m, k, |i, out| out.copy_from_slice(row(i))), k },
            ActLayout::Bf16AsF32 => {
                let k2 = k.div_ceil(2);
                let data = act_panels(m, k2, |i, out| {
                    for (o, pair) in out.iter_mut().zip(row(i).chunks(2)) {
                        let round = |x: f32| bf16_to_f32(f32_to_bf16(x));
                        *o = [round(pair[0]), pair.get(1).map_or(0.0, |&x| round(x))];
                    }
                });
                ActPanels::Bf16AsF32 { data, k2 }
            }
            ActLayout::Bf16Pairs => {
                let k2 = k.div_ceil(2);
                let data = act_panels(m, k2, |i, out| {
                    for (o, pair) in out.iter_mut().zip(row(i).chunks(2)) {
                        let hi = pair.get(1).map_or(0, |&x| f32_to_bf16(x));
                        *o = u32::from(f32_to_bf16(pair[0])) | (u32::from(hi) << 16);
                    }
                });
                ActPanels::Bf16Pairs { data, k2 }
            }
            ActLayout::Int8 | ActLayout::Int8Unsigned | ActLayout::Int8WithAbs => {
                let k4 = k.div_ceil(4);
                let scales: Vec<f32> = (0..m).map(|i| max_abs(row(i)) / 127.0).collect();
                let quads = |i: usize, out: &mut [u32]| int8_quads(row(i), scales[i], out);
                let (data, width) = match layout {
                    ActLayout::Int8WithAbs => {
                        let data = act_panels(m, k4, |i, out: &mut [[u32; 2]]| {
                            let mut q = vec![0u32; k4];
                            quads(i, &mut q);
                            for (o, &q) in out.iter_mut().zip(&q) {
                                *o = [abs_quad(q), q];
                            }
                        });
                        (data.into_flattened(), 2)
                    }
                    // Flipping the sign bit of a two's-complement byte adds 128.
                    ActLayout::Int8Unsigned => (
                        act_panels(m, k4, |i, out: &mut [u32]| {
                            quads(i, out);
                            out.iter_mut().for_each(|q| *q ^= 0x8080_8080);
                        }),
                        1,
                    ),
                    _ => (act_panels(m, k4, quads), 1),
                };
                ActPanels::Int8 { data, scales, k4, width }
            }
        }
    }

    /// k steps of a panel: k, k pairs or k quads.
    pub fn steps(&self) -> usize {
        match self {
            ActPanels::F32 { k, .. } => *k,
            ActPanels::Bf16Pairs { k2, .. } | ActPanels::Bf16AsF32 { k2, .. } => *k2,
            ActPanels::Int8 { k4, .. } => *k4,
        }
    }

    /// Bytes of one row panel.
    pub fn panel_bytes(&self) -> usize {
        match self {
            ActPanels::F32 { k, .. } => k * MR * 4,
            ActPanels::Bf16Pairs { k2, .. } => k2 * MR * 4,
            ActPanels::Bf16AsF32 { k2, .. } => k2 * 2 * MR * 4,
            ActPanels::Int8 { k4, width, .. } => k4 * MR * width * 4,
        }
    }
}

/// `row` quantised with `scale` into quads of int8 (`out` holds `row.len().div_ceil(4)`), the first value in the
/// low byte, the last quad zero-padded.
fn int8_quads(row: &[f32], scale: f32, out: &mut [u32]) {
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let (quads, tail) = row.as_chunks::<4>();
    for (o, quad) in out.iter_mut().zip(quads) {
        *o = u32::from_le_bytes(quad.map(|x| quantize(x, inv) as u8));
    }
    if !tail.is_empty() {
        let mut last = [0u8; 4];
        for (b, &x) in last.iter_mut().zip(tail) {
            *b = quantize(x, inv) as u8;
        }
        out[quads.len()] = u32::from_le_bytes(last);
    }
}

/// The byte-wise magnitudes of a quad of int8 (each in [-127, 127], so `|q|` fits the byte).
fn abs_quad(q: u32) -> u32 {
    u32::from_le_bytes(q.to_le_bytes().map(|b| (b as i8).unsigned_abs()))
}

/// `[panel][steps][MR]` of the values `fill(row, out)` writes for each row (`out` holds `steps` values), rows
/// beyond `m` zero.
fn act_panels<S: Copy + Default + Send>(m: usize, steps: usize, fill: impl Fn(usize, &mut [S]) + Sync) -> Vec<S> {
    let panel_len = steps * MR;
    let m_panels = m.div_ceil(MR);
    let mut data = vec![S::default(); m_panels * panel_len];
    let pack = |(q, panel): (usize, &mut [S])| {
        let mut values = vec![S::default(); steps];
        for i in 0..MR.min(m - q * MR) {
            fill(q * MR + i, &mut values);
            for (s, &v) in values.iter().enumerate() {
                panel[s * MR + i] = v;
            }
        }
    };
    if m_panels > 4 {
        data.par_chunks_mut(panel_len.max(1)).enumerate().for_each(pack);
    } else {
        data.chunks_mut(panel_len.max(1)).enumerate().for_each(pack);
    }
    data
}

/// The largest magnitude in `row` (0 for an empty row; NaN ignored), in 8 independent lanes so that it
/// vectorises (the maximum does not depend on the order).
fn max_abs(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (chunks, tail) = row.as_chunks::<8>();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x.abs() > *l { x.abs() } else { *l };
        }
    }
    let top = lanes.into_iter().chain(tail.iter().map(|x| x.abs()));
    top.fold(0f32, |m, x| if x > m { x } else { m })
}

/// `x · inv` rounded to the nearest integer (ties to even) in [-127, 127]; NaN gives 0.
#[inline(always)]
fn quantize(x: f32, inv: f32) -> i8 {
    quantize_to(x, inv, 127.0)
}

/// `x · inv` rounded to the nearest integer (ties to even) in [-limit, limit] (`limit` ≤ 127); NaN gives 0.
/// Written with the 1.5·2²³ rounding trick so that it vectorises on every target and rounds the same
/// everywhere.
#[inline(always)]
fn quantize_to(x: f32, inv: f32, limit: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    let y = (x * inv).clamp(-limit, limit);
    ((y + MAGIC) - MAGIC) as i8
}

/// The per-row scales an int8 output tile is multiplied by.
pub struct Int8Scales<'a> {
    /// The tile's activation rows.
    pub rows: &'a [f32],
    /// The tile's weight rows (output columns).
    pub cols: &'a [f32],
    /// `Σ q` of the tile's weight rows.
    pub sums: &'a [i32],
}

/// Writes `acc` (exact i32 sums; with `offset`, of activations offset by +128) into `tile` as floats:
/// `(acc − 128·Σw) · s_row · s_col + bias`, the same arithmetic for every kernel.
///
/// # Safety
/// As [`Tile::store`].
#[inline]
pub unsafe fn dequantize(acc: &[[i32; NR]; MR], offset: bool, scale: &Int8Scales, tile: &Tile) {
    // Whole rows of NR in fixed-size loops (which the compiler vectorises), the valid columns copied out.
    let cols = tile.cols;
    let (mut shift, mut col_scale) = ([0i32; NR], [0f32; NR]);
    if offset {
        for (s, &sum) in shift.iter_mut().zip(scale.sums) {
            *s = 128 * sum;
        }
    }
    col_scale[..cols].copy_from_slice(&scale.cols[..cols]);
    for (i, row) in acc.iter().enumerate().take(tile.rows) {
        let s = scale.rows[i];
        let mut values = [0f32; NR];
        for ((((v, &a), &sh), &c), &b) in values.iter_mut().zip(row).zip(&shift).zip(&col_scale).zip(tile.bias) {
            *v = (a - sh) as f32 * (s * c) + b;
        }
        // SAFETY: row `i < rows` of the tile (the caller's contract).
        unsafe { tile.write_row(i, &values) };
    }
}

/// Rounds to the nearest bfloat16, ties to even, as `vcvtne2ps2bf16` does; NaN stays NaN.
pub fn f32_to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    ((bits + rounding) >> 16) as u16
}

pub fn bf16_to_f32(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}
