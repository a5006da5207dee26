//! The brief of an article: English headline, summary and paragraph-by-paragraph translation, with the source,
//! the models and the timings — as Markdown, or JSON following `docs/brief.schema.json` (schema `brief/1`).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::summary::{summarize_many, SummaryOptions};
use super::{Generator, ServiceError};
use crate::engine::ModelInfo;
use crate::generate::Overrides;
use crate::tokenize::segment::{Document, Line};

/// The `schema` value of briefs this version writes.
pub const SCHEMA: &str = "brief/1";

/// Options of [`make_brief`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BriefOptions {
    pub translate: Overrides,
    pub summary: SummaryOptions,
}

/// The source article a brief was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// File name (no directories), or the name the client gave.
    pub name: String,
    pub sha256: String,
    pub bytes: usize,
    pub words: usize,
    /// Non-blank lines, the headline included.
    pub paragraphs: usize,
}

/// A text in Indonesian and in English.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bilingual {
    pub source: String,
    pub english: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Models {
    pub translate: ModelInfo,
    pub summarize: ModelInfo,
}

/// How long making the brief took. Briefs made together (`brief batch`) share one translation call and one set
/// of summary rounds, so they share these times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub translate_ms: u64,
    pub summarize_ms: u64,
    pub total_ms: u64,
}

/// How the summary was made: summarizer calls per round (one round when the translation fits one input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryMethod {
    pub chunks_per_round: Vec<usize>,
}

/// An English brief of an Indonesian article.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Brief {
    pub schema: String,
    /// The first 16 hex digits of the source's SHA-256: the same article always has the same id.
    pub id: String,
    pub source: SourceInfo,
    /// The first non-blank line of the article.
    pub headline: Bilingual,
    /// English summary of the English translation.
    pub summary: String,
    /// The article after the headline, one entry per source paragraph (non-blank line), in order.
    pub paragraphs: Vec<Bilingual>,
    pub models: Models,
    pub summary_method: SummaryMethod,
    pub timings: Timings,
    /// When the brief was made (RFC 3339, UTC).
    pub created_at: String,
}

/// The id of the brief of `text`.
pub fn brief_id(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// An article to brief: a name (a file name) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub name: String,
    pub text: String,
}

/// Translates the article `text` (named `name`), summarizes the English, and assembles the brief.
pub fn make_brief(
    translator: &dyn Generator,
    summarizer: &dyn Generator,
    name: &str,
    text: &str,
    options: &BriefOptions,
    deadline: Option<Instant>,
) -> Result<Brief, ServiceError> {
    let article = Article { name: name.to_string(), text: text.to_string() };
    make_briefs(translator, summarizer, std::slice::from_ref(&article), options, deadline).remove(0)
}

/// One article on its way to a brief.
struct Draft<'a> {
    article: &'a Article,
    /// (Markdown prefix, sentences) of each paragraph.
    paragraphs: Vec<(String, Vec<String>)>,
    english: Vec<Bilingual>,
}

