//! `format=html` sends the model the sentences of the plain text: inline markup splits nothing, and the token ids
//! the tiny Marian fixture's codec plans are those of the plain text.

mod common;

use brief::service::html::translatable_texts;
use brief::tokenize::segment::Document;

#[test]
fn html_sentences_and_token_ids_are_those_of_the_plain_text() {
    let html = "<p>Presiden <b>Joko Widodo</b> meresmikan <a href=\"/tol\">jalan <i>tol</i></a> baru.  Harga \
                <span class=\"x\">beras</span>\n naik lagi.</p><ul><li>Apa <em>kabar</em>?</li></ul>";
    let plain = "Presiden Joko Widodo meresmikan jalan tol baru. Harga beras naik lagi.\nApa kabar?";
    let from_html = translatable_texts(html);
    let from_plain: Vec<String> = Document::parse(plain).sentences().map(str::to_string).collect();
    assert_eq!(from_html, from_plain);
    assert_eq!(from_html.len(), 3);

    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let ids = |texts: &[String]| -> Vec<Vec<u32>> {
        engine.codec().plan(texts).unwrap().pieces.into_iter().map(|p| p.ids).collect()
    };
    assert_eq!(ids(&from_html), ids(&from_plain));
    assert!(!ids(&from_html)[0].is_empty());
}
