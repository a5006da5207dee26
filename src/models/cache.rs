//! The decoder's state during search: per-layer self-attention caches that grow by doubling, and cross-attention
//! keys/values computed once per batch.

use candle_core::{CpuStorage, DType, Device, InplaceOp1, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

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
        Ok(Self { layers, cross_mask, group, len: 0, capacity, limit: usize::MAX })
    }

    pub fn rows(&self) -> usize {
        self.layers.first().map_or(0, |l| l.self_k.dims()[0])
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
        self.capacity = capacity;
        Ok(())
    }

    /// Writes `k`, `v` (`[rows, heads, steps, head_dim]`, views are fine) at the current position of layer
    /// `layer` and returns the filled keys and values including them.
    pub fn append_self(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        let steps = k.dim(2)?;
        let cache = &self.layers[layer];
        for (cache, new) in [(&cache.self_k, k), (&cache.self_v, v)] {
            if cache.device().is_cpu() && cache.dtype() == DType::F32 && new.dtype() == DType::F32 {
                // Straight from the view (e.g. a column range of the fused projection): one copy, not two.
                cache.inplace_op2(new, &WritePositions { at: self.len })?;
            } else {
                cache.slice_set(&new.contiguous()?, POSITIONS, self.len)?;
            }
        }
        let filled = self.len + steps;
        Ok((cache.self_k.narrow(POSITIONS, 0, filled)?, cache.self_v.narrow(POSITIONS, 0, filled)?))
    }

    /// New row `r` continues old row `rows[r]`; rows stay within their items (beam reordering). On the CPU the
    /// caches are reordered in place, copying only the filled positions of the rows that change.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<(), ModelError> {
        if rows.iter().enumerate().all(|(i, &r)| r as usize == i) && rows.len() == self.rows() {
            return Ok(());
        }
        let group = self.group.max(1);
        let in_place = self.device().is_cpu()
            && rows.len() == self.rows()
            && rows.iter().enumerate().all(|(i, &r)| r as usize / group == i / group);
        if in_place {
            let op = ReorderRows { rows, group, len: self.len };
            for layer in &mut self.layers {
                layer.self_k.inplace_op1(&op)?;
                layer.self_v.inplace_op1(&op)?;
            }
            return Ok(());
        }
        let index = Tensor::new(rows, self.device())?;
        for layer in &mut self.layers {
            layer.self_k = layer.self_k.index_select(&index, 0)?;
            layer.self_v = layer.self_v.index_select(&index, 0)?;
        }
        Ok(())
    }

    /// Keeps only the source items `items` (in that order), with all their rows.
    pub fn select_items(&mut self, items: &[u32]) -> Result<(), ModelError> {
        let group = self.group as u32;
        let rows: Vec<u32> = items.iter().flat_map(|&i| (i * group)..(i * group + group)).collect();
        let item_index = Tensor::new(items, self.device())?;
        let row_index = Tensor::new(rows.as_slice(), self.device())?;
        for layer in &mut self.layers {
            layer.self_k = layer.self_k.index_select(&row_index, 0)?;
            layer.self_v = layer.self_v.index_select(&row_index, 0)?;
            layer.cross_k = layer.cross_k.index_select(&item_index, 0)?;
            layer.cross_v = layer.cross_v.index_select(&item_index, 0)?;
        }
        self.cross_mask = self.cross_mask.index_select(&item_index, 0)?;
        Ok(())
    }
}

/// Beam reordering of a `[rows, heads, capacity, head_dim]` f32 cache in place: within each item's `group` rows,
/// row `r` takes the first `len` positions of row `rows[r]`.
struct ReorderRows<'a> {
    rows: &'a [u32],
    group: usize,
    len: usize,
}

impl InplaceOp1 for ReorderRows<'_> {
    fn name(&self) -> &'static str {
        "reorder-rows"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("reorder-rows: the cache is not f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("reorder-rows: the cache is not contiguous");
        };
        let (rows, heads, capacity, head_dim) = layout.shape().dims4()?;
        let (group, len) = (self.group, self.len);
        if rows != self.rows.len() || rows % group != 0 || len > capacity {
            candle_core::bail!("reorder-rows: {} rows for a cache of {rows}", self.rows.len());
        }
        if self.rows.iter().enumerate().any(|(j, &r)| r as usize / group != j / group) {
            candle_core::bail!("reorder-rows: a row moves to another item");
        }
        let row_size = heads * capacity * head_dim;
        let spans = RowSpans { row_size, heads, stride: capacity * head_dim, len: len * head_dim };
        data[start..end].par_chunks_mut(group * row_size).enumerate().for_each(|(item, chunk)| {
            let base = item * group;
            let sources: Vec<usize> = self.rows[base..base + group].iter().map(|&r| r as usize - base).collect();
            spans.reorder(chunk, &sources);
        });
        Ok(())
    }
}

