//! Operations: `/health` (loading, ready or degraded, with what is degraded) and Prometheus `/metrics`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::bearer;
use super::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `loading` until the models are loaded (503); then `ready`, or `degraded` (both 200: answers stay
    /// correct) when the cache fails or a model's files changed on disk since they were loaded.
    pub status: String,
    #[schema(value_type = Object)]
    pub models: serde_json::Value,
    /// Once loaded: `cache` (the store: `status` `ok`, `degraded`, `unavailable` or `off`, `backend` `sqlite` or
    /// `redis`, its `path` or `url`, `read_error`, `write_error`, `corrupt_dropped`, `quarantined`) and `model_files` (`status` `ok` or `changed`, with
    /// `changes`).
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
    /// Once loaded: `cpu_isa` (the CPU kernel family, e.g. `avx512 (bf16, vnni)`), the precision of each
    /// model (`translate`, `summarize`), and with an int8 model `int8_weight_bits` (7 or 8).
    #[schema(value_type = Object)]
    pub runtime: serde_json::Value,
}

/// Ready or degraded (200) once the models are loaded, with what is degraded; 503 while loading.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health), (status = 503, description = "Loading", body = Health)))]
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
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let access = &state.config.access;
    if access.metrics_protected() && !access.is_key(bearer(&headers)) {
        return Err(ApiError::forbidden("/metrics needs Authorization: Bearer key"));
    }
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.render()).into_response())
}
