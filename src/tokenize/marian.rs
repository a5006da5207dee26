//! `MarianTokenizer` semantics in Rust: source-side spm pieces mapped through `vocab.json`, `</s>` appended, target-side decoding.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::spm::{SpmModel, SpmTokenizer, SPACE_SYMBOL};
use super::{clean_up_tokenization, python_strip, read_json, TokenizerError};

/// `tokenizer_config.json` fields that change what a Marian tokenizer does.
#[derive(Debug, Deserialize)]
struct MarianTokenizerConfig {
    #[serde(default)]
    separate_vocabs: bool,
    #[serde(default = "default_true")]
    clean_up_tokenization_spaces: bool,
    #[serde(default)]
    eos_token: Option<TokenName>,
    #[serde(default)]
    unk_token: Option<TokenName>,
    #[serde(default)]
    pad_token: Option<TokenName>,
}

fn default_true() -> bool {
    true
}

/// A special token is written either as a plain string or as an `AddedToken` object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenName {
    Plain(String),
    Added { content: String },
}

impl TokenName {
    fn into_string(self) -> String {
        match self {
            TokenName::Plain(s) | TokenName::Added { content: s } => s,
        }
    }
}

/// Encoder and decoder of a Marian model: `source.spm`, `target.spm`, `vocab.json` (and `target_vocab.json`).
pub struct MarianTokenizer {
    source: SpmTokenizer,
    /// The target spm, for re-encoding translations (word alignment).
    target: SpmTokenizer,
    target_encoder: HashMap<String, u32>,
    source_spm: SpmModel,
    target_spm: SpmModel,
    encoder: HashMap<String, u32>,
    decoder: HashMap<u32, String>,
    special_tokens: Vec<String>,
    special_ids: HashSet<u32>,
    eos_id: u32,
    unk_id: u32,
    pad_id: u32,
    clean_up: bool,
}

impl MarianTokenizer {
    /// Loads the tokenizer files from `dir`; each error names the file at fault.
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let config_path = dir.join("tokenizer_config.json");
        let config: MarianTokenizerConfig = if config_path.exists() {
            read_json(&config_path)?
        } else {
            MarianTokenizerConfig {
                separate_vocabs: false,
                clean_up_tokenization_spaces: true,
                eos_token: None,
                unk_token: None,
                pad_token: None,
            }
        };
        let name = |t: Option<TokenName>, default: &str| t.map_or_else(|| default.to_string(), TokenName::into_string);
        let eos = name(config.eos_token, "</s>");
        let unk = name(config.unk_token, "<unk>");
        let pad = name(config.pad_token, "<pad>");

