//! Building blocks shared by the architectures: linear maps, norms, activations and masked attention.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};

use super::config::Activation;
use super::kernels::{self, PackedMatrix, Precision};
use super::weights::Weights;
use super::ModelError;

/// `y = x Wᵀ + b` with `W` `[out, in]`. On the CPU the weights are packed once for the project's kernels
/// ([`Linear::packed`]); elsewhere candle's matmul runs.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// Applied to the output (fused into the packed kernel's tiles).
    activation: Option<Activation>,
    packed: Option<Arc<PackedLinear>>,
}

/// Packed weights (and bias) behind a candle custom operation.
#[derive(Debug)]
pub struct PackedLinear {
    matrix: PackedMatrix,
    bias: Option<Vec<f32>>,
    epilogue: Option<fn(&mut [f32])>,
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = storage.as_slice::<f32>()?;
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("packed-linear needs a contiguous input".into()))?;
        let x = &data[start..end];
        let (n, k) = (self.matrix.n(), self.matrix.k());
        let dims = layout.shape().dims();
        if dims.last() != Some(&k) {
            candle_core::bail!("packed-linear: input {dims:?} does not end in {k}");
        }
        let m = x.len() / k;
        let out = self.matrix.matmul_new(x, m, self.bias.as_deref(), self.epilogue);
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank ≥ 1") = n;
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias, activation: None, packed: None }
    }

    /// The same map followed by `activation` (set it before packing, which fuses it into the kernel).
    pub fn with_activation(self, activation: Activation) -> Self {
        debug_assert!(self.packed.is_none(), "set the activation before packing");
        Self { activation: Some(activation), ..self }
    }

    /// The same map with its weights packed for the CPU kernels (`precision` bf16 is the reduced-precision mode);
    /// the unpacked copy is released.
    pub fn packed(self, precision: Precision) -> Result<Self, ModelError> {
        let (n, k) = self.weight.dims2()?;
        let w = self.weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bias = match &self.bias {
            Some(b) => Some(b.to_dtype(DType::F32)?.to_vec1::<f32>()?),
            None => None,
        };
        let matrix = PackedMatrix::pack(&w, n, k, precision);
        let placeholder = Tensor::zeros((n, 0), DType::F32, self.weight.device())?;
        let epilogue = self.activation.map(|a| a.in_place());
        let packed = PackedLinear { matrix, bias, epilogue };
        Ok(Self { weight: placeholder, bias: self.bias, activation: self.activation, packed: Some(Arc::new(packed)) })
    }

    /// Packs when `precision` is set (the CPU); keeps candle's matmul otherwise, and for f32 on the portable
    /// kernel family, where candle's matmul (the `gemm` crate: NEON on Arm, its own AVX2 code on x86) is about
    /// three times faster than the project's plain-Rust kernel (docs/BENCHMARKS.md).
    pub fn packed_if(self, precision: Option<Precision>) -> Result<Self, ModelError> {
        match precision {
            Some(Precision::F32) if kernels::isa::active() == kernels::Isa::Portable => Ok(self),
            Some(p) => self.packed(p),
            None => Ok(self),
        }
    }

    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `bias`).
    pub fn load(w: &Weights, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self, ModelError> {
        let weight = w.get(&format!("{prefix}.weight"), (out_dim, in_dim))?;
        let bias = if bias { Some(w.get(&format!("{prefix}.bias"), out_dim)?) } else { None };
        Ok(Self::new(weight, bias))
    }

    /// Several projections of the same input stacked into one (e.g. q, k, v): one matmul instead of three.
    /// (Stack before packing.)
    pub fn stack(parts: &[Linear]) -> Result<Self, ModelError> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.weight).collect();
        let weight = Tensor::cat(&weights, 0)?;
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            let biases: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&biases, 0)?)
        } else {
            None
        };
        Ok(Self::new(weight, bias))
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        if let Some(packed) = &self.packed {
            return Ok(x.contiguous()?.apply_op1_no_bwd(packed.as_ref())?);
        }
        let w = self.weight.t()?;
        let y = match x.dims() {
            [b, m, k] => x.reshape((b * m, *k))?.matmul(&w)?.reshape((*b, *m, self.out_dim()))?,
            _ => x.matmul(&w)?,
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        match self.activation {
            Some(a) => a.apply(&y),
            None => Ok(y),
        }
    }

    /// The map's output folded row by row without being stored, where its weights are packed (and it has no
    /// activation): see [`PackedMatrix::matmul_fold`]. `x` is `[m, in]` in f32 on the CPU. `None` where the
    /// map runs on candle's matmul; the caller then takes [`Linear::forward`].
    pub fn fold_rows<S: Send>(
        &self,
        x: &Tensor,
        init: impl Fn() -> S + Sync,
        fold: impl Fn(&mut S, usize, usize, &[f32]) + Sync,
    ) -> Result<Option<kernels::Folded<S>>, ModelError> {
        let Some(packed) = self.packed.as_ref().filter(|p| p.epilogue.is_none()) else { return Ok(None) };
        let x = x.contiguous()?;
        let (m, k) = x.dims2()?;
        if k != packed.matrix.k() || x.dtype() != DType::F32 {
            let msg = format!("packed-linear fold: input {:?} {:?} for {k} inputs", x.dims(), x.dtype());
            return Err(candle_core::Error::Msg(msg).into());
        }
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else { return Ok(None) };
        let start = layout.start_offset();
        let a = &cpu.as_slice::<f32>()?[start..start + m * k];
        Ok(Some(packed.matrix.matmul_fold(a, m, packed.bias.as_deref(), init, fold)))
    }
}