/// Briefs of several articles: the sentences of all are translated together, then their summaries are made
/// together, round by round. An article's failure (empty, unreadable by the model) is its own.
pub fn make_briefs(
    translator: &dyn Generator,
    summarizer: &dyn Generator,
    articles: &[Article],
    options: &BriefOptions,
    deadline: Option<Instant>,
) -> Vec<Result<Brief, ServiceError>> {
    let started = Instant::now();
    let mut results: Vec<Option<Result<Brief, ServiceError>>> = articles.iter().map(|_| None).collect();
    let mut drafts: Vec<(usize, Draft<'_>)> = Vec::new();
    for (i, article) in articles.iter().enumerate() {
        let doc = Document::parse(&article.text);
        let paragraphs: Vec<(String, Vec<String>)> = doc
            .lines
            .into_iter()
            .filter_map(|line| match line {
                Line::Paragraph { prefix, sentences } => Some((prefix, sentences)),
                Line::Blank(_) => None,
            })
            .collect();
        if paragraphs.is_empty() {
            results[i] = Some(Err(ServiceError::Input(format!("{}: the article is empty", article.name))));
        } else {
            drafts.push((i, Draft { article, paragraphs, english: Vec::new() }));
        }
    }

    // All sentences at once; if that fails, article by article, so that one bad article fails alone.
    let sentences =
        |d: &Draft<'_>| -> Vec<String> { d.paragraphs.iter().flat_map(|(_, s)| s.iter().cloned()).collect() };
    let all: Vec<String> = drafts.iter().flat_map(|(_, d)| sentences(d)).collect();
    let translated: Vec<Result<Vec<String>, ServiceError>> =
        match translator.generate(&all, &options.translate, deadline) {
            Ok(generated) => {
                let mut next = generated.into_iter().map(|g| g.text);
                drafts
                    .iter()
                    .map(|(_, d)| Ok(sentences(d).iter().map(|_| next.next().unwrap_or_default()).collect()))
                    .collect()
            }
            Err(_) => drafts
                .iter()
                .map(|(_, d)| {
                    translator
                        .generate(&sentences(d), &options.translate, deadline)
                        .map(|g| g.into_iter().map(|g| g.text).collect())
                })
                .collect(),
        };
    let mut ready: Vec<(usize, Draft<'_>)> = Vec::new();
    for ((i, mut draft), english) in drafts.into_iter().zip(translated) {
        match english {
            Ok(english) => {
                let mut next = english.into_iter();
                draft.english = draft
                    .paragraphs
                    .iter()
                    .map(|(prefix, sentences)| {
                        let english: Vec<String> = sentences
                            .iter()
                            .map(|_| next.next().unwrap_or_default())
                            .filter(|s| !s.is_empty())
                            .collect();
                        Bilingual {
                            source: format!("{prefix}{}", sentences.join(" ")),
                            english: format!("{prefix}{}", english.join(" ")),
                        }
                    })
                    .collect();
                ready.push((i, draft));
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let translate_ms = started.elapsed().as_millis() as u64;

    let summarizing = Instant::now();
    let inputs: Vec<String> = ready
        .iter()
        .map(|(_, d)| {
            let (headline, body) = d.english.split_first().expect("a draft has a paragraph");
            if body.is_empty() {
                headline.english.clone()
            } else {
                body.iter().map(|p| p.english.as_str()).collect::<Vec<_>>().join("\n")
            }
        })
        .collect();
    let summaries = summarize_many(summarizer, &inputs, &options.summary, deadline);
    let summarize_ms = summarizing.elapsed().as_millis() as u64;
    let total_ms = started.elapsed().as_millis() as u64;

    for ((i, draft), summary) in ready.into_iter().zip(summaries) {
        results[i] = Some(summary.map(|summary| {
            let text = &draft.article.text;
            let mut english = draft.english.into_iter();
            let headline = english.next().expect("a draft has a paragraph");
            let paragraphs: Vec<Bilingual> = english.collect();
            Brief {
                schema: SCHEMA.to_string(),
                id: brief_id(text),
                source: SourceInfo {
                    name: draft.article.name.clone(),
                    sha256: format!("{:x}", Sha256::digest(text.as_bytes())),
                    bytes: text.len(),
                    words: text.split_whitespace().count(),
                    paragraphs: paragraphs.len() + 1,
                },
                headline,
                summary: summary.text,
                paragraphs,
                models: Models {
                    translate: translator.codec().info().clone(),
                    summarize: summarizer.codec().info().clone(),
                },
                summary_method: SummaryMethod { chunks_per_round: summary.rounds.iter().map(Vec::len).collect() },
                timings: Timings { translate_ms, summarize_ms, total_ms },
                created_at: now_rfc3339(),
            }
        }));
    }
    results.into_iter().map(|r| r.expect("every article has a result")).collect()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

impl Brief {
    /// The brief as a Markdown document.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str(&format!("# {}\n\n", one_line(&self.headline.english)));
        md.push_str(&format!(
            "*{}* — source: `{}`\n\n",
            one_line(&self.headline.source),
            self.source.name.replace('`', "'")
        ));
        md.push_str("## Summary\n\n");
        md.push_str(&format!("{}\n\n", self.summary.trim()));
        md.push_str("## Translation\n\n");
        for p in &self.paragraphs {
            md.push_str(&format!("{}\n\n", p.english.trim_end()));
        }
        md.push_str("---\n\n");
        let m = &self.models;
        md.push_str(&format!(
            "Models: translation `{}` @ `{}`; summary `{}` @ `{}`.  \n",
            m.translate.id, m.translate.revision, m.summarize.id, m.summarize.revision
        ));
        md.push_str(&format!(
            "Timings: translation {} ms, summary {} ms, total {} ms. Made {}.\n",
            self.timings.translate_ms, self.timings.summarize_ms, self.timings.total_ms, self.created_at
        ));
        md
    }

    /// The brief as pretty-printed JSON (`docs/brief.schema.json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a brief always serializes")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
