//! `out = a · wᵀ (+ bias)` for static weights packed once at load: f32; bf16 (f32 accumulation); or int8 with
//! per-row scales (weights per output row at load, activations per input row at each call, exact i32 sums).
//! Micro-kernels for AVX-512 (with BF16 / VNNI), AVX2 + FMA (with AVX-VNNI) and plain Rust, chosen by
//! [`super::isa`]. int8 weights take 7 bits where plain AVX2 multiplies them ([`int8_weight_bits`]).
//!
//! Weights `w` are `[n, k]` (out × in, as `nn.Linear` stores them). They are packed into panels of `NR` output
//! columns, k-major, so that a micro-kernel streams one panel and keeps a block of outputs in registers.
//! Activations are packed per call into `MR`-row panels. Work is split over output panels, so each thread
//! reads its own share of the weights once.

mod avx2;
mod avx512;
mod pack;
mod portable;

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use super::isa::Isa;
use super::SendPtr;
use pack::{ActPanels, WeightPanels};

/// Output columns per packed panel.
pub const NR: usize = 32;
/// Rows per activation panel.
pub const MR: usize = 12;

/// How the packed weights are stored and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F32,
    /// bfloat16 weights and activations in the product, f32 accumulation.
    Bf16,
    /// int8 weights (a scale per output row) and int8 activations (a scale per input row), i32 accumulation:
    /// the same sums, bit for bit, on every kernel family.
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

/// Bits of the int8 weights packed for `isa`: 7 (values in [-63, 63]) where the int8 product is plain AVX2's,
/// 8 ([-127, 127]) elsewhere. Without VNNI, AVX2 multiplies 8-bit values with `vpmaddubsw`, whose i16 pair
/// sums overflow for an unsigned activation (up to 255) times a full-range weight, so full-range weights need a
/// `vpsignb` per product (four instructions per 32 multiply-adds). With 7-bit weights the activations go in
/// offset to unsigned, as for `vpdpbusd`, and three instructions do (1.3× the rate on the same CPU;
/// docs/BENCHMARKS.md), at the cost of half the weights' resolution, as oneDNN trades it on such CPUs.
pub fn int8_weight_bits(isa: Isa) -> u32 {
    let isa = if isa.supported() { isa } else { Isa::Portable };
    if Kernel::choose(Precision::Int8, isa, 8) == Kernel::Int8Avx2 {
        7
    } else {
        8
    }
}

/// The int8 weight width set for this process: 0 for `BRIEF_INT8_WEIGHT_BITS`, else the family's default;
/// or 7 or 8.
static INT8_BITS: AtomicU32 = AtomicU32::new(0);

/// Sets the width of the int8 weights packed from now on (`--int8-weight-bits`): 7 or 8; `None` leaves it to
/// `BRIEF_INT8_WEIGHT_BITS`, else to [`int8_weight_bits`] of the active family.
pub fn set_int8_weight_bits(bits: Option<u32>) -> Result<(), String> {
    match bits {
        None | Some(7 | 8) => {
            INT8_BITS.store(bits.unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }
        Some(b) => Err(format!("int8 weights take 7 or 8 bits, not {b}")),
    }
}

/// The width the next int8 weights are packed with: the one set, else `BRIEF_INT8_WEIGHT_BITS` (a bad value is
/// logged and ignored), else [`int8_weight_bits`] of the active family.
pub fn int8_weight_bits_in_use() -> u32 {
    match INT8_BITS.load(Ordering::Relaxed) {
        0 => match std::env::var("BRIEF_INT8_WEIGHT_BITS").ok().filter(|v| !v.trim().is_empty()) {
            None => int8_weight_bits(super::isa::active()),
            Some(v) => match v.trim().parse() {
                Ok(b @ (7 | 8)) => b,
                _ => {
                    tracing::warn!(value = %v, "BRIEF_INT8_WEIGHT_BITS ignored: it takes 7 or 8");
                    int8_weight_bits(super::isa::active())
                }
            },
        },
        b => b,
    }
}

/// A weight matrix packed for [`PackedMatrix::matmul`].
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    panels: WeightPanels,
}

/// An `MR × NR` output tile: where it goes and what is added to it.
pub(crate) struct Tile<'a> {
    /// The tile's first value in the output.
    pub c: *mut f32,
    /// Row stride of the output.
    pub ldc: usize,
    /// Valid rows (≤ `MR`) and columns (≤ `NR`).
    pub rows: usize,
    pub cols: usize,
    /// Bias of the tile's columns, zero-padded to `NR`.
    pub bias: &'a [f32; NR],
}

