//! What a model's files looked like when it was loaded, to tell a running service that they have since been
//! deleted or changed on disk (it keeps answering from memory, but a restart would not load the same model).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// One file as it was seen: its size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// The files of a model directory (symbolic links followed, as the hub cache uses them) as they were at load.
#[derive(Debug)]
pub struct FileSnapshot {
    label: String,
    files: Vec<Seen>,
    /// Whether the last check found changes (so that each change of state is logged once).
    changed: AtomicBool,
}

impl FileSnapshot {
    /// Records every regular file directly in `dir`. `label` names the model in log lines (its hub id or directory).
    /// Taken before the files are read, so that a change during loading is reported too.
    pub fn take(label: &str, dir: &Path) -> Self {
        let mut files: Vec<Seen> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
                Some(Seen { path, len: meta.len(), modified: meta.modified().ok() })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Self { label: label.to_string(), files, changed: AtomicBool::new(false) }
    }

    /// The files recorded.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// What differs from the snapshot now, one line per file, `path: what` (empty when nothing does). Logs a warning the
    /// first time changes are found and a note when the files are back as they were.
    pub fn changes(&self) -> Vec<String> {
        let changes: Vec<String> = self
            .files
            .iter()
            .filter_map(|seen| {
                let what = match std::fs::metadata(&seen.path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => "deleted".to_string(),
                    Err(e) => format!("cannot be read ({e})"),
                    Ok(meta) if meta.len() != seen.len => {
                        format!("size changed from {} to {} bytes", seen.len, meta.len())
                    }
                    Ok(meta) if meta.modified().ok() != seen.modified => "modified".to_string(),
                    Ok(_) => return None,
                };
                Some(format!("{}: {what}", seen.path.display()))
            })
            .collect();
        let now = !changes.is_empty();
        if self.changed.swap(now, Ordering::Relaxed) != now {
            if now {
                tracing::warn!(
                    model = %self.label,
                    changes = %changes.join("; "),
                    "model files changed on disk since they were loaded: still answering with the model in memory, \
                     but a restart would fail or load a different model"
                );
            } else {
                tracing::warn!(model = %self.label, "model files are back as they were when loaded");
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_deleted_truncated_and_restored_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.safetensors"), vec![7u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let snapshot = FileSnapshot::take("translate", dir.path());
        assert_eq!(snapshot.paths().count(), 2, "regular files only");
        assert!(snapshot.changes().is_empty());

        let weights = dir.path().join("model.safetensors");
        std::fs::OpenOptions::new().write(true).open(&weights).unwrap().set_len(10).unwrap();
        std::fs::remove_file(dir.path().join("config.json")).unwrap();
        let config = dir.path().join("config.json");
        assert_eq!(
            snapshot.changes(),
            vec![
                format!("{}: deleted", config.display()),
                format!("{}: size changed from 1000 to 10 bytes", weights.display()),
            ]
        );

        // Put back byte for byte, with the old times: nothing is reported any more.
        let before = snapshot.files.iter().map(|f| f.modified.unwrap()).collect::<Vec<_>>();
        std::fs::write(&config, "{}").unwrap();
        std::fs::write(&weights, vec![7u8; 1000]).unwrap();
        for (path, time) in [(&config, before[0]), (&weights, before[1])] {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(time).unwrap();
        }
        assert!(snapshot.changes().is_empty());
    }
}
