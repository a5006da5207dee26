//! The HTTP endpoints: LibreTranslate-compatible `/translate`, `/detect`, `/languages`; the native `/v1` API;
//! health, metrics and the OpenAPI document. Handlers check input, then run the service on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::engine::ModelInfo;
use crate::generate::{EarlyStoppingOption, Overrides};
use crate::service::{self, html, langid, BriefOptions, Service, ServiceError, SummaryOptions};

/// A JSON body: syntax errors are 400 `invalid_json`, wrong fields 422 `validation_error`, an over-large body
/// 413, another content type 415 — each as a JSON error.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (kind, bytes) = read_body(req, state).await?;
        match kind {
            BodyKind::Json => parse_json(&bytes).map(ApiJson),
            _ => Err(unsupported_media_type("application/json")),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
    Other,
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<(BodyKind, Bytes), ApiError> {
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let kind = if content_type.starts_with("application/json") {
        BodyKind::Json
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else {
        BodyKind::Other
    };
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server accepts",
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text())
        }
    })?;
    Ok((kind, bytes))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::validation(e.to_string()),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {e}")),
    })
}

fn unsupported_media_type(expected: &str) -> ApiError {
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("send {expected}"))
}

/// Runs `work` on the blocking pool (the models have their own threads; cache and tokenizer work stays off the
/// async runtime too).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("the request's worker task failed: {e}"))),
    }
}

fn service(state: &AppState) -> Result<Arc<Service>, ApiError> {
    state.service.get().cloned().ok_or_else(ApiError::loading)
}

/// Admits a request with key `given` (the body's `api_key`, else `Authorization: Bearer`) and `chars()` characters
/// of text, or says why not: 403 without a valid key, 429 with `Retry-After` over a rate limit, 413 for a request
/// larger than the key's whole per-minute character allowance. Without keys configured nothing is counted.
fn check_key(state: &AppState, given: Option<&str>, chars: impl FnOnce() -> usize) -> Result<(), ApiError> {
    use super::access::{Access, Denied};
    let access = &state.config.access;
    if !access.enabled() {
        return Ok(());
    }
    match access.admit(given, chars() as u64) {
        Ok(()) => Ok(()),
        Err(Denied::Key) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a valid api_key (or Authorization: Bearer key) is required",
        )),
        Err(Denied::Rate { what, retry_after }) => {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let who = given.map(Access::log_name).unwrap_or_default();
            tracing::info!(key = %who, what, retry_after = secs, "rate limited");
            state.metrics.inc("brief_rate_limited_total", &[("limit", what)], 1.0);
            Err(ApiError {
                retry_after: Some(secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("this key is over its {what} per minute; try again in {secs} s"),
                )
            })
        }
        Err(Denied::TooLarge { chars, limit }) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request's {chars} characters exceed this key's allowance of {limit} per minute"),
        )),
    }
}

fn chars<'a>(texts: impl IntoIterator<Item = &'a String>) -> usize {
    texts.into_iter().map(|t| t.chars().count()).sum()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn deadline(state: &AppState) -> Option<Instant> {
    Some(Instant::now() + state.config.request_timeout)
}

// ---- LibreTranslate-compatible API ------------------------------------------------------------------------

/// One text or a list of texts.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Texts {
    One(String),
    Many(Vec<String>),
}

/// `POST /translate` (LibreTranslate): JSON or form body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TranslateRequest {
    /// Text to translate, or a list of texts.
    pub q: Texts,
    /// Source language: `id` or `auto`.
    #[serde(default = "auto")]
    #[schema(pattern = "^(id|auto)$")]
    pub source: String,
    /// Target language: `en`.
    #[serde(default = "english")]
    #[schema(pattern = "^en$")]
    pub target: String,
    /// `text` (default) or `html`.
    #[serde(default)]
    #[schema(pattern = "^(text|html)$")]
    pub format: Option<String>,
    /// Required only when the server was started with `--api-key`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Alternative translations wanted (brief returns none: an empty list).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<i64>)]
    pub alternatives: Option<i64>,
}

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

fn auto() -> String {
    "auto".into()
}