/// `LayerNorm` over the last dimension (`eps` as configured; `nn.LayerNorm` uses 1e-5).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub fn load(w: &Weights, prefix: &str, dim: usize, eps: f32) -> Result<Self, ModelError> {
        Ok(Self { weight: w.get(&format!("{prefix}.weight"), dim)?, bias: w.get(&format!("{prefix}.bias"), dim)?, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)?)
    }
}

/// T5's `LayerNorm`: no mean, no bias, scale only (RMS norm), computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f32) -> Result<Self, ModelError> {
        Ok(Self { weight: w.get(name, dim)?, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)?)
    }
}

impl Activation {
    /// The CPU kernel's in-place version, fused into matrix products.
    pub fn in_place(self) -> fn(&mut [f32]) {
        match self {
            Activation::Relu => kernels::math::relu,
            Activation::Gelu => kernels::math::gelu_erf,
            Activation::GeluTanh => kernels::math::gelu_tanh,
            Activation::Swish => kernels::math::silu,
        }
    }

    pub fn apply(self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(match self {
            Activation::Relu => x.relu()?,
            Activation::Gelu => x.gelu_erf()?,
            Activation::GeluTanh => x.gelu()?,
            Activation::Swish => x.silu()?,
        })
    }
}

/// Splits `[batch, len, heads * head_dim]` into a `[batch, heads, len, head_dim]` view (no copy of the heads).
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor, ModelError> {
    let (b, len, d) = x.dims3()?;
    Ok(x.reshape((b, len, heads, d / heads))?.transpose(1, 2)?)
}

/// Part `part` of `parts` equal column ranges of `x` `[batch, len, parts · heads · head_dim]` (e.g. the keys of
/// a fused key-value projection) as a `[batch, heads, len, head_dim]` view: the ranges are split before the
/// heads, so a contiguous `x` is not copied (splitting the heads of a column range is).
pub fn split_fused(x: &Tensor, part: usize, parts: usize, heads: usize) -> Result<Tensor, ModelError> {
    let (b, len, width) = x.dims3()?;
    let x = x.reshape((b, len, parts, heads, width / (parts * heads)))?;
    Ok(x.narrow(2, part, 1)?.squeeze(2)?.transpose(1, 2)?)
}

/// Joins `[batch, heads, len, head_dim]` back into `[batch, len, heads * head_dim]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor, ModelError> {
    let (b, heads, len, head_dim) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, len, heads * head_dim))?)
}

/// Attention with the heads merged: `softmax(q kᵀ · scale + bias) v` for `q` `[b, h, m, d]`, `k`/`v`
/// `[b, h, n, d]` (views are fine, e.g. split heads), `bias` broadcasting to `[b, h, m, n]` (padding masks, causal
/// masks, T5's position bias). Returns `[b, m, h·d]`. f32 on the CPU runs the project's kernel on the views as
/// they are; elsewhere candle's matmuls, with the softmax in f32.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, bias: Option<&Tensor>) -> Result<Tensor, ModelError> {
    if let Some(out) = cpu_attend(q, k, v, scale, bias, None)? {
        return Ok(out);
    }
    merge_heads(&attention(&q.contiguous()?, &k.t()?.contiguous()?, &v.contiguous()?, scale, bias)?)
}

/// Reads `t` as a 4-d f32 view with a contiguous last dimension, if it is one on the CPU.
fn cpu_view<'a>(storage: &'a candle_core::Storage, layout: &Layout) -> Option<kernels::attention::View<'a>> {
    let candle_core::Storage::Cpu(CpuStorage::F32(data)) = storage else { return None };
    let (dims, stride) = (layout.dims(), layout.stride());
    if dims.len() != 4 || (stride[3] != 1 && dims[3] > 1) {
        return None;
    }
    Some(kernels::attention::View::new(data, layout.start_offset(), [stride[0], stride[1], stride[2]]))
}

