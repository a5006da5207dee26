//! The brief of an article: English headline, summary and paragraph-by-paragraph translation, with the source,
//! the models and the timings — as Markdown, or JSON following `docs/brief.schema.json` (schema `brief/1`).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::boilerplate;
pub use super::boilerplate::DroppedLine;
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
    /// Translate and summarize boilerplate lines too (default false: they are left out and listed in
    /// [`Brief::dropped`]; see [`super::boilerplate`]).
    pub keep_boilerplate: bool,
}

/// The source article a brief was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// File name (no directories), or the name the client gave.
    pub name: String,
    pub sha256: String,
    pub bytes: usize,
    pub words: usize,
    /// Non-blank lines the brief was made of, the headline included: the lines in [`Brief::dropped`] are not
    /// counted (`bytes`, `words` and `sha256` are those of the whole text as given).
    pub paragraphs: usize,
    /// The news site or paper, as the client or the batch file gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlet: Option<String>,
    /// The article's address (an absolute `http`/`https` URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the article was published (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
}

/// What is known of an article beyond its text: all optional, checked by [`ArticleMeta::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleMeta {
    #[serde(default)]
    pub outlet: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub published_at: Option<String>,
}

impl Article {
    /// An article with no metadata.
    pub fn new(name: &str, text: &str) -> Self {
        Self { name: name.to_string(), text: text.to_string(), meta: ArticleMeta::default() }
    }
}

impl ArticleMeta {
    /// Longest outlet name kept.
    pub const MAX_OUTLET_CHARS: usize = 200;
    /// Longest address kept.
    pub const MAX_URL_BYTES: usize = 2048;

    pub fn is_empty(&self) -> bool {
        self.outlet.is_none() && self.url.is_none() && self.published_at.is_none()
    }

    /// The metadata checked and normalised: blank fields become absent, the outlet is one line, the address an
    /// absolute `http`/`https` URL, and the time RFC 3339 (a bare `YYYY-MM-DD` is that day at 00:00 UTC).
    pub fn validate(self) -> Result<Self, String> {
        let present = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let outlet = present(self.outlet).map(|o| o.split_whitespace().collect::<Vec<_>>().join(" "));
        if let Some(o) = &outlet {
            if o.chars().count() > Self::MAX_OUTLET_CHARS {
                return Err(format!("outlet: at most {} characters", Self::MAX_OUTLET_CHARS));
            }
        }
        let url = match present(self.url) {
            None => None,
            Some(u) if u.len() > Self::MAX_URL_BYTES => {
                return Err(format!("url: at most {} bytes", Self::MAX_URL_BYTES))
            }
            Some(u) => match url::Url::parse(&u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
                    Some(parsed.to_string())
                }
                Ok(_) => return Err(format!("url: {u:?} is not an http or https address")),
                Err(e) => return Err(format!("url: {u:?} is not an absolute address ({e})")),
            },
        };
        let published_at = present(self.published_at).map(|t| published(&t)).transpose()?;
        Ok(Self { outlet, url, published_at })
    }
}

/// An RFC 3339 time, or a `YYYY-MM-DD` date (00:00 UTC), as RFC 3339.
fn published(text: &str) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    let bad = || {
        format!(
            "published_at: {text:?} is neither an RFC 3339 time (2024-05-01T08:30:00+07:00) nor a date (2024-05-01)"
        )
    };
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return t.format(&Rfc3339).map_err(|_| bad());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format).map_err(|_| bad())?;
    date.midnight().assume_utc().format(&Rfc3339).map_err(|_| bad())
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
    /// The first non-blank line of the article that is not boilerplate.
    pub headline: Bilingual,
    /// English summary of the English translation.
    pub summary: String,
    /// The article after the headline, one entry per source paragraph (non-blank line not in `dropped`), in
    /// order.
    pub paragraphs: Vec<Bilingual>,
    pub models: Models,
    pub summary_method: SummaryMethod,
    pub timings: Timings,
    /// When the brief was made (RFC 3339, UTC).
    pub created_at: String,
    /// Lines of the source left out as boilerplate (not translated, not summarized), in order.
    #[serde(default)]
    pub dropped: Vec<DroppedLine>,
}

/// The id of the brief of `text`.
pub fn brief_id(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// An article to brief: a name (a file name), its text and what else is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub name: String,
    pub text: String,
    pub meta: ArticleMeta,
}

/// Translates `article`, summarizes the English, and assembles the brief.
pub fn make_brief(
    translator: &dyn Generator,
    summarizer: &dyn Generator,
    article: &Article,
    options: &BriefOptions,
    deadline: Option<Instant>,
) -> Result<Brief, ServiceError> {
    make_briefs(translator, summarizer, std::slice::from_ref(article), options, deadline).remove(0)
}

/// One article on its way to a brief.
struct Draft<'a> {
    article: &'a Article,
    /// (Markdown prefix, sentences) of each paragraph.
    paragraphs: Vec<(String, Vec<String>)>,
    dropped: Vec<DroppedLine>,
    english: Vec<Bilingual>,
}

