//! Logits processors with the reference semantics and order: no-repeat n-grams, bad words, minimum lengths,
//! forced first/last tokens, and the final renormalisation.

use super::SearchOptions;

/// Applies the processors `SearchOptions` asks for to one hypothesis' scores.
pub struct LogitsProcessor<'a> {
    options: &'a SearchOptions,
}

impl<'a> LogitsProcessor<'a> {
    pub fn new(options: &'a SearchOptions) -> Self {
        Self { options }
    }

    /// Processes `scores` (one row over the vocabulary) of a hypothesis whose decoder input so far is `history`
    /// (the start token included), in the order `generate()` builds its processor list.
    pub fn apply(&self, scores: &mut [f32], history: &[u32]) {
        let o = self.options;
        let cur_len = history.len();
        let ban = |scores: &mut [f32], id: u32| {
            if let Some(s) = scores.get_mut(id as usize) {
                *s = f32::NEG_INFINITY;
            }
        };
        let n = o.no_repeat_ngram_size;
        if n > 0 && cur_len >= n {
            let prefix = &history[cur_len + 1 - n..];
            for window in history.windows(n) {
                if &window[..n - 1] == prefix {
                    ban(scores, window[n - 1]);
                }
            }
        }
        for word in &o.bad_words_ids {
            let (last, prefix) = word.split_last().expect("bad words are non-empty");
            if word.len() <= cur_len && history.ends_with(prefix) {
                ban(scores, *last);
            }
        }
        if cur_len < o.min_length || cur_len - 1 < o.min_new_tokens {
            for &eos in &o.eos_token_ids {
                ban(scores, eos);
            }
        }
        if let Some(bos) = o.forced_bos_token_id.filter(|_| cur_len == 1) {
            force(scores, &[bos]);
        }
        if let Some(eos) = o.forced_eos_token_id.filter(|_| cur_len == o.max_length - 1) {
            force(scores, &[eos]);
        }
    }
}

/// Every score `-inf` but those of `ids`, which become 0.
fn force(scores: &mut [f32], ids: &[u32]) {
    scores.fill(f32::NEG_INFINITY);
    for &id in ids {
        if let Some(s) = scores.get_mut(id as usize) {
            *s = 0.0;
        }
    }
}

/// `log_softmax` over a row in place, computed as `x - max - ln(Σ exp(x - max))` like the reference kernel.
pub fn log_softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln();
    for x in row.iter_mut() {
        *x = *x - max - log_sum;
    }
}

/// Index of the largest score, the first one on ties (as `argmax`).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config::EarlyStopping;

    fn options() -> SearchOptions {
        SearchOptions {
            num_beams: 1,
            max_length: 6,
            min_length: 0,
            min_new_tokens: 0,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            no_repeat_ngram_size: 0,
            bad_words_ids: vec![],
            forced_bos_token_id: None,
            forced_eos_token_id: None,
            eos_token_ids: vec![0],
            pad_token_id: 9,
            decoder_start_token_id: 9,
            renormalize_logits: false,
        }
    }

    fn banned(options: &SearchOptions, history: &[u32]) -> Vec<usize> {
        let mut row = vec![0.0f32; 10];
        LogitsProcessor::new(options).apply(&mut row, history);
        row.iter().enumerate().filter(|(_, s)| s.is_infinite()).map(|(i, _)| i).collect()
    }

    #[test]
    fn no_repeat_ngram_bans_the_completion_of_a_seen_ngram() {
        let o = SearchOptions { no_repeat_ngram_size: 3, ..options() };
        // "1 2 3 ... 1 2" may not continue with 3; the start token counts as part of the history.
        assert_eq!(banned(&o, &[9, 1, 2, 3, 1, 2]), vec![3]);
        assert_eq!(banned(&o, &[9, 1]), Vec::<usize>::new());
        assert_eq!(banned(&o, &[9, 9, 5]), Vec::<usize>::new());
    }

    #[test]
    fn bad_words_single_and_sequences() {
        let o = SearchOptions { bad_words_ids: vec![vec![4], vec![1, 2, 7]], ..options() };
        assert_eq!(banned(&o, &[9, 1, 2]), vec![4, 7]);
        assert_eq!(banned(&o, &[9, 2, 1]), vec![4]);
    }

    #[test]
    fn min_length_counts_the_start_token() {
        let o = SearchOptions { min_length: 3, ..options() };
        assert_eq!(banned(&o, &[9, 1]), vec![0]);
        assert_eq!(banned(&o, &[9, 1, 2]), Vec::<usize>::new());
        let o = SearchOptions { min_new_tokens: 2, ..options() };
        assert_eq!(banned(&o, &[9, 1]), vec![0]);
        assert_eq!(banned(&o, &[9, 1, 2]), Vec::<usize>::new());
    }

    #[test]
    fn forced_eos_at_the_last_position_wins_over_bans() {
        let o = SearchOptions { forced_eos_token_id: Some(0), min_length: 10, ..options() };
        let mut row = vec![1.0f32; 10];
        LogitsProcessor::new(&o).apply(&mut row, &[9, 1, 2, 3, 4]);
        assert_eq!(row[0], 0.0);
        assert!(row[1..].iter().all(|s| *s == f32::NEG_INFINITY));
    }

    #[test]
    fn log_softmax_and_argmax() {
        let mut row = vec![1.0f32, 2.0, 3.0, 3.0];
        assert_eq!(argmax(&row), 2);
        log_softmax_in_place(&mut row);
        let total: f32 = row.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        let mut inf = vec![f32::NEG_INFINITY, 0.0];
        log_softmax_in_place(&mut inf);
        assert_eq!(inf, vec![f32::NEG_INFINITY, 0.0]);
    }
}
