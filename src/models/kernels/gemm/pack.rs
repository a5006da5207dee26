//! Packing for the GEMM micro-kernels: weights once at load (f32, bf16 pairs, int8 quads with a scale per
//! output row), activations at each call in the layout the chosen kernel reads, and the int8 dequantization
//! that every int8 kernel shares (so that all of them give the same floats).

use rayon::prelude::*;

use super::{Precision, Tile, MR, NR};

/// Packed weights, `NR` output columns per panel, columns beyond `n` zero.
#[derive(Debug, Clone)]
pub enum WeightPanels {
    /// `[panel][k][NR]`.
    F32(Vec<f32>),
    /// `[panel][k / 2][NR][2]`: the two k values of a column side by side, as `vdpbf16ps` reads them.
    Bf16 { data: Vec<u16> },
    /// `[panel][k / 4][NR][4]` int8 (four k values of a column side by side, as `vpdpbusd` reads them), with
    /// `w ≈ q · scales[row]` and `sums[row] = Σ q` (for kernels that offset the activations to unsigned).
    Int8 { data: Vec<i8>, scales: Vec<f32>, sums: Vec<i32> },
}

impl WeightPanels {
    pub fn pack(w: &[f32], n: usize, k: usize, precision: Precision) -> Self {
        match precision {
            Precision::F32 => WeightPanels::F32(panels(w, n, k, 1, |v| v)),
            Precision::Bf16 => WeightPanels::Bf16 { data: panels(w, n, k, 2, f32_to_bf16) },
            Precision::Int8 => {
                let scales: Vec<f32> = w.par_chunks(k.max(1)).take(n).map(|row| max_abs(row) / 127.0).collect();
                let q: Vec<i8> = w
                    .par_chunks(k.max(1))
                    .take(n)
                    .zip(&scales)
                    .flat_map_iter(|(row, &s)| {
                        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                        row.iter().map(move |&x| quantize(x, inv))
                    })
                    .collect();
                let sums = q.chunks(k.max(1)).take(n).map(|row| row.iter().map(|&v| i32::from(v)).sum()).collect();
                let data = panels(&q, n, k, 4, |v| v);
                WeightPanels::Int8 { data, scales, sums }
            }
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
            WeightPanels::Int8 { data, scales, sums } => data.len() + scales.len() * 4 + sums.len() * 4,
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
) -> Vec<U> {
    let kg = k.div_ceil(group);
    let panel_len = kg * NR * group;
    let mut data = vec![U::default(); n.div_ceil(NR) * panel_len];
    data.par_chunks_mut(panel_len.max(1)).enumerate().for_each(|(p, panel)| {
        for j in 0..NR.min(n - p * NR) {
            let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
            for (kk, &v) in row.iter().enumerate() {
                panel[((kk / group) * NR + j) * group + kk % group] = convert(v);
            }
        }
    });
    data
}

/// The activation layout a kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActLayout {
    F32,
    Bf16Pairs,
    Bf16AsF32,
    Int8,
}

/// Activations packed in `MR`-row panels, rows beyond `m` zero.
pub enum ActPanels {
    /// `[panel][k][MR]`.
    F32 { data: Vec<f32>, k: usize },
    /// `[panel][k / 2][MR]` pairs of bf16, the even k in the low half.
    Bf16Pairs { data: Vec<u32>, k2: usize },
    /// `[panel][k / 2][MR][2]` f32 values rounded to bf16 (for kernels that widen bf16 weights to f32).
    Bf16AsF32 { data: Vec<f32>, k2: usize },
    /// `[panel][k / 4][MR]` quads of int8 (`x ≈ q · scales[row]`), the first k in the low byte.
    Int8 { data: Vec<u32>, scales: Vec<f32>, k4: usize },
}

impl ActPanels {
    pub fn pack(a: &[f32], m: usize, k: usize, layout: ActLayout) -> Self {
        match layout {
            ActLayout::F32 => ActPanels::F32 { data: act_panels(a, m, k, 1, |row, out| out.copy_from_slice(row)), k },
            ActLayout::Bf16AsF32 => {
                let data = act_panels(a, m, k, 2, |row, out| {
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o = bf16_to_f32(f32_to_bf16(x));
                    }
                });
                ActPanels::Bf16AsF32 { data, k2: k.div_ceil(2) }
            }
            ActLayout::Bf16Pairs => {
                let data = act_panels(a, m, k, 2, |row, out| {
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o = f32_to_bf16(x);
                    }
                });
                ActPanels::Bf16Pairs { data: join(&data, 2), k2: k.div_ceil(2) }
            }
            ActLayout::Int8 => {
                let scales: Vec<f32> = a.chunks(k.max(1)).take(m).map(|row| max_abs(row) / 127.0).collect();
                let data = act_panels(a, m, k, 4, |row, out: &mut [i8]| {
                    let s = max_abs(row) / 127.0;
                    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o = quantize(x, inv);
                    }
                });
                ActPanels::Int8 { data: join(&data, 4), scales, k4: k.div_ceil(4) }
            }
        }
    }

    /// Bytes of one row panel.
    pub fn panel_bytes(&self) -> usize {
        match self {
            ActPanels::F32 { k, .. } => k * MR * 4,
            ActPanels::Bf16Pairs { k2, .. } => k2 * MR * 4,
            ActPanels::Bf16AsF32 { k2, .. } => k2 * 2 * MR * 4,
            ActPanels::Int8 { k4, .. } => k4 * MR * 4,
        }
    }
}

