//! The LibreTranslate API, as its clients call it: `/translate` (with alternatives), `/detect`, `/languages`,
//! `/frontend/settings`, `/suggest` and `/spec`. Fields come in any encoding LibreTranslate reads
//! ([`LtFields`]); the error texts clients match on are LibreTranslate's.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{blocking, service, Admitted, LtFields};
use super::AppState;
use crate::service::{self, langid, Format};

/// LibreTranslate's `frontendTimeout` (ms): how long its web page waits after typing before it translates.
const FRONTEND_TIMEOUT_MS: u64 = 500;

/// One text or a list of texts.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Texts {
    One(String),
    Many(Vec<String>),
}

/// `POST /translate`: JSON, a urlencoded or multipart form, or the query string.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // the schema of what `LtTranslate::read` reads
pub struct TranslateRequest {
    /// Text to translate, or (JSON only) a list of texts.
    pub q: Texts,
    /// Source language: `id` or `auto` (default).
    #[schema(pattern = "^(id|auto)$")]
    pub source: Option<String>,
    /// Target language: `en` (default).
    #[schema(pattern = "^en$")]
    pub target: Option<String>,
    /// `text` (default) or `html`.
    #[schema(pattern = "^(text|html)$")]
    pub format: Option<String>,
    /// Required only when the server has API keys (or send `Authorization: Bearer`); `""` counts as none.
    pub api_key: Option<String>,
    /// How many other translations to give (the next-best of the beam search; at most `--alternatives-limit`).
    pub alternatives: Option<i64>,
}

/// A translate request as read from its fields.
struct LtTranslate {
    texts: Vec<String>,
    many: bool,
    auto: bool,
    format: Format,
    alternatives: usize,
}

impl LtTranslate {
    fn read(fields: &LtFields, state: &AppState) -> Result<Self, ApiError> {
        let (mut texts, many) = match fields.get("q") {
            Some(Value::String(s)) if !s.is_empty() => (vec![s.clone()], false),
            Some(Value::Array(items)) if !items.is_empty() => {
                let texts = items.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>();
                (
                    texts.ok_or_else(|| {
                        ApiError::validation("Invalid request: q must be a string or a list of strings")
                    })?,
                    true,
                )
            }
            None | Some(Value::String(_)) | Some(Value::Array(_)) => {
                return Err(ApiError::validation("Invalid request: missing q parameter"))
            }
            Some(_) => return Err(ApiError::validation("Invalid request: q must be a string or a list of strings")),
        };
        if !fields.json {
            // As LibreTranslate does for forms, so that limits count the same characters in every encoding.
            texts = texts.into_iter().map(|t| t.lines().collect::<Vec<_>>().join("\n")).collect();
        }
        let limits = &state.config.limits;
        if let Some(limit) = limits.batch.filter(|&l| many && texts.len() > l) {
            return Err(ApiError::text_limit(texts.len(), limit));
        }
        if let Some(limit) = limits.chars {
            if let Some(size) = texts.iter().map(|t| t.chars().count()).find(|&n| n > limit) {
                return Err(ApiError::text_limit(size, limit));
            }
        }
        let auto = languages(fields)?;
        let format = Format::parse(fields.text("format")?.as_deref())
            .map_err(|e| ApiError::validation(format!("Invalid request: {e}")))?;
        let alternatives = alternatives(fields)?.min(limits.alternatives);
        Ok(Self { texts, many, auto, format, alternatives })
    }
}

/// Checks `source` and `target` (LibreTranslate's "… is not supported"); whether the source is `auto`.
pub(super) fn languages(fields: &LtFields) -> Result<bool, ApiError> {
    let source = fields.text("source")?.unwrap_or_else(|| "auto".into());
    let target = fields.text("target")?.unwrap_or_else(|| "en".into());
    if target != "en" {
        return Err(ApiError::unsupported_pair(format!(
            "{target} is not supported as a target: brief translates Indonesian (id) into English (en)"
        )));
    }
    match source.as_str() {
        "id" => Ok(false),
        "auto" => Ok(true),
        other => Err(ApiError::unsupported_pair(format!(
            "{other} is not supported as a source: brief translates Indonesian (id, or auto) into English (en)"
        ))),
    }
}

