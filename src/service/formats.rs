//! Translating texts in the format a client names: plain documents (lines and paragraphs kept) or HTML (the text
//! between tags translated, the markup kept).

use std::time::Instant;

use super::{html, translate_documents, Generator, ServiceError, TranslatedDocument};
use crate::generate::Overrides;

/// How the texts of a request are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Html,
}

impl Format {
    /// `text` or `html` (LibreTranslate's names); anything else is a client error.
    pub fn parse(name: Option<&str>) -> Result<Format, ServiceError> {
        match name {
            None | Some("text") => Ok(Format::Text),
            Some("html") => Ok(Format::Html),
            Some(other) => Err(ServiceError::Input(format!("format must be text or html, not {other:?}"))),
        }
    }
}

/// Translates documents written in `format`, all their sentences batched together. HTML documents get no
/// alternatives (as in LibreTranslate): their text nodes are translated one by one.
pub fn translate_formatted(
    translator: &dyn Generator,
    texts: &[String],
    format: Format,
    overrides: &Overrides,
    deadline: Option<Instant>,
) -> Result<Vec<TranslatedDocument>, ServiceError> {
    if format == Format::Text {
        return translate_documents(translator, texts, overrides, deadline);
    }
    let nodes: Vec<Vec<String>> = texts.iter().map(|t| html::translatable_texts(t)).collect();
    let flat: Vec<String> = nodes.iter().flatten().cloned().collect();
    let docs = translate_documents(translator, &flat, overrides, deadline)?;
    let mut next = docs.into_iter();
    Ok(texts
        .iter()
        .zip(&nodes)
        .map(|(text, nodes)| {
            let mine: Vec<TranslatedDocument> = nodes.iter().filter_map(|_| next.next()).collect();
            let english: Vec<String> = mine.iter().map(|d| d.text.clone()).collect();
            TranslatedDocument {
                text: html::render(text, &english),
                paragraphs: mine.iter().map(|d| d.paragraphs).sum(),
                sentences: mine.iter().map(|d| d.sentences).sum(),
                cached: !mine.is_empty() && mine.iter().all(|d| d.cached),
                alternatives: Vec::new(),
            }
        })
        .collect())
}