impl Tile<'_> {
    /// Writes `acc` (row-major `MR × NR`, f32) plus the bias into the valid part of the tile.
    ///
    /// # Safety
    /// `c` must address `rows` rows of `cols` values at stride `ldc` that only the caller writes.
    #[inline(always)]
    pub unsafe fn store(&self, acc: &[[f32; NR]; MR]) {
        for (i, row) in acc.iter().enumerate().take(self.rows) {
            // Whole rows of NR (a loop the compiler vectorises), then the valid columns copied out.
            let mut values = [0f32; NR];
            for ((v, &a), &b) in values.iter_mut().zip(row).zip(self.bias) {
                *v = a + b;
            }
            // SAFETY: row `i < rows` of the tile (the caller's contract).
            unsafe { self.write_row(i, &values) };
        }
    }

    /// Writes the first `cols` of `values` to row `i`.
    ///
    /// # Safety
    /// As [`Tile::store`], with `i < rows`.
    #[inline(always)]
    pub unsafe fn write_row(&self, i: usize, values: &[f32; NR]) {
        // Through the raw pointer: the output may not be initialised yet (see `PackedMatrix::matmul_new`).
        // SAFETY: row `i` holds `cols ≤ NR` values that only the caller writes (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.c.add(i * self.ldc), self.cols) };
    }
}

impl PackedMatrix {
    /// Packs `w` (`[n, k]`, row-major) for the active kernel family, int8 weights with
    /// [`int8_weight_bits_in_use`] bits.
    pub fn pack(w: &[f32], n: usize, k: usize, precision: Precision) -> Self {
        Self::pack_bits(w, n, k, precision, int8_weight_bits_in_use())
    }

    /// Packs `w` for the kernels of `isa`: int8 weights take [`int8_weight_bits`]`(isa)` bits. Any family can
    /// multiply the result; one that `isa` names is the fastest for it.
    pub fn pack_for(isa: Isa, w: &[f32], n: usize, k: usize, precision: Precision) -> Self {
        Self::pack_bits(w, n, k, precision, int8_weight_bits(isa))
    }

