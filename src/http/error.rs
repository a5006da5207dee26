//! The one place where errors become HTTP responses: a status code and `{"error": ..., "error_type": ...}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::engine::EngineError;
use crate::service::files::FileError;
use crate::service::ServiceError;

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: `invalid_json`, `invalid_request`, `validation_error`, `unsupported_language_pair`,
    /// `unsupported_media_type`, `payload_too_large`, `text_limit_exceeded`, `forbidden`, `rate_limited`, `not_found`, `method_not_allowed`,
    /// `overloaded`, `loading`, `timeout`, `unavailable`, `internal_error`.
    pub error_type: String,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self { status, error_type, message: message.into(), retry_after: None }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message)
    }

    pub fn unsupported_pair(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_language_pair", message)
    }

    pub fn loading() -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "loading", "the models are still loading")
        }
    }

    /// LibreTranslate's text for a request without a key where one is required (Dialect matches on it).
    pub const KEY_REQUIRED: &'static str = "Please contact the server operator to obtain an API key";
    /// LibreTranslate's text for a key that is not configured (Dialect matches on it).
    pub const INVALID_KEY: &'static str = "Invalid API key";

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// LibreTranslate's 400 for a text (or a list) over `--char-limit` (or `--batch-limit`); clients match on
    /// "exceeds text limit".
    pub fn text_limit(size: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "text_limit_exceeded",
            format!("Invalid request: request ({size}) exceeds text limit ({limit})"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(_) | ServiceError::File(FileError::NotFound) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ServiceError::File(FileError::Unsupported | FileError::NotUtf8 | FileError::InvalidName) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            }
            ServiceError::NoSummarizer => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
            // Logged by the store when its reads start failing; `/health` says why.
            ServiceError::StoreUnavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string())
            }
            ServiceError::Engine(EngineError::Busy { retry_after_secs, .. }) => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
            },
            ServiceError::Engine(EngineError::Timeout) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string())
            }
            e if e.is_client_error() => Self::validation(e.to_string()),
            e => {
                tracing::error!(error = %e, "request failed");
                Self::internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.message, error_type: self.error_type.to_string() };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
