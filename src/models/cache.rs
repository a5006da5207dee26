//! The decoder's state during search: per-layer self-attention caches that grow by doubling, and cross-attention
//! keys/values computed once per batch.

use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use super::kernels::attention::RowMap;
use super::layers;
use super::ModelError;

/// Keys and values of one decoder layer.
pub struct LayerCache {
    /// `[rows, heads, capacity, head_dim]`; positions `0..len` are filled.
    pub self_k: Tensor,
    pub self_v: Tensor,
    /// `[items, heads, source_len, head_dim]`, shared by the `group` rows of an item.
    pub cross_k: Tensor,
    pub cross_v: Tensor,
}

/// The axis of positions in the self-attention caches.
const POSITIONS: usize = 2;

/// Everything the decoder carries from one step to the next.
///
/// Rows are hypotheses; `group` consecutive rows belong to one source item (the beams of a sentence). Cross
/// attention is computed per item, so beams never copy the encoder's keys and values.
///
/// On the CPU in f32, the self-attention caches are never moved once written: reordering the beams and dropping
/// finished items only update a map of where each row's past lies ([`Stored`]), which attention reads through.
/// Copying the filled positions of the reordered rows, and all of every cache when an item finished, was 4–6%
/// of an f32 opus-mt translation at beam 4 (docs/BENCHMARKS.md). Elsewhere the caches are reordered.
pub struct DecoderState {
    pub layers: Vec<LayerCache>,
    /// Additive padding mask for cross attention, `[items, 1, 1, source_len]`.
    pub cross_mask: Tensor,
    pub group: usize,
    /// Target positions already in the self-attention caches.
    pub len: usize,
    capacity: usize,
    /// Positions the caches never need to grow beyond (the search's maximum length).
    limit: usize,
    /// Where each row's keys and values are stored, once rows have been reordered or dropped without moving
    /// them; `None` while row `r` of the caches is row `r`'s.
    stored: Option<Stored>,
    /// The beams per item while [`share_group`](DecoderState::share_group) runs one row per item; 0 otherwise.
    shared: usize,
}

/// Where the rows of a [`DecoderState`] keep their keys and values in caches whose rows never move.
struct Stored {
    /// `[rows, capacity]`: the cache row holding row `r`'s values at position `t`. From position `len` on it is
    /// `own[r]`.
    at: Vec<u32>,
    /// The cache row each row writes its new positions to; no two rows share one.
    own: Vec<u32>,
}

impl Stored {
    /// Every row in its own cache row.
    fn identity(rows: usize, capacity: usize) -> Self {
        Self::fresh((0..rows as u32).collect(), capacity)
    }

    /// Rows with no past yet, row `r` writing to cache row `own[r]`.
    fn fresh(own: Vec<u32>, capacity: usize) -> Self {
        let mut at = Vec::with_capacity(own.len() * capacity);
        for &row in &own {
            push_row(&mut at, &[], row, capacity);
        }
        Self { at, own }
    }

    /// The same map for caches of `capacity` positions (`old` of them before, `len` filled).
    fn regrown(&self, old: usize, capacity: usize, len: usize) -> Self {
        let mut at = Vec::with_capacity(self.own.len() * capacity);
        for (row, &own) in self.at.chunks(old).zip(&self.own) {
            push_row(&mut at, &row[..len], own, capacity);
        }
        Self { at, own: self.own.clone() }
    }
}

/// Appends one row of a [`Stored`] map to `at`: its filled positions `past`, then its own cache row `own` up to
/// `capacity` positions.
fn push_row(at: &mut Vec<u32>, past: &[u32], own: u32, capacity: usize) {
    at.extend_from_slice(past);
    at.extend(std::iter::repeat_n(own, capacity - past.len()));
}

