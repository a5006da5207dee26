//! LibreTranslate's file translation: `POST /translate_file` (a multipart upload of `file`, `source`, `target` and
//! optionally `api_key`, answered with `{"translatedFileUrl": ...}`) and `GET /download_file/{name}` (the translated
//! file as an attachment, until it expires).

use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::api::{bearer, blocking, check_key, deadline, service};
use super::error::ApiError;
use super::AppState;
use crate::service::files::{self, FileFormat, FileStore};
use crate::service::{html, langid, ServiceError};

/// How file translation behaves (from `brief serve`'s options).
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Where translated files wait to be downloaded.
    pub store: Arc<FileStore>,
    /// Larger uploaded files get 413 (the whole request is also bounded by the server's body limit).
    pub max_bytes: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslateFileResponse {
    /// Where to download the translated file: this server, as the client (or its proxy) reached it.
    pub translated_file_url: String,
}

/// The fields of an upload; they may come in any order, and others are ignored.
#[derive(Debug, Default)]
struct Upload {
    /// The first `file` field: its file name and content.
    file: Option<(String, Vec<u8>)>,
    source: Option<String>,
    target: Option<String>,
    api_key: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the server accepts",
        )
    } else {
        invalid(format!("Invalid request: {}", e.body_text()))
    }
}

/// Reads the upload, refusing a file over `max_bytes` as soon as it is.
async fn read_upload(mut multipart: Multipart, max_bytes: usize) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().map(str::to_string);
        match name.as_deref() {
            Some("file") if upload.file.is_none() => {
                let file_name = field.file_name().unwrap_or_default().to_string();
                let mut content = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if content.len() + chunk.len() > max_bytes {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            format!(
                                "Invalid request: the file is larger than this server's limit of {max_bytes} bytes"
                            ),
                        ));
                    }
                    content.extend_from_slice(&chunk);
                }
                upload.file = Some((file_name, content));
            }
            Some(key @ ("source" | "target" | "api_key")) => {
                let key = key.to_string();
                let value = field.text().await.map_err(multipart_error)?;
                let slot = match key.as_str() {
                    "source" => &mut upload.source,
                    "target" => &mut upload.target,
                    _ => &mut upload.api_key,
                };
                *slot = Some(value);
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// Translates an uploaded file (LibreTranslate API): `.txt`, `.md`, `.html`/`.htm` (see
/// [`files::SUPPORTED_FILE_FORMATS`]), keeping its structure; answers where to download the translation, which
/// is kept for `--file-ttl-secs`.
pub async fn translate_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<TranslateFileResponse>, ApiError> {
    let multipart = multipart.map_err(|_| {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send multipart/form-data")
    })?;
    let upload = read_upload(multipart, state.config.files.max_bytes).await?;
    let Some((file_name, content)) = upload.file else {
        return Err(invalid("Invalid request: missing file parameter"));
    };
    let source =
        upload.source.filter(|s| !s.is_empty()).ok_or_else(|| invalid("Invalid request: missing source parameter"))?;
    let target =
        upload.target.filter(|t| !t.is_empty()).ok_or_else(|| invalid("Invalid request: missing target parameter"))?;
    if file_name.is_empty() {
        return Err(invalid("Invalid request: empty file"));
    }
    let format = FileFormat::of(&file_name).map_err(ServiceError::from)?;
    let text = files::decode(content).map_err(ServiceError::from)?;
    check_key(&state, upload.api_key.as_deref().or(bearer(&headers)), || text.chars().count())?;
    check_languages(&source, &target, format, &text)?;
    let svc = service(&state)?;
    let store = state.config.files.store.clone();
    let overrides = state.defaults.translate.clone();
    let deadline = deadline(&state);
    let name = blocking(move || {
        let english = files::translate_file(svc.translator.as_ref(), format, &text, &overrides, deadline)?;
        Ok(store.put(&file_name, english.as_bytes())?)
    })
    .await?;
    tracing::debug!(name, "translated file stored");
    Ok(Json(TranslateFileResponse {
        translated_file_url: format!("{}/download_file/{name}", base_url(&headers, &uri)),
    }))
}

/// `id` (or `auto`, when the text is detected as Indonesian) into `en`, as `/translate` allows.
fn check_languages(source: &str, target: &str, format: FileFormat, text: &str) -> Result<(), ApiError> {
    if target != "en" {
        return Err(ApiError::unsupported_pair(format!(
            "target language {target:?} is not supported: brief translates Indonesian (id) into English (en)"
        )));
    }
    match source {
        "id" => Ok(()),
        "auto" => {
            let sample = match format {
                FileFormat::Html => html::translatable_texts(text).join(" "),
                FileFormat::Text | FileFormat::Markdown => text.to_string(),
            };
            let detected = langid::detect(&sample);
            if detected.language == "id" {
                return Ok(());
            }
            Err(ApiError::unsupported_pair(format!(
                "the text looks like {} ({}% confident); brief translates Indonesian into English",
                detected.language, detected.confidence
            )))
        }
        other => Err(ApiError::unsupported_pair(format!(
            "source language {other:?} is not supported: brief translates Indonesian (id, or auto) into English (en)"
        ))),
    }
}

/// `scheme://host` as the client reached this server: the first `X-Forwarded-Proto` and `X-Forwarded-Host` when a
/// proxy set them, else the `Host` header (or, in HTTP/2, the request's authority).
fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    // Only characters a host and port have: a header cannot make the URL point at another path.
    let is_host = |h: &&str| h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    let scheme = match first("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = first("x-forwarded-host")
        .filter(is_host)
        .or_else(|| first(header::HOST.as_str()).filter(is_host))
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A translated file (LibreTranslate API), as an attachment named as the upload was: 400 for a name this server
/// never gives out (nothing outside the folder of translated files can be named), 404 once it has expired.
pub async fn download_file(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(name)) = name else { return Err(invalid("Invalid filename")) };
    let store = state.config.files.store.clone();
    let file = blocking(move || Ok(store.get(&name)?)).await?;
    let content_type = FileFormat::of(&file.download_name).map_or("application/octet-stream", FileFormat::content_type);
    let headers = [
        (header::CONTENT_TYPE, content_type.to_string()),
        // Sanitized names hold only `[A-Za-z0-9._-]`: nothing to escape.
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", file.download_name)),
        // An uploaded page runs no script on this origin, even if a browser shows it.
        (header::CONTENT_SECURITY_POLICY, "sandbox".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    Ok((headers, file.content).into_response())
}
