//! Where a decoding step's time goes, on any device: for `--batch` sources × `--beams` rows, each of `--steps`
//! steps is timed in two parts: the decoder with the output projection (waited for on the device), and the copy
//! of the logits to the host, where the search scores them. The next tokens are each row's best, so the work is a
//! real decode's. Prints JSON with each part's mean in ms; a search step's time (scripts/bench) less these two is
//! the scoring and the beam bookkeeping.
//!
//! cargo run --release --example steps -- --model DIR --input FILE --batch 64 --beams 4 --steps 48 --device cuda

use std::time::Instant;

use anyhow::{Context, Result};
use brief::models::{self, ModelFiles, SourceBatch};
use brief::tokenize::Tokenizer;
use candle_core::Tensor;
use clap::Parser;

mod shared;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    source: shared::Source,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    beams: usize,
    #[arg(long, default_value_t = 48)]
    steps: usize,
    /// Compute precision (f32, bf16, f16, int8 as the device allows).
    #[arg(long, default_value = "f32")]
    precision: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    models::runtime::configure(None, None, None)?;
    let device = models::parse_device(&args.source.device)?;
    let files = ModelFiles { dir: args.source.model.clone(), id: "steps".into(), revision: "local".into() };
    let loaded = models::load(&files, &device, models::parse_dtype(&args.precision)?).context("loading")?;
    let model = loaded.model.as_ref();
    let tokenizer = Tokenizer::from_dir(&args.source.model)?;
    let sources = args.source.sources(&tokenizer, args.batch)?;
    let started = Instant::now();
    let batch = SourceBatch::new(&sources, model.spec().pad_token_id, &device)?;
    let encoded = model.encode(&batch)?;
    let mut state = model.start_decoding(&encoded, &batch, args.beams, args.steps + 1)?;
    device.synchronize()?;
    let encode_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rows = sources.len() * args.beams;
    let mut last = vec![model.spec().decoder_start_token_id; rows];
    let (mut model_ms, mut copy_ms) = (0.0, 0.0);
    for _ in 0..args.steps {
        let t = Instant::now();
        let tokens = Tensor::from_slice(&last, (rows, 1), &device)?;
        let logits = model.decode(&mut state, &tokens)?.squeeze(1)?; // f32, as decode returns it
        device.synchronize()?;
        let computed = Instant::now();
        let host = logits.to_vec2::<f32>()?;
        model_ms += (computed - t).as_secs_f64() * 1000.0;
        copy_ms += computed.elapsed().as_secs_f64() * 1000.0;
        last = host.iter().map(|row| shared::argmax(row) as u32).collect();
    }
    let per_step = |ms: f64| ms / args.steps as f64;
    println!(
        "{}",
        serde_json::json!({
            "precision": args.precision, "device": args.source.device, "rows": rows, "steps": args.steps,
            "vocab": model.spec().vocab_size, "encode_ms": encode_ms,
            "model_ms_per_step": per_step(model_ms),
            "copy_ms_per_step": per_step(copy_ms),
        })
    );
    Ok(())
}
