//! A loaded model put to work on text: tokenization, splitting of over-long inputs, length-sorted batches under
//! a token budget, search, decoding — results in the caller's order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device};

use crate::generate::{generate, Overrides, SearchOptions};
use crate::models::{self, hub, LoadedModel, ModelError, ModelSource, Seq2Seq};
use crate::tokenize::{Tokenizer, TokenizerError};

/// What can go wrong in the engine; `Input` errors are the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    Input(String),
}

impl EngineError {
    /// Whether the request, not the engine, is at fault (bad options, impossible lengths).
    pub fn is_client_error(&self) -> bool {
        matches!(self, EngineError::Input(_) | EngineError::Model(ModelError::Input(_)))
    }
}

/// How inputs are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most sequences in one batch.
    pub max_sequences: usize,
    /// Most source tokens in one batch, padding included (`sequences × longest`).
    pub max_tokens: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_sequences: 32, max_tokens: 4096 }
    }
}

/// Where a model comes from and how it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub source: ModelSource,
    pub device: Device,
    pub dtype: DType,
    pub batch: BatchLimits,
    /// Show download progress on the terminal.
    pub progress: bool,
    /// The task whose `task_specific_params` (in `config.json`) set the search defaults and the input prefix,
    /// e.g. `summarization`.
    pub task: Option<String>,
    /// Text put before every input (e.g. `summarize: `, or `<2en> ` for MADLAD); overrides the task's prefix.
    pub prefix: Option<String>,
}

/// The model's identity, as reported with results.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub revision: String,
    pub model_type: String,
}

/// Work done by an engine since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Batches run through the model.
    pub batches: u64,
    /// Sequences generated (inputs after deduplication and splitting).
    pub sequences: u64,
    /// Tokens generated, end tokens included.
    pub tokens: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    sequences: AtomicU64,
    tokens: AtomicU64,
}

/// A model with its tokenizer, ready to turn texts into texts.
pub struct Engine {
    loaded: LoadedModel,
    tokenizer: Tokenizer,
    info: ModelInfo,
    batch: BatchLimits,
    prefix: String,
    counters: Counters,
}

impl Engine {
    /// Resolves (downloading if needed) and loads the model and tokenizer.
    pub fn load(config: &EngineConfig) -> Result<Self, EngineError> {
        let files = hub::resolve(&config.source, config.progress)?;
        let mut loaded = models::load(&files, &config.device, config.dtype)?;
        let tokenizer = Tokenizer::from_dir(&files.dir)?;
        let info =
            ModelInfo { id: files.id.clone(), revision: files.revision.clone(), model_type: loaded.model_type.clone() };
        let task_prefix = match &config.task {
            Some(task) => {
                let config_json = loaded.config_json.clone();
                loaded.generation.apply_task(&config_json, task)
            }
            None => None,
        };
        let prefix = config.prefix.clone().or(task_prefix).unwrap_or_default();
        Ok(Self { loaded, tokenizer, info, batch: config.batch, prefix, counters: Counters::default() })
    }

