//! How far the reduced-precision CPU mode moves from full precision: for the first N lines of a file, the f32
//! model's greedy outputs are fed back (teacher forcing) to the f32 and the bf16 model, and their logits compared
//! (relative error per sentence: max |bf16 − f32| over max |f32|), along with how often the two pick the same
//! next token. Prints JSON; scripts/bench/bench.py runs it after the speed runs.
//!
//! cargo run --release --example precision -- --model DIR --input FILE --n 64 --new-tokens 48

use anyhow::{Context, Result};
use brief::generate::{generate, Overrides, SearchOptions};
use brief::models::{self, ModelFiles, SourceBatch};
use brief::tokenize::Tokenizer;
use candle_core::{DType, Tensor};
use clap::Parser;

mod shared;

#[derive(Parser)]
struct Args {
    // Both precisions run on the device given.
    #[command(flatten)]
    source: shared::Source,
    #[arg(long, default_value_t = 64)]
    n: usize,
    #[arg(long, default_value_t = 48)]
    new_tokens: usize,
    /// The reduced precision to compare with f32.
    #[arg(long, default_value = "bf16")]
    precision: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    models::runtime::configure(None, None, None)?;
    let files = ModelFiles { dir: args.source.model.clone(), id: "bench".into(), revision: "local".into() };
    let device = models::parse_device(&args.source.device)?;
    let full = models::load(&files, &device, models::ComputeType::F32).context("loading in f32")?;
    let reduced = models::load(&files, &device, models::parse_dtype(&args.precision)?)
        .with_context(|| format!("loading in {}", args.precision))?;
    let tokenizer = Tokenizer::from_dir(&args.source.model)?;
    let sources = args.source.sources(&tokenizer, args.n)?;
    let overrides = Overrides {
        num_beams: Some(1),
        max_new_tokens: Some(args.new_tokens),
        min_new_tokens: Some(args.new_tokens),
        ..Default::default()
    };
    let options = SearchOptions::resolve(&full.generation, full.model.spec(), &overrides)?;
    let start = full.model.spec().decoder_start_token_id;

    let mut relative = Vec::new();
    let (mut same_top1, mut positions) = (0usize, 0usize);
    for source in &sources {
        let one = std::slice::from_ref(source);
        let hyp = generate(full.model.as_ref(), one, &options)?.remove(0).remove(0);
        if hyp.tokens.is_empty() {
            continue;
        }
        let mut decoder_ids = vec![start];
        decoder_ids.extend(&hyp.tokens[..hyp.tokens.len() - 1]);
        let logits = |loaded: &models::LoadedModel| -> Result<Vec<Vec<f32>>> {
            let model = loaded.model.as_ref();
            let batch = SourceBatch::new(one, model.spec().pad_token_id, &device)?;
            let encoded = model.encode(&batch)?;
            let mut state = model.start_decoding(&encoded, &batch, 1, decoder_ids.len())?;
            let ids = Tensor::new(decoder_ids.as_slice(), &device)?.unsqueeze(0)?;
            Ok(model.decode(&mut state, &ids)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec2()?)
        };
        let (a, b) = (logits(&full)?, logits(&reduced)?);
        let (mut diff, mut scale) = (0f32, 0f32);
        for (ra, rb) in a.iter().zip(&b) {
            for (x, y) in ra.iter().zip(rb) {
                diff = diff.max((x - y).abs());
                scale = scale.max(x.abs());
            }
            positions += 1;
            same_top1 += usize::from(shared::argmax(ra) == shared::argmax(rb));
        }
        relative.push(diff / scale);
    }
    relative.sort_by(f32::total_cmp);
    let mean = relative.iter().sum::<f32>() / relative.len().max(1) as f32;
    println!(
        "{}",
        serde_json::json!({
            "precision": args.precision,
            "sentences": sources.len(),
            "positions": positions,
            "logits_relative_error_mean": mean,
            "logits_relative_error_max": relative.last().copied().unwrap_or(0.0),
            "same_next_token": same_top1 as f64 / positions.max(1) as f64,
        })
    );
    Ok(())
}