/// `alternatives`: a whole number (or one written as text, as forms send it); below 0 counts as 0.
fn alternatives(fields: &LtFields) -> Result<usize, ApiError> {
    let not_a_number = || ApiError::validation("Invalid request: alternatives parameter is not a number");
    let n: i64 = match fields.get("alternatives") {
        None => 0,
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => f.trunc() as i64,
            _ => return Err(not_a_number()),
        },
        Some(Value::String(s)) => s.trim().parse().map_err(|_| not_a_number())?,
        Some(_) => return Err(not_a_number()),
    };
    Ok(n.max(0) as usize)
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
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

/// A list of other translations (for a string `q`), or one list per text (for a list).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Alternatives {
    One(Vec<String>),
    Many(Vec<Vec<String>>),
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranslateResponse {
    pub translated_text: TranslatedText,
    /// With `source=auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_language: Option<Detected>,
    /// With `alternatives` > 0: distinct translations other than `translatedText` (none for `format=html`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Alternatives>,
}

/// Translates Indonesian to English (LibreTranslate API).
#[utoipa::path(post, path = "/translate", tag = "libretranslate",
    request_body(content = TranslateRequest, content_type = "application/json"),
    responses((status = 200, body = TranslateResponse)))]
pub async fn translate(
    State(state): State<AppState>,
    Admitted(fields): Admitted<LtFields>,
) -> Result<Json<TranslateResponse>, ApiError> {
    let request = LtTranslate::read(&fields, &state)?;
    let detected = request.auto.then(|| detect_all(&request.texts, request.format));
    if let Some(detected) = &detected {
        refuse_unless_indonesian(detected)?;
    }
    let svc = service(&state)?;
    let overrides = state.defaults.translate.clone();
    let deadline = super::deadline(&state);
    let LtTranslate { texts, many, format, alternatives: wanted, .. } = request;
    // As LibreTranslate: HTML gets none (so none are searched for).
    let searched = if format == Format::Html { 0 } else { wanted };
    let docs = blocking(move || {
        let overrides = service::with_alternatives(svc.translator.as_ref(), &overrides, searched)?;
        service::translate_formatted(svc.translator.as_ref(), &texts, format, &overrides, deadline)
    })
    .await?;
    let alternatives: Vec<Vec<String>> = docs.iter().map(|d| distinct_alternatives(&d.text, &d.alternatives)).collect();
    let english: Vec<String> = docs.into_iter().map(|d| d.text).collect();
    Ok(Json(TranslateResponse {
        translated_text: if many { TranslatedText::Many(english) } else { TranslatedText::One(first(english)) },
        detected_language: detected.map(|d| if many { Detected::Many(d) } else { Detected::One(first(d)) }),
        alternatives: (wanted > 0).then(|| {
            if many {
                Alternatives::Many(alternatives)
            } else {
                Alternatives::One(first(alternatives))
            }
        }),
    }))
}

fn first<T: Default>(items: Vec<T>) -> T {
    items.into_iter().next().unwrap_or_default()
}

/// LibreTranslate's `filter_unique`: alternatives in order, without blanks, repeats or the translation itself.
fn distinct_alternatives(best: &str, alternatives: &[String]) -> Vec<String> {
    let mut seen: Vec<&str> = vec![best, ""];
    let mut out = Vec::new();
    for a in alternatives {
        if !seen.contains(&a.as_str()) {
            seen.push(a);
            out.push(a.clone());
        }
    }
    out
}

/// With `source=auto`, a text detected as another language is refused rather than garbled.
pub(super) fn refuse_unless_indonesian(detected: &[DetectedLanguage]) -> Result<(), ApiError> {
    match detected.iter().find(|d| d.language != "id") {
        None => Ok(()),
        Some(other) => Err(ApiError::unsupported_pair(format!(
            "{} is not supported: the text looks like {} ({}% confident), and brief translates Indonesian into English",
            other.language, other.language, other.confidence
        ))),
    }
}

