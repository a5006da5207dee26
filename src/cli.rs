//! The command line: commands and their options, each with an environment fallback and a documented default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::worker::{Worker, WorkerConfig};
use crate::engine::{BatchLimits, Engine, EngineConfig, EngineError};
use crate::generate::{EarlyStoppingOption, Overrides};
use crate::metrics::Metrics;
use crate::models::{self, ModelError, ModelSource};
use crate::service::files::{FileError, FileStore};
use crate::service::StoreOpenFailure;
use crate::service::SummaryOptions;
use crate::service::{CachedModel, Service};
use crate::store::{Store, StoreConfig, StoreError, StoreUrl, Verify};

/// The default models, from `models/manifest.json`.
pub const MANIFEST: &str = include_str!("../models/manifest.json");

/// Hub id of the default translation model (see `models/manifest.json`).
pub const DEFAULT_TRANSLATE_MODEL: &str = "Helsinki-NLP/opus-mt-id-en";

/// Hub id of the default summarization model (see `models/manifest.json`).
pub const DEFAULT_SUMMARY_MODEL: &str = "google/flan-t5-base";

/// brief turns Indonesian news into English: translations that keep the article's paragraphs and short English
/// summaries, with MarianMT and T5 models running on candle (CPU by default, CUDA with `--features cuda`).
#[derive(Debug, Parser)]
#[command(name = "brief", version, about, long_about = None)]
pub struct Cli {
    /// Log level or tracing filter (error, warn, info, debug, trace). Logs go to standard error.
    #[arg(long, env = "BRIEF_LOG", default_value = "warn", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Translate Indonesian text (a file, or standard input) into English on standard output.
    Translate(Box<TranslateArgs>),
    /// Summarize English text (a file, or standard input); long texts are summarized chunk by chunk, then the
    /// chunk summaries are summarized.
    Summarize(Box<SummarizeArgs>),
    /// Make the English brief of an Indonesian article: headline, summary and translation, with the models used
    /// and timings (Markdown, or JSON with --json).
    Article(Box<ArticleArgs>),
    /// Make the brief of every article in a folder (.txt, .md): Markdown and JSON per article, index.md and
    /// index.json, all kept in the brief store that `brief serve` shows.
    Batch(Box<BatchArgs>),
    /// Serve the HTTP API (LibreTranslate-compatible /translate, the /v1 API, /metrics, /openapi.json) and the
    /// reader pages (/ and /briefs/{id}).
    Serve(Box<ServeArgs>),
    /// Inspect or empty the store (stats, check and clear need a SQLite store; path also names a Redis one).
    Cache(CacheCommandArgs),
    /// Show the default models (models/manifest.json), whether they are in the local hub cache, and the CPU
    /// kernels that run; with --download, fetch the models into the hub cache (for images and init containers).
    Models(ModelsArgs),
    /// GET a URL of a running server (default: /health on the default address) and exit with status 0 when it
    /// answers 200, 1 otherwise: a container HEALTHCHECK without curl.
    HealthCheck(HealthCheckArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HealthCheckArgs {
    /// URL to GET (plain http://).
    #[arg(long, env = "BRIEF_HEALTH_URL", default_value = "http://127.0.0.1:8080/health")]
    pub url: String,

    /// Seconds to wait for the connection and for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {
    /// CPU kernel family to report (as `--cpu-isa` of the other commands).
    #[arg(long, env = "BRIEF_CPU_ISA")]
    pub cpu_isa: Option<String>,

    /// int8 weight width to report (as `--int8-weight-bits` of the other commands).
    #[arg(long, env = "BRIEF_INT8_WEIGHT_BITS", value_parser = clap::value_parser!(u32).range(7..=8))]
    pub int8_weight_bits: Option<u32>,

    /// Download the translation and summarization models into the hub cache (HF_HUB_CACHE, else HF_HOME/hub,
    /// else ~/.cache/huggingface/hub), one line per file; files already there are not downloaded again. Exits
    /// with status 0 once every file is in the cache, 1 when one cannot be had (the hub unreachable, say).
    #[arg(long)]
    pub download: bool,

    /// Translation model to download: a hub id (a local directory is used as it is).
    #[arg(long = "model", visible_alias = "translate-model", env = "BRIEF_TRANSLATE_MODEL", default_value = DEFAULT_TRANSLATE_MODEL)]
    pub model: String,

    /// Hub revision (branch, tag or commit) of the translation model.
    #[arg(long = "revision", visible_alias = "translate-revision", env = "BRIEF_TRANSLATE_REVISION")]
    pub revision: Option<String>,

    /// Summarization model to download: a hub id (a local directory is used as it is).
    #[arg(long, env = "BRIEF_SUMMARY_MODEL", default_value = DEFAULT_SUMMARY_MODEL)]
    pub summary_model: String,

    /// Hub revision (branch, tag or commit) of the summarization model.
    #[arg(long, env = "BRIEF_SUMMARY_REVISION")]
    pub summary_revision: Option<String>,

    /// Download the translation model only (for `brief serve --no-summary`).
    #[arg(long)]
    pub no_summary: bool,
}

impl ModelsArgs {
    /// The models --download fetches, each with its role (`translate`, `summarize`).
    pub fn sources(&self) -> Result<Vec<(&'static str, ModelSource)>, ModelError> {
        let mut sources = vec![("translate", ModelSource::parse(&self.model, self.revision.as_deref())?)];
        if !self.no_summary {
            sources.push(("summarize", ModelSource::parse(&self.summary_model, self.summary_revision.as_deref())?));
        }
        Ok(sources)
    }
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Folder of Indonesian articles (UTF-8 `.txt` or `.md`, headline on the first line); other files are
    /// listed as skipped.
    pub dir: PathBuf,

    /// Folder for the briefs (`<name>.md`, `<name>.json`), `index.md` and `index.json`.
    #[arg(long, env = "BRIEF_OUT", default_value = "briefs")]
    pub out: PathBuf,

    /// Articles whose sentences go to the models together (larger: bigger batches, coarser progress).
    #[arg(long, env = "BRIEF_BATCH_GROUP", default_value_t = 8)]
    pub group: usize,

    /// Translate and summarize the lines of news pages that are not the article ("Baca juga:" links, video
    /// prompts, SCROLL TO CONTINUE WITH CONTENT, ad slots, photo captions, share prompts): by default they are
    /// left out and listed in the brief's `dropped` (README: Boilerplate).
    #[arg(long, env = "BRIEF_KEEP_BOILERPLATE")]
    pub keep_boilerplate: bool,

    #[command(flatten)]
    pub remote: RemoteArgs,

    #[command(flatten)]
    pub model: TranslateModelArgs,

    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub summary: SummaryArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub worker: WorkerArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// `brief batch --server`: the briefs made by a running `brief serve` instead of models loaded here.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// URL of a running `brief serve` (or of a load balancer before several), e.g. `http://10.0.0.5:8080`: each
    /// article goes to its POST /v1/briefs and no model is loaded here (the model, runtime, worker and cache
    /// options are then unused; the search options set here are sent, the others are the server's; so is the
    /// summary chunk size; --keep-boilerplate is sent too). An article whose brief files are already in --out is
    /// not sent again.
    #[arg(long, env = "BRIEF_SERVER")]
    pub server: Option<String>,

    /// API key for --server, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "BRIEF_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Articles in flight at once with --server.
    #[arg(long, env = "BRIEF_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// Retries of a request to --server answered 429, 502 or 503, or not answered (refused, reset, timed out):
    /// after its Retry-After seconds, else 0.5 s doubled per retry. Other errors fail the article at once.
    #[arg(long, env = "BRIEF_RETRIES", default_value_t = 8)]
    pub retries: u32,

    /// Longest wait before one retry, in seconds (a longer Retry-After is cut to this; the shortest is 0.1 s).
    #[arg(long, env = "BRIEF_RETRY_MAX_WAIT_SECS", default_value_t = 60)]
    pub retry_max_wait_secs: u64,

    /// Seconds one request to --server may take, connecting to the end of the answer (more than the server's
    /// own --request-timeout-secs, 120, so that its 504 comes first).
    #[arg(long, env = "BRIEF_BATCH_REQUEST_TIMEOUT_SECS", default_value_t = 300)]
    pub request_timeout_secs: u64,
}

impl RemoteArgs {
    /// The client configuration, when --server is given.
    pub fn client_config(&self) -> Result<Option<crate::batch::client::ClientConfig>, String> {
        let Some(server) = &self.server else { return Ok(None) };
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(format!("--server must be an http:// or https:// URL, not {server:?}"));
        }
        Ok(Some(crate::batch::client::ClientConfig {
            server: server.clone(),
            api_key: self.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(str::to_string),
            retries: self.retries,
            max_wait: Duration::from_secs(self.retry_max_wait_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
        }))
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BRIEF_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "BRIEF_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a request may take before it gets 504.
    #[arg(long, env = "BRIEF_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    pub request_timeout_secs: u64,

    /// Require this key on the API (`api_key` field, or `Authorization: Bearer KEY`); adds to --api-keys.
    #[arg(long, env = "BRIEF_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// A file of API keys, one per line: `KEY [requests_per_minute=N] [chars_per_minute=N]` (`#` comments).
    /// With keys, /translate, /detect and /v1/* need one; the reader pages, /health, /languages and
    /// /openapi.json stay public.
    #[arg(long, env = "BRIEF_API_KEYS_FILE")]
    pub api_keys: Option<PathBuf>,

    /// Requests per minute per key, for keys without their own limit (0: unlimited).
    #[arg(long, env = "BRIEF_RATE_REQUESTS_PER_MINUTE", default_value_t = 600)]
    pub rate_requests_per_minute: u64,

    /// Characters of text per minute per key, for keys without their own limit (0: unlimited).
    #[arg(long, env = "BRIEF_RATE_CHARS_PER_MINUTE", default_value_t = 300_000)]
    pub rate_chars_per_minute: u64,

    /// With keys configured, /metrics needs one too (`Authorization: Bearer KEY`).
    #[arg(long, env = "BRIEF_PROTECT_METRICS")]
    pub protect_metrics: bool,

    /// Seconds between checks that the models' files on disk are still those loaded (a change is logged once
    /// and shown by /health); 0 checks only when /health is asked.
    #[arg(long, env = "BRIEF_WATCH_INTERVAL_SECS", default_value_t = 30)]
    pub watch_interval_secs: u64,

    /// Serve translation only (no summarization model is loaded; /v1/summarize and /v1/briefs answer 503).
    #[arg(long)]
    pub no_summary: bool,

    /// Translate and summarize the lines of news pages that are not the article ("Baca juga:" links, video
    /// prompts, SCROLL TO CONTINUE WITH CONTENT, ad slots, photo captions, share prompts): by default they are
    /// left out and listed in the brief's `dropped` (README: Boilerplate). The default of POST /v1/briefs, whose
    /// `keep_boilerplate` field overrides it.
    #[arg(long, env = "BRIEF_KEEP_BOILERPLATE")]
    pub keep_boilerplate: bool,

    /// Most characters per text on LibreTranslate's /translate (400 "exceeds text limit" above it, as
    /// LibreTranslate answers; shown to clients by /frontend/settings). Unset: no limit but --max-body-bytes.
    #[arg(long, env = "BRIEF_CHAR_LIMIT")]
    pub char_limit: Option<usize>,

    /// Most texts in one /translate `q` list (400 above it, as LibreTranslate answers). Unset: no limit.
    #[arg(long, env = "BRIEF_BATCH_LIMIT")]
    pub batch_limit: Option<usize>,

    /// Most alternatives /translate gives (`alternatives=N`, the next-best translations of a beam search as wide
    /// as N + 1); a larger N gets this many, as in LibreTranslate.
    #[arg(long, env = "BRIEF_ALTERNATIVES_LIMIT", default_value_t = 10,
        value_parser = clap::value_parser!(u16).range(0..=31))]
    pub alternatives_limit: u16,

    /// Origins that web pages may call the API from (CORS): `*` (any, as LibreTranslate allows) or a
    /// comma-separated list such as `https://news.example,https://desk.example`.
    #[arg(long, env = "BRIEF_CORS_ORIGINS", default_value = "*", value_parser = crate::http::CorsOrigins::parse)]
    pub cors_origins: crate::http::CorsOrigins,

    /// Most briefs in the Atom feed (`/feed.atom`), the newest.
    #[arg(long, env = "BRIEF_FEED_ENTRIES", default_value_t = 50,
        value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub feed_entries: u16,

    /// The address readers reach this server at (`https://news.example`), for the feed's absolute links. Unset:
    /// taken from each request (`X-Forwarded-Proto` and `X-Forwarded-Host` when a proxy sets them, else `Host`).
    #[arg(long, env = "BRIEF_PUBLIC_URL", value_parser = crate::http::feed::PublicUrl::parse)]
    pub public_url: Option<crate::http::feed::PublicUrl>,

    /// Briefs per page of the reader's list at / (1 to 200); the list's links page through the rest.
    #[arg(long, env = "BRIEF_READER_PAGE_SIZE", default_value_t = 20,
        value_parser = clap::value_parser!(u16).range(1..=200))]
    pub reader_page_size: u16,

    #[command(flatten)]
    pub files: FilesArgs,

    #[command(flatten)]
    pub model: TranslateModelArgs,

    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub summary: SummaryArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub worker: WorkerArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct CacheCommandArgs {
    #[command(subcommand)]
    pub action: CacheAction,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Entries, size and bound of the cache, and the number of stored briefs.
    Stats,
    /// Delete every cached text (and, with --briefs, the stored briefs).
    Clear {
        /// Also delete the stored briefs.
        #[arg(long)]
        briefs: bool,
    },
    /// Print the path of the cache file.
    Path,
    /// Check the cache file: SQLite's integrity check and every stored text and brief against its checksum.
    /// Exits with status 1 when something is damaged.
    Check {
        /// Delete the damaged entries and briefs found (they are recomputed or made again when next asked for).
        #[arg(long)]
        repair: bool,
    },
}

