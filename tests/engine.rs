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

/// The encoder skips the padding of a batch (`models::ragged`): each sentence's encoder output in a padded
/// batch is, bit for bit, its output alone, in every precision the project's kernels compute. (f32 on the
/// portable family multiplies with candle's matmul, whose blocking depends on the number of rows.)
#[test]
fn the_encoder_gives_each_sentence_its_values_alone_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = |t: candle_core::Tensor| -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
    };
    let portable = brief::models::kernels::isa::active() == brief::models::kernels::Isa::Portable;
    for dtype in ["f32", "int8", "bf16"].into_iter().filter(|&d| !(portable && d == "f32")) {
        for engine in [common::marian_engine_as("opus-shape", tmp.path(), dtype), common::t5_engine_as(dtype)] {
            let model = engine.model();
            let all = sources(&engine, TEXTS);
            let batch = brief::models::SourceBatch::new(&all, model.spec().pad_token_id, model.device()).unwrap();
            let encoded = model.encode(&batch).unwrap();
            for (i, s) in all.iter().enumerate() {
                let one =
                    brief::models::SourceBatch::new(std::slice::from_ref(s), model.spec().pad_token_id, model.device());
                let alone = model.encode(&one.unwrap()).unwrap();
                let in_batch = encoded.narrow(0, i, 1).unwrap().narrow(1, 0, s.len()).unwrap();
                assert_eq!(bits(in_batch), bits(alone), "{dtype}: sentence {i}");
            }
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
    // The resolution itself refuses what no search can run, with the reason; so every caller gets the same error.
    let refused = |overrides: Overrides| {
        let err = engine.search_options(&overrides).unwrap_err();
        assert!(err.is_client_error() && matches!(err, EngineError::Input(_)), "{err:?}");
        err.to_string()
    };
    for penalty in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(
            refused(Overrides { length_penalty: Some(penalty), ..Default::default() }),
            format!("the length penalty must be a finite number, not {penalty}")
        );
    }
    assert_eq!(
        refused(Overrides { num_return_sequences: Some(0), ..Default::default() }),
        "the number of returned sequences must be at least 1"
    );
    // The tiny model searches with 4 beams by default; greedy search returns one sequence, as in the reference.
    assert_eq!(
        refused(Overrides { num_return_sequences: Some(5), ..Default::default() }),
        "the number of returned sequences (5) must be at most the number of beams (4)"
    );
    assert_eq!(
        refused(Overrides { num_beams: Some(1), num_return_sequences: Some(2), ..Default::default() }),
        "the number of returned sequences (2) must be at most the number of beams (1)"
    );
    let fine = Overrides { length_penalty: Some(-0.5), num_return_sequences: Some(4), ..Default::default() };
    let options = engine.search_options(&fine).unwrap();
    assert_eq!((options.num_beams, options.num_return_sequences, options.length_penalty), (4, 4, -0.5));
}

/// The tiny fixture's reference texts for `case`, hypotheses of each input one after the other.
fn reference_texts(case: &str) -> Vec<String> {
    let path = common::fixtures().join("marian").join("tiny").join("expected.json");
    let expected: common::Expected = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    expected.cases.into_iter().find(|c| c.name == case).unwrap().texts
}

#[test]
fn alternatives_widen_the_search_and_are_the_references_next_best() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let base = Overrides { max_new_tokens: Some(24), ..Default::default() };
    assert_eq!(service::with_alternatives(&engine, &base, 0).unwrap(), base);
    // Two alternatives: three sequences from the model's four beams (as the fixture's beam4-n3 case).
    let asked = service::with_alternatives(&engine, &base, 2).unwrap();
    assert_eq!((asked.num_beams, asked.num_return_sequences, asked.max_new_tokens), (Some(4), Some(3), Some(24)));
    let six = Overrides { num_beams: Some(6), ..base.clone() };
    assert_eq!(service::with_alternatives(&engine, &six, 2).unwrap().num_beams, Some(6));
    let seven = service::with_alternatives(&engine, &Overrides { num_beams: Some(1), ..base.clone() }, 6).unwrap();
    assert_eq!((seven.num_beams, seven.num_return_sequences), (Some(7), Some(7)));
    let err = service::with_alternatives(&engine, &base, 40).unwrap_err();
    assert!(err.is_client_error(), "{err}");
    assert_eq!(err.to_string(), "the number of beams must be at most 32, not 41");

    // Sentences 0 ("Ya.") and 2 ("Harga beras naik lagi.") of the fixture, three hypotheses each.
    let want = reference_texts("beam4-n3");
    let (ya, harga) = (&want[0..3], &want[6..9]);
    let doc = service::translate_document(&engine, "Ya.", &asked).unwrap();
    assert_eq!(doc.text, ya[0]);
    assert_eq!(doc.alternatives, ya[1..].to_vec());
    // A document's k-th alternative renders every sentence's k-th.
    let doc = service::translate_document(&engine, "Ya.\n\nHarga beras naik lagi.", &asked).unwrap();
    let render = |a: &str, b: &str| format!("{a}\n\n{b}");
    assert_eq!(doc.text, render(&ya[0], &harga[0]));
    assert_eq!(doc.alternatives, vec![render(&ya[1], &harga[1]), render(&ya[2], &harga[2])]);
    // Without alternatives there are none.
    assert!(service::translate_document(&engine, "Ya.", &base).unwrap().alternatives.is_empty());
}

#[test]
fn alternatives_are_cached_with_the_best_translation() {
    use brief::engine::worker::{Worker, WorkerConfig};
    use brief::service::{CachedModel, Generator};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let cache = Arc::new(brief::store::Store::Sqlite(
        brief::store::SqliteStore::open(
            &tmp.path().join("cache").join(brief::store::FILE_NAME),
            1 << 30,
            brief::store::Verify::Quick,
        )
        .unwrap(),
    ));
    let metrics = Arc::new(brief::metrics::Metrics::new());
    let worker = Worker::spawn(engine, WorkerConfig::default(), metrics.clone());
    let model = CachedModel::new(worker, Some(cache), metrics, "translate");
    let texts = vec!["Ya.".to_string(), "Harga beras naik lagi.".to_string()];
    let asked = Overrides { max_new_tokens: Some(24), num_return_sequences: Some(3), ..Default::default() };
    let want = reference_texts("beam4-n3");
    let first = model.generate(&texts, &asked, None).unwrap();
    let second = model.generate(&texts, &asked, None).unwrap();
    for (i, (first, second)) in first.iter().zip(&second).enumerate() {
        let reference = &want[[0, 6][i]..[3, 9][i]];
        assert_eq!((&first.text, &first.alternatives[..], first.cached), (&reference[0], &reference[1..], false));
        assert_eq!((&second.text, &second.alternatives[..], second.cached), (&reference[0], &reference[1..], true));
    }
    // One sequence is a different request (its own cache entry, with no alternatives).
    let single = Overrides { num_return_sequences: None, ..asked };
    let one = model.generate(&texts[..1], &single, None).unwrap();
    let best = reference_texts("beam4");
    assert_eq!((&one[0].text, one[0].alternatives.len(), one[0].cached), (&best[0], 0, false));
}
