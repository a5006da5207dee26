//! Seq2seq architectures on candle (Marian, T5/mT5) and their loading: files, configs, weights, devices.

pub mod cache;
pub mod config;
pub mod hub;
pub mod kernels;
pub mod layers;
pub mod marian;
pub mod ragged;
pub mod runtime;
pub mod snapshot;
pub mod t5;
pub mod weights;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::de::DeserializeOwned;

pub use cache::DecoderState;
pub use config::GenerationConfig;
pub use hub::{ModelFiles, ModelSource};

/// What can go wrong loading or running a model. Every file error names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: missing {what}", path.display())]
    Missing { path: PathBuf, what: String },
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: unsupported: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error("{}: tensor {name} is missing", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: tensor {name} has shape {found:?}, the config implies {expected:?}", path.display())]
    TensorShape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("model {model}: {reason}")]
    Hub { model: String, reason: String },
    #[error("device {0}")]
    Device(String),
    #[error("input: {0}")]
    Input(String),
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl ModelError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn corrupt(path: &Path, reason: String) -> Self {
        Self::Corrupt { path: path.to_path_buf(), reason }
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ModelError::Missing { path: path.to_path_buf(), what: "file".into() })
        }
        Err(e) => return Err(ModelError::io(path, e)),
    };
    serde_json::from_str(&text).map_err(|e| ModelError::corrupt(path, e.to_string()))
}

/// Parses `cpu`, `cuda` or `cuda:N`. CUDA needs a build with `--features cuda` and a visible GPU.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match spec.as_str() {
        "cuda" | "gpu" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(ModelError::Device(format!("{spec:?} is not one of cpu, cuda, cuda:N"))),
        },
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(ModelError::Device(format!(
            "{spec}: this build of brief has no CUDA support; rebuild with `cargo build --release --features cuda`"
        )));
    }
    // candle's error carries a backtrace when RUST_BACKTRACE is set; the first line says what went wrong.
    Device::new_cuda(ordinal).map_err(|e| {
        let e = e.to_string();
        ModelError::Device(format!("{spec}: no usable CUDA device: {}", e.lines().next().unwrap_or_default()))
    })
}

/// The precision a model computes in (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComputeType {
    F32,
    /// CUDA only.
    F16,
    /// CPU: bf16 weights and products, f32 sums and everything else f32; CUDA: every tensor bf16.
    Bf16,
    /// CPU only: int8 weights (a scale per output row) and activations (a scale per row, quantised at each
    /// product), exact i32 sums; everything else f32.
    Int8,
}

impl ComputeType {
    pub fn name(self) -> &'static str {
        match self {
            ComputeType::F32 => "f32",
            ComputeType::F16 => "f16",
            ComputeType::Bf16 => "bf16",
            ComputeType::Int8 => "int8",
        }
    }

    /// How a model computing in this type is placed on `device`: the dtype of its tensors and (CPU) the
    /// precision its linear maps are packed in; an error when the device does not run this type.
    pub fn placement(self, device: &Device) -> Result<(DType, Option<kernels::Precision>), ModelError> {
        let refused = |msg: &str| Err(ModelError::Device(msg.into()));
        match (device.is_cpu(), self) {
            (true, ComputeType::F32) => Ok((DType::F32, Some(kernels::Precision::F32))),
            (true, ComputeType::Bf16) => Ok((DType::F32, Some(kernels::Precision::Bf16))),
            (true, ComputeType::Int8) => Ok((DType::F32, Some(kernels::Precision::Int8))),
            (true, ComputeType::F16) => refused("cpu: --dtype f16 is for CUDA; the CPU computes in f32, bf16 or int8"),
            (false, ComputeType::F32) => Ok((DType::F32, None)),
            (false, ComputeType::F16) => Ok((DType::F16, None)),
            (false, ComputeType::Bf16) => Ok((DType::BF16, None)),
            (false, ComputeType::Int8) => {
                refused("cuda: --dtype int8 is for the CPU; CUDA computes in f32, f16 or bf16")
            }
        }
    }
}