/// Briefs of several articles: each article's boilerplate lines are left out (see [`boilerplate`]; kept with
/// `keep_boilerplate`), the sentences of all are translated together, then their summaries are made together,
/// round by round. An article's failure (empty, nothing but boilerplate, unreadable by the model) is its own.
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
        let split = if options.keep_boilerplate {
            boilerplate::Split { kept: article.text.clone(), dropped: Vec::new() }
        } else {
            boilerplate::split(&article.text)
        };
        let doc = Document::parse(&split.kept);
        let paragraphs: Vec<(String, Vec<String>)> = doc
            .lines
            .into_iter()
            .filter_map(|line| match line {
                Line::Paragraph { prefix, sentences } => Some((prefix, sentences)),
                Line::Blank(_) => None,
            })
            .collect();
        if paragraphs.is_empty() && !split.dropped.is_empty() {
            results[i] = Some(Err(ServiceError::Input(format!(
                "{}: the article is nothing but boilerplate ({} lines left out; keep_boilerplate keeps them)",
                article.name,
                split.dropped.len()
            ))));
        } else if paragraphs.is_empty() {
            results[i] = Some(Err(ServiceError::Input(format!("{}: the article is empty", article.name))));
        } else {
            drafts.push((i, Draft { article, paragraphs, dropped: split.dropped, english: Vec::new() }));
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
                    outlet: draft.article.meta.outlet.clone(),
                    url: draft.article.meta.url.clone(),
                    published_at: draft.article.meta.published_at.clone(),
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
                dropped: draft.dropped,
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
        if let Some(line) = self.provenance() {
            md.push_str(&format!("{}\n\n", line.replace('*', "\\*")));
        }
        md.push_str("## Summary\n\n");
        md.push_str(&format!("{}\n\n", self.summary.trim()));
        md.push_str("## Translation\n\n");
        for p in &self.paragraphs {
            md.push_str(&format!("{}\n\n", p.english.trim_end()));
        }
        if !self.dropped.is_empty() {
            md.push_str("## Left out\n\n");
            for d in &self.dropped {
                md.push_str(&format!("- line {} ({}): {}\n", d.line, d.rule, one_line(&d.text)));
            }
            md.push('\n');
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

    /// Outlet, publication time and address, as one line, when any is known.
    fn provenance(&self) -> Option<String> {
        let s = &self.source;
        let parts: Vec<String> =
            [s.outlet.clone(), s.published_at.as_ref().map(|t| format!("published {t}")), s.url.clone()]
                .into_iter()
                .flatten()
                .map(|p| one_line(&p))
                .collect();
        (!parts.is_empty()).then(|| parts.join(" · "))
    }

    /// The brief as plain text: headline, where it is from, summary, translation, what was left out, models.
    pub fn to_text(&self) -> String {
        let mut t = format!("{}\n", one_line(&self.headline.english));
        t.push_str(&format!("({}; source: {})\n", one_line(&self.headline.source), self.source.name));
        if let Some(line) = self.provenance() {
            t.push_str(&format!("{line}\n"));
        }
        t.push_str(&format!("\nSUMMARY\n\n{}\n\nTRANSLATION\n\n", self.summary.trim()));
        for p in &self.paragraphs {
            t.push_str(&format!("{}\n\n", p.english.trim_end()));
        }
        if !self.dropped.is_empty() {
            t.push_str("LEFT OUT (not part of the article)\n\n");
            for d in &self.dropped {
                t.push_str(&format!("line {}: {} [{}]\n", d.line, one_line(&d.text), d.rule));
            }
            t.push('\n');
        }
        let m = &self.models;
        t.push_str(&format!(
            "Machine-made {} by {} @ {} (translation) and {} @ {} (summary).\n",
            self.created_at, m.translate.id, m.translate.revision, m.summarize.id, m.summarize.revision
        ));
        t
    }

    /// The brief as pretty-printed JSON (`docs/brief.schema.json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a brief always serializes")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(outlet: &str, url: &str, published_at: &str) -> ArticleMeta {
        let some = |s: &str| Some(s.to_string());
        ArticleMeta { outlet: some(outlet), url: some(url), published_at: some(published_at) }
    }

    #[test]
    fn article_metadata_is_checked_and_normalised() {
        let m = meta("  Kompas\n.com ", "https://nasional.kompas.com/read/2024/05/01/x", "2024-05-01").validate();
        assert_eq!(
            m.unwrap(),
            ArticleMeta {
                outlet: Some("Kompas .com".into()),
                url: Some("https://nasional.kompas.com/read/2024/05/01/x".into()),
                published_at: Some("2024-05-01T00:00:00Z".into()),
            }
        );
        let m = meta("", " ", "2024-05-01T08:30:00+07:00").validate().unwrap();
        assert_eq!((m.outlet, m.url, m.published_at.as_deref()), (None, None, Some("2024-05-01T08:30:00+07:00")));
        for (bad, needle) in [
            (meta("K", "ftp://x.id/a", ""), "not an http or https address"),
            (meta("K", "/read/a", ""), "not an absolute address"),
            (meta("K", "", "1 Mei 2024"), "neither an RFC 3339 time"),
            (meta("K", "", "2024-02-30"), "neither an RFC 3339 time"),
            (meta(&"x".repeat(201), "", ""), "at most 200 characters"),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