fn english() -> String {
    "en".into()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetectedLanguage {
    /// Confidence in percent.
    pub confidence: f64,
    pub language: String,
}

/// A string when `q` was a string, a list when it was a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TranslatedText {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Detected {
    One(DetectedLanguage),
    Many(Vec<DetectedLanguage>),
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranslateResponse {
    pub translated_text: TranslatedText,
    /// With `source=auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_language: Option<Detected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<serde_json::Value>,
}

/// Reads a LibreTranslate request from JSON or a form (`q` may repeat for a list).
fn parse_translate_request(kind: BodyKind, bytes: &[u8]) -> Result<TranslateRequest, ApiError> {
    match kind {
        BodyKind::Json => parse_json(bytes),
        BodyKind::Form => {
            let mut object = serde_json::Map::new();
            let mut qs = Vec::new();
            for (k, v) in form_urlencoded::parse(bytes) {
                match k.as_ref() {
                    "q" => qs.push(serde_json::Value::String(v.into_owned())),
                    "alternatives" => {
                        let n: u32 = v.parse().map_err(|_| ApiError::validation("alternatives must be a number"))?;
                        object.insert(k.into_owned(), n.into());
                    }
                    _ => {
                        object.insert(k.into_owned(), v.into_owned().into());
                    }
                }
            }
            match qs.len() {
                0 => {}
                1 => {
                    object.insert("q".into(), qs.remove(0));
                }
                _ => {
                    object.insert("q".into(), serde_json::Value::Array(qs));
                }
            }
            serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| ApiError::validation(e.to_string()))
        }
        BodyKind::Other => Err(unsupported_media_type("application/json or application/x-www-form-urlencoded")),
    }
}

/// Translates Indonesian to English (LibreTranslate API).
#[utoipa::path(post, path = "/translate", tag = "libretranslate",
    request_body(content = TranslateRequest, content_type = "application/json"),
    responses(
        (status = 200, body = TranslateResponse),
        (status = 400, description = "Invalid JSON or unsupported language pair", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "Over the key's rate limit (with Retry-After)", body = ErrorBody),
        (status = 503, description = "Overloaded (with Retry-After) or loading", body = ErrorBody),
        (status = 504, body = ErrorBody)))]
pub async fn translate(State(state): State<AppState>, req: Request) -> Result<Json<TranslateResponse>, ApiError> {
    let header_key = bearer(req.headers()).map(str::to_owned);
    let (kind, bytes) = read_body(req, &state).await?;
    let request = parse_translate_request(kind, &bytes)?;
    let size = || match &request.q {
        Texts::One(t) => chars([t]),
        Texts::Many(ts) => chars(ts),
    };
    check_key(&state, request.api_key.as_deref().or(header_key.as_deref()), size)?;
    let html = match request.format.as_deref() {
        None | Some("text") => false,
        Some("html") => true,
        Some(other) => return Err(ApiError::validation(format!("format must be text or html, not {other:?}"))),
    };
    if request.target != "en" {
        return Err(ApiError::unsupported_pair(format!(
            "target language {:?} is not supported: brief translates Indonesian (id) into English (en)",
            request.target
        )));
    }
    let (texts, many) = match request.q {
        Texts::One(t) => (vec![t], false),
        Texts::Many(ts) => (ts, true),
    };
    let detected: Option<Vec<DetectedLanguage>> = match request.source.as_str() {
        "id" => None,
        "auto" => Some(
            texts
                .iter()
                .map(|t| {
                    let d = langid::detect(&if html { html::translatable_texts(t).join(" ") } else { t.clone() });
                    DetectedLanguage { confidence: d.confidence, language: d.language.to_string() }
                })
                .collect(),
        ),
        other => {
            return Err(ApiError::unsupported_pair(format!(
            "source language {other:?} is not supported: brief translates Indonesian (id, or auto) into English (en)"
        )))
        }
    };
    if let Some(english) = detected.iter().flatten().find(|d| d.language != "id") {
        return Err(ApiError::unsupported_pair(format!(
            "the text looks like {} ({}% confident); brief translates Indonesian into English",
            english.language, english.confidence
        )));
    }
    let svc = service(&state)?;
    let overrides = state.defaults.translate.clone();
    let deadline = deadline(&state);
    let english = blocking(move || translate_texts(&svc, &texts, html, &overrides, deadline)).await?;
    let alternatives = request.alternatives.filter(|&n| n > 0).map(|_| {
        if many {
            serde_json::Value::Array(english.iter().map(|_| serde_json::json!([])).collect())
        } else {
            serde_json::json!([])
        }
    });
    Ok(Json(TranslateResponse {
        translated_text: if many {
            TranslatedText::Many(english.into_iter().map(|(t, _)| t).collect())
        } else {
            TranslatedText::One(english.into_iter().next().map(|(t, _)| t).unwrap_or_default())
        },
        detected_language: detected.map(|mut d| if many { Detected::Many(d) } else { Detected::One(d.remove(0)) }),
        alternatives,
    }))
}

