//! The Marian tokenizer gives the reference `MarianTokenizer`'s ids on every line of ../shared/seeds/* and
//! ../shared/evaldata/mt/*.id, on adversarial strings, and the reference's text when decoding random ids
//! (expected values in tests/fixtures/tokenizer/opus-mt-id-en.json.gz, made by scripts/gen_fixtures.py).

mod common;

use std::io::Read;

use brief::tokenize::MarianTokenizer;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Fixture {
    files: Vec<FileIds>,
    texts: Vec<String>,
    text_ids: Vec<Vec<u32>>,
    decode_ids: Vec<Vec<u32>>,
    decoded: Vec<String>,
}

#[derive(Deserialize)]
struct FileIds {
    file: String,
    sha256: String,
    ids: Vec<Vec<u32>>,
}

fn fixture() -> Fixture {
    let path = common::fixtures().join("tokenizer").join("opus-mt-id-en.json.gz");
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut json).unwrap();
    serde_json::from_str(&json).unwrap()
}

fn tokenizer() -> MarianTokenizer {
    MarianTokenizer::from_dir(&common::opus_tokenizer_dir()).unwrap()
}

#[test]
fn every_line_of_the_shared_files_matches_the_reference() {
    let fixture = fixture();
    let tok = tokenizer();
    let shared = common::shared();
    assert_eq!(fixture.files.len(), 9, "5 seeds and 4 evaldata .id files");
    let mut lines = 0;
    for record in &fixture.files {
        let bytes = std::fs::read(shared.join(&record.file)).unwrap();
        let digest = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(digest, record.sha256, "{} changed since the fixture was made", record.file);
        let text = String::from_utf8(bytes).unwrap();
        let file_lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(file_lines.len(), record.ids.len(), "{}", record.file);
        for (n, (line, want)) in file_lines.iter().zip(&record.ids).enumerate() {
            assert_eq!(&tok.encode(line).unwrap(), want, "{} line {}: {line:?}", record.file, n + 1);
        }
        lines += file_lines.len();
    }
    assert!(lines > 6000, "{lines} lines checked");
}

#[test]
fn adversarial_strings_match_the_reference() {
    let fixture = fixture();
    let tok = tokenizer();
    assert_eq!(fixture.texts.len(), fixture.text_ids.len());
    for (text, want) in fixture.texts.iter().zip(&fixture.text_ids) {
        assert_eq!(&tok.encode(text).unwrap(), want, "{text:?}");
    }
}

#[test]
fn decoding_random_ids_matches_the_reference_through_the_target_side() {
    let fixture = fixture();
    let tok = tokenizer();
    for (ids, want) in fixture.decode_ids.iter().zip(&fixture.decoded) {
        assert_eq!(&tok.decode(ids), want, "{ids:?}");
    }
}

#[test]
fn ties_between_equal_segmentations_break_as_in_sentencepiece() {
    // "222" and "...." have two segmentations of exactly equal score; spm keeps the one its float arithmetic
    // prefers (tokenizers' own Unigram picks the other).
    let tok = tokenizer();
    assert_eq!(tok.source_pieces("7,222").unwrap(), ["▁7,", "22", "2"]);
    assert_eq!(tok.source_pieces("....").unwrap(), ["▁...", "."]);
}
