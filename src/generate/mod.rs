//! Decoding for any [`Seq2Seq`] model: the search options, their resolution against a model's generation config,
//! and the entry point that runs greedy or beam search over a batch of source sequences.

pub mod attention;
mod processors;
mod search;

use crate::models::config::EarlyStopping;
use crate::models::{GenerationConfig, ModelError, Seq2Seq, Seq2SeqSpec, SourceBatch};

pub use processors::LogitsProcessor;

/// Settings a caller may override on top of the model's `generation_config.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Overrides {
    pub num_beams: Option<usize>,
    pub max_new_tokens: Option<usize>,
    pub max_length: Option<usize>,
    pub min_length: Option<usize>,
    pub min_new_tokens: Option<usize>,
    pub length_penalty: Option<f32>,
    pub early_stopping: Option<EarlyStoppingOption>,
    pub no_repeat_ngram_size: Option<usize>,
    /// How many hypotheses to return per input, best first (at most `num_beams`); absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_return_sequences: Option<usize>,
}

/// `early_stopping` as a serialisable option (`true`, `false`, `"never"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyStoppingOption {
    True,
    False,
    Never,
}

impl From<EarlyStoppingOption> for EarlyStopping {
    fn from(o: EarlyStoppingOption) -> Self {
        match o {
            EarlyStoppingOption::True => EarlyStopping::Always,
            EarlyStoppingOption::False => EarlyStopping::Heuristic,
            EarlyStoppingOption::Never => EarlyStopping::Never,
        }
    }
}

impl std::str::FromStr for EarlyStoppingOption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "true" => Ok(Self::True),
            "false" => Ok(Self::False),
            "never" => Ok(Self::Never),
            _ => Err(format!("early stopping must be true, false or never, not {s:?}")),
        }
    }
}

/// Fully resolved search settings, in the reference's terms: `max_length` counts the decoder start token.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchOptions {
    pub num_beams: usize,
    pub max_length: usize,
    pub min_length: usize,
    pub min_new_tokens: usize,
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    pub no_repeat_ngram_size: usize,
    pub bad_words_ids: Vec<Vec<u32>>,
    pub forced_bos_token_id: Option<u32>,
    pub forced_eos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: u32,
    pub decoder_start_token_id: u32,
    pub renormalize_logits: bool,
    /// Hypotheses returned per input, best first. Left out of the serialised form when 1, so that the cache keys
    /// of single-answer searches stay what they were before n-best existed.
    #[serde(skip_serializing_if = "is_one")]
    pub num_return_sequences: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// The number of new tokens when neither the model's generation config nor the request sets a length: the
/// reference's default `max_length` of 20, counted (since transformers 5.24) in new tokens.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;

/// The widest beam search a request may ask for: a search holds `batch × beams` decoder rows, so an unbounded
/// width would let one request exhaust memory (schemathesis found `num_beams: 13715021128` aborting the server).
pub const MAX_BEAMS: usize = 32;

/// The most new tokens a request may ask of a model without a position limit of its own (T5's relative
/// positions have none; its KV cache still grows with the length).
pub const MAX_UNBOUNDED_NEW_TOKENS: usize = 4096;

#[cfg(test)]
impl SearchOptions {
    /// Options for unit tests on a 10-token vocabulary (eos 0, pad and start 9): `num_beams` and `max_length`, the
    /// rest off.
    pub(crate) fn for_tests(num_beams: usize, max_length: usize) -> Self {
        SearchOptions {
            num_beams,
            max_length,
            min_length: 0,
            min_new_tokens: 0,
            length_penalty: 1.0,
            early_stopping: crate::models::config::EarlyStopping::Heuristic,
            no_repeat_ngram_size: 0,
            bad_words_ids: vec![],
            forced_bos_token_id: None,
            forced_eos_token_id: None,
            eos_token_ids: vec![0],
            pad_token_id: 9,
            decoder_start_token_id: 9,
            renormalize_logits: false,
            num_return_sequences: 1,
        }
    }
}

