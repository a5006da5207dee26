//! Reading one article file of `brief batch`: its UTF-8 text, and its metadata from an optional front-matter block
//! at the top of the file or a sidecar `NAME.json` beside it.
//!
//! Front matter is a block of flat `key: value` lines between two `---` lines at the very top (the common
//! subset of YAML front matter; values may be in single or double quotes). Its keys are `outlet`, `url` and
//! `published_at` (`published` and `date` are read as `published_at`); other keys (`title`, `tags` …) are
//! ignored, and listed in the log. The sidecar of `berita.md` is `berita.json`: `{"outlet": …, "url": …,
//! "published_at": …}`, with no other fields. A field given in both with different values is an error, as is
//! a value that [`ArticleMeta::validate`] refuses: the article fails with the reason, and the others go on.

use std::path::{Path, PathBuf};

use super::file_name;
use crate::service::{Article, ArticleMeta};

/// Lines searched for the closing `---` of a front-matter block.
const MAX_FRONT_MATTER_LINES: usize = 64;

/// The sidecar of an article file: `NAME.json` beside `NAME.md`/`NAME.txt`.
pub fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// Reads the article at `path` named `name`, with its metadata; the error is the article's, for the report.
pub fn read(path: &Path, name: &str) -> Result<Article, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))?;
    let (front, body) = split_front_matter(&text).map_err(|e| format!("front matter: {e}"))?;
    let from_front = match front {
        Some(block) => parse_front_matter(block, name)?,
        None => ArticleMeta::default(),
    };
    let from_sidecar = read_sidecar(&sidecar(path))?;
    let meta = merge(from_front, from_sidecar)?.validate()?;
    Ok(Article { name: name.to_string(), text: body.to_string(), meta })
}

/// The front-matter block (without its `---` lines) and the text after it; no block: `None` and all the text.
fn split_front_matter(text: &str) -> Result<(Option<&str>, &str), String> {
    let rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(after) = rest.strip_prefix("---\n").or_else(|| rest.strip_prefix("---\r\n")) else {
        return Ok((None, text));
    };
    let mut offset = 0;
    for line in after.split_inclusive('\n').take(MAX_FRONT_MATTER_LINES) {
        if line.trim_end() == "---" {
            return Ok((Some(&after[..offset]), &after[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err(format!(
        "the block opened by `---` on line 1 is not closed by a `---` line within {MAX_FRONT_MATTER_LINES} lines"
    ))
}

fn parse_front_matter(block: &str, name: &str) -> Result<ArticleMeta, String> {
    let mut meta = ArticleMeta::default();
    let mut ignored = Vec::new();
    for (i, line) in block.lines().enumerate() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("front matter line {}: expected `key: value`", i + 2));
        };
        let value = unquote(value.trim());
        let slot = match key.trim() {
            "outlet" => &mut meta.outlet,
            "url" => &mut meta.url,
            "published_at" | "published" | "date" => &mut meta.published_at,
            other => {
                ignored.push(other.to_string());
                continue;
            }
        };
        if slot.is_some() {
            return Err(format!("front matter line {}: `{}` is given twice", i + 2, key.trim()));
        }
        *slot = Some(value.to_string());
    }
    if !ignored.is_empty() {
        tracing::info!(article = name, keys = ?ignored, "front-matter keys brief does not use were ignored");
    }
    Ok(meta)
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

fn read_sidecar(path: &Path) -> Result<ArticleMeta, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ArticleMeta::default()),
        Err(e) => return Err(format!("{}: {e}", file_name(path))),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sidecar {
        outlet: Option<String>,
        url: Option<String>,
        published_at: Option<String>,
    }
    let s: Sidecar = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file_name(path)))?;
    Ok(ArticleMeta { outlet: s.outlet, url: s.url, published_at: s.published_at })
}

/// The fields of both; one given in both must be the same.
fn merge(a: ArticleMeta, b: ArticleMeta) -> Result<ArticleMeta, String> {
    let pick = |field: &str, x: Option<String>, y: Option<String>| match (x, y) {
        (Some(x), Some(y)) if x.trim() != y.trim() => {
            Err(format!("`{field}` is {x:?} in the front matter but {y:?} in the sidecar: keep one"))
        }
        (x, y) => Ok(x.or(y)),
    };
    Ok(ArticleMeta {
        outlet: pick("outlet", a.outlet, b.outlet)?,
        url: pick("url", a.url, b.url)?,
        published_at: pick("published_at", a.published_at, b.published_at)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn front_matter_gives_the_metadata_and_is_not_part_of_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            "---\noutlet: \"Kompas\"\nurl: https://www.kompas.com/a\ndate: 2024-05-01\ntitle: x\n---\nJudul\n\nIsi.\n";
        let a = read(&write(dir.path(), "a.md", text), "a.md").unwrap();
        assert_eq!(a.text, "Judul\n\nIsi.\n");
        assert_eq!(a.meta.outlet.as_deref(), Some("Kompas"));
        assert_eq!(a.meta.url.as_deref(), Some("https://www.kompas.com/a"));
        assert_eq!(a.meta.published_at.as_deref(), Some("2024-05-01T00:00:00Z"));
    }

    #[test]
    fn a_sidecar_gives_the_metadata_and_agrees_with_front_matter() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "b.txt", "---\noutlet: Tempo\n---\nJudul\n");
        write(dir.path(), "b.json", r#"{"outlet": "Tempo", "published_at": "2024-05-01T08:30:00+07:00"}"#);
        let b = read(&path, "b.txt").unwrap();
        assert_eq!(
            (b.meta.outlet.as_deref(), b.meta.published_at.as_deref()),
            (Some("Tempo"), Some("2024-05-01T08:30:00+07:00"))
        );
        write(dir.path(), "b.json", r#"{"outlet": "Detik"}"#);
        assert_eq!(
            read(&path, "b.txt").unwrap_err(),
            "`outlet` is \"Tempo\" in the front matter but \"Detik\" in the sidecar: keep one"
        );
    }

    #[test]
    fn bad_metadata_fails_the_article_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("c.md", "---\noutlet: X\nJudul\n", "front matter: the block opened by `---` on line 1 is not closed"),
            ("d.md", "---\nno colon here\n---\nJudul\n", "front matter line 2: expected `key: value`"),
            ("e.md", "---\nurl: /relative\n---\nJudul\n", "url: \"/relative\" is not an absolute address"),
            ("f.md", "---\ndate: kemarin\n---\nJudul\n", "published_at: \"kemarin\" is neither"),
        ];
        for (name, text, needle) in cases {
            let e = read(&write(dir.path(), name, text), name).unwrap_err();
            assert!(e.contains(needle), "{name}: {e}");
        }
        let path = write(dir.path(), "g.md", "Judul\n");
        write(dir.path(), "g.json", r#"{"outlet": "X", "author": "Y"}"#);
        let e = read(&path, "g.md").unwrap_err();
        assert!(e.starts_with("g.json: unknown field `author`"), "{e}");
    }

    #[test]
    fn a_rule_that_is_not_front_matter_stays_text() {
        let dir = tempfile::tempdir().unwrap();
        let a = read(&write(dir.path(), "h.md", "Judul\n---\nIsi.\n"), "h.md").unwrap();
        assert_eq!((a.text.as_str(), a.meta.is_empty()), ("Judul\n---\nIsi.\n", true));
    }
}
