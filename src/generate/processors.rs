//! Logits processors with the reference semantics and order: no-repeat n-grams, bad words, minimum lengths,
//! forced first/last tokens, and the final renormalisation.

use super::SearchOptions;

/// What the processors allow for a hypothesis' next token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// Every token but these may follow (the list is often empty).
    Banned(Vec<u32>),
    /// Only this token may follow (forced BOS/EOS); its processed score is 0.
    Forced(u32),
}

impl Constraint {
    pub fn allows(&self, token: u32) -> bool {
        match self {
            Constraint::Banned(banned) => !banned.contains(&token),
            Constraint::Forced(t) => *t == token,
        }
    }
}

/// The processors `SearchOptions` asks for, in the order `generate()` builds its list.
pub struct LogitsProcessor<'a> {
    options: &'a SearchOptions,
}

impl<'a> LogitsProcessor<'a> {
    pub fn new(options: &'a SearchOptions) -> Self {
        Self { options }
    }

    /// The constraint on the token after `history` (the decoder input so far, start token included): bans from
    /// no-repeat n-grams, bad words and minimum lengths; a forced first or last token overrides them.
    pub fn constraint(&self, history: &[u32]) -> Constraint {
        let o = self.options;
        let cur_len = history.len();
        if let Some(eos) = o.forced_eos_token_id.filter(|_| cur_len == o.max_length - 1) {
            return Constraint::Forced(eos);
        }
        if let Some(bos) = o.forced_bos_token_id.filter(|_| cur_len == 1) {
            return Constraint::Forced(bos);
        }
        let mut banned = Vec::new();
        let n = o.no_repeat_ngram_size;
        if n > 0 && cur_len >= n {
            let prefix = &history[cur_len + 1 - n..];
            for window in history.windows(n) {
                if &window[..n - 1] == prefix {
                    banned.push(window[n - 1]);
                }
            }
        }
        for word in &o.bad_words_ids {
            let (last, prefix) = word.split_last().expect("bad words are non-empty");
            if word.len() <= cur_len && history.ends_with(prefix) {
                banned.push(*last);
            }
        }
        if cur_len < o.min_length || cur_len - 1 < o.min_new_tokens {
            banned.extend_from_slice(&o.eos_token_ids);
        }
        banned.sort_unstable();
        banned.dedup();
        Constraint::Banned(banned)
    }

    /// Applies the constraint to a row of scores in place: banned tokens `-inf`, or only the forced token at 0.
    #[cfg(test)]
    pub fn apply(&self, scores: &mut [f32], history: &[u32]) {
        match self.constraint(history) {
            Constraint::Forced(t) => {
                scores.fill(f32::NEG_INFINITY);
                if let Some(s) = scores.get_mut(t as usize) {
                    *s = 0.0;
                }
            }
            Constraint::Banned(banned) => {
                for t in banned {
                    if let Some(s) = scores.get_mut(t as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
        }
    }
}

/// `log_softmax` over a row in place, computed as `x - max - ln(Σ exp(x - max))` like the reference kernel.
#[cfg(test)]
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

/// The token greedy search picks: the forced one, else the first allowed maximum (as `argmax` of the processed
/// scores).
pub fn greedy_token(row: &[f32], constraint: &Constraint) -> u32 {
    match constraint {
        Constraint::Forced(t) => *t,
        Constraint::Banned(banned) => {
            let banned = |i: usize| banned.binary_search(&(i as u32)).is_ok();
            crate::models::kernels::math::top_k(row, 1, banned).first().map_or(0, |&(_, t)| t)
        }
    }
}

/// A candidate continuation: its score and its index (a token, or `beam * vocab + token` in beam search).
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub score: f32,
    pub index: usize,
}

/// Keeps the `k` best candidates, best first; a candidate equal to a kept one ranks after it, so that pushed
/// in index order, the earlier index ranks first on equal scores (as `topk` does).
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    pub best: Vec<Candidate>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self { k, best: Vec::with_capacity(k + 1) }
    }

    #[inline]
    pub fn push(&mut self, score: f32, index: usize) {
        if self.best.len() == self.k {
            match self.best.last() {
                Some(worst) if score > worst.score || (worst.score.is_nan() && !score.is_nan()) => {}
                _ => return,
            }
        }
        let at = self.best.partition_point(|c| c.score >= score);
        self.best.insert(at, Candidate { score, index });
        self.best.truncate(self.k);
    }

    /// The worst kept score once `k` are kept.
    fn floor(&self) -> Option<f32> {
        (self.best.len() == self.k).then(|| self.best.last().map(|c| c.score)).flatten()
    }
}

/// A row of logits reduced chunk by chunk, in column order: the maximum and `Σ exp(x - max)` over every token
/// (the first `log_softmax`), and the `k` best allowed tokens (equal values in index order). Folded as one
/// chunk, it is exactly the arithmetic of a whole row; over several, the sums are rescaled to the larger
/// maximum as they are combined (as an online softmax does).
#[derive(Debug, Clone)]
pub struct RowScore {
    max: f32,
    /// `Σ exp(x - max)` over the values folded so far.
    sum: f32,
    /// The best allowed logits, by token.
    top: TopK,
    /// The banned tokens' logits, in token order (for the renormalisation).
    banned: Vec<f32>,
}