impl SearchOptions {
    /// The model's defaults with `overrides` applied, as `generate(**kwargs)` combines them. Explicit requests the
    /// model cannot satisfy are errors; a default beyond the model's positions is capped to them.
    pub fn resolve(config: &GenerationConfig, spec: &Seq2SeqSpec, overrides: &Overrides) -> Result<Self, ModelError> {
        let num_beams = overrides.num_beams.unwrap_or(config.num_beams);
        if num_beams == 0 {
            return Err(ModelError::Input("the number of beams must be at least 1".into()));
        }
        if num_beams > MAX_BEAMS {
            return Err(ModelError::Input(format!("the number of beams must be at most {MAX_BEAMS}, not {num_beams}")));
        }
        let num_return_sequences = overrides.num_return_sequences.unwrap_or(1);
        if num_return_sequences == 0 {
            return Err(ModelError::Input("the number of returned sequences must be at least 1".into()));
        }
        if num_return_sequences > num_beams {
            return Err(ModelError::Input(format!(
                "the number of returned sequences ({num_return_sequences}) must be at most the number of beams \
                 ({num_beams})"
            )));
        }
        let length_penalty = overrides.length_penalty.unwrap_or(config.length_penalty);
        if !length_penalty.is_finite() {
            return Err(ModelError::Input(format!("the length penalty must be a finite number, not {length_penalty}")));
        }
        // max_new_tokens wins over max_length, as in the reference; lengths count the decoder start token. With
        // no length set anywhere, the reference (5.24+) makes its default number of new tokens.
        let explicit = overrides.max_new_tokens.map(|n| n.saturating_add(1)).or(overrides.max_length);
        let mut max_length = explicit
            .or(config.max_new_tokens.map(|n| n.saturating_add(1)))
            .or(config.max_length)
            .unwrap_or(DEFAULT_MAX_NEW_TOKENS + 1);
        let limit = spec.max_target_tokens.unwrap_or(MAX_UNBOUNDED_NEW_TOKENS);
        if max_length > limit + 1 {
            if explicit.is_some() {
                let why = if spec.max_target_tokens.is_some() { "'s positions" } else { " (brief's bound)" };
                return Err(ModelError::Input(format!(
                    "at most {limit} new tokens fit this model{why}, {} were asked for",
                    max_length - 1
                )));
            }
            max_length = limit + 1;
        }
        if max_length < 2 {
            return Err(ModelError::Input("the maximum length must allow at least one new token".into()));
        }
        let eos_token_ids = config.eos_token_ids();
        let bad_words_ids = config
            .bad_words_ids
            .clone()
            .unwrap_or_default()
            .into_iter()
            // As the reference does, a bad word equal to an end-of-sequence token is dropped.
            .filter(|w| !(w.len() == 1 && eos_token_ids.contains(&w[0])))
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>();
        if let Some(bad) = bad_words_ids.iter().flatten().find(|&&id| id as usize >= spec.vocab_size) {
            return Err(ModelError::Input(format!(
                "bad word id {bad} is outside the vocabulary of {}",
                spec.vocab_size
            )));
        }
        Ok(Self {
            num_beams,
            max_length,
            min_length: overrides.min_length.unwrap_or(config.min_length),
            min_new_tokens: overrides.min_new_tokens.or(config.min_new_tokens).unwrap_or(0),
            length_penalty,
            early_stopping: overrides.early_stopping.map(Into::into).unwrap_or(config.early_stopping),
            no_repeat_ngram_size: overrides.no_repeat_ngram_size.unwrap_or(config.no_repeat_ngram_size),
            bad_words_ids,
            forced_bos_token_id: config.forced_bos_token_id,
            forced_eos_token_id: config.forced_eos_token_id,
            eos_token_ids,
            pad_token_id: config.pad_token_id.unwrap_or(spec.pad_token_id),
            decoder_start_token_id: config.decoder_start_token_id.unwrap_or(spec.decoder_start_token_id),
            renormalize_logits: config.renormalize_logits,
            num_return_sequences,
        })
    }
}

/// One decoded sequence: the generated tokens (without the start token, with the final end token when one was
/// produced) and the score the search ranked it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub tokens: Vec<u32>,
    pub score: f32,
}

/// Decodes every sequence of `sources` (token ids ending in `</s>`), greedy or beam search per `options`: for
/// each source, its `num_return_sequences` best hypotheses, best first. Sequences are independent: each gets the
/// result it would get alone.
pub fn generate(
    model: &dyn Seq2Seq,
    sources: &[Vec<u32>],
    options: &SearchOptions,
) -> Result<Vec<Vec<Hypothesis>>, ModelError> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(max) = model.spec().max_source_tokens {
        if let Some(long) = sources.iter().find(|s| s.len() > max) {
            return Err(ModelError::Input(format!("a source of {} tokens exceeds the model's {max}", long.len())));
        }
    }
    if sources.iter().any(Vec::is_empty) {
        return Err(ModelError::Input("a source sequence is empty".into()));
    }
    let batch = SourceBatch::new(sources, model.spec().pad_token_id, model.device())?;
    let encoded = model.encode(&batch)?;
    if options.num_beams == 1 {
        Ok(search::greedy(model, &encoded, &batch, options)?.into_iter().map(|h| vec![h]).collect())
    } else {
        search::beam(model, &encoded, &batch, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_returned_sequence_keeps_the_serialised_options_as_they_were() {
        let config: GenerationConfig = serde_json::from_str(r#"{"num_beams": 4, "eos_token_id": 0}"#).unwrap();
        let spec = Seq2SeqSpec {
            vocab_size: 10,
            pad_token_id: 9,
            decoder_start_token_id: 9,
            max_source_tokens: None,
            trained_source_tokens: None,
            max_target_tokens: None,
        };
        let json = |o: &Overrides| serde_json::to_string(&SearchOptions::resolve(&config, &spec, o).unwrap()).unwrap();
        let single = json(&Overrides::default());
        assert_eq!(
            single,
            r#"{"num_beams":4,"max_length":21,"min_length":0,"min_new_tokens":0,"length_penalty":1.0,"early_stopping":"Heuristic","no_repeat_ngram_size":0,"bad_words_ids":[],"forced_bos_token_id":null,"forced_eos_token_id":null,"eos_token_ids":[0],"pad_token_id":9,"decoder_start_token_id":9,"renormalize_logits":false}"#
        );
        assert_eq!(json(&Overrides { num_return_sequences: Some(1), ..Default::default() }), single);
        let three = json(&Overrides { num_return_sequences: Some(3), ..Default::default() });
        assert_eq!(
            three,
            single.replace(r#""renormalize_logits":false"#, r#""renormalize_logits":false,"num_return_sequences":3"#)
        );
        // Overrides as clients and stored briefs write them: the new key only when set.
        assert!(!serde_json::to_string(&Overrides::default()).unwrap().contains("num_return_sequences"));
    }
}