impl std::fmt::Display for ComputeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `f32`, `f16`, `bf16` or `int8`.
pub fn parse_dtype(spec: &str) -> Result<ComputeType, ModelError> {
    match spec.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(ComputeType::F32),
        "f16" | "float16" => Ok(ComputeType::F16),
        "bf16" | "bfloat16" => Ok(ComputeType::Bf16),
        "int8" | "i8" => Ok(ComputeType::Int8),
        other => Err(ModelError::Device(format!("dtype {other:?} is not one of f32, f16, bf16, int8"))),
    }
}

/// Token ids of a padded source batch: `ids` and `mask` are `[batch, len]` (mask 1 for tokens, 0 for padding).
pub struct SourceBatch {
    pub ids: Tensor,
    pub mask: Tensor,
    pub lengths: Vec<usize>,
}

impl SourceBatch {
    /// Right-pads `sequences` with `pad` into one batch on `device`.
    pub fn new(sequences: &[Vec<u32>], pad: u32, device: &Device) -> Result<Self, ModelError> {
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        if len == 0 {
            return Err(ModelError::Input("empty source batch".into()));
        }
        let mut ids = Vec::with_capacity(sequences.len() * len);
        let mut mask = Vec::with_capacity(sequences.len() * len);
        for s in sequences {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad, len - s.len()));
            mask.extend(std::iter::repeat_n(1u8, s.len()));
            mask.extend(std::iter::repeat_n(0u8, len - s.len()));
        }
        let shape = (sequences.len(), len);
        Ok(Self {
            ids: Tensor::from_vec(ids, shape, device)?,
            mask: Tensor::from_vec(mask, shape, device)?,
            lengths: sequences.iter().map(Vec::len).collect(),
        })
    }

    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }
}

/// The fixed facts about a seq2seq model that search and batching need.
#[derive(Debug, Clone)]
pub struct Seq2SeqSpec {
    /// Width of the logits (decoder vocabulary).
    pub vocab_size: usize,
    pub pad_token_id: u32,
    pub decoder_start_token_id: u32,
    /// Longest source the encoder accepts, in tokens (including `</s>`); `None` when unbounded.
    pub max_source_tokens: Option<usize>,
    /// Longest target the decoder accepts, in tokens after the start token; `None` when unbounded.
    pub max_target_tokens: Option<usize>,
    /// Input length the model was trained on (T5's `n_positions`): longer inputs work but read worse, so the
    /// engine splits inputs beyond it as it splits those beyond a hard limit.
    pub trained_source_tokens: Option<usize>,
}

