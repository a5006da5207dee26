//! The folder of translated files: each kept under an unguessable name `<32 hex>.<sanitized original name>` until
//! it is older than the time to live, then deleted (by a sweep on each upload and on a thread of its own).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::FileError;

/// Longest sanitized original name kept in a stored name, in bytes.
const MAX_NAME_BYTES: usize = 128;
/// Random bytes in a stored name (32 hex digits).
const ID_BYTES: usize = 16;
/// Files being written start with this, and are renamed to their stored name once complete.
const PARTIAL_PREFIX: &str = ".partial-";

/// A translated file, read back for download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// The name to download it as: the sanitized original name.
    pub download_name: String,
    pub content: Vec<u8>,
}

/// The folder of translated files and how long they are kept.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    ttl: Duration,
}

impl FileStore {
    /// Uses (and creates) the folder `dir`; files older than `ttl` are deleted.
    pub fn open(dir: &Path, ttl: Duration) -> Result<Self, FileError> {
        std::fs::create_dir_all(dir).map_err(|error| FileError::Io { path: dir.to_path_buf(), error })?;
        Ok(Self { dir: dir.to_path_buf(), ttl })
    }

    /// A new folder of this process's own under the system's temporary directory (random name, owner-only access).
    pub fn temporary(ttl: Duration) -> Result<Self, FileError> {
        let dir = std::env::temp_dir().join(format!("brief-files-{}", random_hex()?));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|error| FileError::Io { path: dir.clone(), error })?;
        Ok(Self { dir, ttl })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Keeps `content` under a new name made from `original_name` (first sweeping out expired files); returns
    /// the name. The file appears complete or not at all.
    pub fn put(&self, original_name: &str, content: &[u8]) -> Result<String, FileError> {
        self.sweep();
        let name = format!("{}.{}", random_hex()?, sanitize_file_name(original_name));
        let partial = self.dir.join(format!("{PARTIAL_PREFIX}{name}"));
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&partial).map_err(io_error(&partial))?;
        std::io::Write::write_all(&mut file, content).map_err(io_error(&partial))?;
        drop(file);
        let path = self.dir.join(&name);
        if let Err(e) = std::fs::rename(&partial, &path) {
            let _ = std::fs::remove_file(&partial);
            return Err(io_error(&path)(e));
        }
        Ok(name)
    }

    /// The file stored as `name`: `InvalidName` for a name this store never gives out (so no name reaches outside
    /// the folder), `NotFound` when there is none or it has expired (an expired one is deleted).
    pub fn get(&self, name: &str) -> Result<StoredFile, FileError> {
        if !is_stored_name(name) {
            return Err(FileError::InvalidName);
        }
        let path = self.dir.join(name);
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(FileError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::NotFound),
            Err(error) => return Err(FileError::Io { path, error }),
        };
        if self.expired(&metadata) {
            let _ = std::fs::remove_file(&path);
            return Err(FileError::NotFound);
        }
        let content = std::fs::read(&path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => FileError::NotFound,
            _ => FileError::Io { path: path.clone(), error },
        })?;
        Ok(StoredFile { download_name: name[2 * ID_BYTES + 1..].to_string(), content })
    }

    fn expired(&self, metadata: &std::fs::Metadata) -> bool {
        let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        SystemTime::now().duration_since(modified).unwrap_or_default() > self.ttl
    }

    /// Deletes the stored (and half-written) files older than the time to live; other files in the folder are left
    /// alone. Returns how many were deleted.
    pub fn sweep(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(is_stored_name(name) || name.strip_prefix(PARTIAL_PREFIX).is_some_and(is_stored_name)) {
                continue;
            }
            let expired = entry.metadata().is_ok_and(|m| m.is_file() && self.expired(&m));
            if expired && std::fs::remove_file(entry.path()).is_ok() {
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::debug!(deleted, dir = %self.dir.display(), "expired translated files deleted");
        }
        deleted
    }

    /// Sweeps every `every` on a thread of its own (not the async runtime: it does file I/O). The thread ends
    /// with the process.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> std::io::Result<()> {
        let store = Arc::clone(self);
        std::thread::Builder::new().name("brief-files-sweep".into()).spawn(move || loop {
            std::thread::sleep(every);
            store.sweep();
        })?;
        Ok(())
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |error| FileError::Io { path: path.to_path_buf(), error }
}