    /// The text put before every input.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Work done so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            sequences: self.counters.sequences.load(Ordering::Relaxed),
            tokens: self.counters.tokens.load(Ordering::Relaxed),
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn model(&self) -> &dyn Seq2Seq {
        self.loaded.model.as_ref()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The search settings a request with `overrides` runs with (errors are the caller's).
    pub fn search_options(&self, overrides: &Overrides) -> Result<SearchOptions, EngineError> {
        SearchOptions::resolve(&self.loaded.generation, self.model(), overrides).map_err(|e| match e {
            ModelError::Input(msg) => EngineError::Input(msg),
            other => EngineError::Model(other),
        })
    }

    /// Longest input given to the model in one piece, in tokens (prefix and `</s>` included): the model's hard
    /// limit, or the length it was trained on when it has no hard limit.
    pub fn max_source_tokens(&self) -> Option<usize> {
        let spec = self.model().spec();
        spec.max_source_tokens.or(spec.trained_source_tokens)
    }

    /// Number of tokens the model sees for `text` (prefix included).
    pub fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        Ok(self.encode(text)?.len())
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        if self.prefix.is_empty() {
            Ok(self.tokenizer.encode(text)?)
        } else {
            Ok(self.tokenizer.encode(&format!("{}{text}", self.prefix))?)
        }
    }

    /// Generates one output per input text, in order. Blank inputs give empty outputs; duplicates are computed
    /// once; an input longer than the encoder takes is split at clause or word boundaries and its parts' outputs
    /// joined, so nothing is cut off.
    pub fn generate_texts(&self, texts: &[String], overrides: &Overrides) -> Result<Vec<String>, EngineError> {
        let options = self.search_options(overrides)?;
        // Unique non-blank pieces to generate for, and how each input is assembled from them.
        let mut pieces: Vec<Vec<u32>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut plans: Vec<Vec<usize>> = Vec::with_capacity(texts.len());
        for text in texts {
            let text = text.trim();
            if text.is_empty() {
                plans.push(Vec::new());
                continue;
            }
            let mut plan = Vec::new();
            for part in self.fit_to_encoder(text)? {
                let next = pieces.len();
                let slot = *index.entry(part.text).or_insert(next);
                if slot == next {
                    pieces.push(part.ids);
                }
                plan.push(slot);
            }
            plans.push(plan);
        }
        let outputs = self.generate_ids(&pieces, &options)?;
        let decoded = outputs.iter().map(|ids| self.tokenizer.decode(ids)).collect::<Result<Vec<_>, _>>()?;
        Ok(plans
            .iter()
            .map(|plan| {
                plan.iter().map(|&i| decoded[i].as_str()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
            })
            .collect())
    }

    /// Runs the search over token sequences, batched by length; outputs in input order, without the start token.
    pub fn generate_ids(&self, sources: &[Vec<u32>], options: &SearchOptions) -> Result<Vec<Vec<u32>>, EngineError> {
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(sources[i].len()));
        let mut outputs = vec![Vec::new(); sources.len()];
        let mut start = 0;
        while start < order.len() {
            let longest = sources[order[start]].len().max(1);
            let fit = (self.batch.max_tokens / longest).clamp(1, self.batch.max_sequences.max(1));
            let end = (start + fit).min(order.len());
            let batch: Vec<Vec<u32>> = order[start..end].iter().map(|&i| sources[i].clone()).collect();
            let hyps = generate(self.model(), &batch, options)?;
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.counters.sequences.fetch_add(hyps.len() as u64, Ordering::Relaxed);
            self.counters.tokens.fetch_add(hyps.iter().map(|h| h.tokens.len() as u64).sum(), Ordering::Relaxed);
            for (&i, hyp) in order[start..end].iter().zip(hyps) {
                outputs[i] = hyp.tokens;
            }
            start = end;
        }
        Ok(outputs)
    }

    /// The parts `text` is generated in: itself when it fits the encoder, else pieces split at clause or word
    /// boundaries that each fit.
    pub fn split_for_encoder(&self, text: &str) -> Result<Vec<String>, EngineError> {
        Ok(self.fit_to_encoder(text.trim())?.into_iter().map(|p| p.text).collect())
    }

    /// `text` as one or more parts that each fit the encoder.
    fn fit_to_encoder(&self, text: &str) -> Result<Vec<Part>, EngineError> {
        let ids = self.encode(text)?;
        match self.max_source_tokens() {
            Some(max) if ids.len() > max => {
                let (left, right) = split_in_two(text);
                if left.is_empty() || right.is_empty() {
                    return Err(EngineError::Input(format!(
                        "a single unsplittable piece of text needs {} tokens, more than the model's {max}",
                        ids.len()
                    )));
                }
                let mut parts = self.fit_to_encoder(left)?;
                parts.extend(self.fit_to_encoder(right)?);
                Ok(parts)
            }
            _ => Ok(vec![Part { text: text.to_string(), ids }]),
        }
    }
}

struct Part {
    text: String,
    ids: Vec<u32>,
}

/// Splits `text` near its middle at the strongest boundary available: after `;`/`:`, then after `,`, then at a
/// space, else between two characters.
fn split_in_two(text: &str) -> (&str, &str) {
    let middle = text.len() / 2;
    let candidates = |pred: &dyn Fn(char, Option<char>) -> bool| -> Option<usize> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        chars
            .iter()
            .enumerate()
            .filter(|(k, (_, c))| pred(*c, chars.get(k + 1).map(|x| x.1)))
            .map(|(_, (b, c))| b + c.len_utf8())
            .filter(|&b| b > 0 && b < text.len())
            .min_by_key(|&b| b.abs_diff(middle))
    };
    let window = |b: usize| b.abs_diff(middle) <= text.len() / 4;
    let cut = candidates(&|c, n| matches!(c, ';' | ':') && n.is_some_and(char::is_whitespace))
        .filter(|&b| window(b))
        .or_else(|| candidates(&|c, n| c == ',' && n.is_some_and(char::is_whitespace)).filter(|&b| window(b)))
        .or_else(|| candidates(&|c, _| c.is_whitespace()))
        .unwrap_or_else(|| (middle..text.len()).find(|&b| text.is_char_boundary(b)).unwrap_or(text.len()));
    (text[..cut].trim(), text[cut..].trim())
}

#[cfg(test)]
mod tests {
    use super::split_in_two;

    #[test]
    fn splits_prefer_clauses_then_words_then_characters() {
        assert_eq!(split_in_two("satu dua; tiga empat"), ("satu dua;", "tiga empat"));
        assert_eq!(split_in_two("satu dua, tiga empat lima"), ("satu dua,", "tiga empat lima"));
        assert_eq!(split_in_two("satu dua tiga empat"), ("satu dua", "tiga empat"));
        assert_eq!(split_in_two("abcdef"), ("abc", "def"));
        assert_eq!(split_in_two("日本語の文"), ("日本語", "の文"));
        assert_eq!(split_in_two("x"), ("", "x"));
    }
}
