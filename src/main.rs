//! The `brief` command: parses the command line, sets up logging, and runs the command.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use brief::cli::{ArticleArgs, Cli, Command, SummarizeArgs, TranslateArgs, MANIFEST};
use brief::engine::Engine;
use brief::service;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
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
        Command::Models => models(),
    }
}

/// Sets the CPU thread count before any model code starts its thread pools.
fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

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
    set_threads(args.runtime.threads);
    let text = read_input(args.file.as_deref())?;
    let config = args.model.engine_config(&args.runtime)?;
    let overrides = args.search.overrides();
    let started = std::time::Instant::now();
    let engine = Engine::load(&config).context("loading the translation model")?;
    tracing::info!(model = %engine.info().id, revision = %engine.info().revision, ms = started.elapsed().as_millis() as u64, "model loaded");
    // Options are checked before any work, so that a bad option fails fast.
    engine.search_options(&overrides)?;
    let started = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    if args.lines {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let english = service::translate_lines(&engine, &lines, &overrides)?;
        for line in english {
            writeln!(out, "{line}")?;
        }
        tracing::info!(lines = lines.len(), ms = started.elapsed().as_millis() as u64, "translated");
    } else {
        let doc = service::translate_document(&engine, &text, &overrides)?;
        write!(out, "{}", doc.text)?;
        tracing::info!(
            paragraphs = doc.paragraphs,
            sentences = doc.sentences,
            ms = started.elapsed().as_millis() as u64,
            "translated"
        );
    }
    out.flush()?;
    Ok(())
}

fn summarize(args: SummarizeArgs) -> Result<()> {
    set_threads(args.runtime.threads);
    let text = read_input(args.file.as_deref())?;
    let options = args.summary.options()?;
    let engine =
        Engine::load(&args.summary.engine_config(&args.runtime)?).context("loading the summarization model")?;
    engine.search_options(&options.overrides)?;
    let mut out = std::io::stdout().lock();
    if args.lines {
        for line in text.lines() {
            writeln!(out, "{}", service::summarize(&engine, line, &options)?.text)?;
        }
    } else {
        let summary = service::summarize(&engine, &text, &options)?;
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
    set_threads(args.runtime.threads);
    let text = read_input(Some(&args.file))?;
    let name =
        args.file.file_name().map_or_else(|| args.file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let options = service::BriefOptions { translate: args.search.overrides(), summary: args.summary.options()? };
    let translator =
        Engine::load(&args.model.engine_config(&args.runtime)?).context("loading the translation model")?;
    translator.search_options(&options.translate)?;
    let summarizer =
        Engine::load(&args.summary.engine_config(&args.runtime)?).context("loading the summarization model")?;
    summarizer.search_options(&options.summary.overrides)?;
    let brief = service::make_brief(&translator, &summarizer, &name, &text, &options)?;
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

fn models() -> Result<()> {
    let manifest: serde_json::Value = serde_json::from_str(MANIFEST)?;
    let cache = brief::models::hub::cache_dir().ok();
    let mut out = std::io::stdout().lock();
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