/// Where the filled positions of each head of each row of one item lie in its part of the cache.
struct RowSpans {
    row_size: usize,
    heads: usize,
    /// Values between two heads of a row, and filled values per head.
    stride: usize,
    len: usize,
}

impl RowSpans {
    fn span(&self, row: usize, head: usize) -> std::ops::Range<usize> {
        let at = row * self.row_size + head * self.stride;
        at..at + self.len
    }

    /// Row `j` of `chunk` takes row `sources[j]`'s values. Only the rows that change are written; a row that
    /// changes and is read by another is saved first, every other source is read in place. (Copying every row
    /// of a changed item through a scratch buffer was 3.8% of an f32 translation at beam 4.)
    fn reorder(&self, chunk: &mut [f32], sources: &[usize]) {
        let changed: Vec<usize> = (0..sources.len()).filter(|&j| sources[j] != j).collect();
        let saved: Vec<usize> = changed.iter().copied().filter(|s| changed.iter().any(|&j| sources[j] == *s)).collect();
        let mut scratch = Vec::with_capacity(saved.len() * self.heads * self.len);
        for &s in &saved {
            (0..self.heads).for_each(|h| scratch.extend_from_slice(&chunk[self.span(s, h)]));
        }
        for &j in &changed {
            let from = sources[j];
            let slot = saved.iter().position(|&s| s == from);
            for h in 0..self.heads {
                let to = self.span(j, h);
                match slot {
                    Some(slot) => {
                        let part = (slot * self.heads + h) * self.len;
                        chunk[to].copy_from_slice(&scratch[part..part + self.len]);
                    }
                    None => chunk.copy_within(self.span(from, h), to.start),
                }
            }
        }
    }
}

/// Writes `[rows, heads, steps, head_dim]` values of any layout (the last dimension contiguous) into a
/// contiguous `[rows, heads, capacity, head_dim]` cache at positions `at..at + steps`.
struct WritePositions {
    at: usize,
}

impl InplaceOp2 for WritePositions {
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
        if (nrows, nheads, nhead_dim) != (rows, heads, head_dim) || self.at + steps > capacity {
            candle_core::bail!("write-positions: {:?} at {} into a cache of {:?}", nl.dims(), self.at, cl.dims());
        }
        if st[3] != 1 && head_dim > 1 {
            candle_core::bail!("write-positions: values of stride {st:?}");
        }
        let last = nl.start_offset()
            + [(rows, st[0]), (heads, st[1]), (steps, st[2])]
                .iter()
                .map(|&(n, s)| n.saturating_sub(1) * s)
                .sum::<usize>();
        if rows * heads * steps > 0 && last + head_dim > new.len() {
            candle_core::bail!("write-positions: the values' layout overruns their storage");
        }
        let row_size = heads * capacity * head_dim;
        cache[start..end].par_chunks_mut(row_size).enumerate().for_each(|(r, row)| {
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

    /// Reordering in place equals `index_select` on the filled positions.
    #[test]
    fn in_place_reorder_equals_index_select() -> Result<(), ModelError> {
        let (items, group, heads, capacity, head_dim) = (2, 3, 2, 5, 4);
        let rows = items * group;
        let values: Vec<f32> = (0..rows * heads * capacity * head_dim).map(|i| i as f32).collect();
        let cache = Tensor::from_vec(values, (rows, heads, capacity, head_dim), &Device::Cpu)?;
        let len = 3;
        // A chain, a swap, a cycle, a row copied twice, an unchanged item.
        for order in [[2u32, 2, 0, 3, 5, 4], [1, 0, 2, 4, 5, 3], [0, 0, 1, 3, 4, 5], [2, 0, 1, 3, 3, 3]] {
            let want = cache.index_select(&Tensor::new(&order[..], &Device::Cpu)?, 0)?.narrow(2, 0, len)?;
            let reordered = cache.copy()?;
            reordered.inplace_op1(&ReorderRows { rows: &order, group, len })?;
            let got = reordered.narrow(2, 0, len)?;
            assert_eq!(got.flatten_all()?.to_vec1::<f32>()?, want.flatten_all()?.to_vec1::<f32>()?, "{order:?}");
            // The positions past `len` are left alone.
            let rest = |t: &Tensor| t.narrow(2, len, capacity - len)?.flatten_all()?.to_vec1::<f32>();
            assert_eq!(rest(&reordered)?, rest(&cache)?);
        }
        let other_item = [3u32, 1, 2, 0, 4, 5];
        assert!(cache.copy()?.inplace_op1(&ReorderRows { rows: &other_item, group, len }).is_err());
        Ok(())
    }
}
