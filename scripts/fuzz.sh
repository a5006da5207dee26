#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz / libFuzzer, nightly toolchain) of the sentence splitter, the SentencePiece
# reader and conversion, the Marian tokenizer path, the HTML translation path and HTTP request parsing.
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]
# Corpora persist in fuzz/corpus/ (ignored), crashes land in fuzz/artifacts/; a summary line per target
# (executions, coverage, crashes) goes to fuzz/summary.txt. No sanitizer: the fuzzed code is safe Rust, and
# without ASan a target runs several times faster (panics and aborts are caught either way).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(segment spm tokenize html http_request)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
export BRIEF_SHARED=${BRIEF_SHARED:-$root/../shared}
# Seeds: real sentences and articles, the real spm files, HTML and JSON requests.
mkdir -p corpus/segment corpus/spm corpus/tokenize corpus/html corpus/http_request
cp "$BRIEF_SHARED"/seeds/* corpus/segment/ 2>/dev/null || true
cp "$BRIEF_SHARED"/models/opus-mt-id-en/*.spm corpus/spm/ 2>/dev/null || true
head -c 2000 "$BRIEF_SHARED/evaldata/mt/panl_news_test.id" > corpus/tokenize/seed.txt
printf '<p>Harga <b>beras</b> naik.<br>Kata <a href="x">dia</a>.</p><script>x<1</script>' > corpus/html/seed.html
printf '\x00\x00\x01{"q":["Halo.","Apa kabar?"],"source":"auto","target":"en","format":"html"}' \
    > corpus/http_request/seed.bin
: > summary.txt
for t in "${targets[@]}"; do
    log=$(mktemp)
    cargo +nightly fuzz run --sanitizer none "$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 \
        > "$log" 2>&1 && status=ok || status=CRASH
    stats=$(grep -E "^(#[0-9]+|Done)" "$log" | tail -1)
    echo "$t: $status — $stats" | tee -a summary.txt
    [ "$status" = ok ] || tail -40 "$log"
    rm -f "$log"
done
