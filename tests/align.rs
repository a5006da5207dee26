//! Word alignment from the decoder's cross-attention, against the reference (tests/fixtures/align/marian.json,
//! written by scripts/gen_align_fixture.py with transformers in float64).

mod common;

use std::sync::Arc;

use brief::engine::worker::{Worker, WorkerConfig};
use brief::metrics::Metrics;
use brief::models::SourceBatch;
use brief::service::align::{align_words, WordAlignment};
use brief::service::generator::{CachedModel, Generator};
use candle_core::Tensor;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    pairs: Vec<(String, String)>,
    models: std::collections::HashMap<String, ModelCases>,
}

#[derive(Deserialize)]
struct ModelCases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    source_ids: Vec<u32>,
    target_ids: Vec<u32>,
    attention: Vec<Vec<f64>>,
    alignment: Vec<Option<usize>>,
}

fn fixture() -> Fixture {
    let path = common::fixtures().join("align").join("marian.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const MODELS: [&str; 2] = ["tiny", "tiny-separate-gelu"];

#[test]
fn align_attention_matches_the_reference() {
    let fixture = fixture();
    let tmp = tempfile::tempdir().unwrap();
    for name in MODELS {
        let engine = common::marian_engine(name, tmp.path());
        let cases = &fixture.models[name].cases;
        let mut pairs = Vec::new();
        for ((source, target), case) in fixture.pairs.iter().zip(cases) {
            let (s, t) = engine.codec().pair_tokens(source, target).unwrap().unwrap();
            assert_eq!((&s.ids, &t.ids), (&case.source_ids, &case.target_ids), "{name}: {source:?} / {target:?}");
            pairs.push((s.ids, t.ids));
        }
        // All pairs in one padded batch.
        let attention = engine.cross_attention(&pairs).unwrap().unwrap();
        let mut worst = 0f64;
        for (rows, case) in attention.iter().zip(cases) {
            assert_eq!(rows.len(), case.attention.len());
            for (row, expected) in rows.iter().zip(&case.attention) {
                assert_eq!(row.len(), expected.len());
                for (&a, &b) in row.iter().zip(expected) {
                    worst = worst.max((f64::from(a) - b).abs());
                }
            }
        }
        eprintln!("{name}: max |attention - reference| = {worst:e}");
        assert!(worst < 1e-4, "{name}: max |attention - reference| = {worst}");
    }
}

#[test]
fn align_attention_rows_are_distributions_and_a_batch_changes_nothing() {
    let fixture = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        fixture.models["tiny"].cases.iter().map(|c| (c.source_ids.clone(), c.target_ids.clone())).collect();
    let batched = engine.cross_attention(&pairs).unwrap().unwrap();
    for (pair, rows) in pairs.iter().zip(&batched) {
        let alone = engine.cross_attention(std::slice::from_ref(pair)).unwrap().unwrap();
        assert_eq!((alone[0].len(), alone[0][0].len()), (rows.len(), rows[0].len()));
        // The products' blocking follows the batch's shape: equal up to rounding, not bit for bit.
        let diff =
            alone[0].iter().flatten().zip(rows.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-6, "a sentence alone and in a padded batch differ by {diff}");
    }

    // The model's own output, padding included: rows sum to 1 over the tokens and are zero on padding.
    let model = engine.model();
    let spec = model.spec();
    let sources: Vec<Vec<u32>> = pairs.iter().map(|p| p.0.clone()).collect();
    let batch = SourceBatch::new(&sources, spec.pad_token_id, model.device()).unwrap();
    let steps = pairs.iter().map(|p| p.1.len()).max().unwrap();
    let mut inputs = Vec::new();
    for (_, target) in &pairs {
        let mut row = vec![spec.decoder_start_token_id];
        row.extend(&target[..target.len() - 1]);
        row.resize(steps, spec.pad_token_id);
        inputs.extend(row);
    }
    let targets = Tensor::from_vec(inputs, (pairs.len(), steps), model.device()).unwrap();
    let weights = model.cross_attention(&batch, &targets, None).unwrap().unwrap();
    let weights: Vec<Vec<Vec<f32>>> = weights.to_vec3().unwrap();
    for (item, source) in weights.iter().zip(&sources) {
        for row in item {
            let sum: f32 = row[..source.len()].iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "a row sums to {sum}");
            assert!(row[source.len()..].iter().all(|&w| w == 0.0), "attention on padding: {row:?}");
        }
    }
    assert!(model.cross_attention(&batch, &targets, Some(2)).is_err(), "the tiny model has 2 decoder layers");
}

#[test]
fn align_words_match_the_reference_directly_and_through_the_worker() {
    let fixture = fixture();
    let tmp = tempfile::tempdir().unwrap();
    for name in MODELS {
        let expected: Vec<WordAlignment> = fixture.models[name]
            .cases
            .iter()
            .map(|c| WordAlignment { target_to_source: c.alignment.clone() })
            .collect();
        let engine = common::marian_engine(name, tmp.path());
        assert_eq!(align_words(&engine, &fixture.pairs).unwrap(), expected, "{name}");
        let worker = Worker::spawn(engine, WorkerConfig::default(), Arc::new(Metrics::new()));
        let model = CachedModel::new(worker, None, Arc::new(Metrics::new()), "translate");
        let generator: &dyn Generator = &model;
        assert_eq!(align_words(generator, &fixture.pairs).unwrap(), expected, "{name} on its worker");
        assert!(align_words(generator, &[]).unwrap().is_empty());
    }
}

#[test]
fn align_words_of_a_model_that_cannot_align_are_none() {
    let engine = common::t5_engine("t5-v1_0", Some("summarization"), None);
    let pairs = vec![("satu dua".to_string(), "one two three".to_string())];
    let a = align_words(&engine, &pairs).unwrap();
    assert_eq!(a, vec![WordAlignment { target_to_source: vec![None, None, None] }]);
}
