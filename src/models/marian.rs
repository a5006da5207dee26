//! MarianMT (Junczys-Dowmunt et al., 2018, "Marian: Fast Neural Machine Translation in C++"), as
//! `transformers`' `MarianMTModel` defines it: a post-LayerNorm encoder-decoder with static sinusoidal positions.
//!
//! Everything comes from the checkpoint's `config.json` (`MarianConfig`, e.g.
//! <https://huggingface.co/Helsinki-NLP/opus-mt-id-en/blob/main/config.json>): widths, layer and head counts,
//! activation, `scale_embedding`, shared or separate embeddings, `decoder_vocab_size`, tied or separate `lm_head`,
//! `final_logits_bias`. Unlike candle-transformers' `marian` it masks padding, batches sentences of different
//! lengths, computes cross-attention keys/values once per batch, and keeps a preallocated self-attention cache.

use candle_core::{DType, Device, Tensor};

use super::cache::DecoderState;
use super::config::MarianConfig;
use super::kernels::Precision;
use super::layers::{attend, causal_bias, embed, padding_bias, split_fused, split_heads, LayerNorm, Linear};
use super::ragged::Ragged;
use super::weights::Weights;
use super::{ModelError, Seq2Seq, Seq2SeqSpec, SourceBatch};

/// `nn.LayerNorm`'s default epsilon, which Marian uses everywhere.
const LAYER_NORM_EPS: f32 = 1e-5;

struct EncoderLayer {
    qkv: Linear,
    out: Linear,
    attn_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    ffn_norm: LayerNorm,
}

struct DecoderLayer {
    qkv: Linear,
    out: Linear,
    self_norm: LayerNorm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    cross_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    ffn_norm: LayerNorm,
}

pub struct Marian {
    spec: Seq2SeqSpec,
    device: Device,
    dtype: DType,
    d_model: usize,
    encoder_heads: usize,
    decoder_heads: usize,
    embed_scale: f64,
    encoder_embed: Tensor,
    decoder_embed: Tensor,
    /// The output projection, with `final_logits_bias` as its bias.
    lm_head: Linear,
    encoder_positions: Tensor,
    decoder_positions: Tensor,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
}

/// Checkpoint names, with or without the `model.` prefix of `MarianMTModel`.
fn name(w: &Weights, key: &str) -> String {
    if w.has_prefix("model.") {
        format!("model.{key}")
    } else {
        key.to_string()
    }
}

fn attention_proj(w: &Weights, prefix: &str, d: usize, names: &[&str]) -> Result<Vec<Linear>, ModelError> {
    names.iter().map(|n| Linear::load(w, &name(w, &format!("{prefix}.{n}")), d, d, true)).collect()
}

