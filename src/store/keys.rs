//! The store's keys and checksums, the same for every backend: what makes a generated text reusable, and the
//! SHA-256 sums that keep a changed or misplaced entry from ever being served.

use sha2::{Digest, Sha256};

/// What makes a generated text reusable: the model (id, revision, weights), the task, the search options and
/// the normalised input.
#[derive(Debug, Clone)]
pub struct KeyParts<'a> {
    pub model_id: &'a str,
    pub revision: &'a str,
    pub weights: &'a str,
    pub task: &'a str,
    /// Canonical JSON of the resolved search options.
    pub options: &'a str,
    /// The input as the model sees it (prefix and whitespace-normalised text).
    pub input: &'a str,
}

/// A SHA-256 over the key parts, each length-prefixed so that no two different keys collide by concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl KeyParts<'_> {
    pub fn key(&self) -> CacheKey {
        CacheKey(length_prefixed_sha256(
            [self.model_id, self.revision, self.weights, self.task, self.options, self.input].map(str::as_bytes),
        ))
    }
}

impl CacheKey {
    /// Lower-case hex, as the key appears in Redis key names.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// SHA-256 over `parts`, each preceded by its length (little-endian u64).
fn length_prefixed_sha256<const N: usize>(parts: [&[u8]; N]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// The checksum stored with a cached text: SHA-256 over its key and the text, so that a text changed in the
/// store, or an entry that is not the one asked for, is never served.
pub fn entry_checksum(key: &[u8], output: impl AsRef<[u8]>) -> [u8; 32] {
    length_prefixed_sha256([key, output.as_ref()])
}

/// The checksum stored with a brief: SHA-256 over its fields (id, name, headline, summary, created_at, json),
/// each length-prefixed.
pub fn brief_checksum_of(fields: [&[u8]; 6]) -> [u8; 32] {
    length_prefixed_sha256(fields)
}

/// The name of an API key's rate-limit buckets in a shared store: a hash, so that the key itself is never
/// written anywhere.
pub fn bucket_id(api_key: &str) -> String {
    hex(&length_prefixed_sha256([b"brief rate bucket", api_key.as_bytes()])[..16])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_in_every_part() {
        let base = KeyParts { model_id: "m", revision: "r", weights: "w", task: "t", options: "o", input: "i" };
        let variants = [
            KeyParts { model_id: "m2", ..base.clone() },
            KeyParts { revision: "r2", ..base.clone() },
            KeyParts { weights: "w2", ..base.clone() },
            KeyParts { task: "t2", ..base.clone() },
            KeyParts { options: "o2", ..base.clone() },
            KeyParts { input: "i2", ..base.clone() },
            KeyParts { model_id: "mr", revision: "", ..base.clone() },
        ];
        for v in variants {
            assert_ne!(v.key(), base.key(), "{v:?}");
        }
    }

    #[test]
    fn keys_and_checksums_are_those_of_the_old_cache() {
        // The SQLite stores written before the store module keep serving: same key and checksum bytes.
        let mut h = Sha256::new();
        for part in ["m", "r", "w", "t", "o", "i"] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let old: [u8; 32] = h.finalize().into();
        let key = KeyParts { model_id: "m", revision: "r", weights: "w", task: "t", options: "o", input: "i" }.key();
        assert_eq!(key.0, old);
        assert_eq!(key.hex().len(), 64);
        assert_ne!(bucket_id("a"), bucket_id("b"));
        assert!(!bucket_id("secret").contains("secret"));
    }
}
