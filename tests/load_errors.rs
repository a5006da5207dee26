//! A model directory with a missing, truncated, corrupt or unsupported file gives an error that names the file
//! and the problem; nothing panics.

mod common;

use std::path::{Path, PathBuf};

use brief::engine::{BatchLimits, Engine, EngineConfig};
use brief::models::ModelSource;

fn copy_fixture(name: &str, tmp: &Path) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(common::fixtures().join("marian").join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    let config = EngineConfig {
        source: ModelSource::Local(dir.to_path_buf()),
        device: candle_core::Device::Cpu,
        dtype: brief::models::ComputeType::F32,
        batch: BatchLimits::default(),
        progress: false,
        task: None,
        prefix: None,
    };
    match Engine::load(&config) {
        Ok(_) => panic!("{} loaded despite the damage", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep.min(bytes.len())]).unwrap();
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config[key] = value;
    std::fs::write(path, config.to_string()).unwrap();
}

#[test]
fn damaged_model_directories_name_the_file_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    type Damage = fn(&Path);
    let cases: Vec<(&str, &str, Damage, &[&str])> = vec![
        ("tiny", "no config", |d| std::fs::remove_file(d.join("config.json")).unwrap(), &["config.json", "missing"]),
        (
            "tiny",
            "config not JSON",
            |d| std::fs::write(d.join("config.json"), "{not json").unwrap(),
            &["config.json", "corrupt"],
        ),
        (
            "tiny",
            "no weights",
            |d| std::fs::remove_file(d.join("pytorch_model.bin")).unwrap(),
            &["missing model weights", "pytorch_model.bin"],
        ),
        ("tiny", "truncated bin", |d| truncate(&d.join("pytorch_model.bin"), 5000), &["pytorch_model.bin", "corrupt"]),
        (
            "tiny-relu-untied",
            "truncated safetensors",
            |d| truncate(&d.join("model.safetensors"), 4096),
            &["model.safetensors", "corrupt"],
        ),
        (
            "tiny-relu-untied",
            "empty safetensors",
            |d| truncate(&d.join("model.safetensors"), 0),
            &["model.safetensors", "corrupt"],
        ),
        (
            "tiny-separate-gelu",
            "missing shard",
            |d| std::fs::remove_file(d.join("model-00002-of-00003.safetensors")).unwrap(),
            &["model-00002-of-00003.safetensors", "missing"],
        ),
        (
            "tiny-separate-gelu",
            "corrupt index",
            |d| std::fs::write(d.join("model.safetensors.index.json"), "[]").unwrap(),
            &["model.safetensors.index.json", "corrupt"],
        ),
        ("tiny", "no vocab", |d| std::fs::remove_file(d.join("vocab.json")).unwrap(), &["vocab.json"]),
        ("tiny", "truncated source.spm", |d| truncate(&d.join("source.spm"), 100), &["source.spm", "corrupt"]),
        (
            "tiny",
            "no tokenizer",
            |d| {
                for f in ["source.spm", "target.spm", "vocab.json"] {
                    std::fs::remove_file(d.join(f)).unwrap()
                }
            },
            &["no tokenizer found"],
        ),
        (
            "tiny",
            "unknown activation",
            |d| edit_config(d, "activation_function", "mish".into()),
            &["config.json", "unsupported", "mish"],
        ),
        (
            "tiny",
            "unknown architecture",
            |d| edit_config(d, "model_type", "bert".into()),
            &["config.json", "unsupported", "bert"],
        ),
        (
            "tiny",
            "heads do not divide width",
            |d| edit_config(d, "encoder_attention_heads", 5.into()),
            &["config.json", "not divisible"],
        ),
        (
            "tiny",
            "width disagrees with weights",
            |d| edit_config(d, "d_model", 48.into()),
            &["pytorch_model.bin", "shape"],
        ),
        ("tiny", "wrong type in config", |d| edit_config(d, "d_model", "wide".into()), &["config.json", "corrupt"]),
    ];
    for (i, (fixture, what, damage, needles)) in cases.into_iter().enumerate() {
        let dir = copy_fixture(fixture, &tmp.path().join(i.to_string()));
        damage(&dir);
        let message = load_error(&dir);
        for needle in needles {
            assert!(message.contains(needle), "{what}: {message:?} should mention {needle:?}");
        }
    }
}

#[test]
fn a_missing_directory_or_bad_hub_id_is_a_clear_error() {
    let err = ModelSource::parse("./no/such/dir", None).unwrap_err().to_string();
    assert!(err.contains("no/such/dir") && err.contains("missing model directory"), "{err}");
    let err = ModelSource::parse("a/b/c", None).unwrap_err().to_string();
    assert!(err.contains("a/b/c"), "{err}");
}
