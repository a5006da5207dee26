//! Word alignment between a source sentence and its translation, for putting inline HTML markup back around the
//! English words it belongs to.

/// For each whitespace-separated word of a translation, the whitespace-separated word of its source that it
/// aligns to (`None`: no source word, e.g. a word the model added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordAlignment {
    pub target_to_source: Vec<Option<usize>>,
}
