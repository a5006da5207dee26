//! The `brief` command: parses the command line, sets up logging, and runs the command.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;

use brief::cli::{
    build_service, cached_model, ArticleArgs, BatchArgs, CacheAction, CacheCommandArgs, Cli, Command, ServeArgs,
    SummarizeArgs, TranslateArgs, WorkerArgs, MANIFEST,
};
use brief::metrics::Metrics;
use brief::service::{self, Generator};
use brief::store::Verify;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    // A write past the file-size limit (ulimit -f) then fails with EFBIG, which the cache reports and survives,
    // instead of killing the process, as SIGXFSZ does by default.
    #[cfg(unix)]
    // SAFETY: ignoring a signal installs no handler code; it only changes the signal's disposition.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Translate(args) => translate(*args),
        Command::Summarize(args) => summarize(*args),
        Command::Article(args) => article(*args),
        Command::Batch(args) => batch(*args),
        Command::Serve(args) => serve(*args),
        Command::Cache(args) => cache(args),
        Command::Models(args) => models(args),
        Command::HealthCheck(args) => health_check(&args),
    }
}

/// Sets the CPU thread count (and the rest of the process-wide CPU settings) before any model code starts its
/// thread pools.
/// Reads a UTF-8 input file, or standard input for `None` or `-`.
fn read_input(file: Option<&Path>) -> Result<String> {
    let (bytes, name) = match file {
        Some(path) if path != Path::new("-") => (
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            path.display().to_string(),
        ),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).context("cannot read standard input")?;
            (bytes, "standard input".to_string())
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{name} is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())
    })
}

fn translate(args: TranslateArgs) -> Result<()> {
    brief::models::runtime::configure(
        args.runtime.threads,
        args.runtime.cpu_isa.as_deref(),
        args.runtime.int8_weight_bits,
    )?;
    let text = read_input(args.file.as_deref())?;
    let config = args.model.engine_config(&args.runtime)?;
    let overrides = args.search.overrides();
    let metrics = Arc::new(Metrics::new());
    let cache = if args.cache.no_cache { None } else { args.cache.open_or_degrade(Verify::None)?.texts() };
    let started = std::time::Instant::now();
    let translator = cached_model(&config, &WorkerArgs::default(), "translate", cache, metrics)
        .context("loading the translation model")?;
    let info = translator.codec().info();
    tracing::info!(model = %info.id, revision = %info.revision, ms = started.elapsed().as_millis() as u64, "model loaded");
    // Options are checked before any work, so that a bad option fails fast.
    translator.codec().search_options(&overrides)?;
    let started = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    if args.lines {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        for line in service::translate_lines(&translator, &lines, &overrides)? {
            writeln!(out, "{line}")?;
        }
        tracing::info!(lines = lines.len(), ms = started.elapsed().as_millis() as u64, "translated");
    } else {
        let doc = service::translate_document(&translator, &text, &overrides)?;
        write!(out, "{}", doc.text)?;
        tracing::info!(
            paragraphs = doc.paragraphs,
            sentences = doc.sentences,
            cached = doc.cached,
            ms = started.elapsed().as_millis() as u64,
            "translated"
        );
    }
    out.flush()?;
    Ok(())
}

fn summarize(args: SummarizeArgs) -> Result<()> {
    brief::models::runtime::configure(
        args.runtime.threads,
        args.runtime.cpu_isa.as_deref(),
        args.runtime.int8_weight_bits,
    )?;
    let text = read_input(args.file.as_deref())?;
    let options = args.summary.options()?;
    let cache = if args.cache.no_cache { None } else { args.cache.open_or_degrade(Verify::None)?.texts() };
    let summarizer = cached_model(
        &args.summary.engine_config(&args.runtime)?,
        &WorkerArgs::default(),
        "summarize",
        cache,
        Arc::new(Metrics::new()),
    )
    .context("loading the summarization model")?;
    summarizer.codec().search_options(&options.overrides)?;
    let mut out = std::io::stdout().lock();
    if args.lines {
        for line in text.lines() {
            writeln!(out, "{}", service::summarize(&summarizer, line, &options, None)?.text)?;
        }
    } else {
        let summary = service::summarize(&summarizer, &text, &options, None)?;
        tracing::info!(
            rounds = summary.rounds.len(),
            chunks = summary.rounds.first().map_or(0, Vec::len),
            "summarized"
        );
        writeln!(out, "{}", summary.text)?;
    }
    out.flush()?;
    Ok(())
}