/// [`attend`] over keys and values whose rows lie where `rows` says (a decoder cache whose beams are never moved,
/// see [`kernels::attention::RowMap`]), on the CPU in f32; `None` where that kernel cannot run.
pub fn attend_mapped(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    scale: f64,
    bias: Option<&Tensor>,
    rows: kernels::attention::RowMap,
) -> Result<Option<Tensor>, ModelError> {
    cpu_attend(q, k, v, scale, bias, Some(rows))
}

fn cpu_attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    bias: Option<&Tensor>,
    rows: Option<kernels::attention::RowMap>,
) -> Result<Option<Tensor>, ModelError> {
    let all_f32 = [Some(q), Some(k), Some(v), bias].into_iter().flatten().all(|t| t.dtype() == DType::F32);
    if !q.device().is_cpu() || !all_f32 {
        return Ok(None);
    }
    let (b, h, m, d) = q.dims4()?;
    let n = v.dim(2)?;
    // Mapped keys and values may lie in more (or fewer) rows than the queries: the kernel checks the map.
    let same = |t: &Tensor| -> Result<bool, ModelError> {
        let (tb, th, tn, td) = t.dims4()?;
        Ok((th, tn, td) == (h, n, d) && (rows.is_some() || tb == b))
    };
    if !same(k)? || !same(v)? {
        let shapes = format!("attention shapes {:?} {:?} {:?}", q.dims(), k.dims(), v.dims());
        return Err(candle_core::Error::Msg(shapes).into());
    }
    let bias = bias.map(|t| t.broadcast_as((b, h, m, n))).transpose()?;
    let (qs, ql) = q.storage_and_layout();
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let bias_storage = bias.as_ref().map(|t| t.storage_and_layout());
    let (Some(qv), Some(kv), Some(vv)) = (cpu_view(&qs, ql), cpu_view(&ks, kl), cpu_view(&vs, vl)) else {
        return Ok(None);
    };
    let (kv, vv) = (kernels::attention::View { rows, ..kv }, kernels::attention::View { rows, ..vv });
    let bv = match &bias_storage {
        Some((s, l)) => match cpu_view(s, l) {
            Some(view) => Some(view),
            None => return Ok(None),
        },
        None => None,
    };
    let mut out = vec![0f32; b * m * h * d];
    let shape = kernels::attention::Shape { b, h, m, n, d };
    kernels::attention::attend(shape, qv, kv, vv, bv, scale as f32, &mut out);
    Ok(Some(Tensor::from_vec(out, (b, m, h * d), q.device())?))
}

/// `softmax(q kᵀ · scale + bias) v` for contiguous `q` `[b, h, m, d]`, `kt` `[b, h, d, n]`, `v` `[b, h, n, d]`
/// with candle's operations; `bias` broadcasts to `[b, h, m, n]`. Softmax runs in f32.
pub fn attention(q: &Tensor, kt: &Tensor, v: &Tensor, scale: f64, bias: Option<&Tensor>) -> Result<Tensor, ModelError> {
    let mut scores = q.matmul(kt)?;
    if scale != 1.0 {
        scores = (scores * scale)?;
    }
    if let Some(bias) = bias {
        scores = scores.broadcast_add(bias)?;
    }
    let dtype = scores.dtype();
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
    Ok(probs.matmul(v)?)
}

/// Additive mask `[batch, 1, 1, len]` from a 0/1 mask `[batch, len]`: 0 where attended, a large negative where not.
pub fn padding_bias(mask: &Tensor, dtype: DType) -> Result<Tensor, ModelError> {
    let (b, len) = mask.dims2()?;
    let keep = mask.to_dtype(DType::F32)?;
    let bias = ((keep - 1.0)? * f64::from(f32::MAX))?;
    Ok(bias.reshape((b, 1, 1, len))?.to_dtype(dtype)?)
}

/// Additive causal mask `[steps, past + steps]` for `steps` new positions after `past` cached ones.
pub fn causal_bias(
    past: usize,
    steps: usize,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<Tensor, ModelError> {
    let total = past + steps;
    let values: Vec<f32> =
        (0..steps).flat_map(|i| (0..total).map(move |j| if j <= past + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Ok(Tensor::from_vec(values, (steps, total), device)?.to_dtype(dtype)?)
}

/// Rows of an embedding table for `ids` of any shape; the result has the shape of `ids` plus the width.
pub fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor, ModelError> {
    let mut shape = ids.dims().to_vec();
    shape.push(table.dim(D::Minus1)?);
    Ok(table.index_select(&ids.flatten_all()?, 0)?.reshape(shape)?)
}
