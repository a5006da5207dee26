#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .gpu/ from scripts/gpu/prepare.sh beside it:
#   1. the parity tests on the GPU in f32 (identical tokens, logits within 1e-4; each test prints its error)
#   2. for each model, f16 and bf16 against f32 on the GPU (teacher-forced logit error, next-token agreement),
#      then the benchmark against transformers on the same GPU (fp32 and fp16, beam 4, batch 64 and 1: 4 batches, 8 sentences); for
#      Marian, where a decoding step's time goes (examples/steps)
# The GPU is lent for minutes, so every stage has a time cap inside one overall budget (GPU_RUN_BUDGET_S, 400 s by
# default) and the stages run in that order: a run cut short still leaves the parity results. The random bench
# models are made on the machine's CPUs while the parity tests run. Logs and results land in $OUT (or gpu-out/):
# machine.txt, parity.txt, models.txt, bench.txt, results-{marian,t5}.{json,md} (or .partial.jsonl: the runs made
# before a cap), at most 8 files (the device tool's limit).
# Rehearsal on a CPU: BRIEF_TEST_DEVICE=cpu BENCH_DEVICE=cpu BENCH_PRECISIONS=f32,bf16 BENCH_ARGS=--quick run.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
deadline=$(($(date +%s) + ${GPU_RUN_BUDGET_S:-400}))
status=0

# stage NAME LOG CAP_S COMMAND...: runs COMMAND for at most CAP_S seconds (less if the budget has less left),
# appending its output to $out/LOG, and says how it ended.
stage() {
    local name=$1 log=$out/$2 cap=$3 left started rc
    shift 3
    left=$((deadline - $(date +%s)))
    if [ "$left" -lt 15 ]; then
        echo "== $name: not run, the budget is spent" | tee -a "$log"
        status=1
        return
    fi
    [ "$cap" -lt "$left" ] || cap=$left
    echo "== $name (at most ${cap} s)" | tee -a "$log"
    started=$(date +%s)
    timeout -k 5 "$cap" "$@" >>"$log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $(($(date +%s) - started)) s" | tee -a "$log"
    [ "$rc" = 0 ] || status=1
}

py=${PYTHON:-python3}
tar -C .gpu -xJf .gpu/bin.tar.xz 2>/dev/null ||
    "$py" -c 'import tarfile; tarfile.open(".gpu/bin.tar.xz").extractall(".gpu")' || exit 1
# The CUDA libraries brief links (cudart, cuBLAS, cuRAND, NVRTC 13) come with PyTorch's wheels (nvidia/cu13/lib).
lib=$("$py" -c '
import glob, os, nvidia
found = [d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, "*", "lib")) if glob.glob(d + "/libcublas.so.13*")]
print(found[0] if found else "")')
[ -n "$lib" ] || echo "no libcublas.so.13 under the nvidia Python packages: the CUDA build will not start" >&2
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export BRIEF_TEST_ROOT=$root BRIEF_SHARED=$root/.gpu/shared BRIEF_TEST_DEVICE=${BRIEF_TEST_DEVICE:-cuda}
export PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
device=${BENCH_DEVICE:-cuda}
{
    date -u
    nvidia-smi
    echo "CUDA libraries: $lib"
    "$py" -c 'import torch, transformers
print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(), "tf32 matmul", torch.backends.cuda.matmul.allow_tf32)'
} >"$out/machine.txt" 2>&1

# The bench models (random weights of the real shapes) are made on the CPUs while the GPU runs the tests.
models=$root/bench-out/models
(timeout 200 "$py" scripts/bench/make_models.py "$models" >"$out/models.txt" 2>&1; echo "exit $?" >>"$out/models.txt") &
maker=$!

for t in parity_marian parity_t5; do
    stage "$t ($BRIEF_TEST_DEVICE)" parity.txt 90 .gpu/bin/$t --test-threads 1 --nocapture
done
grep -E "^test |test result|logits relative error|panicked" "$out/parity.txt"

wait $maker
tail -3 "$out/models.txt"
for model in marian t5; do
    stage "bench $model ($device)" bench.txt $([ $model = marian ] && echo 150 || echo 400) \
        "$py" scripts/bench/bench.py --device "$device" --brief .gpu/bin/bench --models $model \
        --brief-precisions "${BENCH_PRECISIONS:-f32,f16,bf16}" --only brief,transformers --out "$root/gpu-bench/$model" ${BENCH_ARGS:-}
    for f in results.json results.md; do
        [ -e "$root/gpu-bench/$model/$f" ] && cp "$root/gpu-bench/$model/$f" "$out/results-$model.${f#*.}"
    done
    # A run cut short still has every measurement made so far.
    [ -e "$out/results-$model.json" ] || cp "$root/gpu-bench/$model/runs.jsonl" "$out/results-$model.partial.jsonl" 2>/dev/null
    [ $model = marian ] || continue
    # Where a step's time goes (decoder + projection on the device, the logits' copy to the host).
    for shape in "64 f32" "64 f16" "1 f32" "1 f16"; do
        set -- $shape
        stage "steps marian batch $1 beam 4 $2" bench.txt 20 .gpu/bin/steps --model "$models/opus-mt-id-en" \
            --input "$BRIEF_SHARED/evaldata/mt/panl_news_test.id" --batch "$1" --beams 4 --steps 48 --precision "$2" \
            --device "$device"
    done
done
grep -vE "^\s*$" "$out/bench.txt" | tail -60
exit $status
