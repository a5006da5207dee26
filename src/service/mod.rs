//! What users ask of brief, over the models: translate documents (paragraphs and sentences kept) or lines,
//! summarize English text of any length, make and store the brief of an article. Shared by the CLI, the batch
//! job and the HTTP API; every model call goes cache → model → cache.

pub mod brief;
pub mod generator;
pub mod html;
pub mod langid;
pub mod summary;

use std::sync::Arc;
use std::time::Instant;

use crate::cache::{Cache, CacheError, StoredBrief};
use crate::engine::{EngineError, ModelInfo};
use crate::generate::Overrides;
use crate::tokenize::segment::Document;

pub use brief::{make_brief, make_briefs, Article, Brief, BriefOptions};
pub use generator::{CachedModel, Generated, Generator};
pub use summary::{summarize, summarize_many, Summary, SummaryOptions};

/// What can go wrong in the service. [`ServiceError::is_client_error`] tells the caller's mistakes apart.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}")]
    Input(String),
    #[error("no brief with id {0}")]
    NotFound(String),
    #[error("no summarization model is loaded")]
    NoSummarizer,
}

impl ServiceError {
    /// An error of the same kind and message, for every item a shared failure touched.
    pub fn duplicate(&self) -> ServiceError {
        match self {
            ServiceError::Engine(EngineError::Busy { model, queued, retry_after_secs }) => {
                ServiceError::Engine(EngineError::Busy {
                    model: model.clone(),
                    queued: *queued,
                    retry_after_secs: *retry_after_secs,
                })
            }
            ServiceError::Engine(EngineError::Timeout) => ServiceError::Engine(EngineError::Timeout),
            ServiceError::NotFound(id) => ServiceError::NotFound(id.clone()),
            ServiceError::NoSummarizer => ServiceError::NoSummarizer,
            e if e.is_client_error() => ServiceError::Input(e.to_string()),
            e => ServiceError::Engine(EngineError::Failed(e.to_string())),
        }
    }

    pub fn is_client_error(&self) -> bool {
        match self {
            ServiceError::Input(_) | ServiceError::NotFound(_) => true,
            ServiceError::Engine(e) => e.is_client_error(),
            _ => false,
        }
    }
}

/// A translated document and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslatedDocument {
    /// The English text, line for line the structure of the source.
    pub text: String,
    pub paragraphs: usize,
    pub sentences: usize,
    /// Whether every sentence came from the cache.
    pub cached: bool,
}

/// Translates documents sentence by sentence, all sentences of all documents batched together, and puts the
/// English back into each source's lines, paragraphs and Markdown markers.
pub fn translate_documents(
    translator: &dyn Generator,
    docs: &[String],
    overrides: &Overrides,
    deadline: Option<Instant>,
) -> Result<Vec<TranslatedDocument>, ServiceError> {
    let parsed: Vec<Document> = docs.iter().map(|d| Document::parse(d)).collect();
    let sentences: Vec<String> = parsed.iter().flat_map(|d| d.sentences().map(str::to_string)).collect();
    let generated = translator.generate(&sentences, overrides, deadline)?;
    let mut next = generated.into_iter();
    Ok(parsed
        .iter()
        .map(|doc| {
            let mine: Vec<Generated> = doc.sentences().map(|_| next.next().unwrap_or_default()).collect();
            let english: Vec<String> = mine.iter().map(|g| g.text.clone()).collect();
            TranslatedDocument {
                text: doc.render(&english),
                paragraphs: doc.paragraphs().count(),
                sentences: mine.len(),
                cached: mine.iter().all(|g| g.cached),
            }
        })
        .collect())
}

/// Translates one document (see [`translate_documents`]).
pub fn translate_document(
    translator: &dyn Generator,
    text: &str,
    overrides: &Overrides,
) -> Result<TranslatedDocument, ServiceError> {
    Ok(translate_documents(translator, &[text.to_string()], overrides, None)?.remove(0))
}

/// Translates each line as one segment: exactly one output per input, blank lines kept blank.
pub fn translate_lines(
    translator: &dyn Generator,
    lines: &[String],
    overrides: &Overrides,
) -> Result<Vec<String>, ServiceError> {
    Ok(translator.generate(lines, overrides, None)?.into_iter().map(|g| g.text).collect())
}

/// The models and the brief store, as `brief serve` and `brief batch` hold them.
pub struct Service {
    pub translator: Arc<dyn Generator + Send + Sync>,
    pub summarizer: Option<Arc<dyn Generator + Send + Sync>>,
    /// Where briefs are kept (the cache file's `briefs` table); `None` keeps nothing.
    pub store: Option<Arc<Cache>>,
}

impl Service {
    pub fn translator_info(&self) -> &ModelInfo {
        self.translator.codec().info()
    }

    pub fn summarizer(&self) -> Result<&(dyn Generator + Send + Sync), ServiceError> {
        self.summarizer.as_deref().ok_or(ServiceError::NoSummarizer)
    }

    /// Makes the briefs of `articles` together (see [`make_briefs`]) and keeps the ones that succeed.
    pub fn briefs_of(
        &self,
        articles: &[Article],
        options: &BriefOptions,
        deadline: Option<Instant>,
    ) -> Result<Vec<Result<Brief, ServiceError>>, ServiceError> {
        let results = make_briefs(self.translator.as_ref(), self.summarizer()?, articles, options, deadline);
        for brief in results.iter().flatten() {
            self.keep(brief)?;
        }
        Ok(results)
    }

    /// Makes the brief of `text` and keeps it in the store.
    pub fn brief(
        &self,
        name: &str,
        text: &str,
        options: &BriefOptions,
        deadline: Option<Instant>,
    ) -> Result<Brief, ServiceError> {
        let brief = make_brief(self.translator.as_ref(), self.summarizer()?, name, text, options, deadline)?;
        self.keep(&brief)?;
        Ok(brief)
    }

    /// Stores `brief` (replacing an older brief of the same article).
    pub fn keep(&self, brief: &Brief) -> Result<(), ServiceError> {
        if let Some(store) = &self.store {
            store.put_brief(&StoredBrief {
                id: brief.id.clone(),
                name: brief.source.name.clone(),
                headline: brief.headline.english.clone(),
                summary: brief.summary.clone(),
                created_at: brief.created_at.clone(),
                json: brief.to_json(),
            })?;
        }
        Ok(())
    }

    /// The stored briefs, newest first.
    pub fn briefs(&self) -> Result<Vec<Brief>, ServiceError> {
        let Some(store) = &self.store else { return Ok(Vec::new()) };
        store
            .briefs()?
            .iter()
            .map(|b| {
                serde_json::from_str(&b.json).map_err(|e| ServiceError::Input(format!("stored brief {}: {e}", b.id)))
            })
            .collect()
    }

    pub fn get_brief(&self, id: &str) -> Result<Brief, ServiceError> {
        let stored = self.store.as_ref().map(|s| s.brief(id)).transpose()?.flatten();
        let stored = stored.ok_or_else(|| ServiceError::NotFound(id.to_string()))?;
        serde_json::from_str(&stored.json).map_err(|e| ServiceError::Input(format!("stored brief {id}: {e}")))
    }
}