/// Translates documents (text: paragraphs kept; html: text nodes), all batched together: (English, cached).
fn translate_texts(
    svc: &Service,
    texts: &[String],
    html: bool,
    overrides: &Overrides,
    deadline: Option<Instant>,
) -> Result<Vec<(String, bool)>, ServiceError> {
    if !html {
        let docs = service::translate_documents(svc.translator.as_ref(), texts, overrides, deadline)?;
        return Ok(docs.into_iter().map(|d| (d.text, d.cached)).collect());
    }
    let nodes: Vec<Vec<String>> = texts.iter().map(|t| html::translatable_texts(t)).collect();
    let flat: Vec<String> = nodes.iter().flatten().cloned().collect();
    let docs = service::translate_documents(svc.translator.as_ref(), &flat, overrides, deadline)?;
    let mut next = docs.into_iter();
    Ok(texts
        .iter()
        .zip(&nodes)
        .map(|(text, nodes)| {
            let mine: Vec<_> = nodes.iter().filter_map(|_| next.next()).collect();
            let cached = !mine.is_empty() && mine.iter().all(|d| d.cached);
            (html::render(text, &mine.into_iter().map(|d| d.text).collect::<Vec<_>>()), cached)
        })
        .collect())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DetectRequest {
    pub q: String,
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Detects the language of a text (LibreTranslate API): Indonesian or English.
#[utoipa::path(post, path = "/detect", tag = "libretranslate", request_body = DetectRequest,
    responses((status = 200, body = [DetectedLanguage]), (status = 422, body = ErrorBody)))]
