//! Teacher-forced logits of a model for given token ids, for comparing with the reference on models too large
//! to be test fixtures (e.g. the benchmark's full-shape random models; scripts/bench/compare_logits.py).
//! Reads `input_ids` (one row per source, padded with the model's pad id) and `decoder_input_ids` from a
//! safetensors file and writes `logits` `[batch, steps, vocab]` (f32) to another.
//!
//! cargo run --release --example logits -- --model DIR --ids ids.safetensors --out logits.safetensors

use anyhow::{Context, Result};
use brief::models::{self, ModelFiles, SourceBatch};
use candle_core::{DType, Device};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    model: std::path::PathBuf,
    #[arg(long)]
    ids: std::path::PathBuf,
    #[arg(long)]
    out: std::path::PathBuf,
    /// Compute precision (`f32`, `bf16`).
    #[arg(long, default_value = "f32")]
    precision: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    models::runtime::configure(None, None, None)?;
    let files = ModelFiles { dir: args.model.clone(), id: "logits".into(), revision: "local".into() };
    let loaded = models::load(&files, &Device::Cpu, models::parse_dtype(&args.precision)?)?;
    let model = loaded.model.as_ref();
    let tensors = candle_core::safetensors::load(&args.ids, &Device::Cpu).context("reading the ids")?;
    let pad = model.spec().pad_token_id;
    let rows: Vec<Vec<u32>> = tensors["input_ids"].to_dtype(DType::U32)?.to_vec2()?;
    // Padding is trailing; a row keeps its tokens up to the last non-pad one (its end token).
    let sources: Vec<Vec<u32>> = rows
        .into_iter()
        .map(|r| {
            let len = r.iter().rposition(|&t| t != pad).map_or(0, |i| i + 1);
            r[..len].to_vec()
        })
        .collect();
    let decoder_ids = tensors["decoder_input_ids"].to_dtype(DType::U32)?;
    let batch = SourceBatch::new(&sources, pad, &Device::Cpu)?;
    let encoded = model.encode(&batch)?;
    let mut state = model.start_decoding(&encoded, &batch, 1, decoder_ids.dim(1)?)?;
    let logits = model.decode(&mut state, &decoder_ids)?.to_dtype(DType::F32)?;
    candle_core::safetensors::save(&std::collections::HashMap::from([("logits".to_string(), logits)]), &args.out)?;
    Ok(())
}
