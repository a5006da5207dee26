//! The article splitter: any text parses, keeps its line count, and renders back with every sentence in place.
#![no_main]
use brief::tokenize::segment::Document;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let doc = Document::parse(text);
    assert_eq!(doc.lines.len(), text.split('\n').count());
    let sentences: Vec<String> = doc.sentences().map(str::to_string).collect();
    for s in &sentences {
        assert!(!s.trim().is_empty(), "an empty sentence from {text:?}");
    }
    let rendered = doc.render(&sentences);
    assert_eq!(rendered.split('\n').count(), text.split('\n').count());
});
