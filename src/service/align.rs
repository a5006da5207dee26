//! Word alignment between a source sentence and its translation, for putting inline HTML markup back around the
//! English words it belongs to: the argmax over source words of the decoder's cross-attention (as Bergamot and
//! Marian align), teacher-forced on the translation.

use super::generator::Generator;
use super::ServiceError;
use crate::tokenize::spm::SPACE_SYMBOL;

/// For each whitespace-separated word of a translation, the whitespace-separated word of its source that it
/// aligns to (`None`: no source word, e.g. a word the model added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordAlignment {
    pub target_to_source: Vec<Option<usize>>,
}

impl WordAlignment {
    /// No word aligned, for a translation of `words` words.
    fn unaligned(words: usize) -> Self {
        Self { target_to_source: vec![None; words] }
    }
}

/// Aligns each `(source sentence, its English translation)` pair, one forward pass for all of them (batched by
/// length): `result[i].target_to_source` has one entry per `split_whitespace` word of the translation. A model
/// that cannot align (T5) gives every word `None`.
pub fn align_words(translator: &dyn Generator, pairs: &[(String, String)]) -> Result<Vec<WordAlignment>, ServiceError> {
    let codec = translator.codec();
    let mut tokens = Vec::with_capacity(pairs.len());
    for (source, target) in pairs {
        match codec.pair_tokens(source, target)? {
            Some(pair) => tokens.push(pair),
            None => return Ok(pairs.iter().map(|(_, t)| WordAlignment::unaligned(word_count(t))).collect()),
        }
    }
    let ids = tokens.iter().map(|(s, t)| (s.ids.clone(), t.ids.clone())).collect();
    let Some(attention) = translator.cross_attention(ids)? else {
        return Ok(pairs.iter().map(|(_, t)| WordAlignment::unaligned(word_count(t))).collect());
    };
    Ok(pairs
        .iter()
        .zip(&tokens)
        .zip(&attention)
        .map(|(((source, target), (s, t)), rows)| {
            let source_words = words_of_tokens(&s.pieces);
            let target_words = words_of_tokens(&t.pieces);
            align(rows, &source_words, word_count(source), &target_words, word_count(target))
        })
        .collect())
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The word each token belongs to, counting a word at each piece that starts with `▁` (SentencePiece's word
/// start); `None` for tokens of no word (special tokens, language codes: `None` pieces). A first piece without
/// `▁` starts word 0.
pub fn words_of_tokens<S: AsRef<str>>(pieces: &[Option<S>]) -> Vec<Option<usize>> {
    let mut word: Option<usize> = None;
    pieces
        .iter()
        .map(|piece| {
            let piece = piece.as_ref()?.as_ref();
            word = match word {
                Some(w) if piece.starts_with(SPACE_SYMBOL) => Some(w + 1),
                Some(w) => Some(w),
                None => Some(0),
            };
            word
        })
        .collect()
}

/// Target word `w` aligns to the source word with the most attention summed over `w`'s tokens and the source
/// word's tokens; `rows[t][s]` is target token `t`'s attention on source token `s`. Words past the counts (a
/// tokenizer that normalised whitespace differently) are dropped, words without tokens get `None`.
fn align(
    rows: &[Vec<f32>],
    source_words: &[Option<usize>],
    source_count: usize,
    target_words: &[Option<usize>],
    target_count: usize,
) -> WordAlignment {
    let mut mass = vec![vec![0f32; source_count]; target_count];
    let mut seen = vec![false; target_count];
    for (row, target_word) in rows.iter().zip(target_words) {
        let Some(tw) = target_word.filter(|&w| w < target_count) else { continue };
        seen[tw] = true;
        for (&weight, source_word) in row.iter().zip(source_words) {
            if let Some(sw) = source_word.filter(|&w| w < source_count) {
                mass[tw][sw] += weight;
            }
        }
    }
    let target_to_source = mass
        .iter()
        .zip(&seen)
        .map(|(mass, &seen)| {
            if !seen {
                return None;
            }
            // The first of equal maxima, so that ties are deterministic.
            mass.iter()
                .enumerate()
                .fold(None, |best: Option<(usize, f32)>, (i, &m)| match best {
                    Some((_, b)) if b >= m => best,
                    _ => Some((i, m)),
                })
                .map(|(i, _)| i)
        })
        .collect();
    WordAlignment { target_to_source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_tokens_map_to_words_at_word_starts() {
        let pieces = [Some("▁Presiden"), Some("▁Jo"), Some("ko"), None];
        assert_eq!(words_of_tokens(&pieces), vec![Some(0), Some(1), Some(1), None]);
        let pieces = [None, Some("▁"), Some("("), Some("12"), Some("▁Ya"), Some("."), None];
        assert_eq!(words_of_tokens(&pieces), vec![None, Some(0), Some(0), Some(0), Some(1), Some(1), None]);
        assert_eq!(words_of_tokens(&[Some("ko"), Some("▁a")]), vec![Some(0), Some(1)]);
        assert!(words_of_tokens::<&str>(&[]).is_empty());
    }

    #[test]
    fn align_sums_tokens_per_word_then_takes_the_argmax() {
        // Source words: 0 = tokens 0, 1 = tokens 1 and 2; token 3 is `</s>`.
        let source = [Some(0), Some(1), Some(1), None];
        // Target word 0 = tokens 0, 1; word 1 = token 2; `</s>` last; a third word has no tokens.
        let target = [Some(0), Some(0), Some(1), None];
        let rows = vec![
            vec![0.5, 0.3, 0.0, 0.2],
            vec![0.2, 0.1, 0.1, 0.6],
            vec![0.4, 0.25, 0.25, 0.1],
            vec![0.0, 0.0, 0.0, 1.0],
        ];
        let a = align(&rows, &source, 2, &target, 3);
        // Word 0: 0.7 vs 0.5; word 1: 0.4 vs 0.5 (two tokens); `</s>` attention counts for no word.
        assert_eq!(a.target_to_source, vec![Some(0), Some(1), None]);
        assert_eq!(align(&rows, &source, 0, &target, 2).target_to_source, vec![None, None]);
    }
}