pub async fn detect(State(state): State<AppState>, req: Request) -> Result<Json<Vec<DetectedLanguage>>, ApiError> {
    let header_key = bearer(req.headers()).map(str::to_owned);
    let (kind, bytes) = read_body(req, &state).await?;
    let request: DetectRequest = match kind {
        BodyKind::Json => parse_json(&bytes)?,
        BodyKind::Form => {
            let pairs: std::collections::HashMap<String, String> =
                form_urlencoded::parse(&bytes).into_owned().collect();
            DetectRequest {
                q: pairs.get("q").cloned().ok_or_else(|| ApiError::validation("missing field `q`"))?,
                api_key: pairs.get("api_key").cloned(),
            }
        }
        BodyKind::Other => return Err(unsupported_media_type("application/json or application/x-www-form-urlencoded")),
    };
    check_key(&state, request.api_key.as_deref().or(header_key.as_deref()), || chars([&request.q]))?;
    let d = langid::detect(&request.q);
    Ok(Json(vec![DetectedLanguage { confidence: d.confidence, language: d.language.to_string() }]))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Language {
    pub code: String,
    pub name: String,
    pub targets: Vec<String>,
}

/// The languages and pairs brief translates (LibreTranslate API).
#[utoipa::path(get, path = "/languages", tag = "libretranslate", responses((status = 200, body = [Language])))]
pub async fn languages() -> Json<Vec<Language>> {
    Json(vec![
        Language { code: "id".into(), name: "Indonesian".into(), targets: vec!["en".into()] },
        Language { code: "en".into(), name: "English".into(), targets: vec![] },
    ])
}

// ---- Native API --------------------------------------------------------------------------------------------

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
    #[serde(flatten)]
    pub search: SearchSettings,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Translation {
    pub text: String,
    /// Whether every sentence came from the cache.
    pub cached: bool,
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
    responses((status = 200, body = V1TranslateResponse), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn v1_translate(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<V1TranslateRequest>,
) -> Result<Json<V1TranslateResponse>, ApiError> {
    check_key(&state, bearer(&headers), || chars(&request.texts))?;
    let html = match request.format.as_deref() {
        None | Some("text") => false,
        Some("html") => true,
        Some(other) => return Err(ApiError::validation(format!("format must be text or html, not {other:?}"))),
    };
    let svc = service(&state)?;
    let overrides = request.search.over(&state.defaults.translate);
    let started = Instant::now();
    let deadline = deadline(&state);
    let model = svc.translator_info().clone();
    let texts = request.texts;
    let out = blocking(move || translate_texts(&svc, &texts, html, &overrides, deadline)).await?;
    Ok(Json(V1TranslateResponse {
        translations: out.into_iter().map(|(text, cached)| Translation { text, cached }).collect(),
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
    responses((status = 200, body = V1SummarizeResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn v1_summarize(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<V1SummarizeRequest>,
) -> Result<Json<V1SummarizeResponse>, ApiError> {
    check_key(&state, bearer(&headers), || chars([&request.text]))?;
    let options = summary_options(&state, request.chunk_tokens, &request.search)?;
    let svc = service(&state)?;
    let started = Instant::now();
    let deadline = deadline(&state);
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
    /// Translation search settings.
    #[serde(default)]
    pub translate: SearchSettings,
    /// Summary search settings.
    #[serde(default)]
    pub summary: SearchSettings,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BriefListItem {
    pub id: String,
    pub name: String,
    pub headline: String,
    pub summary: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BriefList {
    pub briefs: Vec<BriefListItem>,
}

/// Makes the brief of an article and stores it (schema `brief/1`, docs/brief.schema.json): 201 with its
/// `Location`, or 200 without one when it could not be stored (the store fails: see `/health`).
#[utoipa::path(post, path = "/v1/briefs", tag = "brief", request_body = V1BriefRequest,
    responses((status = 201, description = "The brief (schema brief/1), stored", body = Object),
        (status = 200, description = "The brief (schema brief/1), not stored: the store fails", body = Object),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn v1_create_brief(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<V1BriefRequest>,
) -> Result<Response, ApiError> {
    check_key(&state, bearer(&headers), || chars([&request.text]))?;
    let name = request.name.unwrap_or_else(|| "article.txt".into());
    if name.contains('/') || name.contains('\\') || name.len() > 255 || name.trim().is_empty() {
        return Err(ApiError::validation("name must be a plain file name of at most 255 bytes"));
    }
    let options = BriefOptions {
        translate: request.translate.over(&state.defaults.translate),
        summary: summary_options(&state, None, &request.summary)?,
    };
    let svc = service(&state)?;
    let deadline = deadline(&state);
    let text = request.text;
    let (brief, kept) = blocking(move || svc.brief(&name, &text, &options, deadline)).await?;
    if !kept {
        return Ok((StatusCode::OK, Json(brief)).into_response());
    }
    let location = format!("/v1/briefs/{}", brief.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(brief)).into_response())
}

/// The stored briefs, newest first.
#[utoipa::path(get, path = "/v1/briefs", tag = "brief",
    responses((status = 200, body = BriefList), (status = 503, description = "The store cannot be read", body = ErrorBody)))]
pub async fn v1_list_briefs(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<BriefList>, ApiError> {
    check_key(&state, bearer(&headers), || 0)?;
    let svc = service(&state)?;
    let briefs = blocking(move || svc.briefs()).await?;
    Ok(Json(BriefList {
        briefs: briefs
            .into_iter()
            .map(|b| BriefListItem {
                id: b.id,
                name: b.source.name,
                headline: b.headline.english,
                summary: b.summary,
                created_at: b.created_at,
            })
            .collect(),
    }))
}

/// One stored brief.
#[utoipa::path(get, path = "/v1/briefs/{id}", tag = "brief", params(("id" = String, Path, description = "Brief id")),
    responses((status = 200, description = "The brief (schema brief/1)", body = Object), (status = 404, body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody)))]
pub async fn v1_get_brief(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_key(&state, bearer(&headers), || 0)?;
    let svc = service(&state)?;
    let brief = blocking(move || svc.get_brief(&id)).await?;
    Ok(Json(brief).into_response())
}

// ---- Operations --------------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `loading` until the models are loaded (503); then `ready`, or `degraded` (both 200: answers stay
    /// correct) when the cache fails or a model's files changed on disk since they were loaded.
    pub status: String,
    #[schema(value_type = Object)]
    pub models: serde_json::Value,
    /// Once loaded: `cache` (`status` `ok`, `degraded`, `unavailable` or `off`, with `path`, `read_error`,
    /// `write_error`, `corrupt_dropped`, `quarantined`) and `model_files` (`status` `ok` or `changed`, with
    /// `changes`).
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
    /// Once loaded: `cpu_isa` (the CPU kernel family, e.g. `avx512 (bf16, vnni)`), and the precision of each
    /// model (`translate`, `summarize`).
    #[schema(value_type = Object)]
    pub runtime: serde_json::Value,
}

/// Ready or degraded (200) once the models are loaded, with what is degraded; 503 while loading.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let Some(svc) = state.service.get().cloned() else {
        let (models, checks, runtime) = (serde_json::json!({}), serde_json::json!({}), serde_json::json!({}));
        let loading = Health { status: "loading".into(), models, checks, runtime };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(loading));
    };
    let models = serde_json::json!({
        "translate": svc.translator_info(),
        "summarize": svc.summarizer.as_ref().map(|s| s.codec().info().clone()),
    });
    let runtime = serde_json::to_value(svc.runtime_info()).unwrap_or_default();
    // File metadata and the store's state: off the async runtime.
    match tokio::task::spawn_blocking(move || svc.health()).await {
        Ok(health) => {
            let checks = serde_json::json!({ "cache": health.cache, "model_files": health.model_files });
            (StatusCode::OK, Json(Health { status: health.status.into(), models, checks, runtime }))
        }
        Err(e) => {
            tracing::error!(error = %e, "the health check failed");
            let checks = serde_json::json!({ "error": e.to_string() });
            (StatusCode::OK, Json(Health { status: "degraded".into(), models, checks, runtime }))
        }
    }
}

/// Prometheus metrics: requests, latencies, batch sizes, queue depth, cache hits and misses, tokens generated.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let access = &state.config.access;
    if access.metrics_protected() && !access.is_key(bearer(&headers)) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "/metrics needs Authorization: Bearer key"));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "brief", description = "Indonesian news into English: translations, summaries and briefs."),
    paths(
        translate,
        detect,
        languages,
        v1_translate,
        v1_summarize,
        v1_create_brief,
        v1_list_briefs,
        v1_get_brief,
        health,
        metrics
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document of this API.
pub async fn openapi() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(openapi_document).clone())
}

