#!/usr/bin/env bash
# The benchmark, in one command: brief (release build), transformers and CTranslate2 on the same random weights
# with the shapes of opus-mt-id-en and flan-t5-base. Results: bench-out/results.{md,json}.
#   scripts/bench/run.sh            full run (500 sentences at batch 32, 40 at batch 1; T5 a quarter of that)
#   scripts/bench/run.sh --quick    a few minutes
# Extra arguments go to scripts/bench/bench.py (--only, --models, --brief-precisions, --repeat).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${BRIEF_VENV:-$root/.venv}
[ -x "$venv/bin/python" ] || scripts/setup_venv.sh "$venv"
cargo build --release --locked --example bench --example precision
PYTHONWARNINGS=ignore "$venv/bin/python" scripts/bench/make_models.py bench-out/models
PYTHONWARNINGS=ignore "$venv/bin/python" scripts/bench/bench.py --out bench-out "$@"