pub(super) fn detect_all(texts: &[String], format: Format) -> Vec<DetectedLanguage> {
    texts
        .iter()
        .map(|t| {
            let text = match format {
                Format::Html => service::html::translatable_texts(t).join(" "),
                Format::Text => t.clone(),
            };
            let d = langid::detect(&text);
            DetectedLanguage { confidence: d.confidence, language: d.language.to_string() }
        })
        .collect()
}

/// `POST /detect`: `q` in any encoding.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // the schema of what `detect` reads
pub struct DetectRequest {
    pub q: String,
    pub api_key: Option<String>,
}

/// Detects the language of a text (LibreTranslate API): Indonesian or English.
#[utoipa::path(post, path = "/detect", tag = "libretranslate", request_body = DetectRequest,
    responses((status = 200, body = [DetectedLanguage])))]
pub async fn detect(Admitted(fields): Admitted<LtFields>) -> Result<Json<Vec<DetectedLanguage>>, ApiError> {
    let q = fields.text("q")?.ok_or_else(|| ApiError::validation("Invalid request: missing q parameter"))?;
    Ok(Json(detect_all(&[q], Format::Text)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Language {
    pub code: String,
    pub name: String,
    pub targets: Vec<String>,
}

/// The languages and pairs brief translates (LibreTranslate API; older clients POST it).
#[utoipa::path(get, path = "/languages", tag = "libretranslate", responses((status = 200, body = [Language])))]
pub async fn languages_list() -> Json<Vec<Language>> {
    Json(vec![
        Language { code: "id".into(), name: "Indonesian".into(), targets: vec!["en".into()] },
        Language { code: "en".into(), name: "English".into(), targets: vec![] },
    ])
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamedLanguage {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FrontendLanguages {
    pub source: NamedLanguage,
    pub target: NamedLanguage,
}

/// What LibreTranslate's web page and clients such as Dialect and Nextcloud read before they translate.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendSettings {
    /// Most characters per text (`--char-limit`); -1: no limit.
    pub char_limit: i64,
    pub frontend_timeout: u64,
    /// Whether the server has API keys.
    pub api_keys: bool,
    /// Whether a key is required (every request needs one when the server has keys).
    pub key_required: bool,
    /// Whether `/suggest` takes suggestions (never: brief's translations come from the model alone).
    pub suggestions: bool,
    pub files_translation: bool,
    pub supported_files_format: Vec<String>,
    pub language: FrontendLanguages,
}

/// The server's settings, in LibreTranslate's shape.
#[utoipa::path(get, path = "/frontend/settings", tag = "libretranslate", responses((status = 200, body = FrontendSettings)))]
pub async fn frontend_settings(State(state): State<AppState>) -> Json<FrontendSettings> {
    let keys = state.config.access.enabled();
    let formats: Vec<String> = service::files::SUPPORTED_FILE_FORMATS.iter().map(|f| f.to_string()).collect();
    Json(FrontendSettings {
        char_limit: state.config.limits.chars.map_or(-1, |c| c as i64),
        frontend_timeout: FRONTEND_TIMEOUT_MS,
        api_keys: keys,
        key_required: keys,
        suggestions: false,
        files_translation: !formats.is_empty(),
        supported_files_format: formats,
        language: FrontendLanguages {
            source: NamedLanguage { code: "id".into(), name: "Indonesian".into() },
            target: NamedLanguage { code: "en".into(), name: "English".into() },
        },
    })
}

/// Suggestions are off, as LibreTranslate answers then: 403.
#[utoipa::path(post, path = "/suggest", tag = "libretranslate", responses((status = 403, body = super::error::ErrorBody)))]
pub async fn suggest() -> ApiError {
    ApiError::forbidden("Suggestions are disabled on this server.")
}
