//! LibreTranslate's file translation: `POST /translate_file` (a multipart upload of `file`, `source`, `target` and
//! optionally `api_key`, answered with `{"translatedFileUrl": ...}`) and `GET /download_file/{name}` (the translated
//! file as an attachment, until it expires).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::extract::{blocking, service, Admitted, LtFields};
use super::{libretranslate, AppState};
use crate::service::files::{self, FileFormat, FileStore};
use crate::service::{html, Format, ServiceError};

/// How file translation behaves (from `brief serve`'s options).
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Where translated files wait to be downloaded.
    pub store: Arc<FileStore>,
    /// Larger uploaded files get 413 (the whole request is also bounded by the server's body limit).
    pub max_bytes: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranslateFileResponse {
    /// Where to download the translated file: this server, as the client (or its proxy) reached it.
    pub translated_file_url: String,
}

/// `POST /translate_file`: a multipart form.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // the schema of what `translate_file` reads
pub struct TranslateFileRequest {
    /// The file (`.txt`, `.md`, `.html`, `.htm`; at most `--file-max-bytes`).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// `id` or `auto`.
    pub source: String,
    /// `en`.
    pub target: String,
    pub api_key: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// Translates an uploaded file (LibreTranslate API): `.txt`, `.md`, `.html`/`.htm` (see
/// [`files::SUPPORTED_FILE_FORMATS`]), keeping its structure; answers where to download the translation, which
/// is kept for `--file-ttl-secs`. Fields (`file`, `source`, `target`, `api_key`) come in any order.
#[utoipa::path(post, path = "/translate_file", tag = "libretranslate",
    request_body(content = TranslateFileRequest, content_type = "multipart/form-data"),
    responses((status = 200, body = TranslateFileResponse)))]
pub async fn translate_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Admitted(fields): Admitted<LtFields>,
) -> Result<Json<TranslateFileResponse>, ApiError> {
    let upload = fields.file("file").ok_or_else(|| invalid("Invalid request: missing file parameter"))?;
    let max_bytes = state.config.files.max_bytes;
    if upload.bytes.len() > max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Invalid request: the file is larger than this server's limit of {max_bytes} bytes"),
        ));
    }
    if upload.file_name.is_empty() {
        return Err(invalid("Invalid request: empty file"));
    }
    let file_name = upload.file_name.clone();
    let format = FileFormat::of(&file_name).map_err(ServiceError::from)?;
    let text = files::decode(upload.bytes.to_vec()).map_err(ServiceError::from)?;
    for required in ["source", "target"] {
        if fields.text(required)?.is_none() {
            return Err(invalid(format!("Invalid request: missing {required} parameter")));
        }
    }
    if libretranslate::languages(&fields)? {
        let sample = match format {
            FileFormat::Html => html::translatable_texts(&text).join(" "),
            FileFormat::Text | FileFormat::Markdown => text.clone(),
        };
        libretranslate::refuse_unless_indonesian(&libretranslate::detect_all(&[sample], Format::Text))?;
    }
    let svc = service(&state)?;
    let store = state.config.files.store.clone();
    let overrides = state.defaults.translate.clone();
    let deadline = super::deadline(&state);
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

/// `scheme://host` as the client reached this server: the first `X-Forwarded-Proto` and `X-Forwarded-Host` when a
/// proxy set them, else the `Host` header (or, in HTTP/2, the request's authority).
pub(crate) fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
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
#[utoipa::path(get, path = "/download_file/{name}", tag = "libretranslate",
    params(("name" = String, Path, description = "The name in translatedFileUrl")),
    responses((status = 200, description = "The translated file, as an attachment", content_type = "application/octet-stream")))]
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
