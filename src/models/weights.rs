//! Reading checkpoint tensors: `model.safetensors` (single or sharded) or `pytorch_model.bin`, converted to one dtype.
//! A safetensors file is indexed from its header and each tensor read when asked for, so that loading holds one
//! tensor's original beside the model being built, not a second copy of the whole checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use serde::Deserialize;

use super::ModelError;

/// The weight files found in a model directory, in the order of preference of `transformers`.
#[derive(Debug, Clone)]
pub enum WeightFiles {
    Safetensors(PathBuf),
    Sharded { index: PathBuf, shards: Vec<PathBuf> },
    PytorchBin(PathBuf),
}

pub const SAFETENSORS: &str = "model.safetensors";
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
pub const PYTORCH_BIN: &str = "pytorch_model.bin";

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl WeightFiles {
    /// Finds the weights in `dir`: an error names what was looked for when nothing is there.
    pub fn find(dir: &Path) -> Result<Self, ModelError> {
        let single = dir.join(SAFETENSORS);
        let index = dir.join(SAFETENSORS_INDEX);
        let bin = dir.join(PYTORCH_BIN);
        if single.is_file() {
            Ok(Self::Safetensors(single))
        } else if index.is_file() {
            let shards = shard_names(&index)?.into_iter().map(|name| dir.join(name)).collect();
            Ok(Self::Sharded { index, shards })
        } else if bin.is_file() {
            Ok(Self::PytorchBin(bin))
        } else {
            Err(ModelError::Missing {
                path: dir.to_path_buf(),
                what: format!("model weights ({SAFETENSORS}, {SAFETENSORS_INDEX} with shards, or {PYTORCH_BIN})"),
            })
        }
    }

    /// Every file that holds tensors (for digests and error messages).
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Self::Safetensors(p) | Self::PytorchBin(p) => vec![p.as_path()],
            Self::Sharded { index, shards } => {
                std::iter::once(index.as_path()).chain(shards.iter().map(PathBuf::as_path)).collect()
            }
        }
    }
}

/// The shard file names listed by a `model.safetensors.index.json`.
pub fn shard_names(index: &Path) -> Result<Vec<String>, ModelError> {
    let parsed: ShardIndex = super::read_json(index)?;
    let names: BTreeSet<String> = parsed.weight_map.into_values().collect();
    if names.is_empty() {
        return Err(ModelError::corrupt(index, "weight_map is empty".into()));
    }
    if let Some(bad) = names.iter().find(|n| n.contains('/') || n.contains('\\') || n.starts_with('.')) {
        return Err(ModelError::corrupt(index, format!("shard name {bad:?} is not a plain file name")));
    }
    Ok(names.into_iter().collect())
}

/// Where a tensor's values are: in memory (pickled checkpoints), or at a place in a safetensors file.
enum Stored {
    Loaded(Tensor),
    InFile { offset: u64, len: usize, dtype: DType, shape: Vec<usize> },
}

impl Stored {
    fn dims(&self) -> &[usize] {
        match self {
            Stored::Loaded(t) => t.dims(),
            Stored::InFile { shape, .. } => shape,
        }
    }
}

/// All tensors of a checkpoint, by name, with the file each came from.
pub struct Weights {
    tensors: HashMap<String, (Stored, usize)>,
    files: Vec<PathBuf>,
    dtype: DType,
    device: Device,
}

impl Weights {
    /// Loads every tensor; `dtype` and `device` are those the model computes in.
    pub fn load(files: &WeightFiles, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        let mut paths = Vec::new();
        let mut add = |path: &Path, list: Vec<(String, Stored)>| {
            paths.push(path.to_path_buf());
            for (name, t) in list {
                tensors.insert(name, (t, paths.len() - 1));
            }
        };
        match files {
            WeightFiles::Safetensors(p) => add(p, index_safetensors(p)?),
            WeightFiles::Sharded { shards, .. } => {
                for p in shards {
                    if !p.is_file() {
                        return Err(ModelError::Missing {
                            path: p.clone(),
                            what: "a weight shard named by the index".into(),
                        });
                    }
                    add(p, index_safetensors(p)?);
                }
            }
            WeightFiles::PytorchBin(p) => {
                let list = candle_core::pickle::read_all(p).map_err(|e| ModelError::corrupt(p, e.to_string()))?;
                if list.is_empty() {
                    return Err(ModelError::corrupt(p, "no tensors found".into()));
                }
                add(p, list.into_iter().map(|(name, t)| (name, Stored::Loaded(t))).collect())
            }
        }
        Ok(Self { tensors, files: paths, dtype, device: device.clone() })
    }

