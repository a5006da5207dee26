#!/usr/bin/env bash
# Installs what `cargo build --features cuda` needs on a machine without a GPU or a CUDA installation, from
# NVIDIA's PyPI wheels: nvcc 13.0 (matching the GPU machine's CUDA 13.0 / driver 580: PTX from a newer nvcc can
# be rejected by an older driver), the runtime, cuBLAS, cuRAND and NVRTC, plus a link-time stub of the driver
# library (libcuda.so.1) that the real driver replaces at run time. Prints the environment to build with:
#   eval "$(scripts/gpu/toolkit.sh)" && cargo build --release --features cuda
# Destination: $1, default .cuda/ (ignored by git). Needs the project's venv (scripts/setup_venv.sh) for pip.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=$(realpath -m "${1:-$root/.cuda}")
venv=${BRIEF_VENV:-$root/.venv}
[ -x "$venv/bin/pip" ] || scripts/setup_venv.sh "$venv" >&2
cuda="$dest/wheels/nvidia/cu13"
if [ ! -x "$cuda/bin/nvcc" ]; then
    "$venv/bin/pip" install -q --target "$dest/wheels" \
        nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 \
        nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88 >&2
fi
# The linker wants unversioned names; the binary records the versioned sonames.
for lib in cudart cublas cublasLt curand nvrtc; do
    so=$(cd "$cuda/lib" && ls "lib$lib.so."* | grep -v alt | head -1)
    ln -sf "$so" "$cuda/lib/lib$lib.so"
done
# libcuda.so.1 comes with the driver, which this machine lacks: link against a stub exporting the driver API
# (every `cu*` entry point cudarc declares), each answering CUDA_ERROR_NO_DEVICE.
stub="$dest/stubs"
if [ ! -e "$stub/libcuda.so" ]; then
    mkdir -p "$stub"
    sys=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path "*cudarc-0.19.*/src/driver/sys/mod.rs" | head -1)
    [ -n "$sys" ] || { echo "cudarc's sources are missing: run cargo fetch first" >&2; exit 1; }
    grep -ho 'pub unsafe fn cu[A-Za-z0-9_]*' "$sys" | sed 's/pub unsafe fn //' | sort -u |
        awk '{print "int " $1 "(void) { return 100; }"}' > "$stub/libcuda.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so.1" "$stub/libcuda.c"
    ln -sf libcuda.so.1 "$stub/libcuda.so"
fi
cat <<ENV
export CUDA_HOME="$cuda"
export PATH="$cuda/bin:\$PATH"
export LIBRARY_PATH="$cuda/lib:$stub\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export NVCC_APPEND_FLAGS="-I$cuda/include/cccl\${NVCC_APPEND_FLAGS:+ \$NVCC_APPEND_FLAGS}"
ENV
