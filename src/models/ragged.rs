//! A right-padded source batch without its padding: the real tokens as one `[tokens, width]` matrix for the
//! position-wise layers of an encoder (norms, products, feed-forward), and self-attention per sequence on it.
//!
//! Every row of those layers depends on its own row alone, and a padding key gets attention weight exactly 0,
//! so the real rows come out bit for bit as in the padded batch. The products skip the padding: a batch of 32
//! news lines padded to its longest (87 T5 tokens) holds 2,784 rows for 1,066 real ones.

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};

use super::kernels::attention::{self, Span, View};
use super::kernels::isa;
use super::{ModelError, SourceBatch};

/// Where the real tokens of a padded batch lie, and the index maps between the two layouts.
pub struct Ragged {
    spans: Vec<Span>,
    /// For each real token in order, its row in the padded batch flattened to `[batch · len]`.
    gather: Tensor,
    /// For each row of the padded batch, its real token, or `tokens` (a zero row) for padding.
    scatter: Tensor,
    /// For each real token, its position in its sequence.
    positions: Tensor,
    len: usize,
}

impl Ragged {
    /// The batch without padding, where the project's attention kernels run (CPU, f32 activations); `None`
    /// elsewhere (CUDA keeps the padded batch) and where there is no padding to skip.
    pub fn of(batch: &SourceBatch, dtype: DType) -> Result<Option<Self>, ModelError> {
        let (b, len) = batch.ids.dims2()?;
        let device = batch.ids.device();
        if !device.is_cpu() || dtype != DType::F32 || batch.lengths.iter().all(|&l| l == len) {
            return Ok(None);
        }
        let mut spans = Vec::with_capacity(b);
        let (mut gather, mut positions, mut scatter) = (Vec::new(), Vec::new(), Vec::with_capacity(b * len));
        let tokens: usize = batch.lengths.iter().sum();
        for (item, &l) in batch.lengths.iter().enumerate() {
            let start = gather.len();
            spans.push(Span { start, len: l });
            gather.extend((0..l).map(|t| (item * len + t) as u32));
            positions.extend(0..l as u32);
            scatter.extend((0..len).map(|t| if t < l { (start + t) as u32 } else { tokens as u32 }));
        }
        Ok(Some(Self {
            spans,
            gather: Tensor::from_vec(gather, tokens, device)?,
            scatter: Tensor::from_vec(scatter, b * len, device)?,
            positions: Tensor::from_vec(positions, tokens, device)?,
            len,
        }))
    }

    /// The real tokens' ids `[tokens]` of `ids` `[batch, len]`.
    pub fn ids(&self, ids: &Tensor) -> Result<Tensor, ModelError> {
        Ok(ids.flatten_all()?.index_select(&self.gather, 0)?)
    }

    /// Each real token's position in its sequence, `[tokens]` (u32).
    pub fn positions(&self) -> &Tensor {
        &self.positions
    }

    /// The real rows `[tokens, width]` of `x` `[batch, len, width]`.
    pub fn pack(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let (b, len, width) = x.dims3()?;
        Ok(x.reshape((b * len, width))?.index_select(&self.gather, 0)?)
    }

    /// `x` `[tokens, width]` padded back to `[batch, len, width]`, zeros at the padding.
    pub fn unpad(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let width = x.dim(1)?;
        let zero = Tensor::zeros((1, width), x.dtype(), x.device())?;
        let rows = Tensor::cat(&[x, &zero], 0)?.index_select(&self.scatter, 0)?;
        Ok(rows.reshape((self.spans.len(), self.len, width))?)
    }

    /// Self-attention within each sequence: `q`, `k`, `v` `[tokens, heads · head_dim]` (views such as column
    /// ranges of a fused projection are fine), `bias` `[1, heads, len, len]` shared by every sequence (T5's
    /// position bias) or none. Returns `[tokens, heads · head_dim]`.
    pub fn attend(
        &self,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        heads: usize,
        scale: f64,
        bias: Option<&Tensor>,
    ) -> Result<Tensor, ModelError> {
        let (tokens, width) = q.dims2()?;
        if k.dims2()? != (tokens, width) || v.dims2()? != (tokens, width) || width % heads != 0 {
            let shapes =
                format!("ragged attention shapes {:?} {:?} {:?} for {heads} heads", q.dims(), k.dims(), v.dims());
            return Err(candle_core::Error::Msg(shapes).into());
        }
        let head = width / heads;
        let bias = bias.map(|t| t.to_dtype(DType::F32)?.broadcast_as((1, heads, self.len, self.len))).transpose()?;
        let storages = [q, k, v].map(|t| t.storage_and_layout());
        let bias_storage = bias.as_ref().map(|t| t.storage_and_layout());
        let view = |i: usize| rows_view(&storages[i].0, storages[i].1, head);
        let bias_view = match &bias_storage {
            Some((s, l)) => Some(bias_view(s, l)?),
            None => None,
        };
        let mut out = vec![0f32; tokens * width];
        let views = (view(0)?, view(1)?, view(2)?);
        attention::attend_spans(isa::active(), (heads, head), &self.spans, views, bias_view, scale as f32, &mut out);
        Ok(Tensor::from_vec(out, (tokens, width), q.device())?)
    }
}