impl DecoderState {
    /// An empty state; `cross` holds each layer's encoder keys and values `[items, heads, source_len, head_dim]`
    /// (views are fine), `self_shape` is `(heads, head_dim)` of the decoder's self attention.
    pub fn new(
        cross: Vec<(Tensor, Tensor)>,
        cross_mask: Tensor,
        group: usize,
        self_shape: (usize, usize),
        capacity: usize,
    ) -> Result<Self, ModelError> {
        let items = cross_mask.dim(0)?;
        let rows = items * group;
        let capacity = capacity.max(1);
        let (heads, head_dim) = self_shape;
        let dtype = cross.first().map(|(k, _)| k.dtype()).unwrap_or(candle_core::DType::F32);
        let device = cross_mask.device().clone();
        let layers = cross
            .into_iter()
            .map(|(cross_k, cross_v)| {
                // Contiguous, so that finished items can be dropped with `index_select`.
                let (cross_k, cross_v) = (cross_k.contiguous()?, cross_v.contiguous()?);
                let zeros = || Tensor::zeros((rows, heads, capacity, head_dim), dtype, &device);
                Ok(LayerCache { self_k: zeros()?, self_v: zeros()?, cross_k, cross_v })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self { layers, cross_mask, group, len: 0, capacity, limit: usize::MAX, stored: None, shared: 0 })
    }

    pub fn rows(&self) -> usize {
        match &self.stored {
            Some(stored) => stored.own.len(),
            None => self.layers.first().map_or(0, |l| l.self_k.dims()[0]),
        }
    }

    pub fn items(&self) -> usize {
        self.cross_mask.dims()[0]
    }

    pub fn device(&self) -> &Device {
        self.cross_mask.device()
    }

    /// Caps the capacity that [`reserve`](Self::reserve) grows to at `limit` positions (more are still
    /// granted when asked for).
    pub fn limit_capacity(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Makes room for `steps` more positions, doubling the capacity when it runs out (up to the limit).
    pub fn reserve(&mut self, steps: usize) -> Result<(), ModelError> {
        let needed = self.len + steps;
        if needed <= self.capacity {
            return Ok(());
        }
        let capacity = needed.max((self.capacity * 2).min(self.limit));
        for layer in &mut self.layers {
            for cache in [&mut layer.self_k, &mut layer.self_v] {
                let mut dims = cache.dims().to_vec();
                dims[POSITIONS] = capacity;
                let grown = Tensor::zeros(dims, cache.dtype(), cache.device())?;
                grown.slice_set(&cache.narrow(POSITIONS, 0, self.len)?.contiguous()?, POSITIONS, 0)?;
                *cache = grown;
            }
        }
        self.stored = self.stored.as_ref().map(|s| s.regrown(self.capacity, capacity, self.len));
        self.capacity = capacity;
        Ok(())
    }

    /// Self-attention of layer `layer`: writes the new keys and values `k`, `v` (`[rows, heads, steps,
    /// head_dim]`, views are fine) at the current position, then attends with `q` (`[rows, heads, steps,
    /// head_dim]`) over every filled position, as [`layers::attend`] (`bias` broadcasting to `[rows, heads,
    /// steps, filled]`). Returns `[rows, steps, heads · head_dim]`.
    pub fn attend_self(
        &mut self,
        layer: usize,
        q: &Tensor,
        (k, v): (&Tensor, &Tensor),
        scale: f64,
        bias: Option<&Tensor>,
    ) -> Result<Tensor, ModelError> {
        let (k, v) = self.append_self(layer, k, v)?;
        let Some(stored) = &self.stored else { return layers::attend(q, &k, &v, scale, bias) };
        let rows = RowMap { map: &stored.at, per: self.capacity };
        if let Some(out) = layers::attend_mapped((q, &k, &v), scale, bias, rows)? {
            return Ok(out);
        }
        // Not reached: rows are only mapped where that kernel runs. Put them in place and attend plainly.
        let filled = k.dim(POSITIONS)?;
        self.materialize()?;
        let cache = &self.layers[layer];
        let (k, v) = (cache.self_k.narrow(POSITIONS, 0, filled)?, cache.self_v.narrow(POSITIONS, 0, filled)?);
        layers::attend(q, &k, &v, scale, bias)
    }

    /// Writes `k`, `v` (`[rows, heads, steps, head_dim]`, views are fine) at the current position of layer
    /// `layer`, in each row's own cache row, and returns the filled part of its caches (rows as stored).
    fn append_self(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        let steps = k.dim(2)?;
        let cache = &self.layers[layer];
        let own = self.stored.as_ref().map(|s| s.own.as_slice());
        for (cache, new) in [(&cache.self_k, k), (&cache.self_v, v)] {
            if cache.device().is_cpu() && cache.dtype() == DType::F32 && new.dtype() == DType::F32 {
                // Straight from the view (e.g. a column range of the fused projection): one copy, not two.
                cache.inplace_op2(new, &WritePositions { at: self.len, own })?;
            } else if own.is_some() {
                return Err(ModelError::Device("mapped decoder cache rows take f32 keys and values on the CPU".into()));
            } else {
                cache.slice_set(&new.contiguous()?, POSITIONS, self.len)?;
            }
        }
        let filled = self.len + steps;
        Ok((cache.self_k.narrow(POSITIONS, 0, filled)?, cache.self_v.narrow(POSITIONS, 0, filled)?))
    }

    /// Whether rows are reordered and dropped through the map rather than moved.
    fn maps_rows(&self) -> bool {
        self.device().is_cpu() && self.layers.first().is_none_or(|l| l.self_k.dtype() == DType::F32)
    }

    /// Runs the next step with one row per item instead of `group`, for a search whose beams all start as the
    /// same hypothesis: each item's row writes to the cache row of its first beam, and
    /// [`unshare_group`](Self::unshare_group) then gives every beam a row that continues it. Only before the
    /// first step, and only where rows are mapped (the CPU in f32); returns whether it did.
    pub fn share_group(&mut self) -> bool {
        let group = self.group;
        if group <= 1 || self.len > 0 || self.stored.is_some() || !self.maps_rows() {
            return false;
        }
        let own = (0..self.items() as u32).map(|i| i * group as u32).collect();
        self.stored = Some(Stored::fresh(own, self.capacity));
        self.shared = group;
        self.group = 1;
        true
    }

    /// Ends [`share_group`](Self::share_group): row `i` becomes the `group` rows of item `i`, each continuing
    /// its past and writing on to its own cache row (the first to item `i`'s, the others to the rows its beams
    /// left free). Does nothing when the group is not shared.
    pub fn unshare_group(&mut self) -> Result<(), ModelError> {
        let group = std::mem::take(&mut self.shared);
        if group == 0 {
            return Ok(());
        }
        self.group = group;
        let Some(stored) = self.stored.take() else {
            // The caches were put in place meanwhile, a row per item: each item's beams get copies of it.
            let rows: Vec<u32> = (0..self.items() as u32).flat_map(|i| std::iter::repeat_n(i, group)).collect();
            return self.gather_rows(&rows);
        };
        let (cap, len) = (self.capacity, self.len);
        let mut at = Vec::with_capacity(stored.at.len() * group);
        let mut own = Vec::with_capacity(stored.own.len() * group);
        for (past, &first) in stored.at.chunks(cap).zip(&stored.own) {
            for beam in first..first + group as u32 {
                push_row(&mut at, &past[..len], beam, cap);
                own.push(beam);
            }
        }
        self.stored = Some(Stored { at, own });
        Ok(())
    }

    /// New row `r` continues old row `rows[r]`; rows stay within their items (beam reordering).
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<(), ModelError> {
        let n = self.rows();
        if rows.len() == n && rows.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(());
        }
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= n) {
            return Err(ModelError::Input(format!("row {bad} selected from a state of {n} rows")));
        }
        if self.maps_rows() && rows.len() == n {
            let (cap, len) = (self.capacity, self.len);
            let old = self.stored.take().unwrap_or_else(|| Stored::identity(n, cap));
            let mut at = old.at.clone();
            for (row, &from) in at.chunks_mut(cap).zip(rows) {
                let from = from as usize * cap;
                row[..len].copy_from_slice(&old.at[from..from + len]);
            }
            self.stored = Some(Stored { at, own: old.own });
            return Ok(());
        }
        self.materialize()?;
        self.gather_rows(rows)
    }

