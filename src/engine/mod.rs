//! A loaded model put to work on text. The [`Codec`] (tokenizer, prefix, limits, search defaults) is shared by
//! any number of threads: it plans texts into token sequences and decodes results. The model itself stays with
//! one owner: an [`Engine`] used directly, or a [`worker::Worker`] thread that batches requests dynamically.

pub mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::Device;

use crate::generate::attention::{cross_attention, AttentionRows};
use crate::generate::{generate, Overrides, SearchOptions};
use crate::models::snapshot::FileSnapshot;
use crate::models::{self, hub, GenerationConfig, LoadedModel, ModelError, ModelSource, Seq2Seq, Seq2SeqSpec};
use crate::tokenize::{Tokenizer, TokenizerError, Tokens};

/// What can go wrong in the engine; `Input` errors are the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    Input(String),
    /// The request queue is full; try again after the given number of seconds.
    #[error("the {model} queue is full ({queued} sequences waiting); retry in {retry_after_secs} s")]
    Busy { model: String, queued: usize, retry_after_secs: u64 },
    #[error("the request did not finish within its time limit")]
    Timeout,
    #[error("the {0} worker has stopped")]
    Stopped(String),
    #[error("the model failed: {0}")]
    Failed(String),
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
    pub dtype: models::ComputeType,
    pub batch: BatchLimits,
    /// Show download progress on the terminal.
    pub progress: bool,
    /// The task whose `task_specific_params` (in `config.json`) set the search defaults and the input prefix,
    /// e.g. `summarization`.
    pub task: Option<String>,
    /// Text put before every input (e.g. `summarize: `, or `<2en> ` for MADLAD); overrides the task's prefix.
    pub prefix: Option<String>,
}

/// The CPU kernel family the models run on, with the extensions it uses (e.g. `avx512 (bf16, vnni)`).
pub fn cpu_kernels() -> String {
    models::kernels::isa::active().describe()
}

/// The width of the int8 weights this process packs (7 or 8).
pub fn int8_weight_bits() -> u32 {
    models::kernels::gemm::int8_weight_bits_in_use()
}

/// The model's identity, as reported with results.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub revision: String,
    pub model_type: String,
}

/// One source's generated sequences, best first: token ids without the start token, with the end token when one
/// was produced. One sequence unless the search asked for `num_return_sequences`.
pub type Hypotheses = Vec<Vec<u32>>;

/// Work done by a model since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Batches run through the model.
    pub batches: u64,
    /// Sequences generated (inputs after deduplication and splitting).
    pub sequences: u64,
    /// Tokens generated, end tokens included (of every returned hypothesis).
    pub tokens: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    sequences: AtomicU64,
    tokens: AtomicU64,
}

impl Counters {
    fn record(&self, outputs: &[Hypotheses]) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.sequences.fetch_add(outputs.len() as u64, Ordering::Relaxed);
        self.tokens.fetch_add(outputs.iter().flatten().map(|o| o.len() as u64).sum(), Ordering::Relaxed);
    }

    fn snapshot(&self) -> EngineStats {
        EngineStats {
            batches: self.batches.load(Ordering::Relaxed),
            sequences: self.sequences.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
        }
    }
}

/// Everything about a model but the model: text ↔ token sequences, input limits, search defaults.
pub struct Codec {
    tokenizer: Tokenizer,
    info: ModelInfo,
    weights_digest: String,
    /// The precision the model computes in.
    precision: models::ComputeType,
    /// The model's files as they were when loaded.
    files: FileSnapshot,
    prefix: String,
    spec: Seq2SeqSpec,
    generation: GenerationConfig,
    counters: Counters,
}

/// How a list of texts maps onto the token sequences to generate for: unique pieces, and each text's pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Unique pieces to generate for: normalised text (prefix excluded) and token ids (prefix included).
    pub pieces: Vec<Piece>,
    /// For each input text, the indices of its pieces, in order (empty for a blank text).
    pub texts: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub ids: Vec<u32>,
}

