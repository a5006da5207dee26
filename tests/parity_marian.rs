//! Token-exact parity of the Marian engine with the reference `generate()` on random-weight fixtures
//! (tests/fixtures/marian/*, made by scripts/gen_fixtures.py), and logits within 1e-4 relative error.

mod common;

use brief::generate::{generate, EarlyStoppingOption, Overrides, SearchOptions};
use brief::models::{self, ModelFiles, SourceBatch};
use brief::tokenize::Tokenizer;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    source_texts: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    options: serde_json::Value,
    outputs: Vec<Vec<u32>>,
    texts: Vec<String>,
}

fn overrides(options: &serde_json::Value) -> Overrides {
    let get = |k: &str| options.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    Overrides {
        num_beams: get("num_beams"),
        max_new_tokens: get("max_new_tokens"),
        length_penalty: options.get("length_penalty").and_then(|v| v.as_f64()).map(|v| v as f32),
        early_stopping: options.get("early_stopping").map(|v| match v {
            serde_json::Value::Bool(true) => EarlyStoppingOption::True,
            serde_json::Value::Bool(false) => EarlyStoppingOption::False,
            _ => EarlyStoppingOption::Never,
        }),
        ..Default::default()
    }
}

fn check_model(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::marian_model_dir(name, tmp.path());
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let files = ModelFiles { dir: dir.clone(), id: name.into(), revision: "local".into() };
    let loaded = models::load(&files, &Device::Cpu, DType::F32).unwrap();
    let model = loaded.model.as_ref();
    let tokenizer = Tokenizer::from_dir(&dir).unwrap();

    for (text, ids) in expected.source_texts.iter().zip(&expected.input_ids) {
        assert_eq!(&tokenizer.encode(text).unwrap(), ids, "{name}: tokenizer ids of {text:?}");
    }
    for case in &expected.cases {
        let options = SearchOptions::resolve(&loaded.generation, model, &overrides(&case.options)).unwrap();
        let hyps = generate(model, &expected.input_ids, &options).unwrap();
        let width = case.outputs[0].len();
        for (i, (hyp, want)) in hyps.iter().zip(&case.outputs).enumerate() {
            let mut got = hyp.tokens.clone();
            got.resize(width, options.pad_token_id);
            assert_eq!(&got, want, "{name}/{}: tokens of sentence {i}", case.name);
            assert_eq!(
                tokenizer.decode(&hyp.tokens).unwrap(),
                case.texts[i],
                "{name}/{}: text of sentence {i}",
                case.name
            );
        }
    }

    // Teacher-forced logits on the greedy outputs against the reference's.
    let reference = candle_core::safetensors::load(dir.join("logits.safetensors"), &Device::Cpu).unwrap();
    let decoder_ids = reference["decoder_input_ids"].to_dtype(DType::U32).unwrap();
    let columns = reference["columns"].to_dtype(DType::U32).unwrap();
    let want = &reference["logits"];
    let batch = SourceBatch::new(&expected.input_ids, model.spec().pad_token_id, &Device::Cpu).unwrap();
    let encoded = model.encode(&batch).unwrap();
    let steps = decoder_ids.dim(1).unwrap();
    let mut state = model.start_decoding(&encoded, &batch, 1, steps).unwrap();
    let got = model.decode(&mut state, &decoder_ids).unwrap().index_select(&columns, 2).unwrap();
    let err = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(err / scale < 1e-4, "{name}: logits relative error {} (max |diff| {err}, max |ref| {scale})", err / scale);
    let _ = Tensor::zeros(1, DType::F32, &Device::Cpu);
}

#[test]
fn opus_shape_with_the_real_tokenizer() {
    check_model("opus-shape");
}

#[test]
fn tiny_swish_shared_vocab_pytorch_bin() {
    check_model("tiny");
}

#[test]
fn tiny_gelu_separate_vocabs_sharded() {
    check_model("tiny-separate-gelu");
}

#[test]
fn tiny_relu_untied_bf16() {
    check_model("tiny-relu-untied");
}
