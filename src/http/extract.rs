//! Request extractors: JSON bodies, LibreTranslate's fields in any encoding it accepts, and admission (API key
//! and rate limits) as an extractor, so that no handler checks keys itself.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::access::{Access, Denied};
use super::error::ApiError;
use super::AppState;
use crate::service::{Service, ServiceError};

/// A JSON body: syntax errors are 400 `invalid_json`, wrong fields 422 `validation_error`, an over-large body
/// 413, another content type 415 — each as a JSON error.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if body_kind(req.headers()) != BodyKind::Json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/json",
            ));
        }
        let bytes = read_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// How a body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// `application/json` or `application/*+json` (what Flask's `request.is_json` accepts).
    Json,
    Form,
    Multipart,
    /// Anything else, or none: LibreTranslate reads only the query string then.
    Other,
}

fn body_kind(headers: &HeaderMap) -> BodyKind {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => BodyKind::Json,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "multipart/form-data" => BodyKind::Multipart,
        m if m.starts_with("application/") && m.ends_with("+json") => BodyKind::Json,
        _ => BodyKind::Other,
    }
}

async fn read_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text())
        }
    })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than the server accepts",
    )
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::validation(e.to_string()),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {e}")),
    })
}

/// A file sent in a multipart field.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file name the client gave (may be empty).
    pub file_name: String,
    pub bytes: Bytes,
}

/// The fields of a LibreTranslate request, read as LibreTranslate reads them: a JSON object; or the query
/// string, then a urlencoded or multipart form, merged as Flask's `request.values` merges them (the first value
/// of a name wins, the query string's first). A JSON body's fields come first and the query string fills the
/// rest. Any other body (or none) leaves the query string alone, as `deep-translator` sends it.
#[derive(Debug, Default)]
pub struct LtFields {
    fields: Map<String, Value>,
    files: Vec<(String, Upload)>,
    /// Whether the body was JSON (its values keep their types; a form's are all strings).
    pub json: bool,
}

impl LtFields {
    /// The field's value; JSON `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    /// A text field, or a number written as one; `""` counts as absent.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::validation(format!("Invalid request: {name} must be a string"))),
        }
    }

    /// The `api_key` field; `""` and `null` count as absent.
    pub fn api_key(&self) -> Option<&str> {
        self.get("api_key").and_then(Value::as_str).filter(|k| !k.is_empty())
    }

    /// The file sent in multipart field `name`.
    pub fn file(&self, name: &str) -> Option<&Upload> {
        self.files.iter().find(|(field, _)| field == name).map(|(_, upload)| upload)
    }

    /// Characters of text the request carries (`q`, a string or a list, and any file), for rate limits.
    fn chars(&self) -> usize {
        let q = match self.get("q") {
            Some(Value::String(s)) => s.chars().count(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(|s| s.chars().count()).sum(),
            _ => 0,
        };
        let files: usize = self.files.iter().map(|(_, f)| String::from_utf8_lossy(&f.bytes).chars().count()).sum();
        q + files
    }

    fn insert_first(&mut self, name: String, value: Value) {
        self.fields.entry(name).or_insert(value);
    }

    fn add_query(&mut self, query: Option<&str>) {
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            self.insert_first(name.into_owned(), Value::String(value.into_owned()));
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for LtFields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let kind = body_kind(req.headers());
        let query = req.uri().query().map(str::to_owned);
        let mut out = LtFields::default();
        match kind {
            BodyKind::Json => {
                let bytes = read_bytes(req, state).await?;
                match parse_json::<Value>(&bytes)? {
                    Value::Object(fields) => out.fields = fields,
                    _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "Invalid JSON format")),
                }
                out.json = true;
                out.add_query(query.as_deref());
            }
            BodyKind::Form => {
                out.add_query(query.as_deref());
                let bytes = read_bytes(req, state).await?;
                for (name, value) in form_urlencoded::parse(&bytes) {
                    out.insert_first(name.into_owned(), Value::String(value.into_owned()));
                }
            }
            BodyKind::Multipart => {
                out.add_query(query.as_deref());
                let multipart = Multipart::from_request(req, state).await.map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        format!("Invalid request: {}", e.body_text()),
                    )
                })?;
                read_multipart(multipart, &mut out).await?;
            }
            BodyKind::Other => {
                out.add_query(query.as_deref());
                // The body is not read (LibreTranslate ignores it), but its size still counts against the limit.
                read_bytes(req, state).await?;
            }
        }
        Ok(out)
    }
}

async fn read_multipart(mut multipart: Multipart, out: &mut LtFields) -> Result<(), ApiError> {
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("Invalid request: {}", e.body_text()))
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or("").to_string();
        match field.file_name().map(str::to_string) {
            Some(file_name) => {
                let bytes = field.bytes().await.map_err(broken)?;
                if !out.files.iter().any(|(n, _)| *n == name) {
                    out.files.push((name, Upload { file_name, bytes }));
                }
            }
            None => {
                let text = field.text().await.map_err(broken)?;
                out.insert_first(name, Value::String(text));
            }
        }
    }
    Ok(())
}

/// What a request carries for admission: the key it gives in its body (if any) and its characters of text.
pub trait Metered {
    fn api_key(&self) -> Option<&str> {
        None
    }

    fn chars(&self) -> usize;
}

impl Metered for LtFields {
    fn api_key(&self) -> Option<&str> {
        LtFields::api_key(self)
    }

    fn chars(&self) -> usize {
        LtFields::chars(self)
    }
}

impl<T: Metered> Metered for ApiJson<T> {
    fn chars(&self) -> usize {
        self.0.chars()
    }
}

/// A request `T` that was admitted: its key (the body's `api_key`, else `Authorization: Bearer`) is valid and
/// within its rate limits. Without keys configured everything is admitted and nothing is counted.
pub struct Admitted<T>(pub T);

impl<T> FromRequest<AppState> for Admitted<T>
where
    T: FromRequest<AppState, Rejection = ApiError> + Metered + Send,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let header_key = bearer(req.headers()).map(str::to_owned);
        let inner = T::from_request(req, state).await?;
        admit(state, inner.api_key().or(header_key.as_deref()), inner.chars()).await?;
        Ok(Admitted(inner))
    }
}

/// A request without text (a `GET`) whose `Authorization: Bearer` key was admitted.
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        admit(state, bearer(&parts.headers), 0).await.map(|()| Authorized)
    }
}

/// Admits a request with key `given` and `chars` characters of text, or says why not (with LibreTranslate's
/// texts, which clients match on): 403 without a valid key, 429 with `Retry-After` over a rate limit, 413 for a
/// request larger than the key's whole per-minute character allowance.
async fn admit(state: &AppState, given: Option<&str>, chars: usize) -> Result<(), ApiError> {
    let access = &state.config.access;
    if !access.enabled() {
        return Ok(());
    }
    match access.admit(given, chars as u64).await {
        Ok(()) => Ok(()),
        Err(Denied::Key) if given.is_none() => Err(ApiError::forbidden(ApiError::KEY_REQUIRED)),
        Err(Denied::Key) => Err(ApiError::forbidden(ApiError::INVALID_KEY)),
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
                    format!("Slowdown: this key is over its {what} per minute; try again in {secs} s"),
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

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The loaded service, or 503 `loading`.
pub fn service(state: &AppState) -> Result<Arc<Service>, ApiError> {
    state.service.get().cloned().ok_or_else(ApiError::loading)
}

/// Runs `work` on the blocking pool (the models have their own threads; cache and tokenizer work stays off the
/// async runtime too).
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("the request's worker task failed: {e}"))),
    }
}
