//! Helpers shared by the integration tests: fixture paths and model directories assembled from fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests").join("fixtures")
}

/// `../shared` beside the project (read-only data: the real opus-mt-id-en tokenizer, seeds, evaldata).
pub fn shared() -> PathBuf {
    let dir = root().join("..").join("shared");
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
    let dir = marian_model_dir(name, tmp);
    let config = brief::engine::EngineConfig {
        source: brief::models::ModelSource::Local(dir),
        device: candle_core::Device::Cpu,
        dtype: candle_core::DType::F32,
        batch: brief::engine::BatchLimits::default(),
        progress: false,
    };
    brief::engine::Engine::load(&config).unwrap()
}
