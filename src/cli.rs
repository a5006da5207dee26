//! The command line: commands and their options, each with an environment fallback and a documented default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::engine::{BatchLimits, EngineConfig};
use crate::generate::{EarlyStoppingOption, Overrides};
use crate::models::{self, ModelError, ModelSource};
use crate::service::SummaryOptions;

/// The default models, from `models/manifest.json`.
pub const MANIFEST: &str = include_str!("../models/manifest.json");

/// Hub id of the default translation model (see `models/manifest.json`).
pub const DEFAULT_TRANSLATE_MODEL: &str = "Helsinki-NLP/opus-mt-id-en";

/// Hub id of the default summarization model (see `models/manifest.json`).
pub const DEFAULT_SUMMARY_MODEL: &str = "google/flan-t5-base";

/// brief turns Indonesian news into English: translations that keep the article's paragraphs and short English
/// summaries, with MarianMT and T5 models running on candle (CPU by default, CUDA with `--features cuda`).
#[derive(Debug, Parser)]
#[command(name = "brief", version, about, long_about = None)]
pub struct Cli {
    /// Log level or tracing filter (error, warn, info, debug, trace). Logs go to standard error.
    #[arg(long, env = "BRIEF_LOG", default_value = "warn", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Translate Indonesian text (a file, or standard input) into English on standard output.
    Translate(Box<TranslateArgs>),
    /// Summarize English text (a file, or standard input); long texts are summarized chunk by chunk, then the
    /// chunk summaries are summarized.
    Summarize(Box<SummarizeArgs>),
    /// Make the English brief of an Indonesian article: headline, summary and translation, with the models used
    /// and timings (Markdown, or JSON with --json).
    Article(Box<ArticleArgs>),
    /// Show the default models (models/manifest.json) and whether they are in the local hub cache.
    Models,
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// Input file (UTF-8); standard input when absent or `-`.
    pub file: Option<PathBuf>,

    /// Treat each input line as one segment and print exactly one output line per input line (an empty line
    /// in gives an empty line out). Without it, paragraphs and blank lines are kept and sentences are split.
    #[arg(long)]
    pub lines: bool,

    #[command(flatten)]
    pub model: TranslateModelArgs,

    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// Input file (UTF-8 English); standard input when absent or `-`.
    pub file: Option<PathBuf>,

    /// Summarize each input line on its own and print exactly one output line per input line.
    #[arg(long)]
    pub lines: bool,

