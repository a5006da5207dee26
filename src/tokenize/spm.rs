//! SentencePiece `.spm` models converted to `tokenizers` objects: protobuf parsing, the exact spm normaliser, decoding.
//!
//! The normaliser reproduces `sentencepiece::normalizer::Normalizer::Normalize` (longest-prefix rules of the
//! precompiled charsmap, whitespace folding, dummy prefix, `▁` escaping), and the model reproduces spm's optimised
//! unigram Viterbi, including its float arithmetic, so that ties between equal-scoring segmentations break the way
//! the reference library breaks them (`tokenizers`' own `Unigram` accumulates in f64 and breaks some differently).

use std::collections::HashMap;
use std::path::Path;

use tokenizers::{AddedToken, Model, NormalizedString, Normalizer, Token, TokenizerImpl, Trainer};

use super::TokenizerError;

/// The meta symbol SentencePiece uses for a space.
pub const SPACE_SYMBOL: char = '\u{2581}';
const SPACE_SYMBOL_STR: &str = "\u{2581}";

/// A piece's type, as in `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceKind {
    fn from_proto(v: u64) -> Self {
        match v {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceKind,
}

/// The parts of a SentencePiece `ModelProto` that encoding and decoding need.
#[derive(Debug, Clone)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type`: 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    pub byte_fallback: bool,
    pub treat_whitespace_as_suffix: bool,
    pub unk_surface: String,
    pub charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
    piece_index: HashMap<String, usize>,
}

/// The `tokenizers` pipeline built from an spm model: exact spm normalisation, `▁` splitting, unigram segmentation.
/// No pre-tokenizer: spm runs one Viterbi over the whole normalised sentence, and splitting at `▁` would change
/// the float rounding of path scores, hence how exact ties break.
pub type SpmTokenizer = TokenizerImpl<
    SpmUnigram,
    SpmNormalizer,
    tokenizers::PreTokenizerWrapper,
    tokenizers::PostProcessorWrapper,
    tokenizers::DecoderWrapper,
>;

impl SpmModel {
    /// Reads and parses a `.spm` file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, TokenizerError> {
        let bytes = std::fs::read(path).map_err(|e| TokenizerError::io(path, e))?;
        Self::parse(&bytes).map_err(|reason| TokenizerError::Corrupt { path: path.to_path_buf(), reason })
    }

    /// Parses the serialized `ModelProto`.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut model = SpmModel {
            pieces: Vec::new(),
            model_type: 1,
            byte_fallback: false,
            treat_whitespace_as_suffix: false,
            unk_surface: " \u{2047} ".to_string(),
            charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
            piece_index: HashMap::new(),
        };
        for field in proto::Reader::new(bytes) {
            match field? {
                (1, proto::Value::Bytes(b)) => model.pieces.push(parse_piece(b)?),
                (2, proto::Value::Bytes(b)) => parse_trainer_spec(b, &mut model)?,
                (3, proto::Value::Bytes(b)) => parse_normalizer_spec(b, &mut model)?,
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err("the model has no pieces (not a SentencePiece model?)".into());
        }
        model.piece_index = model.pieces.iter().enumerate().map(|(i, p)| (p.piece.clone(), i)).collect();
        Ok(model)
    }

    pub fn piece_to_id(&self, piece: &str) -> Option<usize> {
        self.piece_index.get(piece).copied()
    }

    fn unk_id(&self) -> Option<usize> {
        self.pieces.iter().position(|p| p.kind == PieceKind::Unknown)
    }

    /// Builds the `tokenizers` object: the spm normaliser and the unigram model over the pieces that spm itself
    /// can match (control, unknown and unused pieces never match text).
    pub fn to_tokenizer(&self, source: &Path) -> Result<SpmTokenizer, TokenizerError> {
        let corrupt = |reason: String| TokenizerError::Corrupt { path: source.to_path_buf(), reason };
        if self.model_type != 1 {
            return Err(TokenizerError::Unsupported {
                path: source.to_path_buf(),
                reason: format!("SentencePiece model type {} (only unigram, type 1, is supported)", self.model_type),
            });
        }
        if self.byte_fallback || self.treat_whitespace_as_suffix {
            return Err(TokenizerError::Unsupported {
                path: source.to_path_buf(),
                reason: "byte_fallback and treat_whitespace_as_suffix are not supported".into(),
            });
        }
        let unigram = SpmUnigram::new(self).map_err(corrupt)?;
        let normalizer = SpmNormalizer::new(self).map_err(corrupt)?;
        let mut tokenizer = TokenizerImpl::new(unigram);
        tokenizer.with_normalizer(Some(normalizer)).map_err(|e| corrupt(e.to_string()))?;
        Ok(tokenizer)
    }

    /// `SentencePieceProcessor::DecodePieces`: control pieces vanish, `<unk>` becomes the unknown surface, pieces
    /// the model does not know are kept verbatim, `▁` becomes a space and leading whitespace is dropped.
    pub fn decode_pieces<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let mut out = String::new();
        let mut is_bos_ws = true;
        let strip_leading = self.add_dummy_prefix || self.remove_extra_whitespaces;
        for piece in pieces {
            let piece = piece.as_ref();
            let (surface, consumed_ws) = match self.piece_to_id(piece).map(|id| self.pieces[id].kind) {
                Some(PieceKind::Control) => (String::new(), false),
                Some(PieceKind::Unknown) => (self.unk_surface.clone(), false),
                None => (piece.to_string(), false),
                Some(_) => {
                    let mut p = piece;
                    let mut has_bos_ws = false;
                    if is_bos_ws && strip_leading {
                        if let Some(rest) = p.strip_prefix(SPACE_SYMBOL_STR) {
                            p = rest;
                            // With remove_extra_whitespaces every leading whitespace piece is dropped.
                            has_bos_ws = !self.remove_extra_whitespaces;
                        }
                    }
                    (p.replace(SPACE_SYMBOL, " "), has_bos_ws)
                }
            };
            if is_bos_ws && (!surface.is_empty() || consumed_ws) {
                is_bos_ws = false;
            }
            out.push_str(&surface);
        }
        out
    }
}

