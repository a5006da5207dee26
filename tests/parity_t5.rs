//! Token-exact parity of the T5 family with the reference `generate()` on random-weight fixtures
//! (tests/fixtures/t5/*: v1.0 relu with tied, rescaled output; v1.1/FLAN gated-gelu with separate lm_head;
//! mT5), greedy, 4 beams, no-repeat n-grams with minimum lengths, summarization-style settings; logits within
//! 1e-4; the relative-position buckets equal to the reference's.

mod common;

use brief::models::t5::relative_position_bucket;
use serde::Deserialize;

fn check(name: &str) {
    common::check_parity(name, &common::fixtures().join("t5").join(name));
}

#[test]
fn t5_v1_0_relu_tied_output() {
    check("t5-v1_0");
}

#[test]
fn t5_v1_1_gated_gelu_separate_head() {
    check("t5-v1_1");
}

#[test]
fn mt5_style_checkpoint() {
    check("mt5");
}

#[derive(Deserialize)]
struct Buckets {
    num_buckets: usize,
    max_distance: usize,
    relative: Vec<i64>,
    bidirectional: Vec<u32>,
    unidirectional: Vec<u32>,
}

#[test]
fn relative_position_buckets_equal_the_reference() {
    for name in ["t5-v1_0", "t5-v1_1"] {
        let path = common::fixtures().join("t5").join(name).join("expected.json");
        let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let tables: Vec<Buckets> = serde_json::from_value(expected["buckets"].clone()).unwrap();
        for t in tables {
            for (i, &rel) in t.relative.iter().enumerate() {
                assert_eq!(
                    relative_position_bucket(rel, true, t.num_buckets, t.max_distance),
                    t.bidirectional[i],
                    "{rel}"
                );
                assert_eq!(
                    relative_position_bucket(rel, false, t.num_buckets, t.max_distance),
                    t.unidirectional[i],
                    "{rel}"
                );
            }
        }
    }
}
