//! The native API under `/v1`: translate documents, summarize English text, make, list and read briefs. JSON
//! bodies with closed schemas; keys only as `Authorization: Bearer`.

use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{blocking, service, Admitted, ApiJson, Authorized, Metered};
use super::listing::ListParams;
use super::AppState;
use crate::engine::ModelInfo;
use crate::generate::{EarlyStoppingOption, Overrides};
use crate::service::{self, Article, ArticleMeta, BriefOptions, Format, SummaryOptions};

/// An integer, also written as a number with no fraction (`2.0`), as JSON Schema counts integers.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom(format!("{n} is not a whole number"))),
    }
}

/// A non-negative integer, also written as a number with no fraction.
fn whole_usize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match whole_number(d)? {
        None => Ok(None),
        Some(n) => usize::try_from(n).map(Some).map_err(|_| serde::de::Error::custom(format!("{n} is negative"))),
    }
}

fn chars<'a>(texts: impl IntoIterator<Item = &'a String>) -> usize {
    texts.into_iter().map(|t| t.chars().count()).sum()
}

/// Search settings of a request; unset ones use the server's defaults (the model's, or the command line's).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    /// Beam width (1 is greedy search; at most 32).
    #[serde(default, deserialize_with = "whole_usize")]
    #[schema(minimum = 1, maximum = 32)]
    pub num_beams: Option<usize>,
    /// Most new tokens per segment (at most what the model's positions allow).
    #[serde(default, deserialize_with = "whole_usize")]
    #[schema(minimum = 1)]
    pub max_new_tokens: Option<usize>,
    #[serde(default, deserialize_with = "whole_usize")]
    pub min_length: Option<usize>,
    #[serde(default, deserialize_with = "whole_usize")]
    pub min_new_tokens: Option<usize>,
    pub length_penalty: Option<f32>,
    #[serde(default, deserialize_with = "whole_usize")]
    pub no_repeat_ngram_size: Option<usize>,
    /// `true`, `false` or `never`.
    #[schema(value_type = Option<String>, pattern = "^(true|false|never)$")]
    pub early_stopping: Option<EarlyStoppingOption>,
}

