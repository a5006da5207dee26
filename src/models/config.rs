//! `config.json` and `generation_config.json`: the architecture and the search defaults, with the reference defaults.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::ModelError;

/// An activation function named by `activation_function` / `dense_act_fn` / `feed_forward_proj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// Exact GELU (`gelu`): x·Φ(x) with the error function.
    Gelu,
    /// Tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// SiLU (`swish`, `silu`).
    Swish,
}

impl Activation {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "relu" => Some(Self::Relu),
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "swish" | "silu" => Some(Self::Swish),
            _ => None,
        }
    }
}

/// `MarianConfig`, with the defaults `transformers` uses for absent keys.
#[derive(Debug, Clone, Deserialize)]
pub struct MarianConfig {
    #[serde(default = "marian::vocab_size")]
    pub vocab_size: usize,
    #[serde(default)]
    pub decoder_vocab_size: Option<usize>,
    #[serde(default = "marian::d_model")]
    pub d_model: usize,
    #[serde(default = "marian::layers")]
    pub encoder_layers: usize,
    #[serde(default = "marian::layers")]
    pub decoder_layers: usize,
    #[serde(default = "marian::heads")]
    pub encoder_attention_heads: usize,
    #[serde(default = "marian::heads")]
    pub decoder_attention_heads: usize,
    #[serde(default = "marian::ffn")]
    pub encoder_ffn_dim: usize,
    #[serde(default = "marian::ffn")]
    pub decoder_ffn_dim: usize,
    #[serde(default = "marian::activation")]
    pub activation_function: String,
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default = "marian::max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "marian::pad")]
    pub pad_token_id: u32,
    #[serde(default)]
    pub eos_token_id: u32,
    #[serde(default = "marian::pad")]
    pub decoder_start_token_id: u32,
    #[serde(default = "default_true")]
    pub share_encoder_decoder_embeddings: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
}

mod marian {
    pub fn vocab_size() -> usize {
        58101
    }
    pub fn d_model() -> usize {
        1024
    }
    pub fn layers() -> usize {
        12
    }
    pub fn heads() -> usize {
        16
    }
    pub fn ffn() -> usize {
        4096
    }
    pub fn activation() -> String {
        "gelu".into()
    }
    pub fn max_positions() -> usize {
        1024
    }
    pub fn pad() -> u32 {
        58100
    }
}

fn default_true() -> bool {
    true
}

impl MarianConfig {
    /// Size of the output (decoder) vocabulary, as `MarianMTModel` sizes its `lm_head`.
    pub fn target_vocab_size(&self) -> usize {
        if self.share_encoder_decoder_embeddings {
            self.vocab_size
        } else {
            self.decoder_vocab_size.unwrap_or(self.vocab_size)
        }
    }

    pub fn activation(&self) -> Result<Activation, String> {
        Activation::parse(&self.activation_function)
            .ok_or_else(|| format!("activation_function {:?} is not supported", self.activation_function))
    }

    /// Checks what the model code relies on, so that a bad config is an error and not a panic.
    pub fn validate(&self) -> Result<(), String> {
        self.activation()?;
        for (name, d, h) in [
            ("encoder", self.d_model, self.encoder_attention_heads),
            ("decoder", self.d_model, self.decoder_attention_heads),
        ] {
            if h == 0 || d % h != 0 {
                return Err(format!("d_model {d} is not divisible by {name}_attention_heads {h}"));
            }
        }
        if self.d_model == 0 || self.max_position_embeddings == 0 {
            return Err("d_model and max_position_embeddings must be positive".into());
        }
        let target = self.target_vocab_size();
        for (name, id) in [("pad_token_id", self.pad_token_id), ("decoder_start_token_id", self.decoder_start_token_id)]
        {
            if id as usize >= target {
                return Err(format!("{name} {id} is outside the decoder vocabulary of {target}"));
            }
        }
        Ok(())
    }
}

/// `early_stopping`: `true`, `false` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum EarlyStopping {
    #[default]
    Heuristic,
    Always,
    Never,
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Self::Always),
            Value::Bool(false) | Value::Null => Ok(Self::Heuristic),
            Value::String(s) if s == "never" => Ok(Self::Never),
            other => {
                Err(serde::de::Error::custom(format!("early_stopping must be true, false or \"never\", not {other}")))
            }
        }
    }
}