/// 32 random hex digits from the operating system's generator.
fn random_hex() -> Result<String, FileError> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| FileError::Io {
        path: PathBuf::new(),
        error: std::io::Error::other(format!("no random numbers for a file name: {e}")),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A file name safe to keep and to put in a header: the last component of `name`, with every character but ASCII
/// letters, digits, `-`, `_` and `.` made `_`, no leading dot or `..`, at most 128 bytes (the extension kept).
pub fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut clean: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    while clean.contains("..") {
        clean = clean.replace("..", ".");
    }
    let mut clean = clean.trim_start_matches('.').to_string();
    if clean.len() > MAX_NAME_BYTES {
        let extension = clean.rfind('.').map(|dot| clean[dot..].to_string()).filter(|e| e.len() < 16);
        let extension = extension.unwrap_or_default();
        clean.truncate(MAX_NAME_BYTES - extension.len());
        clean.push_str(&extension);
        clean = clean.replace("..", ".");
    }
    if clean.is_empty() || clean.starts_with('.') {
        clean.insert_str(0, "file");
    }
    clean
}

/// Whether `name` is of the form this store gives out: 32 lowercase hex digits, `.`, then a sanitized name.
pub fn is_stored_name(name: &str) -> bool {
    let Some((id, rest)) = name.split_at_checked(2 * ID_BYTES) else { return false };
    let Some(original) = rest.strip_prefix('.') else { return false };
    id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && !original.is_empty()
        && original.len() <= MAX_NAME_BYTES
        && !original.starts_with('.')
        && !original.contains("..")
        && original.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_into_the_stored_form() {
        assert_eq!(sanitize_file_name("berita hari ini.txt"), "berita_hari_ini.txt");
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\x\\..\\berita.md"), "berita.md");
        assert_eq!(sanitize_file_name("..txt"), "txt");
        assert_eq!(sanitize_file_name(".."), "file");
        assert_eq!(sanitize_file_name("berita\0.txt"), "berita_.txt");
        assert_eq!(sanitize_file_name("čerita.html"), "_erita.html");
        let long = format!("{}.html", "a".repeat(300));
        assert_eq!(sanitize_file_name(&long), format!("{}.html", "a".repeat(123)));
        let id = "0123456789abcdef0123456789abcdef";
        for name in ["berita.txt", "../x", "..", "a/../../b.md", &long, "\\..\\", "x\0y", ".hidden"] {
            let stored = format!("{id}.{}", sanitize_file_name(name));
            assert!(is_stored_name(&stored), "{stored}");
        }
    }

    #[test]
    fn only_stored_names_are_accepted() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(is_stored_name(&format!("{id}.berita.txt")));
        for bad in [
            "berita.txt".to_string(),
            id.to_string(),
            format!("{id}."),
            format!("{id}./etc/passwd"),
            format!("{id}.../x"),
            format!("{id}..x"),
            format!("{id}.a/b.txt"),
            format!("{id}.a\\b.txt"),
            format!("{id}.a\0.txt"),
            format!("{}.x.txt", id.to_uppercase()),
            format!("{}.x.txt", &id[1..]),
            "../../etc/passwd".to_string(),
            "/etc/passwd".to_string(),
        ] {
            assert!(!is_stored_name(&bad), "{bad:?}");
        }
    }

    #[test]
    fn a_temporary_folder_is_new_and_private() {
        let a = FileStore::temporary(Duration::from_secs(1)).unwrap();
        let b = FileStore::temporary(Duration::from_secs(1)).unwrap();
        assert_ne!(a.dir(), b.dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(a.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        for store in [a, b] {
            std::fs::remove_dir(store.dir()).unwrap();
        }
    }

    #[test]
    fn files_are_kept_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&dir.path().join("files"), Duration::from_secs(3600)).unwrap();
        let name = store.put("berita hari ini.txt", b"Rice prices rose.").unwrap();
        assert!(is_stored_name(&name) && name.ends_with(".berita_hari_ini.txt"), "{name}");
        let file = store.get(&name).unwrap();
        assert_eq!(
            file,
            StoredFile { download_name: "berita_hari_ini.txt".into(), content: b"Rice prices rose.".to_vec() }
        );
        assert_ne!(store.put("berita hari ini.txt", b"x").unwrap(), name, "every upload gets its own name");
        assert!(matches!(store.get("0123456789abcdef0123456789abcdef.none.txt"), Err(FileError::NotFound)));
        assert!(matches!(store.get("../secret"), Err(FileError::InvalidName)));

        std::fs::write(dir.path().join("files").join("other.txt"), "not ours").unwrap();
        let expired = FileStore { dir: store.dir.clone(), ttl: Duration::ZERO };
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(expired.get(&name), Err(FileError::NotFound)));
        assert_eq!(expired.sweep(), 1, "the other stored file; the expired one read was deleted already");
        let left: Vec<_> = std::fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["other.txt"]);
    }
}