/// The store of generated texts and briefs: a SQLite file under the cache directory (the default), or a
/// Redis/Valkey server that several replicas share.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Directory of the cache file and of translated files (default: $XDG_CACHE_HOME/brief, else
    /// ~/.cache/brief).
    #[arg(long, env = "BRIEF_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Read and write no cached texts: compute everything (briefs are still stored).
    #[arg(long, env = "BRIEF_NO_CACHE")]
    pub no_cache: bool,

    /// Size bound of the cached texts in a SQLite store, in MiB; the least recently used go first (a Redis
    /// server bounds itself: set its `maxmemory` and `maxmemory-policy volatile-lru`).
    #[arg(long, env = "BRIEF_CACHE_MAX_MB", default_value_t = 1024)]
    pub cache_max_mb: u64,

    /// Where texts, briefs and (with Redis) rate limits are kept: `sqlite:PATH` (a file; default
    /// `sqlite:<cache dir>/brief-cache.sqlite3`) or `redis://[user:pass@]host:port/db` (Redis or Valkey, shared
    /// by every replica; TLS `rediss://` is not built in).
    #[arg(long, env = "BRIEF_STORE_URL", hide_env_values = true)]
    pub store: Option<String>,

    /// Put before every Redis key, so that deployments can share a server.
    #[arg(long, env = "BRIEF_STORE_PREFIX", default_value = "brief:")]
    pub store_prefix: String,

    /// Seconds a cached text lives in Redis unread (each hit renews it); briefs never expire.
    #[arg(long, env = "BRIEF_STORE_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub store_ttl_secs: u64,
}

