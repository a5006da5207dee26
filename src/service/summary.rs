//! Summaries of English text of any length: one pass when the text fits the summarizer's input, otherwise
//! map-reduce — sentence-aligned chunks are summarized, their summaries joined and summarized again, until the
//! text fits — so that no part of a long article is ignored.

use std::time::Instant;

use super::{Generator, ServiceError};
use crate::engine::{Codec, EngineError};
use crate::generate::Overrides;
use crate::tokenize::segment::Document;

/// How summaries are made.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOptions {
    /// Search settings of the final summary (the model's summarization defaults where unset).
    pub overrides: Overrides,
    /// Most input tokens per summarizer call (prefix included); T5 was trained on 512.
    pub chunk_tokens: usize,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        Self { overrides: Overrides::default(), chunk_tokens: 512 }
    }
}

/// One summarizer call of a round: the units `[start, end)` of that round's input, and its size in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub tokens: usize,
}

/// A summary and how it was made: `rounds[0]` chunks the source sentences; each later round chunks the
/// previous round's summaries; the last round has a single chunk.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub text: String,
    pub rounds: Vec<Vec<Chunk>>,
    /// Whether every summarizer call was answered from the cache.
    pub cached: bool,
}

/// Rounds of map-reduce before giving up; each round at least halves the text, so this is never reached with a
/// summary length below half the chunk size.
const MAX_ROUNDS: usize = 12;

/// Summarizes `text` (English; sentences are found as for translation).
pub fn summarize(
    summarizer: &dyn Generator,
    text: &str,
    options: &SummaryOptions,
    deadline: Option<Instant>,
) -> Result<Summary, ServiceError> {
    summarize_many(summarizer, &[text.to_string()], options, deadline).remove(0)
}

/// One text's map-reduce in progress.
struct Progress {
    units: Vec<String>,
    rounds: Vec<Vec<Chunk>>,
    cached: bool,
    result: Option<Result<Summary, ServiceError>>,
}

/// Summarizes several texts with their rounds in lockstep, so that the chunks of all texts go to the model
/// together. A text's failure (e.g. an impossible option) is its own; the others go on.
pub fn summarize_many(
    summarizer: &dyn Generator,
    texts: &[String],
    options: &SummaryOptions,
    deadline: Option<Instant>,
) -> Vec<Result<Summary, ServiceError>> {
    let codec = summarizer.codec();
    let budget = codec.max_source_tokens().map_or(options.chunk_tokens, |m| m.min(options.chunk_tokens));
    // Intermediate summaries must stay below half a chunk, so that every round halves the text.
    let final_options = match codec.search_options(&options.overrides) {
        Ok(o) => o,
        Err(e) => return texts.iter().map(|_| Err(ServiceError::Engine(EngineError::Input(e.to_string())))).collect(),
    };
    let mut map_overrides = options.overrides.clone();
    if final_options.max_length - 1 > budget / 2 {
        map_overrides.max_new_tokens = Some((budget / 2).max(1));
    }
    let mut work: Vec<Progress> = texts
        .iter()
        .map(|text| {
            let units: Vec<String> = Document::parse(text).sentences().map(str::to_string).collect();
            let result =
                units.is_empty().then(|| Ok(Summary { text: String::new(), rounds: Vec::new(), cached: false }));
            Progress { units, rounds: Vec::new(), cached: true, result }
        })
        .collect();
    for _ in 0..MAX_ROUNDS {
        // This round's chunks, per unfinished text; the last round of a text has one chunk.
        let mut finals: Vec<(usize, String)> = Vec::new();
        let mut maps: Vec<(usize, Vec<String>)> = Vec::new();
        for (i, w) in work.iter_mut().enumerate().filter(|(_, w)| w.result.is_none()) {
            match pack(codec, &w.units, budget) {
                Ok(chunks) => {
                    let joined: Vec<String> = chunks.iter().map(|c| w.units[c.start..c.end].join(" ")).collect();
                    if chunks.len() == 1 {
                        finals.push((i, joined.into_iter().next().unwrap_or_default()));
                    } else {
                        maps.push((i, joined));
                    }
                    w.rounds.push(chunks);
                }
                Err(e) => w.result = Some(Err(e)),
            }
        }
        if finals.is_empty() && maps.is_empty() {
            break;
        }
        if !finals.is_empty() {
            let inputs: Vec<String> = finals.iter().map(|(_, t)| t.clone()).collect();
            match summarizer.generate(&inputs, &options.overrides, deadline) {
                Ok(outputs) => {
                    for ((i, _), g) in finals.iter().zip(outputs) {
                        let w = &mut work[*i];
                        w.cached &= g.cached;
                        w.result =
                            Some(Ok(Summary { text: g.text, rounds: std::mem::take(&mut w.rounds), cached: w.cached }));
                    }
                }
                Err(e) => {
                    for (i, _) in &finals {
                        work[*i].result = Some(Err(e.duplicate()));
                    }
                }
            }
        }
        if !maps.is_empty() {
            let inputs: Vec<String> = maps.iter().flat_map(|(_, chunks)| chunks.iter().cloned()).collect();
            match summarizer.generate(&inputs, &map_overrides, deadline) {
                Ok(outputs) => {
                    let mut outputs = outputs.into_iter();
                    for (i, chunks) in &maps {
                        let mine: Vec<_> = chunks.iter().filter_map(|_| outputs.next()).collect();
                        let w = &mut work[*i];
                        w.cached &= mine.iter().all(|g| g.cached);
                        w.units = mine.into_iter().map(|g| g.text).filter(|s| !s.trim().is_empty()).collect();
                        if w.units.is_empty() {
                            w.result = Some(Ok(Summary {
                                text: String::new(),
                                rounds: std::mem::take(&mut w.rounds),
                                cached: w.cached,
                            }));
                        }
                    }
                }
                Err(e) => {
                    for (i, _) in &maps {
                        work[*i].result = Some(Err(e.duplicate()));
                    }
                }
            }
        }
    }
    work.into_iter()
        .map(|w| {
            w.result.unwrap_or_else(|| {
                Err(ServiceError::Input(format!(
                    "the text did not shrink to one summarizer input in {MAX_ROUNDS} rounds"
                )))
            })
        })
        .collect()
}

/// Packs consecutive units into chunks of at most `budget` tokens. A unit longer than the budget is a chunk of
/// its own (the engine splits it further if it exceeds the model's input limit).
fn pack(codec: &Codec, units: &[String], budget: usize) -> Result<Vec<Chunk>, ServiceError> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < units.len() {
        let mut end = start + 1;
        let mut tokens = codec.count_tokens(&units[start])?;
        while end < units.len() {
            let candidate = codec.count_tokens(&units[start..=end].join(" "))?;
            if candidate > budget {
                break;
            }
            tokens = candidate;
            end += 1;
        }
        chunks.push(Chunk { start, end, tokens });
        start = end;
    }
    Ok(chunks)
}