    /// Row `r` of every self-attention cache becomes a copy of row `rows[r]` (caches in place, no map).
    fn gather_rows(&mut self, rows: &[u32]) -> Result<(), ModelError> {
        let index = Tensor::new(rows, self.device())?;
        for layer in &mut self.layers {
            layer.self_k = layer.self_k.index_select(&index, 0)?;
            layer.self_v = layer.self_v.index_select(&index, 0)?;
        }
        Ok(())
    }

    /// Puts every row's keys and values in the cache row of its index, as the map says, and drops the map.
    fn materialize(&mut self) -> Result<(), ModelError> {
        let Some(stored) = self.stored.take() else { return Ok(()) };
        let cap = self.capacity;
        // Row `r`, position `t` of `[cache rows · capacity, heads · head_dim]` takes row `at[r, t]`, position `t`.
        let index: Vec<u32> =
            stored.at.iter().enumerate().map(|(e, &row)| row * cap as u32 + (e % cap) as u32).collect();
        let index = Tensor::new(index.as_slice(), self.device())?;
        for layer in &mut self.layers {
            for cache in [&mut layer.self_k, &mut layer.self_v] {
                let (rows, heads, cap, head_dim) = cache.dims4()?;
                let by_position =
                    cache.transpose(1, POSITIONS)?.contiguous()?.reshape((rows * cap, heads * head_dim))?;
                let gathered = by_position.index_select(&index, 0)?;
                *cache = gathered
                    .reshape((stored.own.len(), cap, heads, head_dim))?
                    .transpose(1, POSITIONS)?
                    .contiguous()?;
            }
        }
        Ok(())
    }

