#!/usr/bin/env bash
# Builds everything the GPU machine runs (it has CUDA, PyTorch and transformers, but no Rust toolchain and no
# network) and packs it into .gpu/ (ignored by git), which travels with the working tree:
#   .gpu/bin.tar.xz   brief, the bench and precision examples, the parity test binaries (CUDA build, stripped)
#   .gpu/shared/      the parts of ../shared the tests and the benchmark read (the opus-mt-id-en tokenizer,
#                     the evaldata sentences); nothing of it is committed
# Then, on the GPU machine: scripts/gpu/run.sh (with the device tool: carry [".gpu"]).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
eval "$(scripts/gpu/toolkit.sh)"
cargo build --release --locked --features cuda --bin brief --example bench --example precision
tests=$(cargo test --release --locked --features cuda --no-run --message-format=json --test parity_marian \
    --test parity_t5 --test parity_tokenizer | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
rm -rf .gpu && mkdir -p .gpu/bin .gpu/shared/models .gpu/shared/evaldata
cp target/release/brief target/release/examples/bench target/release/examples/precision .gpu/bin/
for t in $tests; do cp "$t" ".gpu/bin/$(basename "$t" | sed 's/-[0-9a-f]*$//')"; done
strip .gpu/bin/*
tar -C .gpu -cJf .gpu/bin.tar.xz bin && rm -r .gpu/bin
cp -r ../shared/models/opus-mt-id-en .gpu/shared/models/
cp -r ../shared/evaldata/mt .gpu/shared/evaldata/
cp -r ../shared/seeds .gpu/shared/
du -sh .gpu/*