    #[command(flatten)]
    pub summary: SummaryArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct ArticleArgs {
    /// The Indonesian article (UTF-8 text; the first non-blank line is the headline).
    pub file: PathBuf,

    /// Print the brief as JSON (schema `brief/1`, docs/brief.schema.json) instead of Markdown.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub model: TranslateModelArgs,

    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub summary: SummaryArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The summarization model and its search settings (defaults: the model's `task_specific_params.summarization`
/// over its `generation_config.json`; for FLAN-T5: 4 beams, length penalty 2, no repeated 3-grams, 30 to 200
/// tokens, prefix `summarize: `).
#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Summarization model (T5 family): a local directory or a hub id.
    #[arg(long, env = "BRIEF_SUMMARY_MODEL", default_value = DEFAULT_SUMMARY_MODEL)]
    pub summary_model: String,

    /// Hub revision (branch, tag or commit) of the summarization model.
    #[arg(long, env = "BRIEF_SUMMARY_REVISION")]
    pub summary_revision: Option<String>,

    /// Text put before the input (default: the model's summarization prefix, `summarize: ` for T5).
    #[arg(long, env = "BRIEF_SUMMARY_PREFIX")]
    pub summary_prefix: Option<String>,

    /// Beam width of the summary.
    #[arg(long)]
    pub summary_beams: Option<usize>,

    /// Most tokens in the summary.
    #[arg(long)]
    pub summary_max_new_tokens: Option<usize>,

    /// Fewest tokens in the summary, the decoder start token included (as `min_length`).
    #[arg(long)]
    pub summary_min_length: Option<usize>,

    /// Fewest new tokens in the summary.
    #[arg(long)]
    pub summary_min_new_tokens: Option<usize>,

    /// Length penalty of the summary's beam search (>0 favours longer summaries).
    #[arg(long)]
    pub summary_length_penalty: Option<f32>,

    /// Never repeat an n-gram of this size in the summary (0 allows repeats).
    #[arg(long)]
    pub summary_no_repeat_ngram_size: Option<usize>,

    /// Beam search stopping of the summary: true, false or never.
    #[arg(long)]
    pub summary_early_stopping: Option<EarlyStoppingOption>,

    /// Most input tokens per summarizer call; longer texts are summarized in chunks of this size, then the chunk
    /// summaries are summarized.
    #[arg(long, env = "BRIEF_SUMMARY_CHUNK_TOKENS", default_value_t = 512)]
    pub summary_chunk_tokens: usize,
}

impl SummaryArgs {
    pub fn source(&self) -> Result<ModelSource, ModelError> {
        ModelSource::parse(&self.summary_model, self.summary_revision.as_deref())
    }

    pub fn options(&self) -> Result<SummaryOptions, ModelError> {
        if self.summary_chunk_tokens < 16 {
            return Err(ModelError::Input("--summary-chunk-tokens must be at least 16".into()));
        }
        Ok(SummaryOptions {
            overrides: Overrides {
                num_beams: self.summary_beams,
                max_new_tokens: self.summary_max_new_tokens,
                min_length: self.summary_min_length,
                min_new_tokens: self.summary_min_new_tokens,
                length_penalty: self.summary_length_penalty,
                no_repeat_ngram_size: self.summary_no_repeat_ngram_size,
                early_stopping: self.summary_early_stopping,
                ..Default::default()
            },
            chunk_tokens: self.summary_chunk_tokens,
        })
    }

    /// The summarizer's engine configuration.
    pub fn engine_config(&self, runtime: &RuntimeArgs) -> Result<EngineConfig, ModelError> {
        let mut config = runtime.engine_config(self.source()?)?;
        config.task = Some("summarization".into());
        config.prefix = self.summary_prefix.clone();
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct TranslateModelArgs {
    /// Translation model: a local directory or a hub id.
    #[arg(long = "model", visible_alias = "translate-model", env = "BRIEF_TRANSLATE_MODEL", default_value = DEFAULT_TRANSLATE_MODEL)]
    pub model: String,

    /// Hub revision (branch, tag or commit) of the translation model.
    #[arg(long = "revision", visible_alias = "translate-revision", env = "BRIEF_TRANSLATE_REVISION")]
    pub revision: Option<String>,

    /// Text put before every input of the translation model: none for Marian; a T5-family translator such as
    /// google/madlad400-3b-mt takes a target-language tag, `<2en> `.
    #[arg(long, env = "BRIEF_TRANSLATE_PREFIX")]
    pub translate_prefix: Option<String>,
}

/// Search settings; each defaults to the model's `generation_config.json`.
#[derive(Debug, Clone, Default, Args)]
pub struct SearchArgs {
    /// Beam width (1 is greedy search). Default: the model's `num_beams` (6 for opus-mt-id-en).
    #[arg(long, env = "BRIEF_BEAMS")]
    pub beams: Option<usize>,

    /// Most tokens generated per segment. Default: up to the model's `max_length`.
    #[arg(long, env = "BRIEF_MAX_NEW_TOKENS")]
    pub max_new_tokens: Option<usize>,

    /// Exponent of the length normalisation of beam scores (>0 favours longer outputs). Default: the model's.
    #[arg(long)]
    pub length_penalty: Option<f32>,

    /// Beam search stopping: true (when enough beams finished), false (heuristic), never. Default: the model's.
    #[arg(long)]
    pub early_stopping: Option<EarlyStoppingOption>,
}

impl SearchArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            num_beams: self.beams,
            max_new_tokens: self.max_new_tokens,
            length_penalty: self.length_penalty,
            early_stopping: self.early_stopping,
            ..Default::default()
        }
    }
}

/// Where and how models run.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, env = "BRIEF_DEVICE", default_value = "cpu")]
    pub device: String,

    /// Compute precision: f32, or f16/bf16 on CUDA.
    #[arg(long, env = "BRIEF_DTYPE", default_value = "f32")]
    pub dtype: String,

    /// Most segments decoded together in one batch.
    #[arg(long, env = "BRIEF_BATCH_SIZE", default_value_t = BatchLimits::default().max_sequences)]
    pub batch_size: usize,

    /// Most source tokens in one batch, padding included.
    #[arg(long, env = "BRIEF_BATCH_TOKENS", default_value_t = BatchLimits::default().max_tokens)]
    pub batch_tokens: usize,

    /// CPU threads for the models (default: all cores).
    #[arg(long, env = "BRIEF_THREADS")]
    pub threads: Option<usize>,
}

impl RuntimeArgs {
    /// The engine configuration for `source` with these runtime settings.
    pub fn engine_config(&self, source: ModelSource) -> Result<EngineConfig, ModelError> {
        if self.batch_size == 0 || self.batch_tokens == 0 {
            return Err(ModelError::Input("--batch-size and --batch-tokens must be positive".into()));
        }
        let device = models::parse_device(&self.device)?;
        let dtype = models::parse_dtype(&self.dtype)?;
        if device.is_cpu() && dtype != candle_core::DType::F32 {
            return Err(ModelError::Device(format!(
                "cpu: --dtype {} is for CUDA; the CPU computes in f32",
                self.dtype
            )));
        }
        Ok(EngineConfig {
            source,
            device,
            dtype,
            batch: BatchLimits { max_sequences: self.batch_size, max_tokens: self.batch_tokens },
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            task: None,
            prefix: None,
        })
    }
}

impl TranslateModelArgs {
    pub fn source(&self) -> Result<ModelSource, ModelError> {
        ModelSource::parse(&self.model, self.revision.as_deref())
    }

    /// The translator's engine configuration.
    pub fn engine_config(&self, runtime: &RuntimeArgs) -> Result<EngineConfig, ModelError> {
        let mut config = runtime.engine_config(self.source()?)?;
        config.prefix = self.translate_prefix.clone();
        Ok(config)
    }
}
