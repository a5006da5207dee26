//! Greedy and beam search with the semantics of `transformers`' `generate()` (its vectorised beam search of
//! v4.50+): top-2k candidates per item, length-penalised finished hypotheses, the early-stopping heuristic, and
//! items that stop independently. Finished items leave the batch, which changes no other item's result.

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

use super::processors::{greedy_token, row_candidates, Candidate, Constraint, LogitsProcessor, RowScore, TopK};
use super::{Hypothesis, SearchOptions};
use crate::models::config::EarlyStopping;
use crate::models::{DecoderState, ModelError, Seq2Seq, SourceBatch};

/// The score the reference gives beams that must not win (and the initial score of all beams but the first).
const LOST: f32 = -1.0e9;
/// First capacity of the self-attention cache where the maximum length is longer than twice this; it doubles
/// as needed, up to the maximum length.
const INITIAL_CAPACITY: usize = 32;

/// A decoder state for `o`, its caches sized for the whole of `o.max_length` when that is at most twice
/// [`INITIAL_CAPACITY`]: then no output regrows them (a regrowth allocates, faults in and copies every layer's
/// cache, 600 MB at flan-t5-base beam 4 × 32, and holds both copies meanwhile).
fn decoder_state(
    model: &dyn Seq2Seq,
    encoded: &Tensor,
    batch: &SourceBatch,
    group: usize,
    o: &SearchOptions,
) -> Result<DecoderState, ModelError> {
    let capacity = if o.max_length <= 2 * INITIAL_CAPACITY { o.max_length } else { INITIAL_CAPACITY };
    let mut state = model.start_decoding(encoded, batch, group, capacity)?;
    state.limit_capacity(o.max_length);
    Ok(state)
}

/// Runs `f` over the f32 values of `logits` on the host, without a copy when they already live there.
fn with_host_values<R>(logits: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, ModelError> {
    let logits = logits.contiguous()?;
    if logits.device().is_cpu() {
        let (storage, layout) = logits.storage_and_layout();
        if let Storage::Cpu(cpu) = &*storage {
            let values = cpu.as_slice::<f32>()?;
            let start = layout.start_offset();
            return Ok(f(&values[start..start + logits.elem_count()]));
        }
    }
    let values = logits.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&values))
}

/// How the next token of each row is chosen.
#[derive(Clone, Copy)]
enum Scoring {
    /// The processed argmax.
    Greedy,
    /// The `k` best log-probabilities (renormalised over the allowed tokens when asked).
    Beam { k: usize, renormalize: bool },
}

/// Feeds each row's last token and scores its next one under its constraint: for `Greedy` the chosen token
/// (score 0), for `Beam` the best continuations, best first. Where the model's output projection is packed,
/// its logits are folded into each row's score chunk by chunk as the product makes them, and never stored
/// (128 × 54,796 values a step for Marian at beam 4 × batch 32); elsewhere they are scored row by row on the
/// host, as are the rare rows whose renormalisation needs a second pass over the allowed tokens.
fn next_tokens(
    model: &dyn Seq2Seq,
    state: &mut DecoderState,
    last: &[u32],
    constraints: &[Constraint],
    scoring: Scoring,
) -> Result<Vec<Vec<(f32, u32)>>, ModelError> {
    let tokens = Tensor::from_slice(last, (last.len(), 1), model.device())?;
    let hidden = model.decode_hidden(state, &tokens)?;
    let forced = |c: &Constraint| match c {
        Constraint::Forced(t) => Some(vec![(0.0, *t)]),
        Constraint::Banned(_) => None,
    };
    if let Some(all) = constraints.iter().map(forced).collect::<Option<Vec<_>>>() {
        return Ok(all);
    }
    let Some(rows) = fold_rows(model, &hidden, constraints, scoring)? else {
        return host_scores(model, &hidden, constraints, scoring);
    };
    let mut scored: Vec<Option<Vec<(f32, u32)>>> = rows
        .iter()
        .zip(constraints)
        .map(|(row, c)| match (forced(c), scoring) {
            (Some(f), _) => Some(f),
            (None, Scoring::Greedy) => Some(vec![(0.0, row.best_token().unwrap_or(0))]),
            (None, Scoring::Beam { renormalize: false, .. }) => Some(row.candidates()),
            (None, Scoring::Beam { renormalize: true, .. }) => row.renormalized(),
        })
        .collect();
    let again: Vec<u32> = (0..scored.len() as u32).filter(|&r| scored[r as usize].is_none()).collect();
    if !again.is_empty() {
        let picked = hidden.index_select(&Tensor::from_slice(&again, again.len(), hidden.device())?, 0)?;
        let picked_constraints: Vec<Constraint> = again.iter().map(|&r| constraints[r as usize].clone()).collect();
        let rescored = host_scores(model, &picked, &picked_constraints, scoring)?;
        for (&r, row) in again.iter().zip(rescored) {
            scored[r as usize] = Some(row);
        }
    }
    Ok(scored.into_iter().map(|row| row.expect("every row scored")).collect())
}

