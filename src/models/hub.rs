//! Where a model's files come from: a local directory, or a hub repository at a revision through `hf-hub`
//! (honouring `HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use super::weights::{shard_names, PYTORCH_BIN, SAFETENSORS, SAFETENSORS_INDEX};
use super::ModelError;

/// A model named on the command line: a directory that exists, else a hub id such as `Helsinki-NLP/opus-mt-id-en`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Local(PathBuf),
    Hub { id: String, revision: String },
}

impl ModelSource {
    /// `spec` is a directory or a hub id; `revision` (a branch, tag or commit) applies to hub ids.
    pub fn parse(spec: &str, revision: Option<&str>) -> Result<Self, ModelError> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(Self::Local(path.to_path_buf()));
        }
        let valid_id = !spec.is_empty()
            && spec.split('/').count() <= 2
            && spec
                .split('/')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
            && !spec.starts_with('.');
        if !valid_id {
            return Err(ModelError::Missing {
                path: path.to_path_buf(),
                what: "model directory (and it is not a hub id like Helsinki-NLP/opus-mt-id-en)".into(),
            });
        }
        Ok(Self::Hub { id: spec.to_string(), revision: revision.unwrap_or("main").to_string() })
    }
}

/// The files of a resolved model, all in one directory, and what they are.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    /// Hub id, or the directory for a local model.
    pub id: String,
    /// Commit of the hub snapshot, or `local`.
    pub revision: String,
}

/// Configuration, tokenizer and weight files a model may have; which of them are needed depends on the repository.
const OPTIONAL_FILES: &[&str] = &[
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "source.spm",
    "target.spm",
    "vocab.json",
    "target_vocab.json",
    "spiece.model",
];

/// Whether `HF_HUB_OFFLINE` asks for the cache only.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// The hub cache directory: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> Result<PathBuf, ModelError> {
    if let Ok(dir) = std::env::var("HF_HUB_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(home) = std::env::var("HF_HOME") {
        return Ok(PathBuf::from(home).join("hub"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("huggingface").join("hub")),
        None => Err(ModelError::Hub {
            model: String::new(),
            reason: "no hub cache directory: set HF_HOME (or HF_HUB_CACHE) or HOME".into(),
        }),
    }
}

/// Where one file of a hub model came from while it was made available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Already in the hub cache: nothing was downloaded.
    Cached,
    /// Downloaded into the hub cache now.
    Downloaded,
}

/// Makes the model's files available locally: as they are for a directory, from the cache or the hub otherwise.
pub fn resolve(source: &ModelSource, progress: bool) -> Result<ModelFiles, ModelError> {
    resolve_reporting(source, progress, &mut |_, _, _| {})
}

/// As [`resolve`], telling `report` about each file fetched through the hub (its name, where it came from, its
/// path in the cache). Nothing is reported for a local directory or a cached copy used without asking the hub
/// (`HF_HUB_OFFLINE`, or the hub unreachable).
pub fn resolve_reporting(
    source: &ModelSource,
    progress: bool,
    report: &mut dyn FnMut(&str, Fetched, &Path),
) -> Result<ModelFiles, ModelError> {
    match source {
        ModelSource::Local(dir) => {
            if !dir.join("config.json").is_file() {
                return Err(ModelError::Missing { path: dir.join("config.json"), what: "model configuration".into() });
            }
            Ok(ModelFiles { dir: dir.clone(), id: dir.display().to_string(), revision: "local".into() })
        }
        ModelSource::Hub { id, revision } => {
            let cache = Cache::new(cache_dir()?);
            if offline_from_env() {
                return from_cache(&cache, id, revision).map_err(|reason| ModelError::Hub {
                    model: format!("{id}@{revision}"),
                    reason: format!("HF_HUB_OFFLINE is set and {reason}"),
                });
            }
            match download(cache.clone(), id, revision, progress, report) {
                Ok(files) => Ok(files),
                // A network failure falls back to a complete cached copy, as huggingface_hub does.
                Err(err) => from_cache(&cache, id, revision).map_err(|_| err).inspect(|_| {
                    tracing::warn!(model = %id, "hub unreachable, using the cached copy");
                }),
            }
        }
    }
}

fn hub_error(id: &str, revision: &str, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Hub { model: format!("{id}@{revision}"), reason: reason.to_string() }
}

fn download(
    cache: Cache,
    id: &str,
    revision: &str,
    progress: bool,
    report: &mut dyn FnMut(&str, Fetched, &Path),
) -> Result<ModelFiles, ModelError> {
    let cached = cache.repo(Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string()));
    let mut builder = ApiBuilder::from_cache(cache).with_progress(progress);
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
    }
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(|e| hub_error(id, revision, e))?;
    let repo = api.repo(Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string()));
    let info = repo.info().map_err(|e| hub_error(id, revision, format!("cannot list the repository: {e}")))?;
    let listed: HashSet<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    if !listed.contains("config.json") {
        return Err(hub_error(id, revision, "the repository has no config.json"));
    }
    // `repo.get` takes a file from the cache when it is there; asking the cache first tells which it did.
    let mut get = |name: &str| {
        let fetched = if cached.get(name).is_some() { Fetched::Cached } else { Fetched::Downloaded };
        let path = repo.get(name).map_err(|e| hub_error(id, revision, format!("downloading {name}: {e}")))?;
        report(name, fetched, &path);
        Ok::<_, ModelError>(path)
    };
    let config = get("config.json")?;
    for name in OPTIONAL_FILES.iter().filter(|n| listed.contains(*n)) {
        get(name)?;
    }
    if listed.contains(SAFETENSORS) {
        get(SAFETENSORS)?;
    } else if listed.contains(SAFETENSORS_INDEX) {
        let index = get(SAFETENSORS_INDEX)?;
        for shard in shard_names(&index)? {
            get(&shard)?;
        }
    } else if listed.contains(PYTORCH_BIN) {
        get(PYTORCH_BIN)?;
    } else {
        return Err(hub_error(id, revision, "the repository has no model.safetensors, index or pytorch_model.bin"));
    }
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(ModelFiles { dir, id: id.to_string(), revision: info.sha })
}

/// The complete cached snapshot for `revision`, or why there is none.
fn from_cache(cache: &Cache, id: &str, revision: &str) -> Result<ModelFiles, String> {
    let repo = cache.repo(Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string()));
    let config = repo
        .get("config.json")
        .ok_or_else(|| format!("{id} at {revision} is not in the cache {}", cache.path().display()))?;
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let has_weights = repo.get(SAFETENSORS).is_some()
        || repo.get(PYTORCH_BIN).is_some()
        || repo.get(SAFETENSORS_INDEX).is_some_and(|index| {
            shard_names(&index).map(|names| names.iter().all(|n| repo.get(n).is_some())).unwrap_or(false)
        });
    if !has_weights {
        return Err(format!("the cached snapshot in {} has no complete weights", dir.display()));
    }
    let commit = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| revision.to_string());
    Ok(ModelFiles { dir, id: id.to_string(), revision: commit })
}