    /// Packs `w` with int8 weights of `int8_bits` (7 or 8) bits.
    pub(crate) fn pack_bits(w: &[f32], n: usize, k: usize, precision: Precision, int8_bits: u32) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        Self { n, k, panels: WeightPanels::pack(w, n, k, precision, int8_bits) }
    }

    /// Bits of the int8 weights (8 for f32 and bf16).
    pub fn int8_bits(&self) -> u32 {
        self.panels.int8_bits()
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn precision(&self) -> Precision {
        self.panels.precision()
    }

    /// Bytes the packed weights take.
    pub fn bytes(&self) -> usize {
        self.panels.bytes()
    }

    /// `out[m, n] = a[m, k] · wᵀ + bias`, on the active kernel family.
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
        self.matmul_on(super::isa::active(), a, m, bias, epilogue, out)
    }

    /// [`matmul_then`](Self::matmul_then) into a new vector, which is not zeroed first: the product writes every
    /// value. (Zeroing the 128 × 54,796 logits of a decoder step was 3.5% of an f32 translation.)
    pub fn matmul_new(&self, a: &[f32], m: usize, bias: Option<&[f32]>, epilogue: Option<fn(&mut [f32])>) -> Vec<f32> {
        let len = m * self.n;
        let mut out = Vec::with_capacity(len);
        self.product(super::isa::active(), a, m, bias, epilogue, &mut out.spare_capacity_mut()[..len]);
        // SAFETY: `product` wrote all `len` values (every tile of the m × n output, see `Plan`).
        unsafe { out.set_len(len) };
        out
    }

    /// [`matmul_then`](Self::matmul_then) on the kernels of `isa` (the portable ones if this CPU cannot run it).
    pub fn matmul_on(
        &self,
        isa: Isa,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        epilogue: Option<fn(&mut [f32])>,
        out: &mut [f32],
    ) {
        // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and `product` only writes initialised values.
        let out = unsafe { &mut *(out as *mut [f32] as *mut [std::mem::MaybeUninit<f32>]) };
        self.product(isa, a, m, bias, epilogue, out)
    }

    /// Writes every value of `out` (`m × n`) with the product, whatever it held.
    fn product(
        &self,
        isa: Isa,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        epilogue: Option<fn(&mut [f32])>,
        out: &mut [std::mem::MaybeUninit<f32>],
    ) {
        assert_eq!(out.len(), m * self.n, "output size");
        let Some((call, plan)) = self.prepare(isa, a, m, bias, epilogue) else { return };
        let out = SendPtr(out.as_mut_ptr().cast());
        (0..plan.tasks()).into_par_iter().for_each(|t| {
            let (panels, row_panels) = plan.tile(t);
            let dest = Dest { base: out.get(), ldc: self.n, row0: 0, col0: 0 };
            self.sweep(&call, panels, row_panels.clone(), |p, acc| {
                // SAFETY: tasks own disjoint (row block, panel range) pairs, so this task alone writes these
                // tiles of the `m × n` output (its size checked above).
                unsafe { self.write_panel(&call, p, row_panels.clone(), acc, &dest) }
            });
        });
    }

    /// The product without its `m × n` output: each row's values are handed to `fold` in chunks of at most
    /// [`FOLD_COLUMNS`] consecutive columns, while they are still in cache, as `fold(state, row, first column,
    /// values)`. Each parallel task folds its own share of the columns into fresh states (`init()`, one per
    /// row of its row block). Returns every task's `(first row, states)`; for each row, the tasks come in the
    /// order of their columns, and each task saw its columns in order.
    ///
    /// For a product whose output is only reduced row by row (the logits of a decoder step, 128 × 54,796 f32
    /// values), this saves writing it to memory and reading it back.
    pub fn matmul_fold<S: Send>(
        &self,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        init: impl Fn() -> S + Sync,
        fold: impl Fn(&mut S, usize, usize, &[f32]) + Sync,
    ) -> Folded<S> {
        self.matmul_fold_on(super::isa::active(), a, m, bias, init, fold)
    }

    /// [`matmul_fold`](Self::matmul_fold) on the kernels of `isa` (the portable ones if this CPU cannot run it).
    pub fn matmul_fold_on<S: Send>(
        &self,
        isa: Isa,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        init: impl Fn() -> S + Sync,
        fold: impl Fn(&mut S, usize, usize, &[f32]) + Sync,
    ) -> Folded<S> {
        let Some((call, plan)) = self.prepare(isa, a, m, bias, None) else { return Vec::new() };
        (0..plan.tasks())
            .into_par_iter()
            .map(|t| {
                let (panels, row_panels) = plan.tile(t);
                let row0 = row_panels.start * MR;
                let rows = m.min(row_panels.end * MR) - row0;
                let mut states: Vec<S> = (0..rows).map(|_| init()).collect();
                let mut chunk = vec![0f32; rows * FOLD_COLUMNS];
                let mut chunk_start = panels.start;
                let flush = |from: usize, to: usize, chunk: &[f32], states: &mut [S]| {
                    let (col0, width) = (from * NR, (to * NR).min(self.n) - from * NR);
                    for (r, state) in states.iter_mut().enumerate() {
                        fold(state, row0 + r, col0, &chunk[r * FOLD_COLUMNS..r * FOLD_COLUMNS + width]);
                    }
                };
                self.sweep(&call, panels.clone(), row_panels.clone(), |p, acc| {
                    let dest = Dest { base: chunk.as_mut_ptr(), ldc: FOLD_COLUMNS, row0, col0: chunk_start * NR };
                    // SAFETY: the tiles of panel `p` lie inside this task's chunk (rows row0.., columns
                    // chunk_start*NR.. of width FOLD_COLUMNS), which only this task holds.
                    unsafe { self.write_panel(&call, p, row_panels.clone(), acc, &dest) };
                    if p + 1 == chunk_start + FOLD_COLUMNS / NR || p + 1 == panels.end {
                        flush(chunk_start, p + 1, &chunk, &mut states);
                        chunk_start = p + 1;
                    }
                });
                (row0, states)
            })
            .collect()
    }

    /// Checks the sizes, packs the activations and plans the tasks; `None` for an empty product.
    fn prepare<'a>(
        &self,
        isa: Isa,
        a: &[f32],
        m: usize,
        bias: Option<&'a [f32]>,
        epilogue: Option<fn(&mut [f32])>,
    ) -> Option<(Call<'a>, Plan)> {
        let (n, k) = (self.n, self.k);
        assert_eq!(a.len(), m * k, "activation size");
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias size");
        }
        if m == 0 || n == 0 {
            return None;
        }
        let isa = if isa.supported() { isa } else { Isa::Portable };
        let kernel = Kernel::choose(self.precision(), isa, self.int8_bits());
        let acts = ActPanels::pack(a, m, k, kernel.activations());
        // Weights that fit in the caches stay there between calls; larger ones stream from memory.
        let stream = self.bytes() > PREFETCH_ABOVE;
        let plan = Plan::new(m, n, acts.panel_bytes(), stream);
        Some((Call { kernel, acts, m, n, bias, epilogue, stream }, plan))
    }

    /// One task's work: the sums of each of its column panels over its row panels, handed to `done` panel by
    /// panel.
    fn sweep(
        &self,
        call: &Call,
        panels: std::ops::Range<usize>,
        row_panels: std::ops::Range<usize>,
        mut done: impl FnMut(usize, &Accumulators),
    ) {
        let mut acc = Accumulators::new(call.kernel, row_panels.len());
        for p in panels.clone() {
            let next_panel = (p + 1 < panels.end).then_some(p + 1);
            self.accumulate_panel(call, p, next_panel, row_panels.clone(), &mut acc);
            done(p, &acc);
        }
    }

    /// Sums the products of column panel `p` for each row panel in `row_panels` into `acc`, over k in blocks
    /// whose weight panel stays in L1 while every row panel reads it (the sums go on in the same order: f32
    /// partial sums are kept exactly between blocks). The next weight block (this panel's, or `next_panel`'s
    /// first) is fetched into L2 a share at a time meanwhile, so that no row panel waits on memory for it.
    fn accumulate_panel(
        &self,
        call: &Call,
        p: usize,
        next_panel: Option<usize>,
        row_panels: std::ops::Range<usize>,
        acc: &mut Accumulators,
    ) {
        let steps = call.acts.steps();
        let cols = NR.min(call.n - p * NR);
        let parts = row_panels.len();
        acc.clear();
        for k0 in (0..steps).step_by(K_BLOCK) {
            let ks = k0..steps.min(k0 + K_BLOCK);
            let next = if ks.end < steps { Some((p, ks.end)) } else { next_panel.map(|np| (np, 0)) };
            let next = next.filter(|_| call.stream);
            for (i, q) in row_panels.clone().enumerate() {
                let rows = MR.min(call.m - q * MR);
                call.kernel.accumulate(&call.acts, q, &self.panels, p, ks.clone(), acc, i, (rows, cols));
                if let Some((np, nk)) = next {
                    self.panels.prefetch(np, nk..steps.min(nk + K_BLOCK), steps, (i, parts));
                }
            }
        }
    }

    /// Writes the sums in `acc` to column panel `p` at `dest`: bias added, int8 dequantised, the epilogue
    /// applied.
    ///
    /// # Safety
    /// `dest` must hold the tiles of panel `p` and `row_panels` (rows `q * MR..`, columns `p * NR..` of the
    /// product, at most `MR × NR` each, clipped to `m × n`), and no other thread may write them meanwhile.
    unsafe fn write_panel(
        &self,
        call: &Call,
        p: usize,
        row_panels: std::ops::Range<usize>,
        acc: &Accumulators,
        dest: &Dest,
    ) {
        let (m, n) = (call.m, call.n);
        let cols = NR.min(n - p * NR);
        let mut tile_bias = [0f32; NR];
        if let Some(b) = call.bias {
            tile_bias[..cols].copy_from_slice(&b[p * NR..p * NR + cols]);
        }
        for (i, q) in row_panels.enumerate() {
            let rows = MR.min(m - q * MR);
            // SAFETY: the tile (rows q*MR.., columns p*NR..) lies inside `dest`, which only this caller writes
            // (the caller's contract).
            let c = unsafe { dest.base.add((q * MR - dest.row0) * dest.ldc + p * NR - dest.col0) };
            let tile = Tile { c, ldc: dest.ldc, rows, cols, bias: &tile_bias };
            // SAFETY: as above.
            unsafe {
                acc.finish(i, (&call.acts, q), (&self.panels, p), call.kernel, &tile);
                apply(call.epilogue, &tile);
            }
        }
    }
}

