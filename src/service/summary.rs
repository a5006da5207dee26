//! Summaries of English text of any length: one pass when the text fits the summarizer's input, otherwise
//! map-reduce — sentence-aligned chunks are summarized, their summaries joined and summarized again, until the
//! text fits — so that no part of a long article is ignored.

use std::time::Instant;

use super::{Generator, ServiceError};
use crate::engine::Codec;
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
    let codec = summarizer.codec();
    let budget = codec.max_source_tokens().map_or(options.chunk_tokens, |m| m.min(options.chunk_tokens));
    let doc = Document::parse(text);
    let mut units: Vec<String> = doc.sentences().map(str::to_string).collect();
    let mut rounds = Vec::new();
    let mut cached = true;
    if units.is_empty() {
        return Ok(Summary { text: String::new(), rounds, cached: false });
    }
    // Intermediate summaries must stay below half a chunk, so that every round halves the text.
    let final_options = codec.search_options(&options.overrides)?;
    let mut map_overrides = options.overrides.clone();
    if final_options.max_length - 1 > budget / 2 {
        map_overrides.max_new_tokens = Some((budget / 2).max(1));
    }
    for _ in 0..MAX_ROUNDS {
        let chunks = pack(codec, &units, budget)?;
        let texts: Vec<String> = chunks.iter().map(|c| units[c.start..c.end].join(" ")).collect();
        let last = chunks.len() == 1;
        let generated =
            summarizer.generate(&texts, if last { &options.overrides } else { &map_overrides }, deadline)?;
        cached &= generated.iter().all(|g| g.cached);
        rounds.push(chunks);
        if last {
            let text = generated.into_iter().next().map(|g| g.text).unwrap_or_default();
            return Ok(Summary { text, rounds, cached });
        }
        units = generated.into_iter().map(|g| g.text).filter(|s| !s.trim().is_empty()).collect();
        if units.is_empty() {
            return Ok(Summary { text: String::new(), rounds, cached });
        }
    }
    Err(ServiceError::Input(format!("the text did not shrink to one summarizer input in {MAX_ROUNDS} rounds")))
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