impl Plan {
    /// Each text's outputs, best first, from each piece's outputs (best first): the k-th joins the pieces' k-th
    /// outputs with spaces, a piece with fewer giving its best. A blank text has one blank output.
    pub fn assemble(&self, outputs: &[Vec<String>]) -> Vec<Vec<String>> {
        self.texts
            .iter()
            .map(|pieces| {
                let count = pieces.iter().map(|&i| outputs[i].len()).max().unwrap_or(0).max(1);
                (0..count)
                    .map(|k| {
                        pieces
                            .iter()
                            .filter_map(|&i| outputs[i].get(k).or(outputs[i].first()))
                            .map(String::as_str)
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect()
            })
            .collect()
    }
}

impl Codec {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// SHA-256 over the weight files.
    pub fn weights_digest(&self) -> &str {
        &self.weights_digest
    }

    /// The precision the model computes in.
    pub fn precision(&self) -> models::ComputeType {
        self.precision
    }

    /// What identifies the computation for the cache: the weights' digest, and the precision unless it is f32
    /// (reduced precision gives other outputs; f32 keys stay as they were before precisions were told apart).
    pub fn computation_key(&self) -> String {
        match self.precision {
            models::ComputeType::F32 => self.weights_digest.clone(),
            other => format!("{}+{other}", self.weights_digest),
        }
    }

    /// The model's files as they were when loaded (see [`FileSnapshot::changes`]).
    pub fn files(&self) -> &FileSnapshot {
        &self.files
    }

    /// The text put before every input.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn spec(&self) -> &Seq2SeqSpec {
        &self.spec
    }

    /// Work done so far by the model behind this codec.
    pub fn stats(&self) -> EngineStats {
        self.counters.snapshot()
    }

    /// The search settings a request with `overrides` runs with (errors are the caller's).
    pub fn search_options(&self, overrides: &Overrides) -> Result<SearchOptions, EngineError> {
        SearchOptions::resolve(&self.generation, &self.spec, overrides).map_err(|e| match e {
            ModelError::Input(msg) => EngineError::Input(msg),
            other => EngineError::Model(other),
        })
    }

    /// Longest input given to the model in one piece, in tokens (prefix and `</s>` included): the model's hard
    /// limit, or the length it was trained on when it has no hard limit.
    pub fn max_source_tokens(&self) -> Option<usize> {
        self.spec.max_source_tokens.or(self.spec.trained_source_tokens)
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

    /// A sentence (prefix added) and its translation as the model's two sides tokenize them, with their spm
    /// pieces (for word alignment); `None` when the tokenizer has no separate target side.
    pub fn pair_tokens(&self, source: &str, target: &str) -> Result<Option<(Tokens, Tokens)>, EngineError> {
        Ok(self.tokenizer.pair_tokens(&format!("{}{source}", self.prefix), target)?)
    }

    /// Text of generated ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        Ok(self.tokenizer.decode(ids)?)
    }

    /// Plans `texts`: blank texts need nothing; whitespace is normalised; duplicates are computed once; a text
    /// longer than the model takes in one piece is split at clause or word boundaries, so nothing is cut off.
    pub fn plan(&self, texts: &[String]) -> Result<Plan, EngineError> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut plans = Vec::with_capacity(texts.len());
        for text in texts {
            let text = normalize_whitespace(text);
            if text.is_empty() {
                plans.push(Vec::new());
                continue;
            }
            let mut plan = Vec::new();
            for part in self.fit(&text)? {
                let next = pieces.len();
                let slot = *index.entry(part.text.clone()).or_insert(next);
                if slot == next {
                    pieces.push(part);
                }
                plan.push(slot);
            }
            plans.push(plan);
        }
        Ok(Plan { pieces, texts: plans })
    }

    /// The parts `text` is generated in: itself when it fits, else pieces split at clause or word boundaries that
    /// each fit.
    pub fn split_for_encoder(&self, text: &str) -> Result<Vec<String>, EngineError> {
        Ok(self.fit(&normalize_whitespace(text))?.into_iter().map(|p| p.text).collect())
    }

    fn fit(&self, text: &str) -> Result<Vec<Piece>, EngineError> {
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
                let mut parts = self.fit(left)?;
                parts.extend(self.fit(right)?);
                Ok(parts)
            }
            _ => Ok(vec![Piece { text: text.to_string(), ids }]),
        }
    }
}

/// Trims and folds runs of whitespace into one space: texts that differ only there tokenize identically.
pub fn normalize_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A model with its codec, used from one thread: generates for batches of token sequences.
pub struct Engine {
    model: Box<dyn Seq2Seq + Send + Sync>,
    codec: Arc<Codec>,
    batch: BatchLimits,
}

