//! T5 (Raffel et al., 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
//! Transformer"), as `transformers`' `T5ForConditionalGeneration` defines it: pre-RMS-norm blocks, no absolute
//! positions but a learned relative position bias (bucketed, computed by the first layer of each stack and shared
//! by the others), unscaled attention.
//!
//! From `config.json` alone (e.g. <https://huggingface.co/google/flan-t5-base/blob/main/config.json>): T5 v1.0
//! (`feed_forward_proj: relu`, output embedding tied to the input one and the decoder output rescaled by
//! `d_model^-0.5`) and v1.1 / FLAN-T5 / mT5 (`gated-gelu`, separate `lm_head`, no rescaling), `d_kv × num_heads`
//! independent of `d_model`, any number of encoder and decoder layers.

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::cache::DecoderState;
use super::config::Activation;
use super::kernels::Precision;
use super::layers::{attend, embed, padding_bias, split_fused, split_heads, Linear, RmsNorm};
use super::ragged::Ragged;
use super::weights::Weights;
use super::{ModelError, Seq2Seq, Seq2SeqSpec, SourceBatch};

/// `T5Config`, with the defaults `transformers` uses for absent keys.
#[derive(Debug, Clone, Deserialize)]
pub struct T5Config {
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "defaults::d_model")]
    pub d_model: usize,
    #[serde(default = "defaults::d_kv")]
    pub d_kv: usize,
    #[serde(default = "defaults::d_ff")]
    pub d_ff: usize,
    #[serde(default = "defaults::num_layers")]
    pub num_layers: usize,
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    #[serde(default = "defaults::num_heads")]
    pub num_heads: usize,
    #[serde(default = "defaults::buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "defaults::max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "defaults::eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "defaults::feed_forward_proj")]
    pub feed_forward_proj: String,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Written by `transformers` 5; when absent, a tied model rescales its decoder output and an untied one
    /// does not.
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    /// The length T5 was trained on; inputs may be longer (relative positions), quality drops beyond it.
    #[serde(default)]
    pub n_positions: Option<usize>,
}

mod defaults {
    pub fn vocab_size() -> usize {
        32128
    }
    pub fn d_model() -> usize {
        512
    }
    pub fn d_kv() -> usize {
        64
    }
    pub fn d_ff() -> usize {
        2048
    }
    pub fn num_layers() -> usize {
        6
    }
    pub fn num_heads() -> usize {
        8
    }
    pub fn buckets() -> usize {
        32
    }
    pub fn max_distance() -> usize {
        128
    }
    pub fn eps() -> f64 {
        1e-6
    }
    pub fn feed_forward_proj() -> String {
        "relu".into()
    }
}