/// Each row's [`RowScore`] of the head's output, folded as the packed product makes it; `None` where the head
/// is not packed.
fn fold_rows(
    model: &dyn Seq2Seq,
    hidden: &Tensor,
    constraints: &[Constraint],
    scoring: Scoring,
) -> Result<Option<Vec<RowScore>>, ModelError> {
    let (k, sums) = match scoring {
        Scoring::Greedy => (1, false),
        Scoring::Beam { k, .. } => (k, true),
    };
    let fold = |score: &mut RowScore, row: usize, first: usize, values: &[f32]| {
        if let Constraint::Banned(banned) = &constraints[row] {
            score.fold(first, values, banned, sums);
        }
    };
    let Some(parts) = model.head().fold_rows(hidden, || RowScore::new(k), fold)? else { return Ok(None) };
    let mut rows = vec![RowScore::new(k); constraints.len()];
    for (row0, scores) in parts {
        for (row, score) in rows[row0..].iter_mut().zip(scores) {
            row.merge(score);
        }
    }
    Ok(Some(rows))
}

/// [`next_tokens`] over whole rows of logits on the host.
fn host_scores(
    model: &dyn Seq2Seq,
    hidden: &Tensor,
    constraints: &[Constraint],
    scoring: Scoring,
) -> Result<Vec<Vec<(f32, u32)>>, ModelError> {
    let vocab = model.spec().vocab_size;
    let logits = model.head().forward(hidden)?.to_dtype(candle_core::DType::F32)?;
    with_host_values(&logits, |values| {
        constraints
            .par_iter()
            .enumerate()
            .map(|(r, constraint)| {
                let row = &values[r * vocab..(r + 1) * vocab];
                match scoring {
                    Scoring::Greedy => vec![(0.0, greedy_token(row, constraint))],
                    Scoring::Beam { k, renormalize } => row_candidates(row, constraint, renormalize, k),
                }
            })
            .collect()
    })
}

/// Greedy search: the processed argmax at every step until an end token or the maximum length.
pub fn greedy(
    model: &dyn Seq2Seq,
    encoded: &Tensor,
    batch: &SourceBatch,
    o: &SearchOptions,
) -> Result<Vec<Hypothesis>, ModelError> {
    let items = batch.batch_size();
    let mut state = decoder_state(model, encoded, batch, 1, o)?;
    let mut histories = vec![vec![o.decoder_start_token_id]; items];
    let mut active: Vec<usize> = (0..items).collect();
    let processor = LogitsProcessor::new(o);
    while !active.is_empty() {
        let last: Vec<u32> =
            active.iter().map(|&i| *histories[i].last().expect("history starts with a token")).collect();
        let constraints: Vec<Constraint> = active.iter().map(|&i| processor.constraint(&histories[i])).collect();
        let next: Vec<u32> = next_tokens(model, &mut state, &last, &constraints, Scoring::Greedy)?
            .into_iter()
            .map(|best| best[0].1)
            .collect();
        let mut keep = Vec::with_capacity(active.len());
        for (r, (&item, token)) in active.iter().zip(next).enumerate() {
            histories[item].push(token);
            let finished = o.eos_token_ids.contains(&token) || histories[item].len() >= o.max_length;
            if !finished {
                keep.push(r as u32);
            }
        }
        if keep.len() < active.len() && !keep.is_empty() {
            state.select_items(&keep)?;
        }
        active = keep.iter().map(|&r| active[r as usize]).collect();
    }
    Ok(histories.into_iter().map(|h| Hypothesis { tokens: h[1..].to_vec(), score: 0.0 }).collect())
}

#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f32,
}

/// One source item's beam search.
struct Item {
    running: Vec<Beam>,
    /// Finished hypotheses, best first, at most `num_beams`.
    finished: Vec<Beam>,
    /// Whether a running beam may still beat the worst finished one (the reference's early-stop heuristic).
    improvable: bool,
}

impl Item {
    fn is_full(&self, num_beams: usize) -> bool {
        self.finished.len() == num_beams
    }

    fn is_done(&self, o: &SearchOptions) -> bool {
        !self.improvable || (o.early_stopping == EarlyStopping::Always && self.is_full(o.num_beams))
    }
}

fn penalty(length: usize, length_penalty: f32) -> f32 {
    (length as f64).powf(length_penalty as f64) as f32
}

