//! The command line: commands and their options, each with an environment fallback and a documented default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::engine::{BatchLimits, EngineConfig};
use crate::generate::{EarlyStoppingOption, Overrides};
use crate::models::{self, ModelError, ModelSource};

/// The default models, from `models/manifest.json`.
pub const MANIFEST: &str = include_str!("../models/manifest.json");

/// Hub id of the default translation model (see `models/manifest.json`).
pub const DEFAULT_TRANSLATE_MODEL: &str = "Helsinki-NLP/opus-mt-id-en";

/// brief turns Indonesian news into English: translations that keep the article's paragraphs, with MarianMT
/// models running on candle (CPU by default, CUDA with `--features cuda`).
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

#[derive(Debug, Clone, Args)]
pub struct TranslateModelArgs {
    /// Translation model: a local directory or a hub id.
    #[arg(long = "model", visible_alias = "translate-model", env = "BRIEF_TRANSLATE_MODEL", default_value = DEFAULT_TRANSLATE_MODEL)]
    pub model: String,

    /// Hub revision (branch, tag or commit) of the translation model.
    #[arg(long = "revision", visible_alias = "translate-revision", env = "BRIEF_TRANSLATE_REVISION")]
    pub revision: Option<String>,
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
        })
    }
}

impl TranslateModelArgs {
    pub fn source(&self) -> Result<ModelSource, ModelError> {
        ModelSource::parse(&self.model, self.revision.as_deref())
    }
}