/// Where finished tiles go: `base` holds the product's row `row0`, column `col0`, at row stride `ldc`.
struct Dest {
    base: *mut f32,
    ldc: usize,
    row0: usize,
    col0: usize,
}

/// What [`PackedMatrix::matmul_fold`] returns: each task's first row and its states, one per row.
pub type Folded<S> = Vec<(usize, Vec<S>)>;

/// Columns per chunk of [`PackedMatrix::matmul_fold`]: 8 panels, so that a task's chunk (its row block × 256
/// columns: 128 KiB at 128 rows) stays in L2 between the product and the fold.
pub const FOLD_COLUMNS: usize = 8 * NR;

/// What every task of one product shares.
struct Call<'a> {
    kernel: Kernel,
    acts: ActPanels,
    m: usize,
    n: usize,
    bias: Option<&'a [f32]>,
    epilogue: Option<fn(&mut [f32])>,
    /// Whether to prefetch the weights (see [`PREFETCH_ABOVE`]).
    stream: bool,
}

/// Weights above this size are prefetched block by block (smaller ones measured slower with it).
const PREFETCH_ABOVE: usize = 2 << 20;

/// k steps (k, k pairs or k quads) per block: 128 steps of a 32-column weight panel take 16 KiB in every
/// precision, a third of a core's L1.
const K_BLOCK: usize = 128;

