//! What users ask of brief, over the engines: translate a document (paragraphs and sentences kept) or lines,
//! summarize English text of any length, and assemble the brief of an article.

pub mod brief;
pub mod summary;

use crate::engine::{Engine, EngineError};
use crate::generate::Overrides;
use crate::tokenize::segment::Document;

pub use brief::{make_brief, Brief, BriefOptions};
pub use summary::{summarize, Summary, SummaryOptions};

/// A translated document and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslatedDocument {
    /// The English text, line for line the structure of the source.
    pub text: String,
    pub paragraphs: usize,
    pub sentences: usize,
}

/// Translates `text` sentence by sentence, all sentences batched together, and puts the English back into the
/// source's lines, paragraphs and Markdown markers.
pub fn translate_document(
    engine: &Engine,
    text: &str,
    overrides: &Overrides,
) -> Result<TranslatedDocument, EngineError> {
    let doc = Document::parse(text);
    let sentences: Vec<String> = doc.sentences().map(str::to_string).collect();
    let english = engine.generate_texts(&sentences, overrides)?;
    Ok(TranslatedDocument {
        text: doc.render(&english),
        paragraphs: doc.paragraphs().count(),
        sentences: sentences.len(),
    })
}

/// Translates each line as one segment: exactly one output line per input line, blank lines kept blank.
pub fn translate_lines(engine: &Engine, lines: &[String], overrides: &Overrides) -> Result<Vec<String>, EngineError> {
    engine.generate_texts(lines, overrides)
}
