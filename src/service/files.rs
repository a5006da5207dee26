//! File translation (LibreTranslate's `/translate_file`): which formats are supported, how each is translated with
//! its structure kept, and (in [`store`]) the folder where translated files wait to be downloaded.

pub mod markdown;
pub mod store;

use std::time::Instant;

use super::{translate_documents, translate_formatted, Format, Generator, ServiceError};
use crate::generate::Overrides;

pub use store::{sanitize_file_name, FileStore, StoredFile};

/// The extensions `/translate_file` accepts (as LibreTranslate's `supportedFilesFormat` lists them).
pub const SUPPORTED_FILE_FORMATS: &[&str] = &[".txt", ".md", ".html", ".htm"];

/// What can go wrong with a file, its format or the folder of translated files. The messages of the client's
/// mistakes are LibreTranslate's.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("Invalid request: file format not supported")]
    Unsupported,
    #[error("Invalid request: the file is not UTF-8 text")]
    NotUtf8,
    /// A download name that is not one this server gives out.
    #[error("Invalid filename")]
    InvalidName,
    #[error("no such file: it was never made here, or it expired")]
    NotFound,
    #[error("the folder of translated files ({path}): {error}")]
    Io { path: std::path::PathBuf, error: std::io::Error },
}

impl FileError {
    pub fn is_client_error(&self) -> bool {
        !matches!(self, FileError::Io { .. })
    }
}

/// A supported file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Plain text: lines, paragraphs and sentences kept (as `/translate`).
    Text,
    /// Markdown: block markers, code, link targets and inline HTML kept; the prose translated ([`markdown`]).
    Markdown,
    /// HTML: tags, attributes and code kept, each block's prose translated by sentence with its inline markup
    /// placed back (as `/translate` with `format=html`).
    Html,
}

impl FileFormat {
    /// The format of a file named `name`, by its extension (any case); unsupported ones are refused.
    pub fn of(name: &str) -> Result<Self, FileError> {
        let extension = std::path::Path::new(name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("txt") => Ok(Self::Text),
            Some("md") => Ok(Self::Markdown),
            Some("html" | "htm") => Ok(Self::Html),
            _ => Err(FileError::Unsupported),
        }
    }

    /// The `Content-Type` a translated file of this format is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; charset=utf-8",
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

/// The text of an uploaded file: UTF-8 only (a byte-order mark is allowed and kept on translation).
pub fn decode(content: Vec<u8>) -> Result<String, FileError> {
    String::from_utf8(content).map_err(|_| FileError::NotUtf8)
}

const BOM: &str = "\u{feff}";

/// Translates the text of a file of `format` into English with its structure kept. A byte-order mark and CRLF line
/// ends come back as they went in.
pub fn translate_file(
    translator: &dyn Generator,
    format: FileFormat,
    text: &str,
    overrides: &Overrides,
    deadline: Option<Instant>,
) -> Result<String, ServiceError> {
    let (bom, body) = match text.strip_prefix(BOM) {
        Some(rest) => (BOM, rest),
        None => ("", text),
    };
    let crlf = body.contains("\r\n");
    let body = if crlf { body.replace("\r\n", "\n") } else { body.to_string() };
    let whole = |format| -> Result<String, ServiceError> {
        Ok(translate_formatted(translator, std::slice::from_ref(&body), format, overrides, deadline)?.remove(0).text)
    };
    let english = match format {
        FileFormat::Text => whole(Format::Text)?,
        FileFormat::Html => whole(Format::Html)?,
        FileFormat::Markdown => {
            let doc = markdown::Markdown::parse(&body);
            doc.render(&translate_pieces(translator, doc.texts(), overrides, deadline)?)
        }
    };
    let english = if crlf { english.replace('\n', "\r\n") } else { english };
    Ok(format!("{bom}{english}"))
}

/// Each piece translated as a document of its own (as `/translate` would), all in one batch.
fn translate_pieces<'a>(
    translator: &dyn Generator,
    pieces: impl Iterator<Item = &'a str>,
    overrides: &Overrides,
    deadline: Option<Instant>,
) -> Result<Vec<String>, ServiceError> {
    let pieces: Vec<String> = pieces.map(str::to_string).collect();
    Ok(translate_documents(translator, &pieces, overrides, deadline)?.into_iter().map(|d| d.text).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_extension_in_any_case() {
        assert_eq!(FileFormat::of("berita.TXT").unwrap(), FileFormat::Text);
        assert_eq!(FileFormat::of("a.b.md").unwrap(), FileFormat::Markdown);
        assert_eq!(FileFormat::of("x.htm").unwrap(), FileFormat::Html);
        for name in ["berita.docx", "berita.odt", "berita", ".txt", "txt", "a.txt.exe"] {
            assert!(matches!(FileFormat::of(name), Err(FileError::Unsupported)), "{name}");
        }
        for format in SUPPORTED_FILE_FORMATS {
            assert!(FileFormat::of(&format!("a{format}")).is_ok(), "{format}");
        }
    }

    #[test]
    fn only_utf8_is_decoded() {
        assert_eq!(decode(b"Harga naik.".to_vec()).unwrap(), "Harga naik.");
        assert!(matches!(decode(b"Harga \xff naik".to_vec()), Err(FileError::NotUtf8)));
    }
}