/// The running sums of a task's tiles, one `MR × NR` block per row panel.
enum Accumulators {
    F32(Vec<[[f32; NR]; MR]>),
    I32(Vec<[[i32; NR]; MR]>),
}

impl Accumulators {
    fn new(kernel: Kernel, tiles: usize) -> Self {
        match kernel.activations() {
            pack::ActLayout::Int8 | pack::ActLayout::Int8Unsigned | pack::ActLayout::Int8WithAbs => {
                Accumulators::I32(vec![[[0; NR]; MR]; tiles])
            }
            _ => Accumulators::F32(vec![[[0.0; NR]; MR]; tiles]),
        }
    }

    fn clear(&mut self) {
        match self {
            Accumulators::F32(v) => v.iter_mut().for_each(|t| *t = [[0.0; NR]; MR]),
            Accumulators::I32(v) => v.iter_mut().for_each(|t| *t = [[0; NR]; MR]),
        }
    }

    /// Writes tile `i`'s sums to the output: bias added, int8 dequantised.
    ///
    /// # Safety
    /// As [`Tile::store`].
    unsafe fn finish(
        &self,
        i: usize,
        (acts, q): (&ActPanels, usize),
        (weights, p): (&WeightPanels, usize),
        kernel: Kernel,
        tile: &Tile,
    ) {
        let offset = kernel.offsets();
        match (self, acts, weights) {
            // SAFETY: the caller's contract, and each kernel runs only where the CPU has its features.
            (Accumulators::F32(v), _, _) => unsafe {
                match kernel {
                    Kernel::F32Avx512 | Kernel::Bf16Avx512 => avx512::store(&v[i], tile),
                    Kernel::F32Avx2 | Kernel::Bf16Avx2 => avx2::store(&v[i], tile),
                    _ => tile.store(&v[i]),
                }
            },
            (Accumulators::I32(v), ActPanels::Int8 { scales, .. }, WeightPanels::Int8 { scales: ws, sums, .. }) => {
                let cols = p * NR..(p * NR + tile.cols);
                let rows = q * MR..(q * MR + tile.rows);
                let scale = pack::Int8Scales { rows: &scales[rows], cols: &ws[cols.clone()], sums: &sums[cols] };
                // SAFETY: the caller's contract.
                unsafe {
                    match kernel {
                        Kernel::Int8Vnni512 => avx512::dequantize(&v[i], offset, &scale, tile),
                        Kernel::Int8Vnni256 | Kernel::Int8Avx2 | Kernel::Int8Avx2Narrow => {
                            avx2::dequantize(&v[i], offset, &scale, tile)
                        }
                        _ => pack::dequantize(&v[i], offset, &scale, tile),
                    }
                }
            }
            _ => unreachable!("int8 sums come with int8 panels"),
        }
    }
}

/// Runs `epilogue` over the valid part of `tile`.
///
/// # Safety
/// As [`Tile::store`].
#[inline]
unsafe fn apply(epilogue: Option<fn(&mut [f32])>, tile: &Tile) {
    if let Some(f) = epilogue {
        for i in 0..tile.rows {
            // SAFETY: row `i` of the tile (the caller's contract).
            f(unsafe { std::slice::from_raw_parts_mut(tile.c.add(i * tile.ldc), tile.cols) });
        }
    }
}