/// `[panel][k / group][MR][group]` of each row converted by `convert(row, out)` (out as long as the row), k
/// padded to a multiple of `group` and rows to `MR` with zeros.
fn act_panels<T: Copy + Default + Send>(
    a: &[f32],
    m: usize,
    k: usize,
    group: usize,
    convert: impl Fn(&[f32], &mut [T]) + Sync,
) -> Vec<T> {
    let kg = k.div_ceil(group);
    let panel_len = kg * MR * group;
    let m_panels = m.div_ceil(MR);
    let mut data = vec![T::default(); m_panels * panel_len];
    let pack = |(q, panel): (usize, &mut [T])| {
        let mut row_out = vec![T::default(); k];
        for i in 0..MR.min(m - q * MR) {
            convert(&a[(q * MR + i) * k..(q * MR + i + 1) * k], &mut row_out);
            for (kk, &v) in row_out.iter().enumerate() {
                panel[((kk / group) * MR + i) * group + kk % group] = v;
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

/// Groups of `group` (2 or 4) small values joined into one `u32`, the first in the low bits.
fn join<T: Copy + Into<Bits32>>(values: &[T], group: usize) -> Vec<u32> {
    let width = 32 / group as u32;
    values
        .chunks(group)
        .map(|g| g.iter().enumerate().fold(0u32, |acc, (i, &v)| acc | (v.into().0 << (width * i as u32))))
        .collect()
}

/// The bits of a 16- or 8-bit value, zero-extended.
pub struct Bits32(u32);

impl From<u16> for Bits32 {
    fn from(v: u16) -> Self {
        Bits32(u32::from(v))
    }
}

impl From<i8> for Bits32 {
    fn from(v: i8) -> Self {
        Bits32(u32::from(v as u8))
    }
}

/// The largest magnitude in `row` (0 for an empty row; NaN ignored).
fn max_abs(row: &[f32]) -> f32 {
    row.iter().fold(0f32, |m, &x| if x.abs() > m { x.abs() } else { m })
}

/// `x · inv` rounded to the nearest integer (ties to even) in [-127, 127]; NaN gives 0. Written with the
/// 1.5·2²³ rounding trick so that it vectorises on every target and rounds the same everywhere.
#[inline(always)]
fn quantize(x: f32, inv: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    let y = (x * inv).clamp(-127.0, 127.0);
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
    let mut out = [[0f32; NR]; MR];
    for (i, (row, o)) in acc.iter().zip(out.iter_mut()).enumerate().take(tile.rows) {
        for j in 0..tile.cols {
            let v = if offset { row[j] - 128 * scale.sums[j] } else { row[j] };
            o[j] = v as f32 * (scale.rows[i] * scale.cols[j]);
        }
    }
    // SAFETY: the caller's contract.
    unsafe { tile.store(&out) }
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