impl RowScore {
    /// An empty reduction that keeps the `k` best tokens.
    pub fn new(k: usize) -> Self {
        Self { max: f32::NEG_INFINITY, sum: 0.0, top: TopK::new(k), banned: Vec::new() }
    }

    /// Folds in `values`, the logits of tokens `first..`: into the sums when `sums`, and into the best unless
    /// `banned` (sorted) holds the token.
    pub fn fold(&mut self, first: usize, values: &[f32], banned: &[u32], sums: bool) {
        use crate::models::kernels::math;
        if sums {
            let m = math::max(values);
            if m != f32::NEG_INFINITY {
                self.add_mass(m, math::sum_exp(values, m));
            }
        }
        let lo = banned.partition_point(|&b| (b as usize) < first);
        let hi = banned.partition_point(|&b| (b as usize) < first + values.len());
        let banned = &banned[lo..hi];
        if sums {
            self.banned.extend(banned.iter().map(|&b| values[b as usize - first]));
        }
        // Once `k` are kept, only values above the worst of them can enter.
        let floor = self.top.floor().unwrap_or(f32::NEG_INFINITY);
        let skip = |i: usize| banned.binary_search(&((first + i) as u32)).is_ok();
        for (x, i) in math::top_k_above(values, self.top.k, floor, skip) {
            self.top.push(x, first + i as usize);
        }
    }

    /// Folds in the reduction of the columns after this one's.
    pub fn merge(&mut self, later: RowScore) {
        if later.max != f32::NEG_INFINITY {
            self.add_mass(later.max, later.sum);
        }
        for c in later.top.best {
            self.top.push(c.score, c.index);
        }
        self.banned.extend(later.banned);
    }

    fn add_mass(&mut self, m: f32, sum: f32) {
        if m > self.max {
            self.sum = self.sum * (self.max - m).exp() + sum;
            self.max = m;
        } else {
            self.sum += sum * (m - self.max).exp();
        }
    }

    /// The best allowed token (greedy search's argmax), if any.
    pub fn best_token(&self) -> Option<u32> {
        self.top.best.first().map(|c| c.index as u32)
    }

    /// The kept tokens' log-probabilities `x - max - ln Σ`, best first.
    pub fn candidates(&self) -> Vec<(f32, u32)> {
        let log_sum = self.sum.ln();
        self.top.best.iter().map(|c| (c.score - self.max - log_sum, c.index as u32)).collect()
    }

    /// The candidates after the second `log_softmax`, over the allowed tokens, when the banned tokens' share
    /// can be taken from the full sum: the maximum is allowed and the banned tokens hold less than half of the
    /// mass. `None` otherwise: the allowed tokens must then be summed directly
    /// ([`RowScore::renormalized_with`]).
    pub fn renormalized(&self) -> Option<Vec<(f32, u32)>> {
        let Some(best) = self.top.best.first() else { return Some(Vec::new()) };
        let banned_mass: f32 = self.banned.iter().map(|&x| (x - self.max).exp()).sum();
        (best.score == self.max && banned_mass < 0.5 * self.sum).then(|| self.renormalized_with(self.sum - banned_mass))
    }

    /// The candidates after the second `log_softmax`, given `Σ exp(x - best)` over the allowed tokens.
    pub fn renormalized_with(&self, allowed_sum: f32) -> Vec<(f32, u32)> {
        let log_sum = self.sum.ln();
        let y = |x: f32| x - self.max - log_sum;
        let Some(best) = self.top.best.first() else { return Vec::new() };
        let (m2, log_sum2) = (y(best.score), allowed_sum.ln());
        self.top.best.iter().map(|c| (y(c.score) - m2 - log_sum2, c.index as u32)).collect()
    }
}