/// How the output is split into parallel tasks: rows in blocks whose packed activations stay near the core while
/// it sweeps the weights (each block reads all of them once); within a block, the output panels in a few tasks
/// per thread.
struct Plan {
    m_panels: usize,
    n_panels: usize,
    per_task: usize,
    n_tasks: usize,
    m_blocks: usize,
}

/// Bytes of packed activations per row block for weights that stay in the caches: a share of a core's L2, next
/// to a weight panel.
const A_BLOCK_BYTES: usize = 384 << 10;

/// The same for weights streamed from memory, where every extra row block reads them from memory again. Their
/// activations may then fall out of L2 into L3, which feeds them fast enough: at 128 rows, one block for k up
/// to 2048 in f32 (T5's feed-forward output, 1 MiB) measured 17–20% faster for flan-t5-base than blocks of
/// 384 KiB (two or three reads of every decoder weight a step), and no different for opus-mt (docs/BENCHMARKS.md).
const A_STREAM_BLOCK_BYTES: usize = 1280 << 10;

impl Plan {
    fn new(m: usize, n: usize, a_panel_bytes: usize, stream: bool) -> Self {
        let m_panels = m.div_ceil(MR);
        let n_panels = n.div_ceil(NR);
        let budget = if stream { A_STREAM_BLOCK_BYTES } else { A_BLOCK_BYTES };
        let m_blocks = m_panels.div_ceil((budget / a_panel_bytes.max(1)).clamp(1, m_panels));
        let tasks = (rayon::current_num_threads() * 4).div_ceil(m_blocks).clamp(1, n_panels);
        let per_task = n_panels.div_ceil(tasks);
        let n_tasks = n_panels.div_ceil(per_task);
        Self { m_panels, n_panels, per_task, n_tasks, m_blocks }
    }

    fn tasks(&self) -> usize {
        self.m_blocks * self.n_tasks
    }

    /// Task `t`'s output panels and row panels. The row blocks differ in size by at most one panel (11 panels
    /// in blocks of at most 10 are 5 + 6, not 10 + 1).
    fn tile(&self, t: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (block, task) = (t / self.n_tasks, t % self.n_tasks);
        let panels = task * self.per_task..((task + 1) * self.per_task).min(self.n_panels);
        let rows = block * self.m_panels / self.m_blocks..(block + 1) * self.m_panels / self.m_blocks;
        (panels, rows)
    }
}

/// A micro-kernel for one precision on one family; each is only chosen where the CPU has its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    F32Portable,
    F32Avx2,
    F32Avx512,
    Bf16Portable,
    /// bf16 widened to f32 in registers, FMA products.
    Bf16Avx2,
    Bf16Avx512,
    Int8Portable,
    /// `vpsignb` + `vpmaddubsw` + `vpmaddwd`, exact for values in [-127, 127].
    Int8Avx2,
    /// `vpmaddubsw` + `vpmaddwd` on unsigned activations, exact for weights in [-63, 63].
    Int8Avx2Narrow,
    Int8Vnni256,
    Int8Vnni512,
}

impl Kernel {
    /// The kernel for `precision` on `isa`, for int8 weights of `int8_bits` bits.
    fn choose(precision: Precision, isa: Isa, int8_bits: u32) -> Kernel {
        use Kernel::*;
        match (precision, isa) {
            (Precision::F32, Isa::Portable) => F32Portable,
            (Precision::F32, Isa::Avx2 | Isa::Avx2Vnni) => F32Avx2,
            (Precision::F32, Isa::Avx512) => F32Avx512,
            (Precision::Bf16, Isa::Portable) => Bf16Portable,
            (Precision::Bf16, Isa::Avx512) if isa.bf16_native() => Bf16Avx512,
            (Precision::Bf16, _) => Bf16Avx2,
            (Precision::Int8, Isa::Portable) => Int8Portable,
            (Precision::Int8, _) if isa.vnni512() => Int8Vnni512,
            (Precision::Int8, _) if isa.vnni256() => Int8Vnni256,
            (Precision::Int8, _) if int8_bits <= 7 => Int8Avx2Narrow,
            (Precision::Int8, _) => Int8Avx2,
        }
    }