impl Engine {
    /// Resolves (downloading if needed) and loads the model and tokenizer.
    pub fn load(config: &EngineConfig) -> Result<Self, EngineError> {
        let files = hub::resolve(&config.source, config.progress)?;
        let snapshot = FileSnapshot::take(&files.id, &files.dir);
        let LoadedModel { model, mut generation, model_type, config_json, weights_digest, .. } =
            models::load(&files, &config.device, config.dtype)?;
        let tokenizer = Tokenizer::from_dir(&files.dir)?;
        let info = ModelInfo { id: files.id.clone(), revision: files.revision.clone(), model_type };
        let task_prefix = config.task.as_deref().and_then(|task| generation.apply_task(&config_json, task));
        let prefix = config.prefix.clone().or(task_prefix).unwrap_or_default();
        let spec = model.spec().clone();
        let codec = Codec {
            tokenizer,
            info,
            weights_digest,
            precision: config.dtype,
            files: snapshot,
            prefix,
            spec,
            generation,
            counters: Counters::default(),
        };
        Ok(Self { model, codec: Arc::new(codec), batch: config.batch })
    }

    pub fn codec(&self) -> &Arc<Codec> {
        &self.codec
    }

    pub fn info(&self) -> &ModelInfo {
        self.codec.info()
    }

    pub fn model(&self) -> &dyn Seq2Seq {
        self.model.as_ref()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        self.codec.tokenizer()
    }

    pub fn prefix(&self) -> &str {
        self.codec.prefix()
    }

    pub fn stats(&self) -> EngineStats {
        self.codec.stats()
    }

    pub fn batch_limits(&self) -> BatchLimits {
        self.batch
    }

    pub fn search_options(&self, overrides: &Overrides) -> Result<SearchOptions, EngineError> {
        self.codec.search_options(overrides)
    }

    pub fn max_source_tokens(&self) -> Option<usize> {
        self.codec.max_source_tokens()
    }

    pub fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        self.codec.count_tokens(text)
    }

    pub fn split_for_encoder(&self, text: &str) -> Result<Vec<String>, EngineError> {
        self.codec.split_for_encoder(text)
    }

    /// Generates one output per input text, in order (see [`Codec::plan`]): the best, whatever
    /// `num_return_sequences` asks for (see [`Self::generate_texts_nbest`]).
    pub fn generate_texts(&self, texts: &[String], overrides: &Overrides) -> Result<Vec<String>, EngineError> {
        Ok(self.generate_texts_nbest(texts, overrides)?.into_iter().map(|mut o| o.swap_remove(0)).collect())
    }

    /// Generates the outputs of each input text, best first (one unless `num_return_sequences` asks for more),
    /// in order (see [`Codec::plan`] and [`Plan::assemble`]).
    pub fn generate_texts_nbest(
        &self,
        texts: &[String],
        overrides: &Overrides,
    ) -> Result<Vec<Vec<String>>, EngineError> {
        let options = self.search_options(overrides)?;
        let plan = self.codec.plan(texts)?;
        let sources: Vec<Vec<u32>> = plan.pieces.iter().map(|p| p.ids.clone()).collect();
        let outputs = self.generate_ids(&sources, &options)?;
        let decoded = outputs
            .iter()
            .map(|hypotheses| hypotheses.iter().map(|ids| self.codec.decode(ids)).collect())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(plan.assemble(&decoded))
    }

    /// Runs the search over token sequences, batched by length; each source's hypotheses in input order.
    pub fn generate_ids(&self, sources: &[Vec<u32>], options: &SearchOptions) -> Result<Vec<Hypotheses>, EngineError> {
        let mut outputs = vec![Vec::new(); sources.len()];
        for batch in length_sorted_batches(sources, self.batch) {
            let inputs: Vec<Vec<u32>> = batch.iter().map(|&i| sources[i].clone()).collect();
            let results = self.run_batch(&inputs, options)?;
            for (&i, out) in batch.iter().zip(results) {
                outputs[i] = out;
            }
        }
        Ok(outputs)
    }

    /// The teacher-forced cross-attention of each `(source, target)` pair (see [`cross_attention`]) at the
    /// model's default alignment layer, batched by length, in input order; `None` when the model does not align.
    pub fn cross_attention(&self, pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<Option<Vec<AttentionRows>>, EngineError> {
        let sources: Vec<Vec<u32>> =
            pairs.iter().map(|(s, t)| if s.len() >= t.len() { s.clone() } else { t.clone() }).collect();
        let mut outputs = vec![Vec::new(); pairs.len()];
        for batch in length_sorted_batches(&sources, self.batch) {
            let inputs: Vec<(Vec<u32>, Vec<u32>)> = batch.iter().map(|&i| pairs[i].clone()).collect();
            let Some(results) = cross_attention(self.model(), &inputs, None)? else { return Ok(None) };
            for (&i, rows) in batch.iter().zip(results) {
                outputs[i] = rows;
            }
        }
        Ok(Some(outputs))
    }

    /// One batch through the model, as given.
    ///
    /// The search runs on a thread of the compute pool, which the calling thread (the model's own) waits for. The
    /// products split their work between that thread and the pool's others, and the search's serial parts (beam
    /// bookkeeping, candle's element-wise operations) run while the other threads wait for the next product.
    /// Running it on the calling thread instead put one more thread than cores on the CPU: the pool's idle
    /// threads spin for a while after each product and took turns with it (an f32 opus-mt translation on 2 cores
    /// made 28k voluntary and 37k involuntary context switches in 64 lines, against 5k and 17k on the pool, and
    /// took 3–6% longer; docs/BENCHMARKS.md).
    pub fn run_batch(&self, sources: &[Vec<u32>], options: &SearchOptions) -> Result<Vec<Hypotheses>, EngineError> {
        let outputs: Vec<Hypotheses> = rayon::scope(|_| generate(self.model(), sources, options))?
            .into_iter()
            .map(|hypotheses| hypotheses.into_iter().map(|h| h.tokens).collect())
            .collect();
        self.codec.counters.record(&outputs);
        Ok(outputs)
    }
}