    /// Whether any tensor name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors.keys().any(|k| k.starts_with(prefix))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn describe_files(&self) -> PathBuf {
        match self.files.as_slice() {
            [one] => one.clone(),
            _ => self.files.first().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default(),
        }
    }

    /// The tensor `name`, checked against `shape` and converted to the model's dtype and device.
    pub fn get(&self, name: &str, shape: impl Into<Shape>) -> Result<Tensor, ModelError> {
        let shape = shape.into();
        let (t, file) = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor { path: self.describe_files(), name: name.to_string() })?;
        let path = &self.files[*file];
        if t.dims() != shape.dims() {
            return Err(ModelError::TensorShape {
                path: path.clone(),
                name: name.to_string(),
                expected: shape.dims().to_vec(),
                found: t.dims().to_vec(),
            });
        }
        let t = match t {
            Stored::Loaded(t) => t.clone(),
            Stored::InFile { offset, len, dtype, shape } => read_tensor(path, *offset, *len, *dtype, shape)?,
        };
        Ok(t.to_dtype(self.dtype)?.to_device(&self.device)?)
    }

    /// The first of `names` that the checkpoint has.
    pub fn get_first(&self, names: &[&str], shape: impl Into<Shape>) -> Result<Tensor, ModelError> {
        let name = names.iter().find(|n| self.contains(n)).unwrap_or(&names[0]);
        self.get(name, shape)
    }
}

/// The largest header a safetensors file may have (as the `safetensors` crate allows).
const MAX_HEADER: u64 = 100_000_000;

/// Reads the header of a safetensors file with the `safetensors` crate (which checks that the tensors are
/// contiguous and each as long as its dtype and shape imply) and checks that the data ends where the file does;
/// the tensors themselves are read when asked for.
fn index_safetensors(path: &Path) -> Result<Vec<(String, Stored)>, ModelError> {
    let corrupt = |reason: String| ModelError::corrupt(path, reason);
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let size = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| corrupt(format!("{size} bytes: too short for a safetensors header")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || 8 + n > size {
        return Err(corrupt(format!("header of {n} bytes in a file of {size}")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| ModelError::io(path, e))?;
    let metadata: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("header: {e}")))?;
    let data_len = size - 8 - n;
    if metadata.data_len() as u64 != data_len {
        return Err(corrupt(format!("tensor data ends at byte {} of {data_len}", metadata.data_len())));
    }
    let mut out = Vec::new();
    for (name, info) in metadata.tensors() {
        let dtype = candle_dtype(info.dtype).map_err(|why| corrupt(format!("tensor {name}: {why}")))?;
        let (start, end) = info.data_offsets;
        let (offset, len, shape) = (8 + n + start as u64, end - start, info.shape.clone());
        out.push((name, Stored::InFile { offset, len, dtype, shape }));
    }
    Ok(out)
}

fn candle_dtype(dtype: safetensors::Dtype) -> Result<DType, String> {
    use safetensors::Dtype as S;
    Ok(match dtype {
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F64 => DType::F64,
        S::I64 => DType::I64,
        S::U8 => DType::U8,
        S::U32 => DType::U32,
        other => return Err(format!("dtype {other:?} is not supported")),
    })
}

/// Reads one tensor from `path`. f32, f16 and bf16 tensors (every weight of the models here) are read straight
/// into the vector the tensor keeps: reading bytes and then copying them into a tensor cost a second pass over
/// the checkpoint and its page faults (docs/BENCHMARKS.md).
fn read_tensor(path: &Path, offset: u64, len: usize, dtype: DType, shape: &[usize]) -> Result<Tensor, ModelError> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    file.seek(SeekFrom::Start(offset)).map_err(|e| ModelError::io(path, e))?;
    // `len` is the shape's size in `dtype`: the safetensors crate checked each tensor's extent when indexing.
    let elements: usize = shape.iter().product();
    let mut read = |bytes: &mut [u8]| file.read_exact(bytes).map_err(|e| ModelError::io(path, e));
    Ok(match dtype {
        DType::F32 => typed::<f32>(elements, shape, &mut read)?,
        DType::F16 => typed::<half::f16>(elements, shape, &mut read)?,
        DType::BF16 => typed::<half::bf16>(elements, shape, &mut read)?,
        _ => {
            let mut bytes = vec![0u8; len];
            read(&mut bytes)?;
            Tensor::from_raw_buffer(&bytes, dtype, shape, &Device::Cpu)?
        }
    })
}