    /// Keeps only the source items `items` (in that order), with all their rows.
    pub fn select_items(&mut self, items: &[u32]) -> Result<(), ModelError> {
        let group = self.group.max(1) as u32;
        let rows: Vec<u32> = items.iter().flat_map(|&i| (i * group)..(i * group + group)).collect();
        let item_index = Tensor::new(items, self.device())?;
        for layer in &mut self.layers {
            layer.cross_k = layer.cross_k.index_select(&item_index, 0)?;
            layer.cross_v = layer.cross_v.index_select(&item_index, 0)?;
        }
        self.cross_mask = self.cross_mask.index_select(&item_index, 0)?;
        if self.maps_rows() {
            let (n, cap) = (self.rows(), self.capacity);
            let old = self.stored.take().unwrap_or_else(|| Stored::identity(n, cap));
            let at = rows.iter().flat_map(|&r| &old.at[r as usize * cap..(r as usize + 1) * cap]).copied().collect();
            let own = rows.iter().map(|&r| old.own[r as usize]).collect();
            self.stored = Some(Stored { at, own });
            return Ok(());
        }
        self.gather_rows(&rows)
    }
}

/// Writes `[rows, heads, steps, head_dim]` values of any layout (the last dimension contiguous) into a
/// contiguous `[cache rows, heads, capacity, head_dim]` cache at positions `at..at + steps`: row `r` into cache
/// row `own[r]` (row `r` without `own`).
struct WritePositions<'a> {
    at: usize,
    own: Option<&'a [u32]>,
}

