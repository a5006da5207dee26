//! Building blocks shared by the architectures: linear maps, norms, activations and masked attention.

use candle_core::{DType, Tensor, D};

use super::config::Activation;
use super::weights::Weights;
use super::ModelError;

/// `y = x Wᵀ + b` with `W` `[out, in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `bias`).
    pub fn load(w: &Weights, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self, ModelError> {
        let weight = w.get(&format!("{prefix}.weight"), (out_dim, in_dim))?;
        let bias = if bias { Some(w.get(&format!("{prefix}.bias"), out_dim)?) } else { None };
        Ok(Self { weight, bias })
    }

    /// Several projections of the same input stacked into one (e.g. q, k, v): one matmul instead of three.
    pub fn stack(parts: &[Linear]) -> Result<Self, ModelError> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.weight).collect();
        let weight = Tensor::cat(&weights, 0)?;
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            let biases: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&biases, 0)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let w = self.weight.t()?;
        let y = match x.dims() {
            [b, m, k] => x.reshape((b * m, *k))?.matmul(&w)?.reshape((*b, *m, self.out_dim()))?,
            _ => x.matmul(&w)?,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
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
    pub fn apply(self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(match self {
            Activation::Relu => x.relu()?,
            Activation::Gelu => x.gelu_erf()?,
            Activation::GeluTanh => x.gelu()?,
            Activation::Swish => x.silu()?,
        })
    }
}

/// Splits `[batch, len, heads * head_dim]` into `[batch, heads, len, head_dim]`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor, ModelError> {
    let (b, len, d) = x.dims3()?;
    Ok(x.reshape((b, len, heads, d / heads))?.transpose(1, 2)?.contiguous()?)
}

/// Joins `[batch, heads, len, head_dim]` back into `[batch, len, heads * head_dim]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor, ModelError> {
    let (b, heads, len, head_dim) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, len, heads * head_dim))?)
}

/// `softmax(q kᵀ · scale + bias) v` for `q` `[b, h, m, d]`, `k`/`v` `[b, h, n, d]`; `bias` broadcasts to
/// `[b, h, m, n]` (padding masks, causal masks, T5's position bias). Softmax runs in f32.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, bias: Option<&Tensor>) -> Result<Tensor, ModelError> {
    let mut scores = q.matmul(&k.t()?)?;
    if scale != 1.0 {
        scores = (scores * scale)?;
    }
    if let Some(bias) = bias {
        scores = scores.broadcast_add(bias)?;
    }
    let dtype = scores.dtype();
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
    Ok(probs.matmul(&v.contiguous()?)?)
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