impl Marian {
    /// Loads the model; `pack` packs the linear maps for the CPU kernels (f32 or bf16), `None` keeps candle's
    /// matmul (CUDA).
    pub fn load(
        config: &MarianConfig,
        w: &Weights,
        dtype: DType,
        device: &Device,
        pack: Option<Precision>,
    ) -> Result<Self, ModelError> {
        let d = config.d_model;
        let activation = config.activation().map_err(ModelError::Input)?;
        let vocab = config.vocab_size;
        let target_vocab = config.target_vocab_size();
        let shared = name(w, "shared.weight");
        let enc_name = name(w, "encoder.embed_tokens.weight");
        let dec_name = name(w, "decoder.embed_tokens.weight");
        // Which tensors are the embeddings follows `MarianMTModel`'s weight tying.
        let tie = config.tie_word_embeddings;
        let (encoder_embed, decoder_embed) = if config.share_encoder_decoder_embeddings {
            if tie {
                let e = w.get_first(&[&shared, &enc_name], (vocab, d))?;
                (e.clone(), e)
            } else {
                (w.get_first(&[&enc_name, &shared], (vocab, d))?, w.get_first(&[&dec_name, &shared], (vocab, d))?)
            }
        } else {
            (w.get(&enc_name, (vocab, d))?, w.get(&dec_name, (target_vocab, d))?)
        };
        let lm_head = if tie { decoder_embed.clone() } else { w.get("lm_head.weight", (target_vocab, d))? };
        let final_logits_bias = if w.contains("final_logits_bias") {
            w.get("final_logits_bias", (1, target_vocab))?.reshape(target_vocab)?
        } else {
            Tensor::zeros(target_vocab, dtype, device)?
        };

        let encoder = (0..config.encoder_layers)
            .map(|i| {
                let p = format!("encoder.layers.{i}");
                let proj =
                    attention_proj(w, &format!("{p}.self_attn"), d, &["q_proj", "k_proj", "v_proj", "out_proj"])?;
                Ok(EncoderLayer {
                    qkv: Linear::stack(&proj[..3])?.packed_if(pack)?,
                    out: proj[3].clone().packed_if(pack)?,
                    attn_norm: LayerNorm::load(w, &name(w, &format!("{p}.self_attn_layer_norm")), d, LAYER_NORM_EPS)?,
                    fc1: Linear::load(w, &name(w, &format!("{p}.fc1")), d, config.encoder_ffn_dim, true)?
                        .with_activation(activation)
                        .packed_if(pack)?,
                    fc2: Linear::load(w, &name(w, &format!("{p}.fc2")), config.encoder_ffn_dim, d, true)?
                        .packed_if(pack)?,
                    ffn_norm: LayerNorm::load(w, &name(w, &format!("{p}.final_layer_norm")), d, LAYER_NORM_EPS)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let decoder = (0..config.decoder_layers)
            .map(|i| {
                let p = format!("decoder.layers.{i}");
                let own = attention_proj(w, &format!("{p}.self_attn"), d, &["q_proj", "k_proj", "v_proj", "out_proj"])?;
                let cross =
                    attention_proj(w, &format!("{p}.encoder_attn"), d, &["q_proj", "k_proj", "v_proj", "out_proj"])?;
                Ok(DecoderLayer {
                    qkv: Linear::stack(&own[..3])?.packed_if(pack)?,
                    out: own[3].clone().packed_if(pack)?,
                    self_norm: LayerNorm::load(w, &name(w, &format!("{p}.self_attn_layer_norm")), d, LAYER_NORM_EPS)?,
                    cross_q: cross[0].clone().packed_if(pack)?,
                    cross_kv: Linear::stack(&cross[1..3])?.packed_if(pack)?,
                    cross_out: cross[3].clone().packed_if(pack)?,
                    cross_norm: LayerNorm::load(
                        w,
                        &name(w, &format!("{p}.encoder_attn_layer_norm")),
                        d,
                        LAYER_NORM_EPS,
                    )?,
                    fc1: Linear::load(w, &name(w, &format!("{p}.fc1")), d, config.decoder_ffn_dim, true)?
                        .with_activation(activation)
                        .packed_if(pack)?,
                    fc2: Linear::load(w, &name(w, &format!("{p}.fc2")), config.decoder_ffn_dim, d, true)?
                        .packed_if(pack)?,
                    ffn_norm: LayerNorm::load(w, &name(w, &format!("{p}.final_layer_norm")), d, LAYER_NORM_EPS)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;

        // The sinusoids are static, but a checkpoint that stores them is read, as the reference reads it.
        let max_positions = config.max_position_embeddings;
        let computed = sinusoidal_positions(max_positions, d)?.to_dtype(dtype)?.to_device(device)?;
        let stored = |side: &str| {
            let key = name(w, &format!("{side}.embed_positions.weight"));
            if w.contains(&key) {
                w.get(&key, (max_positions, d))
            } else {
                Ok(computed.clone())
            }
        };
        let encoder_positions = stored("encoder")?;
        let decoder_positions = stored("decoder")?;
        Ok(Self {
            spec: Seq2SeqSpec {
                vocab_size: target_vocab,
                pad_token_id: config.pad_token_id,
                decoder_start_token_id: config.decoder_start_token_id,
                max_source_tokens: Some(max_positions),
                // The start token takes position 0.
                max_target_tokens: Some(max_positions - 1),
                trained_source_tokens: None,
            },
            device: device.clone(),
            dtype,
            d_model: d,
            encoder_heads: config.encoder_attention_heads,
            decoder_heads: config.decoder_attention_heads,
            embed_scale: if config.scale_embedding { (d as f64).sqrt() } else { 1.0 },
            encoder_embed,
            decoder_embed,
            lm_head: Linear::new(lm_head, Some(final_logits_bias)).packed_if(pack)?,
            encoder_positions,
            decoder_positions,
            encoder,
            decoder,
        })
    }

    fn embed_tokens(
        &self,
        table: &Tensor,
        positions: &Tensor,
        ids: &Tensor,
        offset: usize,
    ) -> Result<Tensor, ModelError> {
        let len = ids.dim(1)?;
        let positions = positions.narrow(0, offset, len)?;
        let x = embed(table, ids)?;
        let x = if self.embed_scale != 1.0 { (x * self.embed_scale)? } else { x };
        Ok(x.broadcast_add(&positions)?)
    }

    fn ffn(&self, fc1: &Linear, fc2: &Linear, x: &Tensor) -> Result<Tensor, ModelError> {
        // fc1 applies the activation.
        fc2.forward(&fc1.forward(x)?)
    }

    /// The encoder's layers on embedded tokens `x`, whose last dimension (`dim`) is the width: `[batch, len,
    /// width]` with `attend` on split heads, or the real tokens `[tokens, width]` of a [`Ragged`] batch. `attend`
    /// takes `q`, `k`, `v` with the heads merged and returns the heads merged.
    fn encoder_stack(
        &self,
        mut x: Tensor,
        dim: usize,
        attend: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor, ModelError>,
    ) -> Result<Tensor, ModelError> {
        let d = self.d_model;
        for layer in &self.encoder {
            let qkv = layer.qkv.forward(&x)?;
            let a = attend(&qkv.narrow(dim, 0, d)?, &qkv.narrow(dim, d, d)?, &qkv.narrow(dim, 2 * d, d)?)?;
            let a = layer.out.forward(&a)?;
            x = layer.attn_norm.forward(&(x + a)?)?;
            let h = self.ffn(&layer.fc1, &layer.fc2, &x)?;
            x = layer.ffn_norm.forward(&(x + h)?)?;
        }
        Ok(x)
    }
}

impl Seq2Seq for Marian {
    fn spec(&self) -> &Seq2SeqSpec {
        &self.spec
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, batch: &SourceBatch) -> Result<Tensor, ModelError> {
        let (_, len) = batch.ids.dims2()?;
        let max = self.encoder_positions.dim(0)?;
        if len > max {
            return Err(ModelError::Input(format!(
                "source of {len} tokens is longer than the model's {max} positions"
            )));
        }
        let scale = 1.0 / ((self.d_model / self.encoder_heads) as f64).sqrt();
        let heads = self.encoder_heads;
        if let Some(ragged) = Ragged::of(batch, self.dtype)? {
            let x = embed(&self.encoder_embed, &ragged.ids(&batch.ids)?)?;
            let x = if self.embed_scale != 1.0 { (x * self.embed_scale)? } else { x };
            let x = (x + self.encoder_positions.index_select(ragged.positions(), 0)?)?;
            let attend = |q: &Tensor, k: &Tensor, v: &Tensor| ragged.attend((q, k, v), heads, scale, None);
            return ragged.unpad(&self.encoder_stack(x, 1, attend)?);
        }
        let mask = padding_bias(&batch.mask, self.dtype)?;
        let attend = |q: &Tensor, k: &Tensor, v: &Tensor| {
            let [q, k, v] = [q, k, v].map(|t| split_heads(t, heads));
            attend(&q?, &k?, &v?, scale, Some(&mask))
        };
        let x = self.embed_tokens(&self.encoder_embed, &self.encoder_positions, &batch.ids, 0)?;
        self.encoder_stack(x, 2, attend)
    }

    fn start_decoding(
        &self,
        encoded: &Tensor,
        batch: &SourceBatch,
        group: usize,
        capacity: usize,
    ) -> Result<DecoderState, ModelError> {
        let d = self.d_model;
        let ragged = Ragged::of(batch, self.dtype)?;
        let rows = ragged.as_ref().map(|r| r.pack(encoded)).transpose()?;
        let cross = self
            .decoder
            .iter()
            .map(|layer| {
                let kv = match (&ragged, &rows) {
                    (Some(r), Some(rows)) => r.unpad(&layer.cross_kv.forward(rows)?)?,
                    _ => layer.cross_kv.forward(encoded)?,
                };
                Ok((split_fused(&kv, 0, 2, self.decoder_heads)?, split_fused(&kv, 1, 2, self.decoder_heads)?))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let mask = padding_bias(&batch.mask, self.dtype)?;
        DecoderState::new(cross, mask, group, (self.decoder_heads, d / self.decoder_heads), capacity)
    }

    fn decode_hidden(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor, ModelError> {
        let (rows, steps) = tokens.dims2()?;
        let (x, _) = self.run_decoder(state, tokens, None)?;
        Ok(x.reshape((rows * steps, self.d_model))?)
    }

    fn head(&self) -> &Linear {
        &self.lm_head
    }

    fn cross_attention(
        &self,
        batch: &SourceBatch,
        targets: &Tensor,
        layer: Option<usize>,
    ) -> Result<Option<Tensor>, ModelError> {
        let layers = self.decoder.len();
        // Garg et al. (2019), "Jointly Learning to Align and Translate with Transformer Models": the penultimate
        // layer's cross-attention aligns best in a model trained without alignment supervision (opus-mt).
        let layer = layer.unwrap_or(layers.saturating_sub(2));
        if layer >= layers {
            return Err(ModelError::Input(format!("decoder layer {layer} of a model with {layers}")));
        }
        let steps = targets.dim(1)?;
        let encoded = self.encode(batch)?;
        let mut state = self.start_decoding(&encoded, batch, 1, steps)?;
        let (_, weights) = self.run_decoder(&mut state, targets, Some(layer))?;
        Ok(weights)
    }
}

impl Marian {
    /// The decoder stack over `tokens`, appending to `state`: the last layer's hidden states `[rows, steps,
    /// d_model]`; with `probe`, only up to that layer, and its cross-attention weights averaged over heads
    /// `[rows, steps, source_len]` (f32, computed apart from the fused attention, which returns no weights).
    fn run_decoder(
        &self,
        state: &mut DecoderState,
        tokens: &Tensor,
        probe: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>), ModelError> {
        let (rows, steps) = tokens.dims2()?;
        let past = state.len;
        let max = self.decoder_positions.dim(0)?;
        if past + steps > max {
            let total = past + steps;
            return Err(ModelError::Input(format!(
                "target of {total} tokens is longer than the model's {max} positions"
            )));
        }
        state.reserve(steps)?;
        let d = self.d_model;
        let heads = self.decoder_heads;
        let scale = 1.0 / ((d / heads) as f64).sqrt();
        let items = state.items();
        let group = state.group;
        let causal = if steps > 1 { Some(causal_bias(past, steps, self.dtype, &self.device)?) } else { None };
        let mut x = self.embed_tokens(&self.decoder_embed, &self.decoder_positions, tokens, past)?;
        for (i, layer) in self.decoder.iter().enumerate() {
            let qkv = layer.qkv.forward(&x)?;
            let [q, k, v] = [0, 1, 2].map(|part| split_fused(&qkv, part, 3, heads));
            let a = layer.out.forward(&state.attend_self(i, &q?, (&k?, &v?), scale, causal.as_ref())?)?;
            x = layer.self_norm.forward(&(x + a)?)?;

            // The `group` rows of an item attend to its encoder states together: [items, heads, group*steps, hd].
            let q = layer.cross_q.forward(&x)?.reshape((items, group * steps, d))?;
            let q = split_heads(&q, heads)?;
            let cache = &state.layers[i];
            if probe == Some(i) {
                let weights = cross_weights(&q, &cache.cross_k, scale, &state.cross_mask)?;
                state.len += steps;
                return Ok((x, Some(weights.reshape((rows, steps, weights.dim(2)?))?)));
            }
            let c = attend(&q, &cache.cross_k, &cache.cross_v, scale, Some(&state.cross_mask))?;
            let c = c.reshape((rows, steps, d))?;
            x = layer.cross_norm.forward(&(x + layer.cross_out.forward(&c)?)?)?;

            let h = self.ffn(&layer.fc1, &layer.fc2, &x)?;
            x = layer.ffn_norm.forward(&(x + h)?)?;
        }
        state.len += steps;
        Ok((x, None))
    }
}

/// `softmax(q kᵀ · scale + mask)` averaged over heads, in f32: `q` `[items, heads, m, hd]`, `k` `[items, heads,
/// n, hd]`, `mask` `[items, 1, 1, n]` → `[items, m, n]`.
fn cross_weights(q: &Tensor, k: &Tensor, scale: f64, mask: &Tensor) -> Result<Tensor, ModelError> {
    let q = q.to_dtype(DType::F32)?.contiguous()?;
    let k = k.to_dtype(DType::F32)?.t()?.contiguous()?;
    let scores = (q.matmul(&k)? * scale)?.broadcast_add(&mask.to_dtype(DType::F32)?)?;
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(weights.mean(1)?)
}

/// `MarianSinusoidalPositionalEmbedding`: sines of `pos / 10000^(2⌊j/2⌋/dim)` for even `j` in the first half,
/// cosines for odd `j` in the second, computed in f64 as numpy does and rounded to f32.
pub fn sinusoidal_positions(n_pos: usize, dim: usize) -> Result<Tensor, ModelError> {
    let sentinel = dim.div_ceil(2);
    let mut table = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        let row = &mut table[pos * dim..(pos + 1) * dim];
        for j in 0..dim {
            let angle = pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
            if j % 2 == 0 {
                row[j / 2] = angle.sin() as f32;
            } else {
                row[sentinel + j / 2] = angle.cos() as f32;
            }
        }
    }
    Ok(Tensor::from_vec(table, (n_pos, dim), &Device::Cpu)?)
}
