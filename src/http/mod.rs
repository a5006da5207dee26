//! `brief serve`: the router (API and reader pages) and its layers (CORS, compression, request ids, metrics,
//! body limit), background model loading and graceful shutdown.

pub mod access;
pub mod error;
pub mod extract;
pub mod feed;
pub mod files;
pub mod libretranslate;
pub mod listing;
pub mod openapi;
pub mod ops;
pub mod reader;
pub mod v1;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

use crate::generate::Overrides;
use crate::metrics::Metrics;
use crate::service::{Service, SummaryOptions};
use error::ApiError;

/// How the server behaves (from `brief serve`'s options).
#[derive(Debug)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// A request still unanswered after this gets 504.
    pub request_timeout: Duration,
    /// API keys and their rate limits (none configured: the API is open).
    pub access: Arc<access::Access>,
    /// How often a background thread checks the models' files on disk (and logs a change once); `None` checks
    /// only when `/health` is asked.
    pub watch_interval: Option<Duration>,
    /// LibreTranslate's limits on `/translate`.
    pub limits: LtLimits,
    /// Origins that browsers may call the API from (`*`: any).
    pub cors: CorsOrigins,
    /// File translation: where translated files are kept, and the largest upload.
    pub files: files::FilesConfig,
    /// The Atom feed: how many briefs, and the public address its links start with.
    pub feed: feed::FeedConfig,
    /// Briefs per page of the reader's list (`GET /`).
    pub reader_page_size: usize,
}

/// LibreTranslate's limits on `/translate` (`--char-limit`, `--batch-limit`, `--alternatives-limit`).
#[derive(Debug, Clone)]
pub struct LtLimits {
    /// Most characters per text (`None`: no limit but the body's).
    pub chars: Option<usize>,
    /// Most texts in one `q` list.
    pub batch: Option<usize>,
    /// Most alternatives given; more asked for are not an error, as in LibreTranslate.
    pub alternatives: usize,
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<HeaderValue>),
}

impl CorsOrigins {
    /// `*`, or origins separated by commas (`https://a.example,https://b.example`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == "*" {
            return Ok(CorsOrigins::Any);
        }
        let origins = text
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                let ok = (o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/');
                match HeaderValue::from_str(o) {
                    Ok(v) if ok => Ok(v),
                    _ => Err(format!("{o:?} is not an origin (scheme://host[:port], no path), nor *")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err("--cors-origins needs * or at least one origin".into());
        }
        Ok(CorsOrigins::List(origins))
    }

    fn layer(&self) -> CorsLayer {
        let origins = match self {
            CorsOrigins::Any => AllowOrigin::from(Any),
            CorsOrigins::List(list) => AllowOrigin::list(list.clone()),
        };
        CorsLayer::new().allow_origin(origins).allow_methods(Any).allow_headers(Any).max_age(Duration::from_secs(3600))
    }
}

/// Search defaults for requests that do not set them.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub translate: Overrides,
    pub summary: SummaryOptions,
    /// Whether POST /v1/briefs keeps boilerplate lines when the request does not say (`--keep-boilerplate`).
    pub keep_boilerplate: bool,
}

/// What every handler sees. The service is set once the models are loaded.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<OnceLock<Arc<Service>>>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
    pub defaults: Arc<Defaults>,
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    use libretranslate as lt;
    let max_body = state.config.max_body_bytes;
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/", get(reader::index))
        .route("/briefs/{id}", get(reader::brief))
        .route("/feed.atom", get(feed::feed))
        .route("/translate", get(reader::translate_page).post(lt::translate))
        .route("/detect", post(lt::detect))
        .route("/languages", get(lt::languages_list).post(lt::languages_list))
        .route("/frontend/settings", get(lt::frontend_settings))
        .route("/suggest", post(lt::suggest))
        .route("/spec", get(openapi::spec))
        .route("/translate_file", post(files::translate_file))
        .route("/download_file/{name}", get(files::download_file))
        .route("/v1/translate", post(v1::v1_translate))
        .route("/v1/summarize", post(v1::v1_summarize))
        .route("/v1/briefs", post(v1::v1_create_brief).get(v1::v1_list_briefs))
        .route("/v1/briefs/{id}", get(v1::v1_get_brief))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .layer(CompressionLayer::new())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(state.config.cors.layer())
        .with_state(state)
}

/// A request still unanswered after the server's timeout gets 504.
pub(crate) fn deadline(state: &AppState) -> Option<Instant> {
    Some(Instant::now() + state.config.request_timeout)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

/// Counts requests and their latency by route and status.
async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("")
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.metrics.inc("brief_http_requests_total", &[("route", &route), ("status", &status)], 1.0);
    state.metrics.observe("brief_http_request_duration_seconds", &[("route", &route)], started.elapsed().as_secs_f64());
    tracing::info!(route, status, request_id = id, ms = started.elapsed().as_millis() as u64, "request");
    response
}

/// Serves until `shutdown` resolves, then finishes the requests in flight. The listener is bound before the models
/// load (so `/health` answers `loading` meanwhile); `load` runs on a blocking thread, and its failure stops the
/// server with that error.
pub async fn serve<F>(
    config: ServerConfig,
    defaults: Defaults,
    metrics: Arc<Metrics>,
    load: F,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    F: FnOnce() -> anyhow::Result<Service> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
    let addr = listener.local_addr()?;
    let state = AppState {
        service: Arc::new(OnceLock::new()),
        metrics,
        config: Arc::new(config),
        defaults: Arc::new(defaults),
    };
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let slot = state.service.clone();
    let watch_interval = state.config.watch_interval;
    tokio::task::spawn_blocking(move || match load() {
        Ok(service) => {
            let service = Arc::new(service);
            let _ = slot.set(service.clone());
            tracing::info!("models loaded; ready");
            if let Some(every) = watch_interval {
                watch(service, every);
            }
        }
        Err(e) => {
            let _ = failed_tx.send(e);
        }
    });
    eprintln!("brief listening on http://{addr}");
    let app = router(state).into_make_service();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        // A dropped sender (the models loaded fine) is not a reason to stop.
        let load_failed = async {
            if stop_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = shutdown => {},
            _ = load_failed => {},
        }
    });
    let watcher = tokio::spawn(async move {
        match failed_rx.await {
            Ok(e) => {
                let _ = stop_tx.send(());
                Some(e)
            }
            Err(_) => None,
        }
    });
    server.await?;
    watcher.abort();
    match watcher.await {
        Ok(Some(e)) => Err(e.context("loading the models")),
        _ => Ok(()),
    }
}

/// Checks the models' files every `every` on a thread of its own ([`crate::models::snapshot::FileSnapshot`] logs
/// each change of state once). The thread ends with the process.
fn watch(service: Arc<Service>, every: Duration) {
    let spawned = std::thread::Builder::new().name("brief-watch".into()).spawn(move || loop {
        std::thread::sleep(every);
        let _ = service.health();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread that watches the model files; /health still checks them");
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
