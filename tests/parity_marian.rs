//! Token-exact parity of the Marian engine with the reference `generate()` on random-weight fixtures
//! (tests/fixtures/marian/*, made by scripts/gen_fixtures.py), and logits within 1e-4 relative error.

mod common;

fn check_model(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::marian_model_dir(name, tmp.path());
    common::check_parity(name, &dir);
}

#[test]
fn opus_shape_with_the_real_tokenizer() {
    check_model("opus-shape");
}

#[test]
fn tiny_swish_shared_vocab_pytorch_bin() {
    check_model("tiny");
}

#[test]
fn tiny_gelu_separate_vocabs_sharded() {
    check_model("tiny-separate-gelu");
}

#[test]
fn tiny_relu_untied_bf16() {
    check_model("tiny-relu-untied");
}