/// `[rows, heads · head]` f32 on the CPU with a contiguous last dimension as a `[1, heads, rows, head]` view.
fn rows_view<'a>(storage: &'a Storage, layout: &Layout, head: usize) -> Result<View<'a>, ModelError> {
    let Storage::Cpu(CpuStorage::F32(data)) = storage else { return Err(not_cpu_f32()) };
    let stride = layout.stride();
    if layout.dims().len() != 2 || (stride[1] != 1 && layout.dims()[1] > 1) {
        return Err(candle_core::Error::Msg(format!("ragged attention: rows of stride {stride:?}")).into());
    }
    Ok(View::new(data, layout.start_offset(), [0, head, stride[0]]))
}

/// A 4-d f32 view with a contiguous last dimension (or a broadcast one).
fn bias_view<'a>(storage: &'a Storage, layout: &Layout) -> Result<View<'a>, ModelError> {
    let Storage::Cpu(CpuStorage::F32(data)) = storage else { return Err(not_cpu_f32()) };
    let (dims, stride) = (layout.dims(), layout.stride());
    if stride[3] != 1 && dims[3] > 1 {
        return Err(candle_core::Error::Msg(format!("ragged attention: a bias of stride {stride:?}")).into());
    }
    Ok(View::new(data, layout.start_offset(), [stride[0], stride[1], stride[2]]))
}

fn not_cpu_f32() -> ModelError {
    candle_core::Error::Msg("ragged attention runs on f32 values on the CPU".into()).into()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::models::layers::{attend, split_heads};

    fn batch(sequences: &[Vec<u32>]) -> SourceBatch {
        SourceBatch::new(sequences, 0, &Device::Cpu).unwrap()
    }

    fn values(rows: usize, width: usize, seed: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * width).map(|i| (((i + seed) * 7919) % 1013) as f32 / 500.0 - 1.0).collect();
        Tensor::from_vec(v, (rows, width), &Device::Cpu).unwrap()
    }

    #[test]
    fn maps_between_the_padded_and_the_packed_rows() {
        let b = batch(&[vec![5, 6, 7], vec![8], vec![9, 10]]);
        let r = Ragged::of(&b, DType::F32).unwrap().expect("padding to skip");
        assert_eq!(r.ids(&b.ids).unwrap().to_vec1::<u32>().unwrap(), [5, 6, 7, 8, 9, 10]);
        assert_eq!(r.positions().to_vec1::<u32>().unwrap(), [0, 1, 2, 0, 0, 1]);
        let x = Tensor::arange(0f32, 18.0, &Device::Cpu).unwrap().reshape((3, 3, 2)).unwrap();
        let rows = r.pack(&x).unwrap();
        let want = [[0., 1.], [2., 3.], [4., 5.], [6., 7.], [12., 13.], [14., 15.]];
        assert_eq!(rows.to_vec2::<f32>().unwrap(), want);
        let padded = r.unpad(&rows).unwrap().to_vec3::<f32>().unwrap();
        let zero = [0f32, 0.0];
        assert_eq!(padded[0], [[0., 1.], [2., 3.], [4., 5.]]);
        assert_eq!(padded[1], [[6., 7.], zero, zero]);
        assert_eq!(padded[2], [[12., 13.], [14., 15.], zero]);
    }

    #[test]
    fn only_where_there_is_padding_on_the_cpu_in_f32() {
        assert!(Ragged::of(&batch(&[vec![1, 2], vec![3, 4]]), DType::F32).unwrap().is_none());
        assert!(Ragged::of(&batch(&[vec![1, 2], vec![3]]), DType::BF16).unwrap().is_none());
        assert!(Ragged::of(&batch(&[vec![1, 2], vec![3]]), DType::F32).unwrap().is_some());
    }

    /// Each sequence's attention on the packed rows (q, k, v as column ranges of one fused projection) is,
    /// bit for bit, that sequence's attention alone, with the shared bias cut to its length.
    #[test]
    fn attention_per_sequence_equals_each_alone() {
        let (heads, head) = (2, 16);
        let width = heads * head;
        let b = batch(&[vec![1; 4], vec![1; 7], vec![1; 1]]);
        let r = Ragged::of(&b, DType::F32).unwrap().unwrap();
        let qkv = values(12, 3 * width, 3);
        let cols = |i: usize| qkv.narrow(1, i * width, width).unwrap();
        let bias = values(heads * 7, 7, 9).reshape((1, heads, 7, 7)).unwrap();
        let got = r.attend((&cols(0), &cols(1), &cols(2)), heads, 0.5, Some(&bias)).unwrap();
        for (start, len) in [(0, 4), (4, 7), (11, 1)] {
            let one = |t: Tensor| split_heads(&t.narrow(0, start, len).unwrap().unsqueeze(0).unwrap(), heads).unwrap();
            let (q, k, v) = (one(cols(0)), one(cols(1)), one(cols(2)));
            let cut = bias.narrow(2, 0, len).unwrap().narrow(3, 0, len).unwrap();
            let want = attend(&q, &k, &v, 0.5, Some(&cut)).unwrap().squeeze(0).unwrap();
            let got = got.narrow(0, start, len).unwrap();
            let bits = |t: &Tensor| {
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(bits(&got), bits(&want), "sequence at {start}");
        }
    }
}