/// The `k` best continuations of a hypothesis as the reference scores them — `log_softmax`, the processors, and
/// with `renormalize` a second `log_softmax` over the allowed tokens — without rewriting the row: one max pass,
/// one exponential pass and one thresholded scan. Returns (log-probability, token), best first.
pub fn row_candidates(row: &[f32], constraint: &Constraint, renormalize: bool, k: usize) -> Vec<(f32, u32)> {
    let banned = match constraint {
        // log_softmax of a row that is -inf but for one 0 gives 0 there.
        Constraint::Forced(t) => return vec![(0.0, *t)],
        Constraint::Banned(banned) => banned,
    };
    let mut score = RowScore::new(k);
    score.fold(0, row, banned, true);
    if !renormalize || score.top.best.is_empty() {
        return score.candidates();
    }
    score.renormalized().unwrap_or_else(|| {
        // The banned tokens held the maximum or most of the mass: sum the allowed ones directly.
        let best = score.top.best[0].score;
        let allowed_sum = row
            .iter()
            .enumerate()
            .filter(|(i, _)| banned.binary_search(&(*i as u32)).is_err())
            .map(|(_, &x)| (x - best).exp())
            .sum::<f32>();
        score.renormalized_with(allowed_sum)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SearchOptions {
        SearchOptions::for_tests(1, 6)
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
    fn greedy_takes_the_first_allowed_maximum() {
        let row = vec![1.0f32, 2.0, 3.0, 3.0];
        assert_eq!(greedy_token(&row, &Constraint::Banned(vec![])), 2);
        assert_eq!(greedy_token(&row, &Constraint::Banned(vec![2])), 3);
        assert_eq!(greedy_token(&row, &Constraint::Forced(0)), 0);
    }

    /// The candidates equal the reference's arithmetic spelled out on a copied row.
    #[test]
    fn row_candidates_equal_log_softmax_processors_and_renormalisation() {
        let row: Vec<f32> = (0..300).map(|i| ((i * 7919) % 1009) as f32 / 50.0 - 10.0).collect();
        let top_index = row.iter().enumerate().fold(0, |b, (i, &x)| if x > row[b] { i } else { b }) as u32;
        for banned in [vec![], vec![5, 17], vec![top_index]] {
            for renormalize in [false, true] {
                let mut expect = row.clone();
                log_softmax_in_place(&mut expect);
                for &b in &banned {
                    expect[b as usize] = f32::NEG_INFINITY;
                }
                if renormalize {
                    log_softmax_in_place(&mut expect);
                }
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.sort_by(|&a, &b| expect[b].total_cmp(&expect[a]).then(a.cmp(&b)));
                let got = row_candidates(&row, &Constraint::Banned(banned.clone()), renormalize, 6);
                for (rank, (score, token)) in got.iter().enumerate() {
                    assert_eq!(*token as usize, order[rank], "banned {banned:?} renormalize {renormalize}");
                    assert!((score - expect[order[rank]]).abs() < 1e-5, "{score} vs {}", expect[order[rank]]);
                }
            }
        }
        assert_eq!(row_candidates(&row, &Constraint::Forced(3), true, 6), vec![(0.0, 3)]);
    }

    /// A row folded in chunks, merged in column order from several parts (as the packed product hands it
    /// over), keeps the same tokens in the same order as the whole row, ties included, and the same
    /// log-probabilities up to rounding.
    #[test]
    fn a_row_scored_in_chunks_equals_the_whole_row() {
        let mut row: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1009) as f32 / 40.0 - 12.0).collect();
        row[3] = 14.0; // the best, tied with a token in a later chunk
        row[700] = 14.0;
        let banned = vec![5, 17, 512];
        let whole = row_candidates(&row, &Constraint::Banned(banned.clone()), false, 8);
        for chunk in [1, 7, 32, 256, 999] {
            for parts in [1, 3] {
                let per_part = row.len().div_ceil(parts);
                let mut merged = RowScore::new(8);
                for part in 0..parts {
                    let mut score = RowScore::new(8);
                    let cols = part * per_part..((part + 1) * per_part).min(row.len());
                    for first in cols.clone().step_by(chunk) {
                        let end = (first + chunk).min(cols.end);
                        score.fold(first, &row[first..end], &banned, true);
                    }
                    merged.merge(score);
                }
                let got = merged.candidates();
                let tokens = |c: &[(f32, u32)]| c.iter().map(|&(_, t)| t).collect::<Vec<_>>();
                assert_eq!(tokens(&got), tokens(&whole), "chunk {chunk}, parts {parts}");
                assert_eq!(&tokens(&got)[..2], &[3, 700], "equal values keep index order");
                for ((g, _), (w, _)) in got.iter().zip(&whole) {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "chunk {chunk}: {g} vs {w}");
                }
                assert_eq!(merged.best_token(), Some(3));
                let again = row_candidates(&row, &Constraint::Banned(banned.clone()), true, 8);
                let renormalized = merged.renormalized().expect("the maximum is allowed");
                assert_eq!(tokens(&renormalized), tokens(&again), "chunk {chunk}, parts {parts}, renormalised");
                for ((g, _), (w, _)) in renormalized.iter().zip(&again) {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "chunk {chunk}: {g} vs {w}");
                }
            }
        }
    }

    /// A banned token far above the rest (exp(best - max) underflows to 0) still renormalises to finite scores.
    #[test]
    fn renormalising_after_a_dominant_banned_token_stays_finite() {
        let mut row: Vec<f32> = (0..50).map(|i| i as f32 / 10.0).collect();
        row[7] = 500.0;
        let mut expect = row.clone();
        log_softmax_in_place(&mut expect);
        expect[7] = f32::NEG_INFINITY;
        log_softmax_in_place(&mut expect);
        let got = row_candidates(&row, &Constraint::Banned(vec![7]), true, 3);
        let mut score = RowScore::new(3);
        score.fold(0, &row, &[7], true);
        assert_eq!(score.renormalized(), None, "a banned maximum needs the direct sum");
        assert_eq!(got.iter().map(|&(_, t)| t).collect::<Vec<_>>(), vec![49, 48, 47]);
        for (score, token) in got {
            assert!((score - expect[token as usize]).abs() < 1e-4, "{score} vs {}", expect[token as usize]);
        }
    }
}