/// The store as opened at start: the store, or why there is none although one was asked for, and whether
/// cached texts are used (not with `--no-cache`).
#[derive(Clone, Default)]
pub struct OpenedStore {
    pub store: Option<Arc<Store>>,
    pub error: Option<StoreOpenFailure>,
    pub texts: bool,
}

impl CacheArgs {
    pub fn dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(crate::store::default_dir)
    }

    /// Where the store is (`--store`, else the SQLite file in the cache directory).
    pub fn url(&self) -> Result<StoreUrl, StoreError> {
        match &self.store {
            Some(url) => StoreUrl::parse(url),
            None => Ok(StoreUrl::Sqlite(self.dir().join(crate::store::FILE_NAME))),
        }
    }

    pub fn config(&self, verify: Verify) -> Result<StoreConfig, StoreError> {
        Ok(StoreConfig {
            url: self.url()?,
            max_bytes: self.cache_max_mb.saturating_mul(1024 * 1024),
            verify,
            prefix: self.store_prefix.clone(),
            text_ttl: Duration::from_secs(self.store_ttl_secs.max(1)),
        })
    }

    /// Opens the store, or when it cannot be opened (a full disk, a read-only or missing mount), logs why and
    /// returns the error instead: the caller runs without a store (computing everything, keeping no briefs).
    /// A `--store` that is not a store URL is the caller's error, not a degraded start.
    pub fn open_or_degrade(&self, verify: Verify) -> Result<OpenedStore, StoreError> {
        let config = self.config(verify)?;
        let (backend, location) = match &config.url {
            StoreUrl::Sqlite(path) => ("sqlite", path.display().to_string()),
            StoreUrl::Redis(url) => ("redis", crate::store::redact(url)),
        };
        let texts = !self.no_cache;
        Ok(match Store::open(&config) {
            Ok(store) => OpenedStore { store: Some(Arc::new(store)), error: None, texts },
            Err(e) => {
                tracing::error!(error = %e, "the cache cannot be opened: running without it (nothing is cached, no briefs are kept)");
                OpenedStore {
                    store: None,
                    error: Some(StoreOpenFailure { backend, location, error: e.to_string() }),
                    texts,
                }
            }
        })
    }

    /// Opens the store; `verify` runs SQLite's quick check first (see [`Verify`]).
    pub fn open(&self, verify: Verify) -> Result<Arc<Store>, StoreError> {
        Ok(Arc::new(Store::open(&self.config(verify)?)?))
    }
}