    /// How this kernel wants the activations packed.
    fn activations(self) -> pack::ActLayout {
        use Kernel::*;
        match self {
            F32Portable | F32Avx2 | F32Avx512 => pack::ActLayout::F32,
            Bf16Portable | Bf16Avx512 => pack::ActLayout::Bf16Pairs,
            Bf16Avx2 => pack::ActLayout::Bf16AsF32,
            Int8Portable => pack::ActLayout::Int8,
            Int8Avx2 => pack::ActLayout::Int8WithAbs,
            Int8Vnni256 | Int8Vnni512 | Int8Avx2Narrow => pack::ActLayout::Int8Unsigned,
        }
    }

    /// Whether the kernel multiplies activations offset to unsigned (`q + 128`, for `vpdpbusd`).
    fn offsets(self) -> bool {
        self.activations() == pack::ActLayout::Int8Unsigned
    }

    /// Adds the products of k steps `ks` of row panel `q` and column panel `p` to tile `i` of `acc`.
    #[allow(clippy::too_many_arguments)] // the two panels, the k range and the tile, as the driver holds them
    fn accumulate(
        self,
        acts: &ActPanels,
        q: usize,
        weights: &WeightPanels,
        p: usize,
        ks: std::ops::Range<usize>,
        acc: &mut Accumulators,
        i: usize,
        (rows, cols): (usize, usize),
    ) {
        use Kernel::*;
        let steps = ks.len();
        // Step `s` of row panel `q` / column panel `p`, `wa`/`wb` values a step.
        let a_at = |per: usize, wa: usize| (q * per + ks.start) * wa..(q * per + ks.end) * wa;
        let b_at = |per: usize, wb: usize| (p * per + ks.start) * wb..(p * per + ks.end) * wb;
        match (acts, weights, acc) {
            (ActPanels::F32 { data, k }, WeightPanels::F32(w), Accumulators::F32(acc)) => {
                let (a, b, acc) = (&data[a_at(*k, MR)], &w[b_at(*k, NR)], &mut acc[i]);
                match self {
                    // SAFETY: each kernel is chosen only where the CPU has its features.
                    F32Avx512 => unsafe { avx512::f32(steps, a, b, acc, rows) },
                    F32Avx2 => unsafe { avx2::f32(steps, a, b, acc, rows, cols) },
                    _ => portable::f32(steps, a, b, acc),
                }
            }
            (ActPanels::Bf16Pairs { data, k2 }, WeightPanels::Bf16 { data: w }, Accumulators::F32(acc)) => {
                let (a, b, acc) = (&data[a_at(*k2, MR)], &w[b_at(*k2, NR * 2)], &mut acc[i]);
                match self {
                    // SAFETY: as above.
                    Bf16Avx512 => unsafe { avx512::bf16(steps, a, b, acc, rows) },
                    _ => portable::bf16(steps, a, b, acc),
                }
            }
            (ActPanels::Bf16AsF32 { data, k2 }, WeightPanels::Bf16 { data: w }, Accumulators::F32(acc)) => {
                let (a, b, acc) = (data[a_at(*k2, MR)].as_flattened(), &w[b_at(*k2, NR * 2)], &mut acc[i]);
                // SAFETY: as above (chosen only on AVX2 + FMA CPUs).
                unsafe { avx2::bf16(steps, a, b, acc, rows, cols) }
            }
            (ActPanels::Int8 { data, k4, width, .. }, WeightPanels::Int8 { data: w, .. }, Accumulators::I32(acc)) => {
                let (a, b, acc) = (&data[a_at(*k4, MR * width)], &w[b_at(*k4, NR * 4)], &mut acc[i]);
                match self {
                    // SAFETY: as above.
                    Int8Vnni512 => unsafe { avx512::int8_vnni(steps, a, b, acc, rows) },
                    Int8Vnni256 => unsafe { avx2::int8_vnni(steps, a, b, acc, rows, cols) },
                    Int8Avx2 => unsafe { avx2::int8(steps, a, b, acc, rows, cols) },
                    // SAFETY: as above; the weights are within [-63, 63] (`choose`: packed with 7 bits).
                    Int8Avx2Narrow => unsafe { avx2::int8_7bit(steps, a, b, acc, rows, cols) },
                    _ => portable::int8(steps, a, b, acc),
                }
            }
            _ => unreachable!("activations are packed for the kernel that runs"),
        }
    }
}

#[cfg(test)]
mod tests;