impl std::str::FromStr for EarlyStopping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "true" => Ok(Self::Always),
            "false" => Ok(Self::Heuristic),
            "never" => Ok(Self::Never),
            _ => Err(format!("early stopping must be true, false or never, not {s:?}")),
        }
    }
}

/// One id or a list of ids (`eos_token_id` may be either).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

/// The search settings of `GenerationConfig` that `brief` implements, with the reference defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerationConfig {
    /// Absent unless the model sets it: the reference then makes a default number of new tokens (see
    /// `generate::DEFAULT_MAX_NEW_TOKENS`), where it used to count its default of 20 from the start token.
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    #[serde(default)]
    pub min_length: usize,
    #[serde(default)]
    pub min_new_tokens: Option<usize>,
    #[serde(default = "gen::one")]
    pub num_beams: usize,
    #[serde(default = "gen::length_penalty")]
    pub length_penalty: f32,
    #[serde(default)]
    pub early_stopping: EarlyStopping,
    #[serde(default)]
    pub no_repeat_ngram_size: usize,
    #[serde(default)]
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    #[serde(default)]
    pub forced_bos_token_id: Option<u32>,
    #[serde(default)]
    pub forced_eos_token_id: Option<u32>,
    #[serde(default)]
    pub renormalize_logits: bool,
    #[serde(default, rename = "eos_token_id")]
    eos: Option<OneOrMany>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub do_sample: bool,
}

mod gen {
    pub fn one() -> usize {
        1
    }
    pub fn length_penalty() -> f32 {
        1.0
    }
}

impl GenerationConfig {
    /// `generation_config.json` when the directory has one, else the generation keys of `config.json` (as
    /// `GenerationConfig.from_model_config` does).
    pub fn load(dir: &Path, config_json: &Value) -> Result<Self, ModelError> {
        let path = dir.join("generation_config.json");
        let mut config: Self = if path.is_file() {
            super::read_json(&path)?
        } else {
            serde_json::from_value(config_json.clone())
                .map_err(|e| ModelError::corrupt(&dir.join("config.json"), e.to_string()))?
        };
        // Special ids missing from generation_config.json come from config.json, as in the reference.
        let from_config = |key: &str| config_json.get(key).and_then(Value::as_u64).map(|v| v as u32);
        config.pad_token_id = config.pad_token_id.or_else(|| from_config("pad_token_id"));
        config.decoder_start_token_id = config.decoder_start_token_id.or_else(|| from_config("decoder_start_token_id"));
        if config.eos.is_none() {
            config.eos = from_config("eos_token_id").map(OneOrMany::One);
        }
        if config.do_sample {
            tracing::warn!(file = %path.display(), "do_sample is set; brief decodes deterministically (greedy or beam)");
        }
        Ok(config)
    }

    /// Applies `task_specific_params[task]` of `config.json` (as the `transformers` pipeline for that task does)
    /// and returns the task's input prefix, if it names one.
    pub fn apply_task(&mut self, config_json: &Value, task: &str) -> Option<String> {
        let params = config_json.get("task_specific_params")?.get(task)?;
        let usize_of = |k: &str| params.get(k).and_then(Value::as_u64).map(|v| v as usize);
        if let Some(v) = usize_of("num_beams") {
            self.num_beams = v;
        }
        if let Some(v) = usize_of("max_length") {
            self.max_length = Some(v);
            self.max_new_tokens = None;
        }
        if let Some(v) = usize_of("min_length") {
            self.min_length = v;
        }
        if let Some(v) = usize_of("no_repeat_ngram_size") {
            self.no_repeat_ngram_size = v;
        }
        if let Some(v) = params.get("length_penalty").and_then(Value::as_f64) {
            self.length_penalty = v as f32;
        }
        if let Some(v) = params.get("early_stopping") {
            if let Ok(e) = serde_json::from_value::<EarlyStopping>(v.clone()) {
                self.early_stopping = e;
            }
        }
        params.get("prefix").and_then(Value::as_str).map(str::to_string)
    }

    pub fn eos_token_ids(&self) -> Vec<u32> {
        match &self.eos {
            Some(OneOrMany::One(id)) => vec![*id],
            Some(OneOrMany::Many(ids)) => ids.clone(),
            None => Vec::new(),
        }
    }
}