impl InplaceOp2 for WritePositions<'_> {
    fn name(&self) -> &'static str {
        "write-positions"
    }

    fn cpu_fwd(&self, cache: &mut CpuStorage, cl: &Layout, new: &CpuStorage, nl: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(cache), CpuStorage::F32(new)) = (cache, new) else {
            candle_core::bail!("write-positions: the cache and the values must be f32");
        };
        let Some((start, end)) = cl.contiguous_offsets() else {
            candle_core::bail!("write-positions: the cache is not contiguous");
        };
        let (rows, heads, capacity, head_dim) = cl.shape().dims4()?;
        let (nrows, nheads, steps, nhead_dim) = nl.shape().dims4()?;
        let st = nl.stride();
        let rows_fit = match self.own {
            Some(own) => own.len() == nrows && own.iter().all(|&r| (r as usize) < rows),
            None => nrows == rows,
        };
        if !rows_fit || (nheads, nhead_dim) != (heads, head_dim) || self.at + steps > capacity {
            candle_core::bail!("write-positions: {:?} at {} into a cache of {:?}", nl.dims(), self.at, cl.dims());
        }
        if st[3] != 1 && head_dim > 1 {
            candle_core::bail!("write-positions: values of stride {st:?}");
        }
        let last = nl.start_offset()
            + [(nrows, st[0]), (heads, st[1]), (steps, st[2])]
                .iter()
                .map(|&(n, s)| n.saturating_sub(1) * s)
                .sum::<usize>();
        if nrows * heads * steps > 0 && last + head_dim > new.len() {
            candle_core::bail!("write-positions: the values' layout overruns their storage");
        }
        // The row written to each cache row, if any.
        let mut writer: Vec<Option<usize>> = vec![None; rows];
        match self.own {
            Some(own) => own.iter().enumerate().for_each(|(r, &c)| writer[c as usize] = Some(r)),
            None => writer.iter_mut().enumerate().for_each(|(r, w)| *w = Some(r)),
        }
        let row_size = heads * capacity * head_dim;
        cache[start..end].par_chunks_mut(row_size).zip(&writer).for_each(|(row, writer)| {
            let Some(r) = *writer else { return };
            for h in 0..heads {
                for t in 0..steps {
                    let from = nl.start_offset() + r * st[0] + h * st[1] + t * st[2];
                    let to = (h * capacity + self.at + t) * head_dim;
                    row[to..to + head_dim].copy_from_slice(&new[from..from + head_dim]);
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys given as a view of a fused projection (`[rows, steps, 2 · heads · head_dim]`, split without a copy)
    /// land in the cache as their contiguous copy would, at the current position and after a capacity
    /// doubling, and the filled part comes back.
    #[test]
    fn appending_a_view_writes_what_its_copy_would() -> Result<(), ModelError> {
        let (rows, heads, head_dim) = (4, 2, 3);
        let cross = Tensor::zeros((2, heads, 5, head_dim), DType::F32, &Device::Cpu)?;
        let mask = Tensor::zeros((2, 1, 1, 5), DType::F32, &Device::Cpu)?;
        let mut state = DecoderState::new(vec![(cross.clone(), cross)], mask, 2, (heads, head_dim), 2)?;
        let mut want_k: Vec<Tensor> = Vec::new();
        for (step, steps) in [(0, 1), (1, 2), (2, 1)] {
            let width = 2 * heads * head_dim;
            let kv = Tensor::arange(0f32, (rows * steps * width) as f32, &Device::Cpu)?
                .affine(1.0, 100.0 * step as f64)?
                .reshape((rows, steps, width))?;
            let k = crate::models::layers::split_fused(&kv, 0, 2, heads)?;
            let v = crate::models::layers::split_fused(&kv, 1, 2, heads)?;
            state.reserve(steps)?;
            let (got_k, got_v) = state.append_self(0, &k, &v)?;
            state.len += steps;
            want_k.push(k.contiguous()?);
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            assert_eq!(flat(&got_k)?, flat(&Tensor::cat(&want_k, 2)?)?, "keys after step {step}");
            let last = got_v.narrow(2, state.len - steps, steps)?;
            assert_eq!(flat(&last)?, flat(&v)?, "values of step {step}");
        }
        Ok(())
    }

    /// The caches double as they fill, but not past the limit, unless more positions are asked for.
    #[test]
    fn capacity_doubles_up_to_the_limit() -> Result<(), ModelError> {
        let cross = Tensor::zeros((1, 1, 2, 4), DType::F32, &Device::Cpu)?;
        let mask = Tensor::zeros((1, 1, 1, 2), DType::F32, &Device::Cpu)?;
        let mut state = DecoderState::new(vec![(cross.clone(), cross)], mask, 1, (1, 4), 4)?;
        state.limit_capacity(6);
        let capacity = |s: &DecoderState| s.layers[0].self_k.dims()[POSITIONS];
        for (steps, want) in [(4, 4), (1, 6), (1, 6), (3, 9)] {
            state.reserve(steps)?;
            state.len += steps;
            assert_eq!(capacity(&state), want, "after {} positions", state.len);
        }
        Ok(())
    }

    /// Each row's keys (`part` 0) or values (1), positions joined, rows stacked: `[rows, heads, len, head_dim]`.
    fn joined(past: &[(Vec<Tensor>, Vec<Tensor>)], part: usize) -> Result<Tensor, ModelError> {
        let rows: Vec<Tensor> =
            past.iter().map(|p| Tensor::cat(if part == 0 { &p.0 } else { &p.1 }, 2)).collect::<Result<_, _>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }

    /// Beams reordered and items dropped through the row map attend, bit for bit, as caches whose rows were
    /// moved (each row's keys and values kept apart and joined), across a capacity doubling; moving them into
    /// place at the end gives those caches.
    #[test]
    fn mapped_rows_attend_as_moved_rows() -> Result<(), ModelError> {
        let (items, group, heads, head_dim) = (3, 2, 2, 16);
        let dev = Device::Cpu;
        let cross = Tensor::zeros((items, heads, 3, head_dim), DType::F32, &dev)?;
        let mask = Tensor::zeros((items, 1, 1, 3), DType::F32, &dev)?;
        let mut state = DecoderState::new(vec![(cross.clone(), cross)], mask, group, (heads, head_dim), 2)?;
        // Each row's keys and values so far, one `[1, heads, 1, head_dim]` tensor a position.
        let mut past: Vec<(Vec<Tensor>, Vec<Tensor>)> = vec![(Vec::new(), Vec::new()); items * group];
        let value = |seed: usize, rows: usize| {
            let n = rows * heads * head_dim;
            let v: Vec<f32> = (0..n).map(|i| (((i + 7 * seed) * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            Tensor::from_vec(v, (rows, heads, 1, head_dim), &dev)
        };
        let reorders: [&[u32]; 4] = [&[1, 0, 2, 2, 5, 4], &[], &[1, 1, 3, 2], &[0, 1, 2, 2]];
        for (step, reorder) in reorders.iter().enumerate() {
            let rows = past.len();
            let (q, k, v) = (value(3 * step, rows)?, value(3 * step + 1, rows)?, value(3 * step + 2, rows)?);
            state.reserve(1)?;
            let got = state.attend_self(0, &q, (&k, &v), 0.25, None)?;
            state.len += 1;
            for (r, (ks, vs)) in past.iter_mut().enumerate() {
                ks.push(k.narrow(0, r, 1)?);
                vs.push(v.narrow(0, r, 1)?);
            }
            let want = layers::attend(&q, &joined(&past, 0)?, &joined(&past, 1)?, 0.25, None)?;
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            assert_eq!(flat(&got)?, flat(&want)?, "attention at step {step}");
            if step == 1 {
                // Item 1 finishes.
                state.select_items(&[0, 2])?;
                past = [0, 1, 4, 5].iter().map(|&r| past[r].clone()).collect();
            } else {
                state.select_rows(reorder)?;
                past = reorder.iter().map(|&r| past[r as usize].clone()).collect();
            }
            if step == 3 {
                state.materialize()?;
                let filled = |t: &Tensor| t.narrow(POSITIONS, 0, state.len);
                assert_eq!(flat(&filled(&state.layers[0].self_k)?)?, flat(&joined(&past, 0)?)?, "keys in place");
                assert_eq!(flat(&filled(&state.layers[0].self_v)?)?, flat(&joined(&past, 1)?)?, "values in place");
            }
        }
        assert!(state.select_rows(&[0, 9, 1, 2]).is_err(), "a row the state does not have");
        Ok(())
    }

    /// A first step run one row per item (`share_group`) leaves each of the item's beams that row's past: after
    /// `unshare_group` the beams attend, bit for bit, as rows that each ran the step, whether the row map is
    /// kept or the caches were put in place in between. Only a fresh state with a group shares it.
    #[test]
    fn a_shared_first_step_gives_every_beam_its_past() -> Result<(), ModelError> {
        let (items, group, heads, head_dim) = (2, 3, 2, 16);
        let dev = Device::Cpu;
        let value = |seed: usize, rows: usize| {
            let n = rows * heads * head_dim;
            let v: Vec<f32> = (0..n).map(|i| (((i + 7 * seed) * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            Tensor::from_vec(v, (rows, heads, 1, head_dim), &dev)
        };
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        for put_in_place in [false, true] {
            let cross = Tensor::zeros((items, heads, 3, head_dim), DType::F32, &dev)?;
            let mask = Tensor::zeros((items, 1, 1, 3), DType::F32, &dev)?;
            let mut state = DecoderState::new(vec![(cross.clone(), cross)], mask, group, (heads, head_dim), 2)?;
            assert!(state.share_group(), "a fresh state shares its group");
            assert_eq!((state.rows(), state.group), (items, 1));
            let (k0, v0) = (value(1, items)?, value(2, items)?);
            state.reserve(1)?;
            state.attend_self(0, &value(0, items)?, (&k0, &v0), 0.25, None)?;
            state.len += 1;
            if put_in_place {
                state.materialize()?;
            }
            state.unshare_group()?;
            assert_eq!((state.rows(), state.group), (items * group, group));
            let rows = items * group;
            let (q, k1, v1) = (value(3, rows)?, value(4, rows)?, value(5, rows)?);
            state.reserve(1)?;
            let got = state.attend_self(0, &q, (&k1, &v1), 0.25, None)?;
            let beams_of = |t: &Tensor| -> Result<Tensor, ModelError> {
                let each: Vec<u32> = (0..items as u32).flat_map(|i| std::iter::repeat_n(i, group)).collect();
                Ok(t.index_select(&Tensor::new(each.as_slice(), &dev)?, 0)?)
            };
            let k = Tensor::cat(&[beams_of(&k0)?, k1], POSITIONS)?;
            let v = Tensor::cat(&[beams_of(&v0)?, v1], POSITIONS)?;
            let want = layers::attend(&q, &k, &v, 0.25, None)?;
            assert_eq!(flat(&got)?, flat(&want)?, "attention after the shared step (in place: {put_in_place})");
            assert!(!state.share_group(), "a state past its first step");
        }
        let cross = Tensor::zeros((1, 1, 2, 4), DType::F32, &dev)?;
        let mask = Tensor::zeros((1, 1, 1, 2), DType::F32, &dev)?;
        assert!(!DecoderState::new(vec![(cross.clone(), cross)], mask, 1, (1, 4), 2)?.share_group(), "group of 1");
        Ok(())
    }
}