impl T5Config {
    /// `(gated, activation)` from `feed_forward_proj` (`relu`, `gated-gelu`, `gated-silu`, ...), as `T5Config`
    /// derives `is_gated_act` and `dense_act_fn` (`gated-gelu` uses the tanh approximation, `gelu_new`).
    pub fn feed_forward(&self) -> Result<(bool, Activation), String> {
        let parts: Vec<&str> = self.feed_forward_proj.split('-').collect();
        let bad = || format!("feed_forward_proj {:?} is not supported", self.feed_forward_proj);
        match parts.as_slice() {
            ["gated", "gelu"] => Ok((true, Activation::GeluTanh)),
            ["gated", act] => Activation::parse(act).map(|a| (true, a)).ok_or_else(bad),
            [act] => Activation::parse(act).map(|a| (false, a)).ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.feed_forward()?;
        if self.num_heads == 0 || self.d_kv == 0 || self.d_model == 0 || self.relative_attention_num_buckets < 2 {
            return Err("num_heads, d_kv, d_model must be positive and there must be at least 2 buckets".into());
        }
        Ok(())
    }
}

/// T5's relative position bucket (`T5Attention._relative_position_bucket`), with the reference's float32
/// arithmetic for the logarithmic buckets. `relative` is `key - query`.
pub fn relative_position_bucket(relative: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> u32 {
    let mut buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            bucket += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if distance < max_exact {
        return (bucket + distance) as u32;
    }
    let log_ratio = (distance as f32 / max_exact as f32).ln();
    let scale = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + ((log_ratio / scale) * (buckets - max_exact) as f32) as i64;
    (bucket + large.min(buckets - 1)) as u32
}

struct Attention {
    q: Linear,
    kv: Linear,
    o: Linear,
}

impl Attention {
    fn load(w: &Weights, prefix: &str, c: &T5Config, pack: Option<Precision>) -> Result<Self, ModelError> {
        let inner = c.num_heads * c.d_kv;
        let get = |n: &str| Linear::load(w, &format!("{prefix}.{n}"), c.d_model, inner, false);
        Ok(Self {
            q: get("q")?.packed_if(pack)?,
            kv: Linear::stack(&[get("k")?, get("v")?])?.packed_if(pack)?,
            o: Linear::load(w, &format!("{prefix}.o"), inner, c.d_model, false)?.packed_if(pack)?,
        })
    }
}

enum FeedForward {
    Dense { wi: Linear, wo: Linear },
    Gated { wi_0: Linear, wi_1: Linear, wo: Linear },
}

struct Block {
    self_attn: Attention,
    self_norm: RmsNorm,
    /// Decoder blocks only.
    cross: Option<(Attention, RmsNorm)>,
    ff: FeedForward,
    ff_norm: RmsNorm,
}

pub struct T5 {
    spec: Seq2SeqSpec,
    device: Device,
    dtype: DType,
    heads: usize,
    d_kv: usize,
    num_buckets: usize,
    max_distance: usize,
    embed: Tensor,
    lm_head: Linear,
    output_scale: Option<f64>,
    encoder: Vec<Block>,
    encoder_norm: RmsNorm,
    encoder_bias: Tensor,
    decoder: Vec<Block>,
    decoder_norm: RmsNorm,
    decoder_bias: Tensor,
}

impl T5 {
    /// Loads the model; `pack` packs the linear maps for the CPU kernels (f32 or bf16), `None` keeps candle's
    /// matmul (CUDA).
    pub fn load(
        c: &T5Config,
        w: &Weights,
        dtype: DType,
        device: &Device,
        pack: Option<Precision>,
    ) -> Result<Self, ModelError> {
        let (gated, activation) = c.feed_forward().map_err(ModelError::Input)?;
        let eps = c.layer_norm_epsilon as f32;
        let d = c.d_model;
        let embed = w.get_first(&["shared.weight", "encoder.embed_tokens.weight"], (c.vocab_size, d))?;
        // Config without tie_word_embeddings means tied (v1.0); a tied model rescales the decoder output.
        let tie = c.tie_word_embeddings.unwrap_or(true);
        let lm_head = if !tie && w.contains("lm_head.weight") {
            w.get("lm_head.weight", (c.vocab_size, d))?
        } else {
            embed.clone()
        };
        let block = |stack: &str, i: usize, decoder: bool| -> Result<Block, ModelError> {
            let p = format!("{stack}.block.{i}.layer");
            let ff_layer = if decoder { 2 } else { 1 };
            let ffp = format!("{p}.{ff_layer}.DenseReluDense");
            let ff = if gated {
                FeedForward::Gated {
                    wi_0: Linear::load(w, &format!("{ffp}.wi_0"), d, c.d_ff, false)?
                        .with_activation(activation)
                        .packed_if(pack)?,
                    wi_1: Linear::load(w, &format!("{ffp}.wi_1"), d, c.d_ff, false)?.packed_if(pack)?,
                    wo: Linear::load(w, &format!("{ffp}.wo"), c.d_ff, d, false)?.packed_if(pack)?,
                }
            } else {
                FeedForward::Dense {
                    wi: Linear::load(w, &format!("{ffp}.wi"), d, c.d_ff, false)?
                        .with_activation(activation)
                        .packed_if(pack)?,
                    wo: Linear::load(w, &format!("{ffp}.wo"), c.d_ff, d, false)?.packed_if(pack)?,
                }
            };
            let cross = if decoder {
                Some((
                    Attention::load(w, &format!("{p}.1.EncDecAttention"), c, pack)?,
                    RmsNorm::load(w, &format!("{p}.1.layer_norm.weight"), d, eps)?,
                ))
            } else {
                None
            };
            Ok(Block {
                self_attn: Attention::load(w, &format!("{p}.0.SelfAttention"), c, pack)?,
                self_norm: RmsNorm::load(w, &format!("{p}.0.layer_norm.weight"), d, eps)?,
                cross,
                ff,
                ff_norm: RmsNorm::load(w, &format!("{p}.{ff_layer}.layer_norm.weight"), d, eps)?,
            })
        };
        let decoder_layers = c.num_decoder_layers.unwrap_or(c.num_layers);
        let bias_shape = (c.relative_attention_num_buckets, c.num_heads);
        let pad = c.pad_token_id.unwrap_or(0);
        Ok(Self {
            spec: Seq2SeqSpec {
                vocab_size: c.vocab_size,
                pad_token_id: pad,
                decoder_start_token_id: c.decoder_start_token_id.unwrap_or(pad),
                // Relative positions put no hard limit on lengths.
                max_source_tokens: None,
                max_target_tokens: None,
                trained_source_tokens: Some(c.n_positions.unwrap_or(512)),
            },
            device: device.clone(),
            dtype,
            heads: c.num_heads,
            d_kv: c.d_kv,
            num_buckets: c.relative_attention_num_buckets,
            max_distance: c.relative_attention_max_distance,
            lm_head: Linear::new(lm_head, None).packed_if(pack)?,
            output_scale: c.scale_decoder_outputs.unwrap_or(tie).then(|| (d as f64).powf(-0.5)),
            encoder: (0..c.num_layers).map(|i| block("encoder", i, false)).collect::<Result<_, _>>()?,
            encoder_norm: RmsNorm::load(w, "encoder.final_layer_norm.weight", d, eps)?,
            encoder_bias: w.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", bias_shape)?,
            decoder: (0..decoder_layers).map(|i| block("decoder", i, true)).collect::<Result<_, _>>()?,
            decoder_norm: RmsNorm::load(w, "decoder.final_layer_norm.weight", d, eps)?,
            decoder_bias: w.get("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", bias_shape)?,
            embed,
        })
    }

    /// Position bias `[1, heads, queries, keys]` for query positions `past..past + queries`.
    fn position_bias(
        &self,
        table: &Tensor,
        queries: usize,
        past: usize,
        keys: usize,
        bidirectional: bool,
    ) -> Result<Tensor, ModelError> {
        let buckets: Vec<u32> = (0..queries)
            .flat_map(|q| {
                (0..keys).map(move |k| {
                    relative_position_bucket(
                        k as i64 - (q + past) as i64,
                        bidirectional,
                        self.num_buckets,
                        self.max_distance,
                    )
                })
            })
            .collect();
        let index = Tensor::from_vec(buckets, queries * keys, &self.device)?;
        let values = table.index_select(&index, 0)?.reshape((queries, keys, self.heads))?;
        Ok(values.permute((2, 0, 1))?.unsqueeze(0)?.contiguous()?)
    }

    fn feed_forward(&self, ff: &FeedForward, x: &Tensor) -> Result<Tensor, ModelError> {
        match ff {
            // `wi` and `wi_0` apply the activation.
            FeedForward::Dense { wi, wo } => wo.forward(&wi.forward(x)?),
            FeedForward::Gated { wi_0, wi_1, wo } => {
                let gate = wi_0.forward(x)?;
                wo.forward(&(gate * wi_1.forward(x)?)?)
            }
        }
    }

    fn inner(&self) -> usize {
        self.heads * self.d_kv
    }

    /// The encoder's blocks and final norm on embedded tokens `x`, whose last dimension (`dim`) is the width:
    /// `[batch, len, width]` with `attend` on split heads, or the real tokens `[tokens, width]` of a [`Ragged`]
    /// batch. `attend` takes `q`, `k`, `v` with the heads merged and returns the heads merged.
    fn encoder_stack(
        &self,
        mut x: Tensor,
        dim: usize,
        attend: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor, ModelError>,
    ) -> Result<Tensor, ModelError> {
        let inner = self.inner();
        for block in &self.encoder {
            let h = block.self_norm.forward(&x)?;
            let q = block.self_attn.q.forward(&h)?;
            let kv = block.self_attn.kv.forward(&h)?;
            let a = attend(&q, &kv.narrow(dim, 0, inner)?, &kv.narrow(dim, inner, inner)?)?;
            x = (x + block.self_attn.o.forward(&a)?)?;
            let h = block.ff_norm.forward(&x)?;
            x = (&x + self.feed_forward(&block.ff, &h)?)?;
        }
        self.encoder_norm.forward(&x)
    }
}

impl Seq2Seq for T5 {
    fn spec(&self) -> &Seq2SeqSpec {
        &self.spec
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, batch: &SourceBatch) -> Result<Tensor, ModelError> {
        let (_, len) = batch.ids.dims2()?;
        let position = self.position_bias(&self.encoder_bias, len, 0, len, true)?;
        let heads = self.heads;
        if let Some(ragged) = Ragged::of(batch, self.dtype)? {
            let x = embed(&self.embed, &ragged.ids(&batch.ids)?)?;
            let attend = |q: &Tensor, k: &Tensor, v: &Tensor| ragged.attend((q, k, v), heads, 1.0, Some(&position));
            return ragged.unpad(&self.encoder_stack(x, 1, attend)?);
        }
        let bias = position.broadcast_add(&padding_bias(&batch.mask, self.dtype)?)?;
        let attend = |q: &Tensor, k: &Tensor, v: &Tensor| {
            let [q, k, v] = [q, k, v].map(|t| split_heads(t, heads));
            attend(&q?, &k?, &v?, 1.0, Some(&bias))
        };
        self.encoder_stack(embed(&self.embed, &batch.ids)?, 2, attend)
    }

    fn start_decoding(
        &self,
        encoded: &Tensor,
        batch: &SourceBatch,
        group: usize,
        capacity: usize,
    ) -> Result<DecoderState, ModelError> {
        let ragged = Ragged::of(batch, self.dtype)?;
        let rows = ragged.as_ref().map(|r| r.pack(encoded)).transpose()?;
        let cross = self
            .decoder
            .iter()
            .map(|block| {
                let (attn, _) = block.cross.as_ref().expect("decoder blocks have cross attention");
                let kv = match (&ragged, &rows) {
                    (Some(r), Some(rows)) => r.unpad(&attn.kv.forward(rows)?)?,
                    _ => attn.kv.forward(encoded)?,
                };
                Ok((split_fused(&kv, 0, 2, self.heads)?, split_fused(&kv, 1, 2, self.heads)?))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let mask = padding_bias(&batch.mask, self.dtype)?;
        DecoderState::new(cross, mask, group, (self.heads, self.d_kv), capacity)
    }

    fn decode_hidden(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor, ModelError> {
        let (rows, steps) = tokens.dims2()?;
        let past = state.len;
        state.reserve(steps)?;
        let inner = self.inner();
        let items = state.items();
        let group = state.group;
        // Relative position bias for the new positions; a future key gets a large negative (causal mask).
        let mut bias = self.position_bias(&self.decoder_bias, steps, past, past + steps, false)?;
        if steps > 1 {
            bias = bias.broadcast_add(&super::layers::causal_bias(past, steps, self.dtype, &self.device)?)?;
        }
        let mut x = embed(&self.embed, tokens)?;
        for (i, block) in self.decoder.iter().enumerate() {
            let h = block.self_norm.forward(&x)?;
            let q = split_heads(&block.self_attn.q.forward(&h)?, self.heads)?;
            let kv = block.self_attn.kv.forward(&h)?;
            let (k, v) = (split_fused(&kv, 0, 2, self.heads)?, split_fused(&kv, 1, 2, self.heads)?);
            let a = state.attend_self(i, &q, (&k, &v), 1.0, Some(&bias))?;
            x = (x + block.self_attn.o.forward(&a)?)?;

            let (cross, cross_norm) = block.cross.as_ref().expect("decoder blocks have cross attention");
            let h = cross_norm.forward(&x)?;
            let q = cross.q.forward(&h)?.reshape((items, group * steps, inner))?;
            let q = split_heads(&q, self.heads)?;
            let cache = &state.layers[i];
            let c = attend(&q, &cache.cross_k, &cache.cross_v, 1.0, Some(&state.cross_mask))?;
            let c = c.reshape((rows, steps, inner))?;
            x = (x + cross.o.forward(&c)?)?;

            let h = block.ff_norm.forward(&x)?;
            x = (&x + self.feed_forward(&block.ff, &h)?)?;
        }
        state.len += steps;
        let mut h = self.decoder_norm.forward(&x)?.reshape((rows * steps, x.dim(2)?))?;
        if let Some(scale) = self.output_scale {
            h = (h * scale)?;
        }
        Ok(h)
    }

    fn head(&self) -> &Linear {
        &self.lm_head
    }
}

#[cfg(test)]
mod tests {
    use super::relative_position_bucket as bucket;

    #[test]
    fn buckets_match_the_reference_at_the_edges() {
        // Bidirectional, 32 buckets, max distance 128 (T5 defaults): exact within 8, logarithmic to 128.
        assert_eq!(bucket(0, true, 32, 128), 0);
        assert_eq!(bucket(-7, true, 32, 128), 7);
        assert_eq!(bucket(7, true, 32, 128), 23);
        assert_eq!(bucket(-8, true, 32, 128), 8);
        assert_eq!(bucket(-1000, true, 32, 128), 15);
        assert_eq!(bucket(1000, true, 32, 128), 31);
        // Unidirectional (decoder): future keys share bucket 0.
        assert_eq!(bucket(5, false, 32, 128), 0);
        assert_eq!(bucket(-15, false, 32, 128), 15);
        assert_eq!(bucket(-16, false, 32, 128), 16);
        assert_eq!(bucket(-5000, false, 32, 128), 31);
    }
}