/// A tensor of `elements` values of `T` filled by `read` through their bytes (little-endian, as safetensors
/// stores them and as the CPUs this runs on hold them).
fn typed<T: bytemuck::Pod + candle_core::WithDType>(
    elements: usize,
    shape: &[usize],
    read: &mut impl FnMut(&mut [u8]) -> Result<(), ModelError>,
) -> Result<Tensor, ModelError> {
    let mut values = vec![T::zeroed(); elements];
    read(bytemuck::cast_slice_mut(&mut values))?;
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

/// A digest of the weights: SHA-256 over each weight file's SHA-256. Files in the hub cache are named by their
/// SHA-256 (LFS blobs), which is used without reading them; other files are hashed.
pub fn digest(files: &WeightFiles) -> Result<String, ModelError> {
    use sha2::{Digest, Sha256};
    let mut combined = Sha256::new();
    for path in files.paths() {
        let blob_name = std::fs::read_link(path)
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()));
        let file_digest = match blob_name {
            Some(sha) => sha,
            None => {
                let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
                let mut h = Sha256::new();
                std::io::copy(&mut file, &mut h).map_err(|e| ModelError::io(path, e))?;
                format!("{:x}", h.finalize())
            }
        };
        combined.update(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
        combined.update(file_digest.as_bytes());
    }
    Ok(format!("{:x}", combined.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// Tensors of every dtype a checkpoint may hold come back with their values, whether read straight into
    /// a typed vector (f32, f16, bf16) or as bytes (the others), each converted to the model's f32.
    #[test]
    fn each_dtype_reads_back_its_values() -> Result<(), ModelError> {
        let values = [1.5f32, -2.0, 0.25, 3.0, -0.5, 8.0];
        let bytes = |each: &dyn Fn(f32) -> Vec<u8>| values.iter().flat_map(|&v| each(v)).collect::<Vec<u8>>();
        let cases: Vec<(&str, safetensors::Dtype, Vec<u8>)> = vec![
            ("f32", safetensors::Dtype::F32, bytes(&|v| v.to_le_bytes().to_vec())),
            ("f16", safetensors::Dtype::F16, bytes(&|v| half::f16::from_f32(v).to_le_bytes().to_vec())),
            ("bf16", safetensors::Dtype::BF16, bytes(&|v| half::bf16::from_f32(v).to_le_bytes().to_vec())),
            ("i64", safetensors::Dtype::I64, bytes(&|v| (v as i64).to_le_bytes().to_vec())),
        ];
        let views: Vec<(&str, TensorView)> = cases
            .iter()
            .map(|(name, dtype, data)| (*name, TensorView::new(*dtype, vec![2, 3], data).expect("a valid view")))
            .collect();
        let dir = tempfile::tempdir().map_err(|e| ModelError::io(Path::new("tempdir"), e))?;
        let path = dir.path().join("model.safetensors");
        safetensors::serialize_to_file(views, None, &path).map_err(|e| ModelError::corrupt(&path, e.to_string()))?;
        let weights = Weights::load(&WeightFiles::Safetensors(path), DType::F32, &Device::Cpu)?;
        for (name, _, _) in &cases {
            let got = weights.get(name, (2, 3))?.flatten_all()?.to_vec1::<f32>()?;
            let want: Vec<f32> = values.iter().map(|&v| if *name == "i64" { v.trunc() } else { v }).collect();
            assert_eq!(got, want, "tensor {name}");
        }
        assert!(matches!(weights.get("f32", (3, 3)), Err(ModelError::TensorShape { .. })), "a wrong shape");
        Ok(())
    }
}
