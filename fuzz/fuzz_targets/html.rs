//! The HTML translation path: any markup yields its sentences, renders with replacements, and the result is stable
//! (rendering it again with its own sentences and an identity alignment gives it back).
#![no_main]
use brief::service::align::WordAlignment;
use brief::service::html::{render, translatable_texts};
use libfuzzer_sys::fuzz_target;

fn identity(texts: &[String]) -> Vec<WordAlignment> {
    texts
        .iter()
        .map(|t| WordAlignment { target_to_source: (0..t.split_whitespace().count()).map(Some).collect() })
        .collect()
}

fuzz_target!(|html: &str| {
    let texts = translatable_texts(html);
    let upper: Vec<String> = texts.iter().map(|t| t.to_uppercase()).collect();
    let out = render(html, &upper, &identity(&texts));
    let again = translatable_texts(&out);
    let round = render(&out, &again, &identity(&again));
    assert_eq!(round, out, "rendering is not stable for {html:?}");
});
