//! The decoder's state during search: per-layer self-attention caches that grow by doubling, and cross-attention
//! keys/values computed once per batch.

use candle_core::{Device, Tensor};

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
}

impl DecoderState {
    /// An empty state; `self_shape` is `(heads, head_dim)` of the decoder's self attention.
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
        let zeros = || Tensor::zeros((rows, heads, capacity, head_dim), dtype, &device);
        let layers = cross
            .into_iter()
            .map(|(cross_k, cross_v)| Ok(LayerCache { self_k: zeros()?, self_v: zeros()?, cross_k, cross_v }))
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self { layers, cross_mask, group, len: 0, capacity })
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

    /// Makes room for `steps` more positions, doubling the capacity when it runs out.
    pub fn reserve(&mut self, steps: usize) -> Result<(), ModelError> {
        let needed = self.len + steps;
        if needed <= self.capacity {
            return Ok(());
        }
        let capacity = needed.max(self.capacity * 2);
        for layer in &mut self.layers {
            for cache in [&mut layer.self_k, &mut layer.self_v] {
                let (rows, heads, _, head_dim) = cache.dims4()?;
                let grown = Tensor::zeros((rows, heads, capacity, head_dim), cache.dtype(), cache.device())?;
                grown.slice_set(&cache.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                *cache = grown;
            }
        }
        self.capacity = capacity;
        Ok(())
    }

    /// Writes `k`, `v` (`[rows, heads, steps, head_dim]`) at the current position of layer `layer` and returns
    /// the filled keys and values including them.
    pub fn append_self(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        let steps = k.dim(2)?;
        let cache = &self.layers[layer];
        cache.self_k.slice_set(&k.contiguous()?, 2, self.len)?;
        cache.self_v.slice_set(&v.contiguous()?, 2, self.len)?;
        let filled = self.len + steps;
        Ok((cache.self_k.narrow(2, 0, filled)?, cache.self_v.narrow(2, 0, filled)?))
    }

    /// New row `r` continues old row `rows[r]`; rows stay within their items (beam reordering).
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<(), ModelError> {
        if rows.iter().enumerate().all(|(i, &r)| r as usize == i) && rows.len() == self.rows() {
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
