//! The Marian tokenizer path on the real opus-mt-id-en files (../shared, or BRIEF_SHARED): any text encodes to
//! ids within the vocabulary, and any ids decode.
#![no_main]
use std::sync::OnceLock;

use brief::tokenize::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let shared = std::env::var_os("BRIEF_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
        Tokenizer::from_dir(&shared.join("models/opus-mt-id-en")).expect("the opus-mt-id-en tokenizer")
    })
}

fuzz_target!(|input: (&str, Vec<u16>)| {
    let (text, ids) = input;
    let t = tokenizer();
    if let Ok(encoded) = t.encode(text) {
        assert!(encoded.iter().all(|&id| id < 65_001), "{encoded:?}");
        let _ = t.decode(&encoded);
    }
    let ids: Vec<u32> = ids.into_iter().map(u32::from).collect();
    let _ = t.decode(&ids);
});
