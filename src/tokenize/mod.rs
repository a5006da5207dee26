//! Text ↔ token ids for the models (Marian spm pairs, `tokenizer.json`), and article segmentation.

pub mod marian;
pub mod segment;
pub mod spm;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use marian::{MarianTokenizer, Tokens};

/// What can go wrong loading or running a tokenizer. Load errors name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: unsupported: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error("{}: no tokenizer found (expected tokenizer.json, or source.spm + target.spm + vocab.json)", dir.display())]
    NotFound { dir: PathBuf },
    #[error("tokenization failed: {0}")]
    Encode(String),
}

impl TokenizerError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TokenizerError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenizerError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TokenizerError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })
}

/// A model's tokenizer: the Marian spm pair, or a `tokenizers` JSON file used as it is.
pub enum Tokenizer {
    Marian(Box<MarianTokenizer>),
    Json(Box<JsonTokenizer>),
}

impl Tokenizer {
    /// Prefers `tokenizer.json` where the repository has one, else the Marian spm files.
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        if dir.join("tokenizer.json").is_file() {
            Ok(Self::Json(Box::new(JsonTokenizer::from_dir(dir)?)))
        } else if dir.join("source.spm").is_file() {
            Ok(Self::Marian(Box::new(MarianTokenizer::from_dir(dir)?)))
        } else {
            Err(TokenizerError::NotFound { dir: dir.to_path_buf() })
        }
    }

    /// Ids of `text`, with the end-of-sequence token appended.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        match self {
            Self::Marian(t) => t.encode(text),
            Self::Json(t) => t.encode(text),
        }
    }

    /// The source and target tokens of a sentence and its translation, with their spm pieces (for word
    /// alignment); `None` for tokenizers without a separate target side (`tokenizer.json`).
    pub fn pair_tokens(&self, source: &str, target: &str) -> Result<Option<(Tokens, Tokens)>, TokenizerError> {
        match self {
            Self::Marian(t) => Ok(Some((t.source_tokens(source)?, t.target_tokens(target)?))),
            Self::Json(_) => Ok(None),
        }
    }

    /// Text of generated ids, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        match self {
            Self::Marian(t) => Ok(t.decode(ids)),
            Self::Json(t) => t.decode(ids),
        }
    }
}

/// A `tokenizer.json` tokenizer with the decode clean-up its `tokenizer_config.json` asks for.
pub struct JsonTokenizer {
    inner: tokenizers::Tokenizer,
    clean_up: bool,
}

impl JsonTokenizer {
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| TokenizerError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        let config_path = dir.join("tokenizer_config.json");
        let clean_up = if config_path.is_file() {
            let config: serde_json::Value = read_json(&config_path)?;
            config.get("clean_up_tokenization_spaces").and_then(|v| v.as_bool()).unwrap_or(false)
        } else {
            false
        };
        Ok(Self { inner, clean_up })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self.inner.encode(text, true).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let text = self.inner.decode(ids, true).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(if self.clean_up { clean_up_tokenization(&text) } else { text })
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Python's `str.strip()`: Unicode whitespace plus the information separators U+001C..U+001F.
pub(crate) fn python_strip(text: &str) -> &str {
    let is_space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    text.trim_matches(is_space)
}

/// `PreTrainedTokenizerBase.clean_up_tokenization`: removes the space before punctuation and English contractions.
pub(crate) fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}
