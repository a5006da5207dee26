#!/usr/bin/env bash
# The benchmark, in one command: brief (release build), transformers and CTranslate2 on the same random weights
# with the shapes of opus-mt-id-en and flan-t5-base. Results: bench-out/results.{md,json}.
#   scripts/bench/run.sh            full run (500 sentences at batch 32, 40 at batch 1; T5 a quarter of that)
#   scripts/bench/run.sh --quick    a few minutes
#   scripts/bench/run.sh --whole    the whole-process benchmark instead (scripts/bench/whole.py): `brief translate`
#                                   against a CTranslate2 program, each a fresh process as a user runs it (start-up,
#                                   loading and packing included); results: bench-out/whole/results.{md,json}
#   scripts/bench/run.sh --isa avx512|avx2-vnni|avx2|portable [...]
#                                   every process forced onto that CPU kernel family: BRIEF_CPU_ISA for brief,
#                                   CT2_FORCE_CPU_ISA (AVX512, AVX2, GENERIC) and the MKL/oneDNN caps for CTranslate2
#                                   and PyTorch (scripts/bench/isa.py); the results record it
# Other arguments go to scripts/bench/bench.py (--only, --models, --brief-precisions, --repeat) or, with --whole, to
# scripts/bench/whole.py (--lines, --repeat, --brief-precisions, --ct2-precisions, --transformers).
# Timing only: CI (.ci/run, cargo test) never runs any of this.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${BRIEF_VENV:-$root/.venv}
whole=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --whole) whole=1 ;;
    --isa|--isa=*)
      if [ "$1" = --isa ]; then isa=${2:-}; shift; else isa=${1#--isa=}; fi
      case "$isa" in
        avx512|avx2-vnni|avx2|portable) args+=(--isa "$isa") ;;  # the Python side sets it on every process
        *) echo "--isa takes avx512, avx2-vnni, avx2 or portable (not '$isa')" >&2; exit 2 ;;
      esac ;;
    *) args+=("$1") ;;
  esac
  shift
done
[ -x "$venv/bin/python" ] || scripts/setup_venv.sh "$venv"
if [ "$whole" = 1 ]; then
  cargo build --release --locked --bin brief
  PYTHONWARNINGS=ignore "$venv/bin/python" scripts/bench/make_models.py bench-out/models opus
  PYTHONWARNINGS=ignore "$venv/bin/python" scripts/bench/whole.py --out bench-out/whole "${args[@]}"
else
  cargo build --release --locked --example bench --example precision
  PYTHONWARNINGS=ignore "$venv/bin/python" scripts/bench/make_models.py bench-out/models
  PYTHONWARNINGS=ignore "$venv/bin/python" scripts/bench/bench.py --out bench-out "${args[@]}"
fi