/// The generated document, with each request body that flattens [`SearchSettings`] (`allOf` of two closed
/// objects, which no body could satisfy) merged into one closed object: the shape the server accepts.
pub fn openapi_document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = doc.pointer("/components/schemas").cloned().unwrap_or_default();
    if let Some(map) = doc.pointer_mut("/components/schemas").and_then(|v| v.as_object_mut()) {
        for schema in map.values_mut() {
            let Some(parts) = schema.get("allOf").and_then(|a| a.as_array()).cloned() else { continue };
            let mut properties = serde_json::Map::new();
            let mut required = Vec::new();
            for part in parts {
                let part = match part.get("$ref").and_then(|r| r.as_str()) {
                    Some(r) => schemas.get(r.trim_start_matches("#/components/schemas/")).cloned().unwrap_or_default(),
                    None => part,
                };
                if let Some(p) = part.get("properties").and_then(|p| p.as_object()) {
                    properties.extend(p.clone());
                }
                if let Some(r) = part.get("required").and_then(|r| r.as_array()) {
                    required.extend(r.iter().cloned());
                }
            }
            let description = schema.get("description").cloned();
            *schema = serde_json::json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            });
            if let Some(d) = description {
                schema["description"] = d;
            }
        }
    }
    // Every error an operation can answer, in one place (the same set the handlers and the error mapping give).
    let errors: &[(&str, &str)] = &[
        ("400", "Invalid JSON, or an unsupported language pair"),
        ("403", "A key is required (server started with API keys) or not valid"),
        ("413", "Body over --max-body-bytes, or text over the key's per-minute allowance"),
        ("415", "Not JSON (or, for LibreTranslate endpoints, a urlencoded form)"),
        ("422", "Fields missing, of the wrong type, unknown, or out of range"),
        ("429", "Over the key's rate limit (with Retry-After)"),
        ("503", "Overloaded (with Retry-After), or the models are still loading"),
        ("504", "Not finished within --request-timeout-secs"),
    ];
    let applies = |method: &str, path: &str, code: &str| match (method, path) {
        ("post", _) => true,
        ("get", "/v1/briefs" | "/v1/briefs/{id}") => matches!(code, "403" | "429" | "503"),
        ("get", "/metrics") => code == "403",
        _ => false,
    };
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, operation) in item.iter_mut() {
                let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
                for (code, description) in errors {
                    if applies(method, path, code) && !responses.contains_key(*code) {
                        responses.insert(
                            code.to_string(),
                            serde_json::json!({
                                "description": description,
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                            }),
                        );
                    }
                }
            }
        }
    }
    doc
}
