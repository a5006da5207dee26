#!/usr/bin/env bash
# Builds everything the GPU machine runs (it has CUDA, PyTorch and transformers, but no Rust toolchain and no
# network) and packs it into .gpu/ (ignored by git), which travels with the working tree:
#   .gpu/bin.tar.xz   the bench, precision and steps examples and the Marian and T5 parity test binaries (CUDA build,
#                     stripped: about 59 MB each, 9 MB compressed; the carry limit is 64 MiB in all)
#   .gpu/shared/      the parts of ../shared the tests and the benchmark read (the opus-mt-id-en tokenizer,
#                     the evaldata sentences); nothing of it is committed
# Then, on the GPU machine: scripts/gpu/run.sh (with the device tool: carry [".gpu"]).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
eval "$(scripts/gpu/toolkit.sh)"
cargo build --release --locked --features cuda --example bench --example precision --example steps
tests=$(cargo test --release --locked --features cuda --no-run --message-format=json --test parity_marian \
    --test parity_t5 | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
rm -rf .gpu && mkdir -p .gpu/bin .gpu/shared/models .gpu/shared/evaldata
cp target/release/examples/bench target/release/examples/precision target/release/examples/steps .gpu/bin/
for t in $tests; do cp "$t" ".gpu/bin/$(basename "$t" | sed 's/-[0-9a-f]*$//')"; done
strip .gpu/bin/*
tar -C .gpu -c bin | xz -9 -T2 > .gpu/bin.tar.xz && rm -r .gpu/bin
cp -r ../shared/models/opus-mt-id-en .gpu/shared/models/
cp -r ../shared/evaldata/mt .gpu/shared/evaldata/
cp -r ../shared/seeds .gpu/shared/
du -sh .gpu/*
total=$(du -sb .gpu | cut -f1)
[ "$total" -lt $((64 << 20)) ] || { echo ".gpu is $total bytes, over the device tool's 64 MiB carry" >&2; exit 1; }