fn parse_piece(bytes: &[u8]) -> Result<Piece, String> {
    let mut piece = Piece { piece: String::new(), score: 0.0, kind: PieceKind::Normal };
    for field in proto::Reader::new(bytes) {
        match field? {
            (1, proto::Value::Bytes(b)) => {
                piece.piece = String::from_utf8(b.to_vec()).map_err(|_| "a piece is not valid UTF-8".to_string())?
            }
            (2, proto::Value::Fixed32(v)) => piece.score = f32::from_bits(v),
            (3, proto::Value::Varint(v)) => piece.kind = PieceKind::from_proto(v),
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_trainer_spec(bytes: &[u8], model: &mut SpmModel) -> Result<(), String> {
    for field in proto::Reader::new(bytes) {
        match field? {
            (3, proto::Value::Varint(v)) => model.model_type = v,
            (24, proto::Value::Varint(v)) => model.treat_whitespace_as_suffix = v != 0,
            (35, proto::Value::Varint(v)) => model.byte_fallback = v != 0,
            (44, proto::Value::Bytes(b)) => model.unk_surface = String::from_utf8_lossy(b).into_owned(),
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer_spec(bytes: &[u8], model: &mut SpmModel) -> Result<(), String> {
    for field in proto::Reader::new(bytes) {
        match field? {
            (2, proto::Value::Bytes(b)) => model.charsmap = b.to_vec(),
            (3, proto::Value::Varint(v)) => model.add_dummy_prefix = v != 0,
            (4, proto::Value::Varint(v)) => model.remove_extra_whitespaces = v != 0,
            (5, proto::Value::Varint(v)) => model.escape_whitespaces = v != 0,
            _ => {}
        }
    }
    Ok(())
}

/// spm's unigram segmentation (`unigram::Model::EncodeOptimized`) as a `tokenizers` model.
///
/// Path scores are stored as f32 while each candidate is formed and compared in f64, exactly as the C++ code does
/// (its piece score is a `double` because of a ternary with a user-defined-symbol bonus); ties keep the first path.
#[derive(Debug, Clone)]
pub struct SpmUnigram {
    pieces: Vec<String>,
    scores: Vec<f32>,
    matchable: Vec<bool>,
    user_defined: Vec<bool>,
    trie: HashMap<(u32, u8), u32>,
    /// The piece id that ends at a trie node, if any.
    node_value: Vec<Option<u32>>,
    unk_id: u32,
    min_score: f32,
    max_score: f32,
}

/// The penalty spm gives an unknown character, relative to the lowest piece score.
const UNK_PENALTY: f32 = 10.0;

impl SpmUnigram {
    fn new(model: &SpmModel) -> Result<Self, String> {
        let unk_id = model.unk_id().ok_or("the model has no <unk> piece")? as u32;
        let mut trie = HashMap::new();
        let mut node_value: Vec<Option<u32>> = vec![None];
        let (mut min_score, mut max_score) = (f32::MAX, f32::MIN_POSITIVE);
        for (id, piece) in model.pieces.iter().enumerate() {
            if piece.kind == PieceKind::Normal {
                min_score = min_score.min(piece.score);
                max_score = max_score.max(piece.score);
            }
            // spm's trie holds normal, user-defined and unused pieces; unused ones are skipped when matching.
            if !matches!(piece.kind, PieceKind::Normal | PieceKind::UserDefined | PieceKind::Unused) {
                continue;
            }
            let mut node = 0u32;
            for &b in piece.piece.as_bytes() {
                node = *trie.entry((node, b)).or_insert_with(|| {
                    node_value.push(None);
                    (node_value.len() - 1) as u32
                });
            }
            node_value[node as usize] = Some(id as u32);
        }
        Ok(Self {
            pieces: model.pieces.iter().map(|p| p.piece.clone()).collect(),
            scores: model.pieces.iter().map(|p| p.score).collect(),
            matchable: model.pieces.iter().map(|p| p.kind != PieceKind::Unused).collect(),
            user_defined: model.pieces.iter().map(|p| p.kind == PieceKind::UserDefined).collect(),
            trie,
            node_value,
            unk_id,
            min_score,
            max_score,
        })
    }

    /// The best segmentation of `text` into (byte range, piece id); unknown runs are single characters here.
    fn viterbi(&self, text: &str) -> Vec<(usize, usize, u32)> {
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f32,
            starts_at: Option<usize>,
        }
        let bytes = text.as_bytes();
        let size = bytes.len();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![Best { id: self.unk_id, score: 0.0, starts_at: None }; size + 1];
        let mut starts_at = 0;
        while starts_at < size {
            let till_here = best[starts_at].score;
            let mblen = text[starts_at..].chars().next().map_or(1, char::len_utf8);
            let mut has_single_node = false;
            let mut node = 0u32;
            for (key_pos, &b) in bytes.iter().enumerate().skip(starts_at) {
                let Some(&next) = self.trie.get(&(node, b)) else { break };
                node = next;
                let Some(id) = self.node_value[node as usize] else { continue };
                if !self.matchable[id as usize] {
                    continue;
                }
                let end = key_pos + 1;
                let length = end - starts_at;
                let score = if self.user_defined[id as usize] {
                    length as f64 * self.max_score as f64 - 0.1
                } else {
                    self.scores[id as usize] as f64
                };
                let candidate = score + till_here as f64;
                let target = &mut best[end];
                if target.starts_at.is_none() || candidate > target.score as f64 {
                    *target = Best { id, score: candidate as f32, starts_at: Some(starts_at) };
                }
                if length == mblen {
                    has_single_node = true;
                }
            }
            if !has_single_node {
                let candidate = unk_score + till_here;
                let target = &mut best[starts_at + mblen];
                if target.starts_at.is_none() || candidate > target.score {
                    *target = Best { id: self.unk_id, score: candidate, starts_at: Some(starts_at) };
                }
            }
            starts_at += mblen;
        }
        let mut out = Vec::new();
        let mut end = size;
        while end > 0 {
            let node = best[end];
            let start = node.starts_at.unwrap_or(0);
            out.push((start, end, node.id));
            end = start;
        }
        out.reverse();
        out
    }
}

impl Model for SpmUnigram {
    type Trainer = NoTrainer;

    /// Tokens carry their surface text; consecutive unknown characters are fused into one token, as spm does.
    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        let mut tokens: Vec<Token> = Vec::new();
        let mut prev_unk = false;
        for (start, end, id) in self.viterbi(sequence) {
            let is_unk = id == self.unk_id;
            match tokens.last_mut() {
                Some(last) if is_unk && prev_unk => {
                    last.value.push_str(&sequence[start..end]);
                    last.offsets.1 = end;
                }
                _ => tokens.push(Token::new(id, sequence[start..end].to_string(), (start, end))),
            }
            prev_unk = is_unk;
        }
        Ok(tokens)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.pieces.iter().position(|p| p == token).map(|i| i as u32)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.pieces.get(id as usize).cloned()
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        self.pieces.iter().enumerate().map(|(i, p)| (p.clone(), i as u32)).collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.pieces.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<std::path::PathBuf>> {
        Err("an spm-converted model is saved as its .spm file, not as tokenizers JSON".into())
    }

    fn get_trainer(&self) -> NoTrainer {
        NoTrainer
    }
}

/// `tokenizers` asks every model for a trainer; spm models are trained with SentencePiece itself.
pub struct NoTrainer;

impl Trainer for NoTrainer {
    type Model = SpmUnigram;

    fn should_show_progress(&self) -> bool {
        false
    }

    fn train(&self, _model: &mut SpmUnigram) -> tokenizers::Result<Vec<AddedToken>> {
        Err("training SentencePiece models is not supported; use SentencePiece itself".into())
    }

    fn feed<I, S, F>(&mut self, _iterator: I, _process: F) -> tokenizers::Result<()>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
        F: Fn(&str) -> tokenizers::Result<Vec<String>> + Sync,
    {
        Ok(())
    }
}

/// The spm normaliser as a `tokenizers` normaliser.
#[derive(Debug, Clone)]
pub struct SpmNormalizer {
    charsmap: Option<CharsMap>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

impl SpmNormalizer {
    fn new(model: &SpmModel) -> Result<Self, String> {
        let charsmap = if model.charsmap.is_empty() { None } else { Some(CharsMap::parse(&model.charsmap)?) };
        Ok(Self {
            charsmap,
            add_dummy_prefix: model.add_dummy_prefix,
            remove_extra_whitespaces: model.remove_extra_whitespaces,
            escape_whitespaces: model.escape_whitespaces,
        })
    }

    /// The rule for the longest prefix of `input`: (normalised text, bytes consumed).
    fn normalize_prefix<'a>(&'a self, input: &'a str) -> (&'a str, usize) {
        if let Some(map) = &self.charsmap {
            if let Some((value, len)) = map.longest_prefix(input.as_bytes()) {
                // A rule may end inside a character only in a corrupt map; fall back to the plain character then.
                if input.is_char_boundary(len) {
                    return (map.normalized(value), len);
                }
            }
        }
        let len = input.chars().next().map_or(0, char::len_utf8);
        (&input[..len], len)
    }

    /// Normalises `input` into segments: (original characters consumed, output text).
    fn segments(&self, input: &str) -> Vec<(usize, String)> {
        let mut segments = Vec::new();
        let mut rest = input;
        if self.remove_extra_whitespaces {
            while !rest.is_empty() {
                let (norm, len) = self.normalize_prefix(rest);
                if norm != " " {
                    break;
                }
                segments.push((rest[..len].chars().count(), String::new()));
                rest = &rest[len..];
            }
        }
        if rest.is_empty() {
            return segments;
        }
        let space = if self.escape_whitespaces { SPACE_SYMBOL_STR } else { " " };
        let mut is_prev_space = self.remove_extra_whitespaces;
        while !rest.is_empty() {
            let (norm, len) = self.normalize_prefix(rest);
            let mut sp = norm;
            while is_prev_space && sp.starts_with(' ') {
                sp = &sp[1..];
            }
            let mut out = String::with_capacity(sp.len());
            if !sp.is_empty() {
                for c in sp.chars() {
                    if self.escape_whitespaces && c == ' ' {
                        out.push(SPACE_SYMBOL);
                    } else {
                        out.push(c);
                    }
                }
                is_prev_space = sp.ends_with(' ');
            }
            if !self.remove_extra_whitespaces {
                is_prev_space = false;
            }
            segments.push((rest[..len].chars().count(), out));
            rest = &rest[len..];
        }
        if self.remove_extra_whitespaces {
            // Trailing spaces are dropped, segment by segment from the end.
            for (_, out) in segments.iter_mut().rev() {
                while out.ends_with(space) {
                    out.truncate(out.len() - space.len());
                }
                if !out.is_empty() {
                    break;
                }
            }
        }
        segments
    }
}

impl Normalizer for SpmNormalizer {
    fn normalize(&self, normalized: &mut NormalizedString) -> tokenizers::Result<()> {
        let segments = self.segments(normalized.get());
        let mut changes: Vec<(char, isize)> = Vec::with_capacity(normalized.get().len() + 1);
        let mut initial_offset = 0usize;
        for (consumed, out) in &segments {
            let produced = out.chars().count();
            if produced == 0 {
                // Removed characters follow the previous output character (or the start of the string).
                match changes.last_mut() {
                    Some((_, change)) => *change -= *consumed as isize,
                    None => initial_offset += consumed,
                }
                continue;
            }
            let first_new = changes.len();
            changes.extend(out.chars().map(|c| (c, 0)));
            if produced > *consumed {
                for change in changes[first_new + consumed..].iter_mut() {
                    change.1 = 1;
                }
            } else if produced < *consumed {
                if let Some(last) = changes.last_mut() {
                    last.1 -= (*consumed - produced) as isize;
                }
            }
        }
        normalized.transform(changes, initial_offset);
        if self.add_dummy_prefix && !normalized.get().is_empty() {
            normalized.prepend(if self.escape_whitespaces { SPACE_SYMBOL_STR } else { " " });
        }
        Ok(())
    }
}

/// The precompiled charsmap: a Darts double-array trie over UTF-8 bytes and a blob of NUL-terminated replacements.
#[derive(Debug, Clone)]
struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    fn parse(blob: &[u8]) -> Result<Self, String> {
        let bad = || "the precompiled normalisation charsmap is truncated".to_string();
        let size = u32::from_le_bytes(blob.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
        let trie = blob.get(4..4 + size).ok_or_else(bad)?;
        if !size.is_multiple_of(4) || size == 0 {
            return Err("the charsmap trie size is not a positive multiple of 4".into());
        }
        let units = trie.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Self { units, normalized: blob[4 + size..].to_vec() })
    }

    /// Darts `commonPrefixSearch`, keeping the longest match: (value, length in bytes).
    fn longest_prefix(&self, key: &[u8]) -> Option<(usize, usize)> {
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let label = |u: u32| (u & ((1 << 31) | 0xFF)) as usize;
        let value = |u: u32| (u & ((1u32 << 31) - 1)) as usize;
        let mut id = offset(*self.units.first()?);
        let mut best = None;
        for (i, &c) in key.iter().enumerate() {
            id ^= c as usize;
            let unit = *self.units.get(id)?;
            if label(unit) != c as usize {
                break;
            }
            id ^= offset(unit);
            if has_leaf(unit) {
                best = Some((value(*self.units.get(id)?), i + 1));
            }
        }
        best
    }

    fn normalized(&self, value: usize) -> &str {
        let tail = self.normalized.get(value..).unwrap_or(&[]);
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }
}

/// A minimal reader of the protobuf wire format (enough for `ModelProto`).
mod proto {
    pub enum Value<'a> {
        Varint(u64),
        Fixed64,
        Bytes(&'a [u8]),
        Fixed32(u32),
    }

    pub struct Reader<'a> {
        buf: &'a [u8],
        failed: bool,
    }

    impl<'a> Reader<'a> {
        pub fn new(buf: &'a [u8]) -> Self {
            Self { buf, failed: false }
        }

        fn varint(&mut self) -> Result<u64, String> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
                self.buf = rest;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Err("varint longer than 10 bytes".into())
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if n > self.buf.len() {
                return Err("truncated field".into());
            }
            let (head, rest) = self.buf.split_at(n);
            self.buf = rest;
            Ok(head)
        }

        fn field(&mut self) -> Result<(u64, Value<'a>), String> {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                    Value::Bytes(self.take(n)?)
                }
                5 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "bad fixed32")?)),
                t => return Err(format!("unsupported protobuf wire type {t}")),
            };
            Ok((key >> 3, value))
        }
    }

    impl<'a> Iterator for Reader<'a> {
        type Item = Result<(u64, Value<'a>), String>;
        fn next(&mut self) -> Option<Self::Item> {
            if self.buf.is_empty() || self.failed {
                return None;
            }
            let r = self.field();
            self.failed = r.is_err();
            Some(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(SpmModel::parse(b"").is_err());
        assert!(SpmModel::parse(&[0xff; 64]).is_err());
        assert!(SpmModel::parse(&[0x0a, 0x80]).is_err());
        assert!(CharsMap::parse(&[1, 0, 0]).is_err());
        assert!(CharsMap::parse(&[8, 0, 0, 0, 1]).is_err());
    }
}
