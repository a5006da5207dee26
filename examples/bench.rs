//! brief's side of scripts/bench: translates (or summarizes) the first N lines of a file in consecutive batches,
//! every output forced to exactly `--new-tokens` tokens, and prints timings (and optionally the tokens) as JSON.
//!
//! cargo run --release --example bench -- --model DIR --input FILE --n 500 --batch 32 --beams 4 --new-tokens 48

use std::time::Instant;

use anyhow::{Context, Result};
use brief::engine::{BatchLimits, Engine, EngineConfig};
use brief::generate::Overrides;
use brief::models::ModelSource;
use clap::Parser;

mod shared;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    source: shared::Source,
    #[arg(long, default_value_t = 500)]
    n: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    beams: usize,
    #[arg(long, default_value_t = 48)]
    new_tokens: usize,
    /// Write the generated token ids (one JSON array per line) here.
    #[arg(long)]
    outputs: Option<std::path::PathBuf>,
    /// Compute precision (`f32`; `bf16` on the CPU; `f16`/`bf16` on CUDA).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Batches run once, untimed, before the timed run (a GPU's first launches load and compile its kernels).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    brief::models::runtime::configure(None, None, None)?;
    let load_started = Instant::now();
    let engine = Engine::load(&EngineConfig {
        source: ModelSource::Local(args.source.model.clone()),
        device: brief::models::parse_device(&args.source.device)?,
        dtype: brief::models::parse_dtype(&args.precision)?,
        batch: BatchLimits { max_sequences: args.batch, max_tokens: usize::MAX / 2 },
        progress: false,
        task: None,
        prefix: args.source.prefix.clone(),
    })
    .context("loading the model")?;
    let load_ms = load_started.elapsed().as_secs_f64() * 1000.0;
    let sources = args.source.sources(engine.tokenizer(), args.n)?;
    let overrides = Overrides {
        num_beams: Some(args.beams),
        max_new_tokens: Some(args.new_tokens),
        min_new_tokens: Some(args.new_tokens),
        ..Default::default()
    };
    let options = engine.search_options(&overrides)?;
    for chunk in sources.chunks(args.batch).take(args.warmup) {
        engine.run_batch(chunk, &options)?;
    }
    let mut latencies = Vec::new();
    let mut outputs = Vec::new();
    let started = Instant::now();
    for chunk in sources.chunks(args.batch) {
        let t = Instant::now();
        outputs.extend(engine.run_batch(chunk, &options)?.into_iter().map(|mut h| h.swap_remove(0)));
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let seconds = started.elapsed().as_secs_f64();
    let tokens: usize = outputs.iter().map(Vec::len).sum();
    if let Some(path) = &args.outputs {
        let body: String = outputs.iter().map(|o| format!("{}\n", serde_json::to_string(o).unwrap())).collect();
        std::fs::write(path, body)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "system": "brief",
            "precision": args.precision,
            "sentences": sources.len(),
            "tokens": tokens,
            "seconds": seconds,
            "load_ms": load_ms,
            "tokens_per_s": tokens as f64 / seconds,
            "sentences_per_s": sources.len() as f64 / seconds,
            "batch_ms": latencies,
        })
    );
    Ok(())
}
