//! What users ask of brief, over the models: translate documents (paragraphs and sentences kept) or lines,
//! summarize English text of any length, make and store the brief of an article. Shared by the CLI, the batch
//! job and the HTTP API; every model call goes cache → model → cache.

pub mod align;
pub mod boilerplate;
pub mod brief;
pub mod files;
pub mod formats;
pub mod generator;
pub mod html;
pub mod langid;
pub mod summary;

use std::sync::Arc;
use std::time::Instant;

use crate::engine::{EngineError, ModelInfo};
use crate::generate::Overrides;
use crate::store::{translation_text, BriefQuery, Store, StoreError, StoreHealth, StoredBrief};
use crate::tokenize::segment::Document;

pub use brief::{make_brief, make_briefs, Article, ArticleMeta, Brief, BriefOptions};
pub use formats::{translate_formatted, Format};
pub use generator::{CachedModel, Generated, Generator};
pub use summary::{summarize, summarize_many, Summary, SummaryOptions};

/// What can go wrong in the service. [`ServiceError::is_client_error`] tells the caller's mistakes apart.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Input(String),
    #[error("no brief with id {0}")]
    NotFound(String),
    #[error("no summarization model is loaded")]
    NoSummarizer,
    /// The brief store cannot be read (it failed at start, or reads fail now).
    #[error("the brief store is unavailable: {0}")]
    StoreUnavailable(String),
    /// A file to translate, or the folder of translated files (`/translate_file`).
    #[error(transparent)]
    File(#[from] files::FileError),
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
            ServiceError::StoreUnavailable(e) => ServiceError::StoreUnavailable(e.clone()),
            e if e.is_client_error() => ServiceError::Input(e.to_string()),
            e => ServiceError::Engine(EngineError::Failed(e.to_string())),
        }
    }

    pub fn is_client_error(&self) -> bool {
        match self {
            ServiceError::Input(_) | ServiceError::NotFound(_) => true,
            ServiceError::Engine(e) => e.is_client_error(),
            ServiceError::File(e) => e.is_client_error(),
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
    /// The next best translations, best first, when alternatives were asked for (see [`with_alternatives`]):
    /// the k-th renders each sentence's k-th alternative, or its best when it has fewer. Else empty.
    pub alternatives: Vec<String>,
}

/// `overrides` asking for `alternatives` translations beside the best: `num_return_sequences` of one more, and at
/// least as many beams (as argos-translate and LibreTranslate do: `beam_size = max(beam_size, num_hypotheses)`).
/// The beam count raised is the one the request would run with (the model's default unless `overrides` sets it).
/// No alternatives leaves `overrides` as they are.
pub fn with_alternatives(
    translator: &dyn Generator,
    overrides: &Overrides,
    alternatives: usize,
) -> Result<Overrides, ServiceError> {
    if alternatives == 0 {
        return Ok(overrides.clone());
    }
    let sequences = alternatives.saturating_add(1);
    let beams = translator.codec().search_options(overrides)?.num_beams;
    let asked =
        Overrides { num_beams: Some(beams.max(sequences)), num_return_sequences: Some(sequences), ..overrides.clone() };
    // The resolution checks the widened search (e.g. the most beams a request may use).
    translator.codec().search_options(&asked)?;
    Ok(asked)
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
            let count = mine.iter().map(|g| g.alternatives.len()).max().unwrap_or(0);
            let alternatives = (0..count)
                .map(|k| {
                    let kth: Vec<String> =
                        mine.iter().map(|g| g.alternatives.get(k).unwrap_or(&g.text).clone()).collect();
                    doc.render(&kth)
                })
                .collect();
            TranslatedDocument {
                text: doc.render(&english),
                paragraphs: doc.paragraphs().count(),
                sentences: mine.len(),
                cached: mine.iter().all(|g| g.cached),
                alternatives,
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
    /// Where briefs are kept (SQLite's `briefs` table, or Redis); `None` keeps nothing.
    pub store: Option<Arc<Store>>,
    /// Why there is no store although one was asked for (it could not be opened at start).
    pub store_error: Option<StoreOpenFailure>,
}

/// A store that could not be opened.
#[derive(Debug, Clone)]
pub struct StoreOpenFailure {
    /// `sqlite` or `redis`.
    pub backend: &'static str,
    /// The SQLite file, or the server's URL without password.
    pub location: String,
    pub error: String,
}

/// What `/health` reports beyond "the models are loaded": the store and the models' files on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// `ready`, or `degraded` when the store fails or a model's files changed on disk (answers are still
    /// correct: the models in memory are the ones loaded, and nothing unverified is served from the store).
    pub status: &'static str,
    /// The store: `status` is `ok`, `degraded` (reads or writes fail: see the errors), `unavailable` (it could
    /// not be opened at start) or `off` (no store).
    pub cache: StoreHealth,
    pub model_files: ModelFilesHealth,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelFilesHealth {
    /// `ok`, or `changed` when a file a model was loaded from is gone or different.
    pub status: &'static str,
    /// One line per changed file: `path: what`.
    pub changes: Vec<String>,
}

/// How the models compute: the CPU kernel family and each model's precision (for `/health`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeInfo {
    /// The CPU kernel family and the extensions it uses, e.g. `avx512 (bf16, vnni)`.
    pub cpu_isa: String,
    /// The translator's precision: `f32`, `bf16`, `int8` (CPU) or `f16` (CUDA).
    pub translate: &'static str,
    pub summarize: Option<&'static str>,
    /// Bits of the int8 weights (7 or 8), when a model computes in int8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub int8_weight_bits: Option<u32>,
}

impl Service {
    pub fn translator_info(&self) -> &ModelInfo {
        self.translator.codec().info()
    }

    pub fn runtime_info(&self) -> RuntimeInfo {
        let translate = self.translator.codec().precision().name();
        let summarize = self.summarizer.as_ref().map(|s| s.codec().precision().name());
        let int8 = translate == "int8" || summarize == Some("int8");
        RuntimeInfo {
            cpu_isa: crate::engine::cpu_kernels(),
            translate,
            summarize,
            int8_weight_bits: int8.then(crate::engine::int8_weight_bits),
        }
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
            self.keep(brief);
        }
        Ok(results)
    }

    /// Makes the brief of `article` and keeps it in the store; the flag says whether it was kept (see
    /// [`Self::keep`]).
    pub fn brief(
        &self,
        article: &Article,
        options: &BriefOptions,
        deadline: Option<Instant>,
    ) -> Result<(Brief, bool), ServiceError> {
        let brief = make_brief(self.translator.as_ref(), self.summarizer()?, article, options, deadline)?;
        let kept = self.keep(&brief);
        Ok((brief, kept))
    }

    /// Stores `brief` (replacing an older brief of the same article); false when there is no store or it cannot
    /// be written (a full disk). That does not fail the brief: the store logs it and `/health` shows it.
    pub fn keep(&self, brief: &Brief) -> bool {
        let Some(store) = &self.store else { return false };
        store.put_brief(&stored(brief)).is_ok()
    }

    fn store(&self) -> Result<Option<&Store>, ServiceError> {
        match (&self.store, &self.store_error) {
            (Some(store), _) => Ok(Some(store)),
            (None, Some(e)) => Err(ServiceError::StoreUnavailable(e.error.clone())),
            (None, None) => Ok(None),
        }
    }

    /// The stored briefs, newest first.
    pub fn briefs(&self) -> Result<Vec<Brief>, ServiceError> {
        Ok(self.briefs_page(0, u64::MAX)?.0)
    }

    /// `limit` stored briefs from `offset`, newest first, and how many are stored in all.
    pub fn briefs_page(&self, offset: u64, limit: u64) -> Result<(Vec<Brief>, u64), ServiceError> {
        let found = self.find_briefs(&BriefQuery::page(offset, limit))?;
        Ok((found.briefs, found.total))
    }

    /// The stored briefs `query` asks for (searched, filtered, a page of them), newest first.
    pub fn find_briefs(&self, query: &BriefQuery) -> Result<FoundBriefs, ServiceError> {
        let Some(store) = self.store()? else { return Ok(FoundBriefs::default()) };
        let page = store.find(query).map_err(|e| ServiceError::StoreUnavailable(e.to_string()))?;
        let briefs = page.briefs.iter().map(|b| parse_stored(&b.id, &b.json)).collect::<Result<_, _>>()?;
        Ok(FoundBriefs { briefs, total: page.total, partial: page.partial })
    }

    /// The outlets of the stored briefs, each once, sorted (for a filter menu).
    pub fn outlets(&self) -> Result<Vec<String>, ServiceError> {
        let Some(store) = self.store()? else { return Ok(Vec::new()) };
        store.outlets().map_err(|e| ServiceError::StoreUnavailable(e.to_string()))
    }

    pub fn get_brief(&self, id: &str) -> Result<Brief, ServiceError> {
        let stored = match self.store()? {
            Some(store) => store.brief(id).map_err(|e| ServiceError::StoreUnavailable(e.to_string()))?,
            None => None,
        };
        let stored = stored.ok_or_else(|| ServiceError::NotFound(id.to_string()))?;
        parse_stored(id, &stored.json)
    }

    /// The store and the models' files; reads file metadata, so call it off the async runtime.
    pub fn health(&self) -> Health {
        let cache = match (&self.store, &self.store_error) {
            (Some(store), _) => store.health(),
            (None, error) => StoreHealth {
                status: if error.is_some() { "unavailable" } else { "off" }.to_string(),
                backend: error.as_ref().map_or("", |e| e.backend),
                path: error.as_ref().filter(|e| e.backend == "sqlite").map(|e| e.location.clone().into()),
                url: error.as_ref().filter(|e| e.backend == "redis").map(|e| e.location.clone()),
                read_error: error.as_ref().map(|e| e.error.clone()),
                write_error: error.as_ref().map(|e| e.error.clone()),
                corrupt_dropped: 0,
                quarantined: None,
            },
        };
        let changes: Vec<String> = std::iter::once(self.translator.as_ref())
            .chain(self.summarizer.as_deref())
            .flat_map(|model| model.codec().files().changes())
            .collect();
        let model_files = ModelFilesHealth { status: if changes.is_empty() { "ok" } else { "changed" }, changes };
        let degraded = cache.status != "ok" && cache.status != "off" || model_files.status != "ok";
        Health { status: if degraded { "degraded" } else { "ready" }, cache, model_files }
    }
}

/// A page of stored briefs and how many match in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoundBriefs {
    pub briefs: Vec<Brief>,
    pub total: u64,
    /// Only the newest briefs were searched (the Redis store), so `total` may miss older matches.
    pub partial: bool,
}

/// A brief as the store keeps it: the JSON, and the fields lists, filters and search use.
pub fn stored(brief: &Brief) -> StoredBrief {
    StoredBrief {
        id: brief.id.clone(),
        name: brief.source.name.clone(),
        headline: brief.headline.english.clone(),
        summary: brief.summary.clone(),
        created_at: brief.created_at.clone(),
        json: brief.to_json(),
        outlet: brief.source.outlet.clone(),
        published_at: brief.source.published_at.clone(),
        translation: translation_text(brief.paragraphs.iter().map(|p| p.english.as_str())),
    }
}

/// A stored brief's JSON, which passed its checksum, so a failure to parse is this program's fault.
fn parse_stored(id: &str, json: &str) -> Result<Brief, ServiceError> {
    serde_json::from_str(json)
        .map_err(|e| ServiceError::Engine(EngineError::Failed(format!("stored brief {id} does not parse: {e}"))))
}
