//! Helpers shared by the integration tests: fixture paths and model directories assembled from fixtures.
#![allow(dead_code)]

pub mod redis;
pub mod server;

use std::path::{Path, PathBuf};

use brief::generate::{generate, EarlyStoppingOption, Overrides, SearchOptions};
use brief::models::{self, ModelFiles, SourceBatch};
use brief::tokenize::Tokenizer;
use candle_core::{DType, Device};
use serde::Deserialize;

/// The project root: where cargo built the tests, or `BRIEF_TEST_ROOT` (for test binaries carried to another
/// machine, e.g. the GPU machine of scripts/gpu/).
pub fn root() -> PathBuf {
    std::env::var_os("BRIEF_TEST_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The device the parity tests run on: `BRIEF_TEST_DEVICE` (`cpu` by default; `cuda` with a CUDA build).
pub fn device() -> Device {
    let spec = std::env::var("BRIEF_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    models::parse_device(&spec).unwrap_or_else(|e| panic!("BRIEF_TEST_DEVICE: {e}"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests").join("fixtures")
}

/// `../shared` beside the project, or `BRIEF_SHARED` (read-only data: the real opus-mt-id-en tokenizer, seeds,
/// evaldata).
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("BRIEF_SHARED").map_or_else(|| root().join("..").join("shared"), PathBuf::from);
    assert!(dir.is_dir(), "tests need ../shared beside the project ({})", dir.display());
    dir
}

pub fn opus_tokenizer_dir() -> PathBuf {
    shared().join("models").join("opus-mt-id-en")
}

/// A model directory for a Marian fixture: the fixture's own files, plus the real opus-mt-id-en tokenizer files
/// from ../shared when the fixture uses them (they are not copied into the project).
pub fn marian_model_dir(name: &str, tmp: &Path) -> PathBuf {
    let src = fixtures().join("marian").join(name);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("expected.json")).unwrap()).unwrap();
    if expected["tokenizer"] == "fixture" {
        return src;
    }
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    for f in ["source.spm", "target.spm", "vocab.json", "tokenizer_config.json", "special_tokens_map.json"] {
        std::fs::copy(opus_tokenizer_dir().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// An engine on a Marian fixture, on the CPU.
pub fn marian_engine(name: &str, tmp: &Path) -> brief::engine::Engine {
    marian_engine_as(name, tmp, "f32")
}

/// An engine on a Marian fixture, on the CPU, computing in `dtype` (`f32`, `bf16`, `int8`).
pub fn marian_engine_as(name: &str, tmp: &Path, dtype: &str) -> brief::engine::Engine {
    engine_in(marian_model_dir(name, tmp), None, None, dtype)
}

/// An engine on the T5 v1.1 fixture (gated GELU), on the CPU, computing in `dtype`.
pub fn t5_engine_as(dtype: &str) -> brief::engine::Engine {
    engine_in(fixtures().join("t5").join("t5-v1_1"), None, None, dtype)
}

#[derive(Deserialize)]
pub struct Expected {
    pub source_texts: Vec<String>,
    pub input_ids: Vec<Vec<u32>>,
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
pub struct Case {
    pub name: String,
    pub options: serde_json::Value,
    pub outputs: Vec<Vec<u32>>,
    pub texts: Vec<String>,
}

pub fn overrides(options: &serde_json::Value) -> Overrides {
    let known = [
        "num_beams",
        "max_new_tokens",
        "min_length",
        "min_new_tokens",
        "no_repeat_ngram_size",
        "length_penalty",
        "early_stopping",
        "num_return_sequences",
    ];
    for key in options.as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "the fixture uses option {key:?}, which this test does not pass on");
    }
    let get = |k: &str| options.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    Overrides {
        num_beams: get("num_beams"),
        max_new_tokens: get("max_new_tokens"),
        min_length: get("min_length"),
        min_new_tokens: get("min_new_tokens"),
        no_repeat_ngram_size: get("no_repeat_ngram_size"),
        num_return_sequences: get("num_return_sequences"),
        length_penalty: options.get("length_penalty").and_then(|v| v.as_f64()).map(|v| v as f32),
        early_stopping: options.get("early_stopping").map(|v| match v {
            serde_json::Value::Bool(true) => EarlyStoppingOption::True,
            serde_json::Value::Bool(false) => EarlyStoppingOption::False,
            _ => EarlyStoppingOption::Never,
        }),
        ..Default::default()
    }
}

/// Asserts that the model in `dir` reproduces its fixture: tokenizer ids, every case's tokens and texts, and the
/// teacher-forced logits within 1e-4 relative error.
pub fn check_parity(name: &str, dir: &Path) {
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let files = ModelFiles { dir: dir.to_path_buf(), id: name.into(), revision: "local".into() };
    let device = device();
    let loaded = models::load(&files, &device, models::ComputeType::F32).unwrap();
    let model = loaded.model.as_ref();
    let tokenizer = Tokenizer::from_dir(dir).unwrap();

    for (text, ids) in expected.source_texts.iter().zip(&expected.input_ids) {
        assert_eq!(&tokenizer.encode(text).unwrap(), ids, "{name}: tokenizer ids of {text:?}");
    }
    for case in &expected.cases {
        let options = SearchOptions::resolve(&loaded.generation, model.spec(), &overrides(&case.options)).unwrap();
        // The reference returns each input's `num_return_sequences` rows one after the other.
        let hyps: Vec<_> = generate(model, &expected.input_ids, &options).unwrap().into_iter().flatten().collect();
        assert_eq!(
            hyps.len(),
            expected.input_ids.len() * options.num_return_sequences,
            "{name}/{}: number of returned sequences",
            case.name
        );
        assert_eq!(hyps.len(), case.outputs.len(), "{name}/{}: number of reference sequences", case.name);
        let width = case.outputs[0].len();
        // The reference pads finished greedy rows with the pad token and beam rows with `pad or eos` (Python
        // truthiness: a pad id of 0 falls back to the end token).
        let fill = if options.num_beams > 1 && options.pad_token_id == 0 {
            options.eos_token_ids[0]
        } else {
            options.pad_token_id
        };
        for (i, (hyp, want)) in hyps.iter().zip(&case.outputs).enumerate() {
            let mut got = hyp.tokens.clone();
            got.resize(width, fill);
            let (sentence, rank) = (i / options.num_return_sequences, i % options.num_return_sequences);
            assert_eq!(&got, want, "{name}/{}: tokens of sentence {sentence}, hypothesis {rank}", case.name);
            assert_eq!(
                tokenizer.decode(&hyp.tokens).unwrap(),
                case.texts[i],
                "{name}/{}: text of sentence {sentence}, hypothesis {rank}",
                case.name
            );
        }
    }

    // Teacher-forced logits on the greedy outputs against the reference's.
    let reference = candle_core::safetensors::load(dir.join("logits.safetensors"), &Device::Cpu).unwrap();
    let decoder_ids = reference["decoder_input_ids"].to_dtype(DType::U32).unwrap().to_device(&device).unwrap();
    let columns = reference["columns"].to_dtype(DType::U32).unwrap();
    let want = &reference["logits"];
    let batch = SourceBatch::new(&expected.input_ids, model.spec().pad_token_id, &device).unwrap();
    let encoded = model.encode(&batch).unwrap();
    let steps = decoder_ids.dim(1).unwrap();
    let mut state = model.start_decoding(&encoded, &batch, 1, steps).unwrap();
    let got = model
        .decode(&mut state, &decoder_ids)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .index_select(&columns, 2)
        .unwrap();
    let err = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    // Shown with --nocapture: the figure the GPU run (scripts/gpu/run.sh) reports.
    let on = if device.is_cpu() { "cpu" } else { "cuda" };
    eprintln!("{name} on {on}: logits relative error {:.2e}", err / scale);
    assert!(err / scale < 1e-4, "{name}: logits relative error {} (max |diff| {err}, max |ref| {scale})", err / scale);
}

/// An engine on a T5 fixture, for `task` (e.g. `summarization`) with an optional input prefix.
pub fn t5_engine(name: &str, task: Option<&str>, prefix: Option<&str>) -> brief::engine::Engine {
    engine_at(fixtures().join("t5").join(name), task, prefix)
}

/// An engine on the model in `dir`.
pub fn engine_at(dir: PathBuf, task: Option<&str>, prefix: Option<&str>) -> brief::engine::Engine {
    engine_in(dir, task, prefix, "f32")
}

/// An engine on the model in `dir`, computing in `dtype`.
pub fn engine_in(dir: PathBuf, task: Option<&str>, prefix: Option<&str>, dtype: &str) -> brief::engine::Engine {
    let config = brief::engine::EngineConfig {
        source: brief::models::ModelSource::Local(dir),
        device: candle_core::Device::Cpu,
        dtype: brief::models::parse_dtype(dtype).unwrap(),
        batch: brief::engine::BatchLimits::default(),
        progress: false,
        task: task.map(str::to_string),
        prefix: prefix.map(str::to_string),
    };
    brief::engine::Engine::load(&config).unwrap()
}

/// Validates `value` against docs/brief.schema.json; panics with every error found.
pub fn assert_valid_brief_json(value: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("docs").join("brief.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "brief JSON does not follow docs/brief.schema.json: {errors:#?}");
}