impl OpenedStore {
    /// The store for cached texts: none with `--no-cache`.
    pub fn texts(&self) -> Option<Arc<Store>> {
        self.store.clone().filter(|_| self.texts)
    }
}

/// File translation (`POST /translate_file`, `GET /download_file/{name}`).
#[derive(Debug, Clone, Args)]
pub struct FilesArgs {
    /// Folder where translated files wait to be downloaded (default: `files` in the cache directory; with
    /// --no-cache, a new owner-only folder under the system's temporary directory). Only files named as this
    /// server names them are ever served or deleted there.
    #[arg(long, env = "BRIEF_FILES_DIR")]
    pub files_dir: Option<PathBuf>,

    /// Largest file /translate_file accepts, in bytes; larger ones get 413 (the whole request is also bounded
    /// by --max-body-bytes).
    #[arg(long, env = "BRIEF_FILE_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub file_max_bytes: usize,

    /// Seconds a translated file can be downloaded; then it is deleted (by a sweep on each upload and one every
    /// min(TTL/2, 60) seconds).
    #[arg(long, env = "BRIEF_FILE_TTL_SECS", default_value_t = 600)]
    pub file_ttl_secs: u64,
}

impl FilesArgs {
    /// Opens the folder of translated files (see `--files-dir`). When the default one cannot be made (the cache
    /// directory is read-only, say), a temporary folder serves instead, as the cache degrades instead of failing.
    pub fn store(&self, cache: &CacheArgs) -> Result<FileStore, FileError> {
        let ttl = Duration::from_secs(self.file_ttl_secs);
        match &self.files_dir {
            Some(dir) => FileStore::open(dir, ttl),
            None if cache.no_cache => FileStore::temporary(ttl),
            None => FileStore::open(&cache.dir().join("files"), ttl).or_else(|e| {
                tracing::warn!(error = %e, "translated files go to a temporary folder instead");
                FileStore::temporary(ttl)
            }),
        }
    }