fn article(args: ArticleArgs) -> Result<()> {
    brief::models::runtime::configure(
        args.runtime.threads,
        args.runtime.cpu_isa.as_deref(),
        args.runtime.int8_weight_bits,
    )?;
    let text = read_input(Some(&args.file))?;
    let name =
        args.file.file_name().map_or_else(|| args.file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let meta = service::ArticleMeta {
        outlet: args.outlet.clone(),
        url: args.url.clone(),
        published_at: args.published_at.clone(),
    }
    .validate()
    .map_err(|e| anyhow::anyhow!(e))?;
    let article = service::Article { name, text, meta };
    let options = service::BriefOptions {
        translate: args.search.overrides(),
        summary: args.summary.options()?,
        keep_boilerplate: args.keep_boilerplate,
    };
    let svc = build_service(
        &args.model,
        Some(&args.summary),
        &args.runtime,
        &WorkerArgs::default(),
        args.cache.open_or_degrade(Verify::Quick)?,
        Arc::new(Metrics::new()),
    )?;
    svc.translator.codec().search_options(&options.translate)?;
    svc.summarizer()?.codec().search_options(&options.summary.overrides)?;
    let (brief, _kept) = svc.brief(&article, &options, None)?;
    tracing::info!(id = %brief.id, ms = brief.timings.total_ms, "brief made");
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", brief.to_json())?;
    } else {
        write!(out, "{}", brief.to_markdown())?;
    }
    out.flush()?;
    Ok(())
}

fn batch(args: BatchArgs) -> Result<()> {
    let started = std::time::Instant::now();
    if !args.dir.is_dir() {
        anyhow::bail!("{} is not a folder", args.dir.display());
    }
    let options = brief::batch::BatchOptions {
        input: args.dir.clone(),
        out: args.out.clone(),
        group: args.group.max(1),
        brief: service::BriefOptions {
            translate: args.search.overrides(),
            summary: args.summary.options()?,
            keep_boilerplate: args.keep_boilerplate,
        },
    };
    let progress = Progress::new();
    let show = |report: &brief::batch::ArticleReport, done, total| progress.show(report, done, total);
    let reports = match args.remote.client_config().map_err(anyhow::Error::msg)? {
        Some(config) => {
            let client = brief::batch::client::Client::new(config);
            brief::batch::remote::run(&client, &options, args.remote.concurrency, show)?
        }
        None => {
            brief::models::runtime::configure(
                args.runtime.threads,
                args.runtime.cpu_isa.as_deref(),
                args.runtime.int8_weight_bits,
            )?;
            let svc = build_service(
                &args.model,
                Some(&args.summary),
                &args.runtime,
                &args.worker,
                args.cache.open_or_degrade(Verify::Quick)?,
                Arc::new(Metrics::new()),
            )?;
            svc.translator.codec().search_options(&options.brief.translate)?;
            svc.summarizer()?.codec().search_options(&options.brief.summary.overrides)?;
            brief::batch::run(&svc, &options, show)?
        }
    };
    progress.finish();
    print!("{}", brief::batch::table(&reports, started.elapsed().as_millis() as u64, &args.out));
    let failed = reports.iter().filter(|r| r.status == brief::batch::Status::Failed).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} articles failed",
            reports.iter().filter(|r| r.status != brief::batch::Status::Skipped).count()
        );
    }
    Ok(())
}

