//! Teacher-forced cross-attention for word alignment: (source, target) token sequences in, for each target
//! token a distribution over its source's tokens out.

use candle_core::Tensor;

use crate::models::{ModelError, Seq2Seq, SourceBatch};

/// One pair's attention: a row per target token, each as long as the source (token ids, `</s>` included).
pub type AttentionRows = Vec<Vec<f32>>;

/// For each `(source, target)` pair (target: the translation's ids as the decoder emits them, `</s>` last), the
/// cross-attention of decoder layer `layer` (`None`: the model's default) averaged over heads, where row `t` is
/// the attention while the decoder predicts `target[t]` from the start token and `target[..t]`. The pairs run as
/// one padded batch. `Ok(None)` when the model does not align.
pub fn cross_attention(
    model: &dyn Seq2Seq,
    pairs: &[(Vec<u32>, Vec<u32>)],
    layer: Option<usize>,
) -> Result<Option<Vec<AttentionRows>>, ModelError> {
    if pairs.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let spec = model.spec();
    let sources: Vec<Vec<u32>> = pairs.iter().map(|(s, _)| s.clone()).collect();
    let batch = SourceBatch::new(&sources, spec.pad_token_id, model.device())?;
    let steps = pairs.iter().map(|(_, t)| t.len()).max().unwrap_or(0).max(1);
    let mut inputs = Vec::with_capacity(pairs.len() * steps);
    for (_, target) in pairs {
        // Shifted right, as in training: the start token, then the target without its last token.
        inputs.push(spec.decoder_start_token_id);
        inputs.extend(&target[..target.len().saturating_sub(1)]);
        inputs.extend(std::iter::repeat_n(spec.pad_token_id, steps - target.len().max(1)));
    }
    let targets = Tensor::from_vec(inputs, (pairs.len(), steps), model.device())?;
    let Some(weights) = model.cross_attention(&batch, &targets, layer)? else { return Ok(None) };
    let weights: Vec<Vec<Vec<f32>>> = weights.to_vec3()?;
    Ok(Some(
        weights
            .into_iter()
            .zip(pairs)
            .map(|(rows, (source, target))| {
                rows.into_iter()
                    .take(target.len())
                    .map(|mut row| {
                        row.truncate(source.len());
                        row
                    })
                    .collect()
            })
            .collect(),
    ))
}