        let vocab_path = dir.join("vocab.json");
        let encoder: HashMap<String, u32> = read_json(&vocab_path)?;
        let target_vocab_path = dir.join("target_vocab.json");
        let target_encoder: HashMap<String, u32> =
            if config.separate_vocabs { read_json(&target_vocab_path)? } else { encoder.clone() };
        let id_of = |map: &HashMap<String, u32>, token: &str, path: &Path| {
            map.get(token).copied().ok_or_else(|| TokenizerError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("the special token {token:?} is not in the vocabulary"),
            })
        };
        let unk_id = id_of(&encoder, &unk, &vocab_path)?;
        let eos_id = id_of(&encoder, &eos, &vocab_path)?;
        let pad_id = id_of(&encoder, &pad, &vocab_path)?;
        let target_path = if config.separate_vocabs { &target_vocab_path } else { &vocab_path };
        let mut special_ids: HashSet<u32> = [unk_id, eos_id, pad_id].into();
        for token in [&unk, &eos, &pad] {
            special_ids.insert(id_of(&target_encoder, token, target_path)?);
        }
        let decoder = target_encoder.iter().map(|(k, &v)| (v, k.clone())).collect();

        let source_path = dir.join("source.spm");
        let target_path = dir.join("target.spm");
        let source_spm = SpmModel::load(&source_path)?;
        let target_spm = SpmModel::load(&target_path)?;
        let source = source_spm.to_tokenizer(&source_path)?;
        let target = target_spm.to_tokenizer(&target_path)?;
        Ok(Self {
            source,
            target,
            target_encoder,
            source_spm,
            target_spm,
            encoder,
            decoder,
            special_tokens: vec![eos, unk, pad],
            special_ids,
            eos_id,
            unk_id,
            pad_id,
            clean_up: config.clean_up_tokenization_spaces,
        })
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids of `text` with `</s>` appended, as `MarianTokenizer(text).input_ids`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(self.encode_side(text, Side::Source)?.ids)
    }

    /// `text` as the source side tokenizes it, with each token's spm piece.
    pub fn source_tokens(&self, text: &str) -> Result<Tokens, TokenizerError> {
        self.encode_side(text, Side::Source)
    }

    /// `text` as the target side tokenizes it (`MarianTokenizer(text_target=text).input_ids`, `</s>` appended),
    /// with each token's spm piece: a translation as the decoder was trained on it.
    pub fn target_tokens(&self, text: &str) -> Result<Tokens, TokenizerError> {
        self.encode_side(text, Side::Target)
    }

    fn encode_side(&self, text: &str, side: Side) -> Result<Tokens, TokenizerError> {
        let (spm, vocab) = match side {
            Side::Source => (&self.source, &self.encoder),
            Side::Target => (&self.target, &self.target_encoder),
        };
        let id = |piece: &str| vocab.get(piece).copied().unwrap_or(self.unk_id);
        let mut tokens = Tokens::default();
        let push = |tokens: &mut Tokens, piece: &str, word: bool| {
            tokens.ids.push(id(piece));
            tokens.pieces.push(word.then(|| piece.to_string()));
        };
        for chunk in split_on_special(text, &self.special_tokens) {
            match chunk {
                Chunk::Special(token) => push(&mut tokens, token, false),
                Chunk::Text(text) => {
                    let (code, rest) = split_language_code(text);
                    if let Some(code) = code {
                        push(&mut tokens, code, false);
                    }
                    if rest.is_empty() {
                        continue;
                    }
                    let encoding = spm.encode(rest, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
                    for piece in encoding.get_tokens() {
                        push(&mut tokens, piece, true);
                    }
                }
            }
        }
        tokens.ids.push(self.eos_id);
        tokens.pieces.push(None);
        Ok(tokens)
    }

    /// Text of generated ids, as `batch_decode(ids, skip_special_tokens=True)` through the target spm.
    pub fn decode(&self, ids: &[u32]) -> String {
        let pieces: Vec<&str> = ids
            .iter()
            .filter(|id| !self.special_ids.contains(id))
            .map(|&id| match self.decoder.get(&id) {
                Some(piece) => piece.as_str(),
                None => self.target_spm.pieces.get(id as usize).map_or("<unk>", |p| p.piece.as_str()),
            })
            .collect();
        let text = self.target_spm.decode_pieces(&pieces).replace(SPACE_SYMBOL, " ");
        let text = python_strip(&text);
        if self.clean_up {
            clean_up_tokenization(text)
        } else {
            text.to_string()
        }
    }

    /// Pieces of `text` as the source spm segments them (for diagnostics and tests).
    pub fn source_pieces(&self, text: &str) -> Result<Vec<String>, TokenizerError> {
        let encoding = self.source.encode(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_tokens().to_vec())
    }

    pub fn source_spm(&self) -> &SpmModel {
        &self.source_spm
    }
}

/// Token ids with the spm piece of each: `None` for special tokens and language codes, which belong to no word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub pieces: Vec<Option<String>>,
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Target,
}

enum Chunk<'a> {
    Special(&'a str),
    Text(&'a str),
}

/// Splits `text` on occurrences of the special tokens (leftmost, then longest), as the reference's token trie does.
fn split_on_special<'a>(text: &'a str, specials: &[String]) -> Vec<Chunk<'a>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < text.len() {
        let hit =
            specials.iter().filter(|s| !s.is_empty() && text[pos..].starts_with(s.as_str())).max_by_key(|s| s.len());
        match hit {
            Some(special) => {
                if start < pos {
                    chunks.push(Chunk::Text(&text[start..pos]));
                }
                chunks.push(Chunk::Special(&text[pos..pos + special.len()]));
                pos += special.len();
                start = pos;
            }
            None => pos += text[pos..].chars().next().map_or(1, char::len_utf8),
        }
    }
    if start < text.len() {
        chunks.push(Chunk::Text(&text[start..]));
    }
    chunks
}

/// `remove_language_code`: a leading `>>xx<<` is a token of its own.
fn split_language_code(text: &str) -> (Option<&str>, &str) {
    if text.starts_with(">>") {
        if let Some(end) = text.find("<<") {
            return (Some(&text[..end + 2]), &text[end + 2..]);
        }
    }
    (None, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_tokens_split_leftmost_longest() {
        let specials = vec!["</s>".to_string(), "<pad>".to_string()];
        let parts: Vec<String> = split_on_special("a</s>b<pad></s>", &specials)
            .into_iter()
            .map(|c| match c {
                Chunk::Special(s) => format!("[{s}]"),
                Chunk::Text(t) => t.to_string(),
            })
            .collect();
        assert_eq!(parts, ["a", "[</s>]", "b", "[<pad>]", "[</s>]"]);
    }

    #[test]
    fn language_code_is_split_off() {
        assert_eq!(split_language_code(">>ind<< halo"), (Some(">>ind<<"), " halo"));
        assert_eq!(split_language_code(">> halo"), (None, ">> halo"));
        assert_eq!(split_language_code("halo >>x<<"), (None, "halo >>x<<"));
    }
}