    /// How often the sweeper looks for expired files: half the time to live, between 1 and 60 seconds.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs((self.file_ttl_secs / 2).clamp(1, 60))
    }
}

/// How requests queue for a model.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Most sequences waiting per model; more get 503 with Retry-After.
    #[arg(long, env = "BRIEF_MAX_QUEUE", default_value_t = 1024)]
    pub max_queue: usize,

    /// Milliseconds a batch waits for concurrent requests to join it.
    #[arg(long, env = "BRIEF_BATCH_WAIT_MS", default_value_t = 5)]
    pub batch_wait_ms: u64,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        Self { max_queue: 1024, batch_wait_ms: 5 }
    }
}

impl WorkerArgs {
    pub fn config(&self, name: &str) -> WorkerConfig {
        WorkerConfig {
            name: name.into(),
            max_queue: self.max_queue.max(1),
            batch_wait: Duration::from_millis(self.batch_wait_ms),
        }
    }
}

/// Loads a model onto its own worker thread, behind the cache (unless `--no-cache`).
pub fn cached_model(
    config: &EngineConfig,
    worker: &WorkerArgs,
    name: &str,
    cache: Option<Arc<Store>>,
    metrics: Arc<Metrics>,
) -> Result<CachedModel, EngineError> {
    let engine = Engine::load(config)?;
    let worker = Worker::spawn(engine, worker.config(name), metrics.clone());
    Ok(CachedModel::new(worker, cache, metrics, name))
}

