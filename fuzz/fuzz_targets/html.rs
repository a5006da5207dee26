//! The HTML translation path: any markup yields its texts, renders with replacements, and the result is stable
//! (rendering it again with its own texts gives it back).
#![no_main]
use brief::service::html::{render, translatable_texts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|html: &str| {
    let texts = translatable_texts(html);
    let upper: Vec<String> = texts.iter().map(|t| format!("[{t}]")).collect();
    let out = render(html, &upper);
    let again = translatable_texts(&out);
    let round = render(&out, &again);
    assert_eq!(round, out, "rendering is not stable for {html:?}");
});
