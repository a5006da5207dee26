//! Translating texts in the format a client names: plain documents (lines and paragraphs kept) or HTML (the text
//! between tags translated, the markup kept).

use std::time::Instant;

use super::align::{align_words, WordAlignment};
use super::{html, translate_documents, Generated, Generator, ServiceError, TranslatedDocument};
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
/// alternatives (as in LibreTranslate): the sentences of each block's prose (inline tags stripped) are translated as
/// plain text would be, word-aligned, and the inline markup put back around the aligned English words
/// ([`html`]).
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
    let docs: Vec<html::Html> = texts.iter().map(|t| html::Html::parse(t)).collect();
    let sentences: Vec<Vec<String>> = docs.iter().map(html::Html::sentences).collect();
    let flat: Vec<String> = sentences.iter().flatten().cloned().collect();
    let generated = translator.generate(&flat, overrides, deadline)?;
    let alignments = align_marked(translator, &docs, &flat, &generated)?;
    let mut at = 0;
    Ok(docs
        .iter()
        .zip(&sentences)
        .map(|(doc, mine)| {
            let range = at..(at + mine.len()).min(generated.len());
            at += mine.len();
            let english: Vec<String> = generated[range.clone()].iter().map(|g| g.text.clone()).collect();
            let aligned = alignments.get(range.clone()).unwrap_or(&[]);
            TranslatedDocument {
                text: doc.render(&english, aligned),
                paragraphs: doc.paragraphs(),
                sentences: mine.len(),
                cached: !mine.is_empty() && generated[range].iter().all(|g| g.cached),
                alternatives: Vec::new(),
            }
        })
        .collect())
}

/// Word alignments of the sentences that carry inline markup (one decoder pass for them all); the others, which
/// render the same whatever their alignment, get none and cost nothing.
fn align_marked(
    translator: &dyn Generator,
    docs: &[html::Html],
    sources: &[String],
    generated: &[Generated],
) -> Result<Vec<WordAlignment>, ServiceError> {
    let marked: Vec<bool> = docs.iter().flat_map(html::Html::needs_alignment).collect();
    let wanted: Vec<usize> =
        (0..sources.len().min(generated.len())).filter(|&i| marked.get(i) == Some(&true)).collect();
    let pairs: Vec<(String, String)> =
        wanted.iter().map(|&i| (sources[i].clone(), generated[i].text.clone())).collect();
    let mut alignments = vec![WordAlignment::default(); sources.len()];
    if !pairs.is_empty() {
        for (i, alignment) in wanted.into_iter().zip(align_words(translator, &pairs)?) {
            alignments[i] = alignment;
        }
    }
    Ok(alignments)
}
