//! The translation engine on fixture models: batching never changes a result, over-long sentences are split
//! rather than cut, and hostile or empty input has a clear outcome.

mod common;

use brief::engine::EngineError;
use brief::generate::{generate, Overrides};
use brief::service;

fn sources(engine: &brief::engine::Engine, texts: &[&str]) -> Vec<Vec<u32>> {
    texts.iter().map(|t| engine.tokenizer().encode(t).unwrap()).collect()
}

const TEXTS: &[&str] = &[
    "Ya.",
    "Presiden Joko Widodo meresmikan Bendungan Sadawarna di Kabupaten Subang, Jawa Barat, pada Selasa (12/3/2024), \
     yang dibangun dengan anggaran Rp 1.250,5 miliar.",
    "Harga beras naik lagi.",
    "Dr. Siti Nurhaliza, S.H., mengatakan bahwa kebijakan baru itu akan mulai berlaku bulan depan.",
    "Menurutnya, pada perundingan mendatang, perhatian besar akan diberikan pada pembahasan agenda internasional.",
];

#[test]
fn a_sentence_gives_the_same_tokens_alone_or_in_any_batch() {
    let tmp = tempfile::tempdir().unwrap();
    for model in ["opus-shape", "tiny-relu-untied"] {
        let engine = common::marian_engine(model, tmp.path());
        let all = sources(&engine, TEXTS);
        for (beams, n) in [(1, 1), (4, 1), (4, 3)] {
            let overrides = Overrides {
                num_beams: Some(beams),
                max_new_tokens: Some(20),
                num_return_sequences: Some(n),
                ..Default::default()
            };
            let options = engine.search_options(&overrides).unwrap();
            let tokens = |h: &Vec<brief::generate::Hypothesis>| h.iter().map(|h| h.tokens.clone()).collect::<Vec<_>>();
            let alone: Vec<Vec<Vec<u32>>> = all
                .iter()
                .map(|s| tokens(&generate(engine.model(), std::slice::from_ref(s), &options).unwrap()[0]))
                .collect();
            assert!(alone.iter().all(|h| h.len() == n), "{model} beams {beams}: {n} hypotheses each");
            // The whole batch, reversed, and a pair of very different lengths.
            let batched = generate(engine.model(), &all, &options).unwrap();
            let reversed: Vec<Vec<u32>> = all.iter().rev().cloned().collect();
            let mut reversed_out = generate(engine.model(), &reversed, &options).unwrap();
            reversed_out.reverse();
            let pair = generate(engine.model(), &[all[1].clone(), all[0].clone()], &options).unwrap();
            for i in 0..all.len() {
                assert_eq!(tokens(&batched[i]), alone[i], "{model} beams {beams}: sentence {i} in the batch");
                assert_eq!(tokens(&reversed_out[i]), alone[i], "{model} beams {beams}: sentence {i} reversed");
            }
            assert_eq!(tokens(&pair[0]), alone[1]);
            assert_eq!(tokens(&pair[1]), alone[0]);
        }
    }
}

#[test]
fn engine_batches_by_token_budget_without_changing_results() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let overrides = Overrides { num_beams: Some(2), max_new_tokens: Some(12), ..Default::default() };
    let texts: Vec<String> = TEXTS.iter().map(|s| s.to_string()).collect();
    let together = engine.generate_texts(&texts, &overrides).unwrap();
    let one_by_one: Vec<String> =
        texts.iter().map(|t| engine.generate_texts(std::slice::from_ref(t), &overrides).unwrap().remove(0)).collect();
    assert_eq!(together, one_by_one);
}

#[test]
fn a_sentence_longer_than_the_encoder_is_split_not_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    // The tiny fixture has 128 positions; this sentence needs several times that.
    let engine = common::marian_engine("tiny", tmp.path());
    let long =
        std::iter::repeat_n("pemerintah daerah menyalurkan bantuan sosial kepada warga, termasuk beras dan minyak", 12)
            .collect::<Vec<_>>()
            .join(" ");
    let tokens = engine.count_tokens(&long).unwrap();
    assert!(tokens > 3 * 128, "the test sentence has {tokens} tokens");
    let parts = engine.split_for_encoder(&long).unwrap();
    assert!(parts.len() >= 4, "{} parts", parts.len());
    for part in &parts {
        assert!(engine.count_tokens(part).unwrap() <= 128, "a part of {} tokens", engine.count_tokens(part).unwrap());
    }
    // Nothing is dropped: the parts hold every word of the sentence, in order.
    assert_eq!(parts.join(" ").split_whitespace().collect::<Vec<_>>(), long.split_whitespace().collect::<Vec<_>>());
    let overrides = Overrides { num_beams: Some(1), max_new_tokens: Some(6), ..Default::default() };
    let whole = engine.generate_texts(std::slice::from_ref(&long), &overrides).unwrap().remove(0);
    let by_part: Vec<String> = engine.generate_texts(&parts, &overrides).unwrap();
    let joined = by_part.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    assert_eq!(whole, joined);
}

#[test]
fn empty_blank_and_unusual_text_have_clear_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("opus-shape", tmp.path());
    let overrides = Overrides { num_beams: Some(2), max_new_tokens: Some(6), ..Default::default() };
    // Blank input: nothing to translate, nothing computed, the structure kept.
    assert_eq!(service::translate_document(&engine, "", &overrides).unwrap().text, "");
    assert_eq!(service::translate_document(&engine, " \n\t\n", &overrides).unwrap().text, " \n\t\n");
    let lines: Vec<String> = ["", "   ", "\t"].iter().map(|s| s.to_string()).collect();
    assert_eq!(service::translate_lines(&engine, &lines, &overrides).unwrap(), ["", "", ""]);
    // Emoji, CJK, right-to-left scripts, control characters: translated like any text, one output each.
    let odd: Vec<String> =
        ["😀👩‍👩‍👧 senang", "東京で会議", "مرحبا بالعالم", "שלום", "\u{200f}\u{0}\u{7f} x", "</s><pad><unk>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let out = service::translate_lines(&engine, &odd, &overrides).unwrap();
    assert_eq!(out.len(), odd.len());
}

#[test]
fn a_megabyte_of_text_is_translated_in_full() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    // One paragraph per line, ~1 MB, including one line with no spaces at all.
    let mut text = String::new();
    let line = "Harga beras di pasar tradisional naik lagi. Pemerintah berjanji menstabilkan harga bulan depan.\n";
    while text.len() < 1_000_000 {
        text.push_str(line);
    }
    text.push_str(&"a".repeat(5000));
    let overrides = Overrides { num_beams: Some(1), max_new_tokens: Some(3), ..Default::default() };
    let doc = service::translate_document(&engine, &text, &overrides).unwrap();
    assert_eq!(doc.text.split('\n').count(), text.split('\n').count(), "one output line per input line");
    assert!(doc.sentences > 20_000);
}

#[test]
fn impossible_options_are_the_callers_error() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    for overrides in [
        Overrides { num_beams: Some(0), ..Default::default() },
        Overrides { max_new_tokens: Some(100_000), ..Default::default() },
        Overrides { max_new_tokens: Some(0), ..Default::default() },
    ] {
        let err = engine.generate_texts(&["Halo.".to_string()], &overrides).unwrap_err();
        assert!(err.is_client_error(), "{err}");
        assert!(matches!(err, EngineError::Input(_)), "{err:?}");
    }
}