/// Indices of `sources` grouped into batches: longest first, each within `limits` (padding included).
pub fn length_sorted_batches(sources: &[Vec<u32>], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sources[i].len()));
    let mut batches = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let longest = sources[order[start]].len().max(1);
        let fit = (limits.max_tokens / longest).clamp(1, limits.max_sequences.max(1));
        let end = (start + fit).min(order.len());
        batches.push(order[start..end].to_vec());
        start = end;
    }
    batches
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
    use super::*;

    #[test]
    fn splits_prefer_clauses_then_words_then_characters() {
        assert_eq!(split_in_two("satu dua; tiga empat"), ("satu dua;", "tiga empat"));
        assert_eq!(split_in_two("satu dua, tiga empat lima"), ("satu dua,", "tiga empat lima"));
        assert_eq!(split_in_two("satu dua tiga empat"), ("satu dua", "tiga empat"));
        assert_eq!(split_in_two("abcdef"), ("abc", "def"));
        assert_eq!(split_in_two("日本語の文"), ("日本語", "の文"));
        assert_eq!(split_in_two("x"), ("", "x"));
    }

    #[test]
    fn batches_are_length_sorted_within_limits() {
        let sources: Vec<Vec<u32>> = [3, 10, 1, 7, 7, 2].iter().map(|&n| vec![0; n]).collect();
        let limits = BatchLimits { max_sequences: 2, max_tokens: 20 };
        assert_eq!(length_sorted_batches(&sources, limits), vec![vec![1, 3], vec![4, 0], vec![5, 2]]);
        let tight = BatchLimits { max_sequences: 8, max_tokens: 9 };
        assert_eq!(length_sorted_batches(&sources, tight), vec![vec![1], vec![3], vec![4], vec![0, 5, 2]]);
        assert!(length_sorted_batches(&[], limits).is_empty());
    }

    #[test]
    fn nbest_outputs_are_assembled_piece_by_piece() {
        let piece = |text: &str| Piece { text: text.into(), ids: vec![] };
        let plan = Plan { pieces: vec![piece("a"), piece("b"), piece("c")], texts: vec![vec![0, 1], vec![], vec![2]] };
        let outputs: Vec<Vec<String>> = [vec!["A1", "A2", "A3"], vec!["B1", ""], vec!["C1"]]
            .iter()
            .map(|o| o.iter().map(|s| s.to_string()).collect())
            .collect();
        // The second text is blank; the first's third output takes the best of the piece that has only two.
        assert_eq!(
            plan.assemble(&outputs),
            vec![vec!["A1 B1".to_string(), "A2".into(), "A3 B1".into()], vec![String::new()], vec!["C1".into()]]
        );
    }

    #[test]
    fn whitespace_is_normalised() {
        assert_eq!(normalize_whitespace("  a \t b\n\nc "), "a b c");
    }
}
