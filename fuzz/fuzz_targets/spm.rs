//! The SentencePiece model reader and its conversion to a tokenizer: any bytes give a model or an error, and a
//! model that converts encodes text without panicking.
#![no_main]
use brief::tokenize::spm::SpmModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(model) = SpmModel::parse(bytes) {
        if let Ok(tokenizer) = model.to_tokenizer(std::path::Path::new("fuzz.spm")) {
            let _ = tokenizer.encode("Harga beras naik lagi, kata Menteri.", false);
        }
    }
});