/// An encoder-decoder model as the search sees it. The encoder runs once per batch; the decoder appends tokens
/// to a [`DecoderState`] whose caches it owns the layout of.
pub trait Seq2Seq {
    fn spec(&self) -> &Seq2SeqSpec;
    fn device(&self) -> &Device;
    /// Encoder hidden states `[batch, len, d_model]`.
    fn encode(&self, batch: &SourceBatch) -> Result<Tensor, ModelError>;
    /// A decoder state for `group` hypotheses per source row (beams), with room for `capacity` target tokens.
    fn start_decoding(
        &self,
        encoded: &Tensor,
        batch: &SourceBatch,
        group: usize,
        capacity: usize,
    ) -> Result<DecoderState, ModelError>;
    /// Feeds `tokens` (`[rows, steps]`) and returns the decoder's output `[rows * steps, d_model]` as it
    /// enters [`Seq2Seq::head`].
    fn decode_hidden(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor, ModelError>;
    /// The output projection onto the vocabulary.
    fn head(&self) -> &layers::Linear;
    /// Feeds `tokens` (`[rows, steps]`) and returns logits `[rows, steps, vocab]` in f32.
    fn decode(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor, ModelError> {
        let (rows, steps) = tokens.dims2()?;
        let logits = self.head().forward(&self.decode_hidden(state, tokens)?)?;
        Ok(logits.reshape((rows, steps, self.spec().vocab_size))?.to_dtype(DType::F32)?)
    }
    /// Teacher-forced cross-attention weights of decoder layer `layer` (`None`: the architecture's default for
    /// alignment), averaged over heads: `targets` `[items, steps]` are decoder inputs (start token first, padded
    /// at the end); `[items, steps, source_len]` in f32, each row a distribution over the item's source tokens,
    /// zero on padding. `Ok(None)` for an architecture that does not align.
    fn cross_attention(
        &self,
        batch: &SourceBatch,
        targets: &Tensor,
        layer: Option<usize>,
    ) -> Result<Option<Tensor>, ModelError> {
        let _ = (batch, targets, layer);
        Ok(None)
    }
}

/// A loaded model with its generation defaults.
pub struct LoadedModel {
    pub model: Box<dyn Seq2Seq + Send + Sync>,
    pub generation: GenerationConfig,
    /// `model_type` from `config.json` (`marian`, `t5`, ...).
    pub model_type: String,
    pub files: ModelFiles,
    /// The parsed `config.json` (for `task_specific_params`).
    pub config_json: serde_json::Value,
    /// SHA-256 over the weight files (see [`weights::digest`]).
    pub weights_digest: String,
}

/// Loads the model in `files.dir` for `device` in precision `compute`. The architecture comes from
/// `config.json`'s `model_type`. On the CPU, tensors are f32 and the linear maps are packed for the project's
/// kernels in `compute`'s precision (see [`ComputeType`]); on CUDA `compute` is the dtype of every tensor.
pub fn load(files: &ModelFiles, device: &Device, compute: ComputeType) -> Result<LoadedModel, ModelError> {
    let (dtype, pack) = compute.placement(device)?;
    let config_path = files.dir.join("config.json");
    let config_json: serde_json::Value = read_json(&config_path)?;
    let model_type = config_json.get("model_type").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let generation = GenerationConfig::load(&files.dir, &config_json)?;
    let weight_files = weights::WeightFiles::find(&files.dir)?;
    // The digest (for cache keys) reads every weight file: on a thread of its own, while the model is built.
    let (model, weights_digest) = std::thread::scope(|scope| {
        let digest = scope.spawn(|| weights::digest(&weight_files));
        let placement = Placement { dtype, device, pack };
        let model = build(&files.dir, &model_type, &config_json, &weight_files, &placement);
        let digest = digest.join().unwrap_or_else(|_| Err(ModelError::Input("the weight digest panicked".into())));
        Ok::<_, ModelError>((model?, digest?))
    })?;
    Ok(LoadedModel { model, generation, model_type, files: files.clone(), config_json, weights_digest })
}

/// Where and how a model's tensors live: their dtype and device, and (CPU) how the linear maps are packed.
struct Placement<'a> {
    dtype: DType,
    device: &'a Device,
    pack: Option<kernels::Precision>,
}

/// Builds the architecture `model_type` names from its config and weights.
fn build(
    dir: &std::path::Path,
    model_type: &str,
    config_json: &serde_json::Value,
    weight_files: &weights::WeightFiles,
    at: &Placement,
) -> Result<Box<dyn Seq2Seq + Send + Sync>, ModelError> {
    let Placement { dtype, device, pack } = *at;
    let config_path = dir.join("config.json");
    Ok(match model_type {
        "marian" => {
            let config: config::MarianConfig = serde_json::from_value(config_json.clone())
                .map_err(|e| ModelError::corrupt(&config_path, e.to_string()))?;
            config.validate().map_err(|reason| ModelError::Unsupported { path: config_path.clone(), reason })?;
            let weights = weights::Weights::load(weight_files, dtype, device)?;
            Box::new(marian::Marian::load(&config, &weights, dtype, device, pack)?)
        }
        "t5" | "mt5" => {
            let config: t5::T5Config = serde_json::from_value(config_json.clone())
                .map_err(|e| ModelError::corrupt(&config_path, e.to_string()))?;
            config.validate().map_err(|reason| ModelError::Unsupported { path: config_path.clone(), reason })?;
            let weights = weights::Weights::load(weight_files, dtype, device)?;
            Box::new(t5::T5::load(&config, &weights, dtype, device, pack)?)
        }
        other => {
            return Err(ModelError::Unsupported {
                path: config_path,
                reason: format!("model_type {other:?} (supported: marian, t5, mt5)"),
            })
        }
    })
}
