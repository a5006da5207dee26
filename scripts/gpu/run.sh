#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .gpu/ from scripts/gpu/prepare.sh beside it:
#   1. the parity tests on the GPU in f32 (identical tokens, logits within 1e-4)
#   2. f16 and bf16 against f32 on the GPU: teacher-forced logit error and next-token agreement
#   3. the benchmark against transformers on the same GPU (fp32 and fp16, beam 4, batch 64 and 1)
# Everything it prints also lands in $OUT (or gpu-out/).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
tar -C .gpu -xJf .gpu/bin.tar.xz
py=${PYTHON:-python3}
# The CUDA libraries brief links (cudart, cuBLAS, cuRAND, NVRTC 13) come with PyTorch's wheels.
lib=$("$py" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))')
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export BRIEF_TEST_ROOT=$root BRIEF_SHARED=$root/.gpu/shared BRIEF_TEST_DEVICE=${BRIEF_TEST_DEVICE:-cuda}
{ nvidia-smi; "$py" -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } \
    > "$out/machine.txt" 2>&1
status=0
for t in parity_marian parity_t5; do
    echo "== $t ($BRIEF_TEST_DEVICE)"
    .gpu/bin/$t --test-threads 1 2>&1 | tee "$out/$t.txt" | grep -E "^test |test result" || status=1
done
echo "== the benchmark"
PYTHONWARNINGS=ignore "$py" scripts/bench/make_models.py bench-out/models || status=1
PYTHONWARNINGS=ignore "$py" scripts/bench/bench.py --device cuda --brief .gpu/bin/bench \
    --brief-precisions f32,f16,bf16 --out "$out/bench" ${BENCH_ARGS:-} 2>&1 | tail -40 || status=1
exit $status