impl SearchSettings {
    fn over(&self, base: &Overrides) -> Overrides {
        Overrides {
            num_beams: self.num_beams.or(base.num_beams),
            max_new_tokens: self.max_new_tokens.or(base.max_new_tokens),
            max_length: base.max_length,
            min_length: self.min_length.or(base.min_length),
            min_new_tokens: self.min_new_tokens.or(base.min_new_tokens),
            length_penalty: self.length_penalty.or(base.length_penalty),
            early_stopping: self.early_stopping.or(base.early_stopping),
            no_repeat_ngram_size: self.no_repeat_ngram_size.or(base.no_repeat_ngram_size),
            num_return_sequences: base.num_return_sequences,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V1TranslateRequest {
    /// Indonesian documents: each keeps its lines and paragraphs; sentences are translated in batches.
    pub texts: Vec<String>,
    /// `text` (default) or `html`.
    #[serde(default)]
    #[schema(pattern = "^(text|html)$")]
    pub format: Option<String>,
    /// How many other translations to give per text: the next-best hypotheses of a beam search at least
    /// `alternatives + 1` wide (as `num_return_sequences`); at most 31, none for `html`.
    #[serde(default, deserialize_with = "whole_usize")]
    #[schema(minimum = 0, maximum = 31)]
    pub alternatives: Option<usize>,
    #[serde(flatten)]
    pub search: SearchSettings,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Translation {
    pub text: String,
    /// Whether every sentence came from the cache.
    pub cached: bool,
    /// With `alternatives`: the next-best translations, best first (a sentence with fewer keeps its best).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timings {
    pub total_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct V1TranslateResponse {
    pub translations: Vec<Translation>,
    #[schema(value_type = Object)]
    pub model: ModelInfo,
    pub timings: Timings,
}

/// Translates Indonesian documents, with per-item cache flags, the model and timings.
#[utoipa::path(post, path = "/v1/translate", tag = "brief", request_body = V1TranslateRequest,
    responses((status = 200, body = V1TranslateResponse)))]
pub async fn v1_translate(
    State(state): State<AppState>,
    Admitted(ApiJson(request)): Admitted<ApiJson<V1TranslateRequest>>,
) -> Result<Json<V1TranslateResponse>, ApiError> {
    let format = Format::parse(request.format.as_deref()).map_err(|e| ApiError::validation(e.to_string()))?;
    let svc = service(&state)?;
    let wanted = request.alternatives;
    if wanted.is_some_and(|n| n > 31) {
        return Err(ApiError::validation("alternatives must be at most 31 (a beam of at most 32)"));
    }
    let alternatives = if format == Format::Html { 0 } else { wanted.unwrap_or(0) };
    let overrides = request.search.over(&state.defaults.translate);
    let started = Instant::now();
    let deadline = super::deadline(&state);
    let model = svc.translator_info().clone();
    let texts = request.texts;
    let docs = blocking(move || {
        let overrides = service::with_alternatives(svc.translator.as_ref(), &overrides, alternatives)?;
        service::translate_formatted(svc.translator.as_ref(), &texts, format, &overrides, deadline)
    })
    .await?;
    let translation = |d: service::TranslatedDocument| Translation {
        text: d.text,
        cached: d.cached,
        alternatives: wanted.map(|_| d.alternatives),
    };
    Ok(Json(V1TranslateResponse {
        translations: docs.into_iter().map(translation).collect(),
        model,
        timings: Timings { total_ms: started.elapsed().as_millis() as u64 },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V1SummarizeRequest {
    /// English text of any length.
    pub text: String,
    /// Most input tokens per summarizer call (default: the server's).
    #[serde(default, deserialize_with = "whole_usize")]
    #[schema(minimum = 16)]
    pub chunk_tokens: Option<usize>,
    #[serde(flatten)]
    pub search: SearchSettings,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct V1SummarizeResponse {
    pub summary: String,
    /// Whether every summarizer call was answered from the cache.
    pub cached: bool,
    /// Summarizer calls per map-reduce round.
    pub chunks_per_round: Vec<usize>,
    #[schema(value_type = Object)]
    pub model: ModelInfo,
    pub timings: Timings,
}

/// Summarizes English text (map-reduce over chunks when it is long).
#[utoipa::path(post, path = "/v1/summarize", tag = "brief", request_body = V1SummarizeRequest,
    responses((status = 200, body = V1SummarizeResponse)))]
pub async fn v1_summarize(
    State(state): State<AppState>,
    Admitted(ApiJson(request)): Admitted<ApiJson<V1SummarizeRequest>>,
) -> Result<Json<V1SummarizeResponse>, ApiError> {
    let options = summary_options(&state, request.chunk_tokens, &request.search)?;
    let svc = service(&state)?;
    let started = Instant::now();
    let deadline = super::deadline(&state);
    let text = request.text;
    let (summary, model) = blocking(move || {
        let summarizer = svc.summarizer()?;
        Ok((service::summarize(summarizer, &text, &options, deadline)?, summarizer.codec().info().clone()))
    })
    .await?;
    Ok(Json(V1SummarizeResponse {
        summary: summary.text,
        cached: summary.cached,
        chunks_per_round: summary.rounds.iter().map(Vec::len).collect(),
        model,
        timings: Timings { total_ms: started.elapsed().as_millis() as u64 },
    }))
}

fn summary_options(
    state: &AppState,
    chunk_tokens: Option<usize>,
    search: &SearchSettings,
) -> Result<SummaryOptions, ApiError> {
    let chunk_tokens = chunk_tokens.unwrap_or(state.defaults.summary.chunk_tokens);
    if chunk_tokens < 16 {
        return Err(ApiError::validation("chunk_tokens must be at least 16"));
    }
    Ok(SummaryOptions { overrides: search.over(&state.defaults.summary.overrides), chunk_tokens })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V1BriefRequest {
    /// The Indonesian article; its first non-blank line is the headline.
    #[schema(pattern = "\\S")]
    pub text: String,
    /// A name for the source (a file name, at most 255 bytes); default `article.txt`.
    #[schema(pattern = "^[^/\\\\]*[^/\\\\\\s][^/\\\\]*$", max_length = 255)]
    pub name: Option<String>,
    /// The news site or paper (at most 200 characters).
    #[schema(max_length = 200)]
    pub outlet: Option<String>,
    /// The article's address: an absolute http(s) URL.
    #[schema(pattern = "^https?://[^\\s/]+")]
    pub url: Option<String>,
    /// When the article was published: RFC 3339 (`2024-05-01T08:30:00+07:00`) or a date (`2024-05-01`, 00:00 UTC).
    pub published_at: Option<String>,
    /// Translation search settings.
    #[serde(default)]
    pub translate: SearchSettings,
    /// Summary search settings.
    #[serde(default)]
    pub summary: SearchSettings,
    /// Translate and summarize boilerplate lines ("Baca juga:" links, video prompts, photo captions...) instead
    /// of leaving them out and listing them in `dropped`; default: the server's `--keep-boilerplate` (false).
    pub keep_boilerplate: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BriefListItem {
    pub id: String,
    pub name: String,
    pub headline: String,
    pub summary: String,
    pub created_at: String,
    /// The news site or paper, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlet: Option<String>,
    /// When the article was published (RFC 3339), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BriefList {
    pub briefs: Vec<BriefListItem>,
    /// How many briefs match in all (the list is one page of them).
    pub total: u64,
    /// Present (true) when only the newest briefs were searched (the Redis store has no full-text index), so
    /// older matches are neither listed nor counted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// Which briefs to list, newest first (by publication time, else creation time; ties by id). Either a page
/// (`page`, of `limit` briefs, default the reader's page size) or `offset`/`limit` (default: all from 0).
/// Malformed values get 400. (This type documents them; [`ListParams`] reads them, with the reader's rules.)
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BriefListQuery {
    /// Briefs to skip (not with `page`).
    pub offset: Option<u64>,
    /// Most briefs to give.
    pub limit: Option<u64>,
    /// 1-based page number, of `limit` briefs (not with `offset`).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Search: words that must all occur (whole words, any case) in the English headline, summary or
    /// translation (at most 200 characters). SQLite: its full-text index; Redis: the newest 1,000 briefs.
    pub q: Option<String>,
    /// Only briefs of this outlet (as stored).
    pub outlet: Option<String>,
    /// Only briefs listed on or after this day (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Only briefs listed on or before this day (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
}

/// Makes the brief of an article and stores it (schema `brief/1`, docs/brief.schema.json): 201 with its
/// `Location`, or 200 without one when it could not be stored (the store fails: see `/health`).
#[utoipa::path(post, path = "/v1/briefs", tag = "brief", request_body = V1BriefRequest,
    responses((status = 201, description = "The brief (schema brief/1), stored", body = Object),
        (status = 200, description = "The brief (schema brief/1), not stored: the store fails", body = Object)))]
pub async fn v1_create_brief(
    State(state): State<AppState>,
    Admitted(ApiJson(request)): Admitted<ApiJson<V1BriefRequest>>,
) -> Result<Response, ApiError> {
    let name = request.name.unwrap_or_else(|| "article.txt".into());
    if name.contains('/') || name.contains('\\') || name.len() > 255 || name.trim().is_empty() {
        return Err(ApiError::validation("name must be a plain file name of at most 255 bytes"));
    }
    let meta = ArticleMeta { outlet: request.outlet, url: request.url, published_at: request.published_at }
        .validate()
        .map_err(ApiError::validation)?;
    let options = BriefOptions {
        translate: request.translate.over(&state.defaults.translate),
        summary: summary_options(&state, None, &request.summary)?,
        keep_boilerplate: request.keep_boilerplate.unwrap_or(state.defaults.keep_boilerplate),
    };
    let svc = service(&state)?;
    let deadline = super::deadline(&state);
    let article = Article { name, text: request.text, meta };
    let (brief, kept) = blocking(move || svc.brief(&article, &options, deadline)).await?;
    if !kept {
        return Ok((StatusCode::OK, Json(brief)).into_response());
    }
    let location = format!("/v1/briefs/{}", brief.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(brief)).into_response())
}

/// The stored briefs, newest first: searched (`q`), filtered (`outlet`, `from`, `to`), a page of them (`page`, or
/// `offset` and `limit`).
#[utoipa::path(get, path = "/v1/briefs", tag = "brief", params(BriefListQuery),
    responses((status = 200, body = BriefList)))]
pub async fn v1_list_briefs(
    State(state): State<AppState>,
    _: Authorized,
    RawQuery(raw): RawQuery,
) -> Result<Json<BriefList>, ApiError> {
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e);
    let params = ListParams::parse(raw.as_deref()).map_err(bad)?;
    let (offset, limit) = match (params.page, params.offset) {
        (Some(_), Some(_)) => return Err(bad("give page or offset, not both".into())),
        (Some(page), None) => {
            let size = params.limit.unwrap_or(state.config.reader_page_size as u64).max(1);
            ((page - 1).saturating_mul(size), size)
        }
        (None, offset) => (offset.unwrap_or(0), params.limit.unwrap_or(u64::MAX)),
    };
    let svc = service(&state)?;
    let query = params.query(offset, limit);
    let found = blocking(move || svc.find_briefs(&query)).await?;
    Ok(Json(BriefList {
        total: found.total,
        partial: found.partial,
        briefs: found
            .briefs
            .into_iter()
            .map(|b| BriefListItem {
                id: b.id,
                name: b.source.name,
                headline: b.headline.english,
                summary: b.summary,
                created_at: b.created_at,
                outlet: b.source.outlet,
                published_at: b.source.published_at,
            })
            .collect(),
    }))
}

/// One stored brief.
#[utoipa::path(get, path = "/v1/briefs/{id}", tag = "brief", params(("id" = String, Path, description = "Brief id")),
    responses((status = 200, description = "The brief (schema brief/1)", body = Object)))]
pub async fn v1_get_brief(
    State(state): State<AppState>,
    _: Authorized,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let brief = blocking(move || svc.get_brief(&id)).await?;
    Ok(Json(brief).into_response())
}

impl Metered for V1TranslateRequest {
    fn chars(&self) -> usize {
        chars(&self.texts)
    }
}

impl Metered for V1SummarizeRequest {
    fn chars(&self) -> usize {
        chars([&self.text])
    }
}

impl Metered for V1BriefRequest {
    fn chars(&self) -> usize {
        chars([&self.text])
    }
}