/// The progress of `brief batch`: a bar with counts and ETA on a terminal, else one line per article.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new() -> Progress {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress(terminal.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} articles, ETA {eta}  {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar
        }))
    }

    fn show(&self, report: &brief::batch::ArticleReport, done: usize, total: usize) {
        let line = format!(
            "{} {} ({} words, {:.1} s)",
            report.file,
            report.status.as_str(),
            report.words,
            report.ms as f64 / 1000.0
        );
        match &self.0 {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(line);
            }
            None => eprintln!("[{done}/{total}] {line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// The API keys of `brief serve`: `--api-keys FILE` and `--api-key`, with the default per-key limits.
fn access(args: &ServeArgs) -> Result<brief::http::access::Access> {
    use brief::http::access::{read_keys_file, Access, Limits};
    let limit = |n: u64| (n > 0).then_some(n);
    let defaults = Limits {
        requests_per_minute: limit(args.rate_requests_per_minute),
        chars_per_minute: limit(args.rate_chars_per_minute),
    };
    let mut keys = match &args.api_keys {
        Some(path) => read_keys_file(path, defaults).map_err(|e| anyhow::anyhow!("--api-keys {e}"))?,
        None => Vec::new(),
    };
    if let Some(key) = args.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        keys.push((key.to_string(), defaults));
    }
    Ok(Access::new(keys, args.protect_metrics))
}

fn serve(args: ServeArgs) -> Result<()> {
    brief::models::runtime::configure(
        args.runtime.threads,
        args.runtime.cpu_isa.as_deref(),
        args.runtime.int8_weight_bits,
    )?;
    let store = Arc::new(args.files.store(&args.cache)?);
    store.spawn_sweeper(args.files.sweep_interval())?;
    // Opened before the server starts, so that rate limits can use it; a store that fails leaves the server
    // running without it (see `/health`).
    let opened = args.cache.open_or_degrade(Verify::Quick)?;
    let config = brief::http::ServerConfig {
        bind: args.bind,
        max_body_bytes: args.max_body_bytes,
        request_timeout: std::time::Duration::from_secs(args.request_timeout_secs.max(1)),
        access: Arc::new(access(&args)?.with_store(opened.store.clone())),
        watch_interval: (args.watch_interval_secs > 0)
            .then(|| std::time::Duration::from_secs(args.watch_interval_secs)),
        limits: brief::http::LtLimits {
            chars: args.char_limit,
            batch: args.batch_limit,
            alternatives: args.alternatives_limit as usize,
        },
        cors: args.cors_origins.clone(),
        files: brief::http::files::FilesConfig { store, max_bytes: args.files.file_max_bytes },
        reader_page_size: args.reader_page_size as usize,
        feed: brief::http::feed::FeedConfig {
            entries: args.feed_entries as usize,
            public_url: args.public_url.clone(),
        },
    };
    let defaults = brief::http::Defaults {
        translate: args.search.overrides(),
        summary: args.summary.options()?,
        keep_boilerplate: args.keep_boilerplate,
    };
    let metrics = Arc::new(Metrics::new());
    let load_metrics = metrics.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("brief-http").build()?;
    runtime.block_on(brief::http::serve(
        config,
        defaults,
        metrics,
        move || {
            let summary = (!args.no_summary).then_some(&args.summary);
            build_service(&args.model, summary, &args.runtime, &args.worker, opened, load_metrics)
        },
        brief::http::shutdown_signal(),
    ))
}

fn cache(args: CacheCommandArgs) -> Result<()> {
    use brief::store::{redact, SqliteStore, StoreUrl};
    let mut out = std::io::stdout().lock();
    let path = match args.cache.url()? {
        StoreUrl::Sqlite(path) => path,
        StoreUrl::Redis(url) => {
            if matches!(args.action, CacheAction::Path) {
                writeln!(out, "{}", redact(&url))?;
                return Ok(());
            }
            anyhow::bail!(
                "`brief cache` stats, check and clear work on a SQLite store; with redis use its own tools \
                 (redis-cli --scan --pattern '{}*', INFO memory)",
                args.cache.store_prefix
            );
        }
    };
    match args.action {
        CacheAction::Path => writeln!(out, "{}", path.display())?,
        CacheAction::Stats => {
            let stats =
                SqliteStore::open(&path, args.cache.cache_max_mb.saturating_mul(1024 * 1024), Verify::None)?.stats()?;
            writeln!(out, "path     {}", stats.path.display())?;
            writeln!(out, "entries  {}", stats.entries)?;
            writeln!(
                out,
                "size     {:.1} MiB of {:.0} MiB",
                stats.bytes as f64 / 1048576.0,
                stats.max_bytes as f64 / 1048576.0
            )?;
            writeln!(out, "briefs   {}", stats.briefs)?;
        }
        CacheAction::Check { repair } => {
            anyhow::ensure!(path.is_file(), "no cache file at {}", path.display());
            // Opened without the quarantine-on-damage of `open`: this command reports, it does not move files.
            let cache = SqliteStore::open_existing(&path, u64::MAX)?;
            let report = cache.check()?;
            writeln!(out, "path            {}", path.display())?;
            writeln!(out, "integrity       {}", report.integrity.join("; "))?;
            if report.integrity == ["ok"] {
                writeln!(out, "texts           {} ({} damaged)", report.entries, report.damaged_entries.len())?;
                writeln!(out, "briefs          {} ({} damaged)", report.briefs, report.damaged_briefs.len())?;
            }
            for id in &report.damaged_briefs {
                writeln!(out, "damaged brief   {id}")?;
            }
            if report.is_sound() {
                writeln!(out, "sound")?;
            } else if repair && report.integrity == ["ok"] {
                cache.drop_damaged(&report)?;
                writeln!(out, "repaired: deleted the damaged entries and briefs")?;
            } else if report.integrity != ["ok"] {
                anyhow::bail!(
                    "the cache file has damaged pages: move it aside or delete it (`brief serve` and `brief batch` \
                     move it aside at start)"
                );
            } else {
                anyhow::bail!("the cache has damaged entries: `brief cache check --repair` deletes them");
            }
        }
        CacheAction::Clear { briefs } => {
            let cache = SqliteStore::open(&path, args.cache.cache_max_mb.saturating_mul(1024 * 1024), Verify::None)?;
            cache.clear(briefs)?;
            writeln!(out, "cleared {}{}", cache.path().display(), if briefs { " (briefs too)" } else { "" })?;
        }
    }
    Ok(())
}

fn models(args: brief::cli::ModelsArgs) -> Result<()> {
    if args.download {
        return download_models(&args);
    }
    let isa = brief::models::runtime::configure(None, args.cpu_isa.as_deref(), args.int8_weight_bits)?;
    let manifest: serde_json::Value = serde_json::from_str(MANIFEST)?;
    let cache = brief::models::hub::cache_dir().ok();
    let mut out = std::io::stdout().lock();
    let runs: Vec<&str> = brief::models::kernels::isa::available().iter().rev().map(|i| i.name()).collect();
    writeln!(
        out,
        "cpu kernels: {} (this CPU runs: {}; BRIEF_CPU_ISA or --cpu-isa to choose)",
        isa.describe(),
        runs.join(", ")
    )?;
    writeln!(
        out,
        "int8 weights (--dtype int8): {} bits (BRIEF_INT8_WEIGHT_BITS or --int8-weight-bits to choose)",
        brief::models::kernels::gemm::int8_weight_bits_in_use()
    )?;
    for (role, model) in manifest.as_object().into_iter().flatten() {
        let id = model["id"].as_str().unwrap_or_default();
        let cached = cache
            .as_ref()
            .map(|dir| dir.join(format!("models--{}", id.replace('/', "--"))))
            .filter(|p| p.is_dir())
            .map_or("not cached".to_string(), |p| format!("cached in {}", p.display()));
        writeln!(
            out,
            "{role:<10} {id} @ {} ({}, {}) — {cached}",
            model["revision"].as_str().unwrap_or("main"),
            model["family"].as_str().unwrap_or("?"),
            model["license"].as_str().unwrap_or("?"),
        )?;
    }
    Ok(())
}

/// `brief models --download`: every file of the chosen models into the hub cache, one line per file on standard
/// error, and where each model's snapshot is on standard output.
fn download_models(args: &brief::cli::ModelsArgs) -> Result<()> {
    use brief::models::hub::{self, Fetched};
    use brief::models::ModelSource;
    let cache = hub::cache_dir()?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut out = std::io::stdout().lock();
    for (role, source) in args.sources()? {
        let (id, revision) = match &source {
            ModelSource::Local(dir) => {
                writeln!(out, "{role:<10} {}: a local directory, nothing to download", dir.display())?;
                continue;
            }
            ModelSource::Hub { id, revision } => (id.clone(), revision.clone()),
        };
        eprintln!("{role}: {id} @ {revision} into {}", cache.display());
        let (mut downloaded, mut cached) = (0usize, 0usize);
        let files = hub::resolve_reporting(&source, progress, &mut |name, fetched, path| {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let what = match fetched {
                Fetched::Cached => {
                    cached += 1;
                    "already cached"
                }
                Fetched::Downloaded => {
                    downloaded += 1;
                    "downloaded"
                }
            };
            eprintln!("  {name}: {what} ({size} bytes)");
        })
        .with_context(|| {
            let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
            format!(
                "cannot download {id} @ {revision} from {endpoint} into {}: without network access, run \
                 `brief models --download` where the hub is reachable and copy that cache (HF_HOME) here",
                cache.display()
            )
        })?;
        let fetched = if downloaded + cached == 0 {
            "complete in the cache, the hub not asked".to_string()
        } else {
            format!("{downloaded} downloaded, {cached} already cached")
        };
        writeln!(out, "{role:<10} {id} @ {} in {} ({fetched})", files.revision, files.dir.display())?;
    }
    Ok(())
}

fn health_check(args: &brief::cli::HealthCheckArgs) -> Result<()> {
    let timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
    match brief::probe::get_status(&args.url, timeout) {
        Ok(200) => Ok(()),
        Ok(status) => anyhow::bail!("{} answered {status}", args.url),
        Err(reason) => anyhow::bail!("{reason}"),
    }
}
