#!/usr/bin/env bash
# Arm (aarch64) under emulation: cross-builds brief, its kernel unit tests, the parity tests and the engine tests for
# aarch64-unknown-linux-gnu, runs the tests under qemu-user (token-exact parity with transformers, on the code an Arm
# user runs: the portable family and candle's NEON matmul), then checks that the aarch64 `brief translate` and
# `brief summarize` print byte for byte what this machine's binary prints with `--cpu-isa portable`, for f32, int8
# and bf16. Timings under emulation mean nothing, so none are taken.
#   scripts/arm_test.sh [path/to/host/brief]
# Needs rustup's aarch64 standard library (`rustup target add`; where it cannot be fetched, the script prints that
# it skipped the check and exits 0), and Debian's gcc-aarch64-linux-gnu and qemu-user-static (installed when
# missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
host=${1:-$root/target/debug/brief}
[ -x "$host" ] || { echo "arm_test.sh: $host is not built (cargo build first)" >&2; exit 2; }
target=aarch64-unknown-linux-gnu
cd "$root"

if ! rustup target list --installed | grep -qx "$target"; then
  if ! rustup target add "$target"; then
    echo "== arm: the $target standard library cannot be fetched here (rustup target add failed): skipped"
    exit 0
  fi
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "== installing gcc-aarch64-linux-gnu and qemu-user-static from Debian's packages"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross qemu-user-static >/dev/null
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
# Warnings in code compiled only for Arm (cfg'd out on x86) fail here, as clippy's -D warnings does on x86.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-D warnings"
tests=(--lib --test parity_marian --test parity_t5 --test engine)
echo "== arm: kernel, parity and engine tests, aarch64 under qemu"
# The integration tests make cargo build the binary too.
cargo test --locked --target "$target" "${tests[@]}"
arm=(qemu-aarch64-static -L /usr/aarch64-linux-gnu "target/$target/debug/brief")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -n 24 ../shared/evaldata/mt/panl_news_test.id >"$work/id.txt"
head -n 6 ../shared/evaldata/mt/panl_news_test.en >"$work/en.txt"
same() { # name, command...: the host (portable kernels) and aarch64 outputs of one command
  local name=$1; shift
  BRIEF_CPU_ISA=portable "$host" "$@" >"$work/$name.x86"
  "${arm[@]}" "$@" >"$work/$name.arm"
  if ! cmp -s "$work/$name.x86" "$work/$name.arm"; then
    echo "arm_test.sh: $name: aarch64 and x86 (portable) outputs differ:" >&2
    diff "$work/$name.x86" "$work/$name.arm" >&2 || true
    exit 1
  fi
  echo "$name: $(wc -l <"$work/$name.arm") lines, identical"
}
export HF_HUB_OFFLINE=1
for dtype in f32 int8 bf16; do
  same "translate-$dtype" translate --lines --no-cache --cache-dir "$work/cache" --model tests/fixtures/marian/tiny --beams 2 \
    --max-new-tokens 12 --dtype "$dtype" "$work/id.txt"
  same "summarize-$dtype" summarize --lines --no-cache --cache-dir "$work/cache" --summary-model tests/fixtures/t5/t5-v1_1 \
    --summary-beams 2 --summary-max-new-tokens 12 --dtype "$dtype" "$work/en.txt"
done
"${arm[@]}" models | grep -i 'kernel' || true
echo "== arm: passed"