/// The service with the translation model and, when `summary` is given, the summarization model.
pub fn build_service(
    translate: &TranslateModelArgs,
    summary: Option<&SummaryArgs>,
    runtime: &RuntimeArgs,
    worker: &WorkerArgs,
    store: OpenedStore,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Service> {
    use anyhow::Context;
    let texts = store.texts();
    let translator =
        cached_model(&translate.engine_config(runtime)?, worker, "translate", texts.clone(), metrics.clone())
            .context("loading the translation model")?;
    let summarizer = match summary {
        Some(args) => Some(Arc::new(
            cached_model(&args.engine_config(runtime)?, worker, "summarize", texts, metrics)
                .context("loading the summarization model")?,
        ) as Arc<dyn crate::service::Generator + Send + Sync>),
        None => None,
    };
    Ok(Service { translator: Arc::new(translator), summarizer, store: store.store, store_error: store.error })
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// Input file (UTF-8); standard input when absent or `-`.
    pub file: Option<PathBuf>,

    /// Treat each input line as one segment and print exactly one output line per input line (an empty line
    /// in gives an empty line out). Without it, paragraphs and blank lines are kept and sentences are split.
    #[arg(long)]
    pub lines: bool,

    #[command(flatten)]
    pub model: TranslateModelArgs,

    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// Input file (UTF-8 English); standard input when absent or `-`.
    pub file: Option<PathBuf>,

    /// Summarize each input line on its own and print exactly one output line per input line.
    #[arg(long)]
    pub lines: bool,

    #[command(flatten)]
    pub summary: SummaryArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct ArticleArgs {
    /// The Indonesian article (UTF-8 text; the first non-blank line is the headline).
    pub file: PathBuf,

    /// Print the brief as JSON (schema `brief/1`, docs/brief.schema.json) instead of Markdown.
    #[arg(long)]
    pub json: bool,

    /// The news site or paper the article is from (shown on the brief, stored as `source.outlet`).
    #[arg(long)]
    pub outlet: Option<String>,

    /// The article's address, an absolute http(s) URL (`source.url`).
    #[arg(long)]
    pub url: Option<String>,

    /// When the article was published: RFC 3339 or a date (YYYY-MM-DD, 00:00 UTC) (`source.published_at`).
    #[arg(long)]
    pub published_at: Option<String>,

    /// Translate and summarize the lines of news pages that are not the article ("Baca juga:" links, video
    /// prompts, SCROLL TO CONTINUE WITH CONTENT, ad slots, photo captions, share prompts): by default they are
    /// left out and listed in the brief's `dropped` (README: Boilerplate).
    #[arg(long, env = "BRIEF_KEEP_BOILERPLATE")]
    pub keep_boilerplate: bool,

    #[command(flatten)]
    pub model: TranslateModelArgs,

    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub summary: SummaryArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The summarization model and its search settings (defaults: the model's `task_specific_params.summarization`
/// over its `generation_config.json`; for FLAN-T5: 4 beams, length penalty 2, no repeated 3-grams, 30 to 200
/// tokens, prefix `summarize: `).
#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Summarization model (T5 family): a local directory or a hub id.
    #[arg(long, env = "BRIEF_SUMMARY_MODEL", default_value = DEFAULT_SUMMARY_MODEL)]
    pub summary_model: String,

    /// Hub revision (branch, tag or commit) of the summarization model.
    #[arg(long, env = "BRIEF_SUMMARY_REVISION")]
    pub summary_revision: Option<String>,

    /// Text put before the input (default: the model's summarization prefix, `summarize: ` for T5).
    #[arg(long, env = "BRIEF_SUMMARY_PREFIX")]
    pub summary_prefix: Option<String>,

    /// Beam width of the summary.
    #[arg(long)]
    pub summary_beams: Option<usize>,

    /// Most tokens in the summary.
    #[arg(long)]
    pub summary_max_new_tokens: Option<usize>,

    /// Fewest tokens in the summary, the decoder start token included (as `min_length`).
    #[arg(long)]
    pub summary_min_length: Option<usize>,

    /// Fewest new tokens in the summary.
    #[arg(long)]
    pub summary_min_new_tokens: Option<usize>,

    /// Length penalty of the summary's beam search (>0 favours longer summaries).
    #[arg(long)]
    pub summary_length_penalty: Option<f32>,

    /// Never repeat an n-gram of this size in the summary (0 allows repeats).
    #[arg(long)]
    pub summary_no_repeat_ngram_size: Option<usize>,

    /// Beam search stopping of the summary: true, false or never.
    #[arg(long)]
    pub summary_early_stopping: Option<EarlyStoppingOption>,

    /// Most input tokens per summarizer call; longer texts are summarized in chunks of this size, then the chunk
    /// summaries are summarized.
    #[arg(long, env = "BRIEF_SUMMARY_CHUNK_TOKENS", default_value_t = 512)]
    pub summary_chunk_tokens: usize,
}

impl SummaryArgs {
    pub fn source(&self) -> Result<ModelSource, ModelError> {
        ModelSource::parse(&self.summary_model, self.summary_revision.as_deref())
    }

    pub fn options(&self) -> Result<SummaryOptions, ModelError> {
        if self.summary_chunk_tokens < 16 {
            return Err(ModelError::Input("--summary-chunk-tokens must be at least 16".into()));
        }
        Ok(SummaryOptions {
            overrides: Overrides {
                num_beams: self.summary_beams,
                max_new_tokens: self.summary_max_new_tokens,
                min_length: self.summary_min_length,
                min_new_tokens: self.summary_min_new_tokens,
                length_penalty: self.summary_length_penalty,
                no_repeat_ngram_size: self.summary_no_repeat_ngram_size,
                early_stopping: self.summary_early_stopping,
                ..Default::default()
            },
            chunk_tokens: self.summary_chunk_tokens,
        })
    }

    /// The summarizer's engine configuration.
    pub fn engine_config(&self, runtime: &RuntimeArgs) -> Result<EngineConfig, ModelError> {
        let mut config = runtime.engine_config(self.source()?)?;
        config.task = Some("summarization".into());
        config.prefix = self.summary_prefix.clone();
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct TranslateModelArgs {
    /// Translation model: a local directory or a hub id.
    #[arg(long = "model", visible_alias = "translate-model", env = "BRIEF_TRANSLATE_MODEL", default_value = DEFAULT_TRANSLATE_MODEL)]
    pub model: String,

    /// Hub revision (branch, tag or commit) of the translation model.
    #[arg(long = "revision", visible_alias = "translate-revision", env = "BRIEF_TRANSLATE_REVISION")]
    pub revision: Option<String>,

    /// Text put before every input of the translation model: none for Marian; a T5-family translator such as
    /// google/madlad400-3b-mt takes a target-language tag, `<2en> `.
    #[arg(long, env = "BRIEF_TRANSLATE_PREFIX")]
    pub translate_prefix: Option<String>,
}

/// Search settings; each defaults to the model's `generation_config.json`.
#[derive(Debug, Clone, Default, Args)]
pub struct SearchArgs {
    /// Beam width (1 is greedy search). Default: the model's `num_beams` (6 for opus-mt-id-en).
    #[arg(long, env = "BRIEF_BEAMS")]
    pub beams: Option<usize>,

    /// Most tokens generated per segment. Default: up to the model's `max_length`.
    #[arg(long, env = "BRIEF_MAX_NEW_TOKENS")]
    pub max_new_tokens: Option<usize>,

    /// Exponent of the length normalisation of beam scores (>0 favours longer outputs). Default: the model's.
    #[arg(long)]
    pub length_penalty: Option<f32>,

    /// Beam search stopping: true (when enough beams finished), false (heuristic), never. Default: the model's.
    #[arg(long)]
    pub early_stopping: Option<EarlyStoppingOption>,
}

impl SearchArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            num_beams: self.beams,
            max_new_tokens: self.max_new_tokens,
            length_penalty: self.length_penalty,
            early_stopping: self.early_stopping,
            ..Default::default()
        }
    }
}

/// Where and how models run.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, env = "BRIEF_DEVICE", default_value = "cpu")]
    pub device: String,

    /// Compute precision: f32; bf16 (CPU: bf16 weights and products, f32 accumulation); int8 (CPU only: int8
    /// weights and activations with a scale per row, exact integer sums); f16 on CUDA only.
    #[arg(long, env = "BRIEF_DTYPE", default_value = "f32")]
    pub dtype: String,

    /// CPU kernel family: avx512, avx2-vnni, avx2 or portable (default: the best this CPU has). A lower family
    /// runs what CPUs without the higher one run, e.g. to measure them.
    #[arg(long, env = "BRIEF_CPU_ISA")]
    pub cpu_isa: Option<String>,

    /// Bits of the int8 weights (`--dtype int8`): 8, or 7, which CPUs with plain AVX2 (no VNNI) multiply about
    /// 1.3× as fast, with half the weights' resolution (docs/BENCHMARKS.md). Default: 7 where the kernels are
    /// plain AVX2, 8 elsewhere.
    #[arg(long, env = "BRIEF_INT8_WEIGHT_BITS", value_parser = clap::value_parser!(u32).range(7..=8))]
    pub int8_weight_bits: Option<u32>,

    /// Most segments decoded together in one batch.
    #[arg(long, env = "BRIEF_BATCH_SIZE", default_value_t = BatchLimits::default().max_sequences)]
    pub batch_size: usize,

    /// Most source tokens in one batch, padding included.
    #[arg(long, env = "BRIEF_BATCH_TOKENS", default_value_t = BatchLimits::default().max_tokens)]
    pub batch_tokens: usize,

    /// CPU threads for the models (default: all cores).
    #[arg(long, env = "BRIEF_THREADS")]
    pub threads: Option<usize>,
}

impl RuntimeArgs {
    /// The engine configuration for `source` with these runtime settings.
    pub fn engine_config(&self, source: ModelSource) -> Result<EngineConfig, ModelError> {
        if self.batch_size == 0 || self.batch_tokens == 0 {
            return Err(ModelError::Input("--batch-size and --batch-tokens must be positive".into()));
        }
        let device = models::parse_device(&self.device)?;
        let dtype = models::parse_dtype(&self.dtype)?;
        // Refused here, before anything is downloaded or loaded, with the message loading would give.
        dtype.placement(&device)?;
        Ok(EngineConfig {
            source,
            device,
            dtype,
            batch: BatchLimits { max_sequences: self.batch_size, max_tokens: self.batch_tokens },
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            task: None,
            prefix: None,
        })
    }
}

impl TranslateModelArgs {
    pub fn source(&self) -> Result<ModelSource, ModelError> {
        ModelSource::parse(&self.model, self.revision.as_deref())
    }

    /// The translator's engine configuration.
    pub fn engine_config(&self, runtime: &RuntimeArgs) -> Result<EngineConfig, ModelError> {
        let mut config = runtime.engine_config(self.source()?)?;
        config.prefix = self.translate_prefix.clone();
        Ok(config)
    }
}