/// Beam search over `num_beams` hypotheses per item; each item's `num_return_sequences` best, best first.
pub fn beam(
    model: &dyn Seq2Seq,
    encoded: &Tensor,
    batch: &SourceBatch,
    o: &SearchOptions,
) -> Result<Vec<Vec<Hypothesis>>, ModelError> {
    let vocab = model.spec().vocab_size;
    let nb = o.num_beams;
    let keep_k = (1 + o.eos_token_ids.len()).max(2) * nb;
    let n_items = batch.batch_size();
    let mut state = decoder_state(model, encoded, batch, nb, o)?;
    let start = Beam { tokens: vec![o.decoder_start_token_id], score: 0.0 };
    let mut items: Vec<Item> = (0..n_items)
        .map(|_| Item {
            running: (0..nb).map(|j| Beam { score: if j == 0 { 0.0 } else { LOST }, ..start.clone() }).collect(),
            finished: Vec::with_capacity(nb),
            improvable: true,
        })
        .collect();
    let mut active: Vec<usize> = (0..n_items).collect();
    let processor = LogitsProcessor::new(o);
    let mut cur_len = 1;
    // The beams of an item start as one hypothesis, so the first step runs one decoder row per item where the
    // state allows it (as CTranslate2 does), and that row's scores stand for each beam's: they are the same.
    let mut shared = state.share_group();
    loop {
        let per_item = if shared { 1 } else { nb };
        let decoded = |i: usize| items[i].running.iter().take(per_item);
        let last: Vec<u32> = active
            .iter()
            .flat_map(|&i| decoded(i).map(|b| *b.tokens.last().expect("beams start with a token")))
            .collect();
        let constraints: Vec<Constraint> =
            active.iter().flat_map(|&i| decoded(i)).map(|b| processor.constraint(&b.tokens)).collect();
        // Each decoder row's best continuations.
        let scoring = Scoring::Beam { k: keep_k, renormalize: o.renormalize_logits };
        let per_row = next_tokens(model, &mut state, &last, &constraints, scoring)?;
        let at_max_length = cur_len + 1 >= o.max_length;
        // For each active item, the decoder rows its new running beams continue.
        let mut parents: Vec<Vec<u32>> = Vec::with_capacity(active.len());
        for (a, &i) in active.iter().enumerate() {
            let item = &mut items[i];
            let mut top = TopK::new(keep_k);
            for (j, beam) in item.running.iter().enumerate() {
                // While shared, the item's one row stands for each of its beams.
                let row = if shared { a } else { a * nb + j };
                for &(lp, v) in &per_row[row] {
                    top.push(lp + beam.score, j * vocab + v as usize);
                }
            }
            let candidates: Vec<(Candidate, bool)> = top
                .best
                .iter()
                .map(|c| (*c, at_max_length || o.eos_token_ids.contains(&((c.index % vocab) as u32))))
                .collect();
            let continuation = |c: &Candidate| {
                let mut tokens = item.running[c.index / vocab].tokens.clone();
                tokens.push((c.index % vocab) as u32);
                tokens
            };

            // Finished candidates among the first `num_beams` enter the finished set if they rank in it.
            let denominator = penalty(cur_len, o.length_penalty);
            let full_and_stopping = o.early_stopping == EarlyStopping::Always && item.is_full(nb);
            if item.improvable && !full_and_stopping {
                for (c, hit) in candidates.iter().take(nb) {
                    if !hit || c.score == f32::NEG_INFINITY {
                        continue;
                    }
                    let score = c.score / denominator;
                    let at = item.finished.partition_point(|f| f.score >= score);
                    if at < nb {
                        item.finished.insert(at, Beam { tokens: continuation(c), score });
                        item.finished.truncate(nb);
                    }
                }
            }

            // The best `num_beams` candidates that did not finish keep running.
            let mut next: Vec<(f32, usize)> = candidates
                .iter()
                .enumerate()
                .map(|(rank, (c, hit))| (if *hit { c.score + LOST } else { c.score }, rank))
                .collect();
            next.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let chosen: Vec<(f32, Candidate)> =
                next.iter().take(nb).map(|&(s, rank)| (s, candidates[rank].0)).collect();
            parents.push(chosen.iter().map(|(_, c)| (a * nb + c.index / vocab) as u32).collect());
            item.running = chosen.iter().map(|(s, c)| Beam { tokens: continuation(c), score: *s }).collect();
        }
        cur_len += 1;
        for &i in &active {
            let item = &mut items[i];
            let best_length = if o.early_stopping == EarlyStopping::Never && o.length_penalty > 0.0 {
                o.max_length - 1
            } else {
                cur_len - 1
            };
            let best_possible = item.running[0].score / penalty(best_length, o.length_penalty);
            let worst = if item.is_full(nb) { item.finished.last().map_or(LOST, |f| f.score) } else { LOST };
            item.improvable = item.improvable && best_possible > worst;
        }
        if at_max_length {
            break;
        }
        if std::mem::take(&mut shared) {
            state.unshare_group()?;
        }
        let rows: Vec<u32> = parents.concat();
        state.select_rows(&rows)?;
        let keep: Vec<u32> = (0..active.len() as u32).filter(|&a| !items[active[a as usize]].is_done(o)).collect();
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            state.select_items(&keep)?;
            active = keep.iter().map(|&a| active[a as usize]).collect();
        }
    }
    Ok(items
        .into_iter()
        .map(|item| {
            // The reference returns the first `num_return_sequences` of its finished set, best first. An item
            // whose set is short (only when candidates scored minus infinity) is filled from its running beams.
            let n = o.num_return_sequences;
            let short = n.saturating_sub(item.finished.len());
            item.finished
                .into_iter()
                .take(n)
                .chain(item.running.into_iter().take(short))
                .map(|b| Hypothesis { tokens: b.tokens[1..].to_vec(), score: b.score })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{kernels, ComputeType, ModelFiles};
    use candle_core::Device;

    /// The folded scores equal the host's over whole rows: the same tokens, the same log-probabilities up to
    /// rounding, and, for a row whose maximum is banned (which needs the direct sum), exactly the host's.
    #[test]
    fn folded_scores_equal_host_scores_and_a_banned_maximum_is_rescored() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/marian/tiny");
        let files = ModelFiles { dir, id: "tiny".into(), revision: "local".into() };
        let loaded = crate::models::load(&files, &Device::Cpu, ComputeType::F32).expect("fixture loads");
        let model = loaded.model.as_ref();
        let pad = model.spec().pad_token_id;
        let batch = SourceBatch::new(&[vec![5, 6, 7, 0], vec![8, 9, 0]], pad, &Device::Cpu).unwrap();
        let encoded = model.encode(&batch).unwrap();
        let last = [model.spec().decoder_start_token_id, 5, 17, 100];
        let tokens = Tensor::from_slice(&last, (4, 1), &Device::Cpu).unwrap();
        let mut state = model.start_decoding(&encoded, &batch, 2, 8).unwrap();
        let hidden = model.decode_hidden(&mut state, &tokens).unwrap();
        let logits: Vec<Vec<f32>> = model.head().forward(&hidden).unwrap().to_vec2().unwrap();
        let argmax = |row: &[f32]| (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as u32;
        let constraints = [
            Constraint::Banned(vec![argmax(&logits[0])]),
            Constraint::Banned(vec![]),
            Constraint::Banned(vec![3, argmax(&logits[2]) + 1]),
            Constraint::Forced(3),
        ];
        for scoring in [Scoring::Beam { k: 4, renormalize: true }, Scoring::Beam { k: 4, renormalize: false }] {
            let want = host_scores(model, &hidden, &constraints, scoring).unwrap();
            let mut fresh = model.start_decoding(&encoded, &batch, 2, 8).unwrap();
            let got = next_tokens(model, &mut fresh, &last, &constraints, scoring).unwrap();
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                let ids = |c: &[(f32, u32)]| c.iter().map(|&(_, t)| t).collect::<Vec<_>>();
                assert_eq!(ids(g), ids(w), "row {r}");
                for ((a, _), (b, _)) in g.iter().zip(w) {
                    assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "row {r}: {a} vs {b}");
                }
            }
            if let Scoring::Beam { renormalize: true, .. } = scoring {
                assert_eq!(got[0], want[0], "the row with a banned maximum is scored on the host");
            }
        }
        let greedy = next_tokens(
            model,
            &mut model.start_decoding(&encoded, &batch, 2, 8).unwrap(),
            &last,
            &constraints,
            Scoring::Greedy,
        )
        .unwrap();
        assert_eq!(greedy, host_scores(model, &hidden, &constraints, Scoring::Greedy).unwrap());
        let folded = fold_rows(model, &hidden, &constraints, Scoring::Greedy).unwrap().is_some();
        assert_eq!(folded, kernels::isa::active() != kernels::Isa::Portable, "the head folds where it is packed");
    }

    #[test]
    fn topk_keeps_the_best_in_order_and_earlier_indices_on_ties() {
        let mut top = TopK::new(3);
        for (i, s) in [1.0, 5.0, 3.0, 5.0, f32::NEG_INFINITY, 4.0, 3.0].into_iter().enumerate() {
            top.push(s, i);
        }
        let got: Vec<(f32, usize)> = top.best.iter().map(|c| (c.score, c.index)).collect();
        assert_eq!(got, vec![(5.0, 1), (5.0, 3), (4.0, 5)]);
    }
}
