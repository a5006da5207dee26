#!/usr/bin/env bash
# Creates the Python reference environment (transformers + torch + sentencepiece + ctranslate2) used by the
# fixture generator and the benchmarks. CI does not need it. Usage: scripts/setup_venv.sh [VENV_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${BRIEF_VENV:-$here/.venv}}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$here/scripts/requirements.txt"
"$venv/bin/python" - <<'PY'
import torch, transformers, sentencepiece
print("torch", torch.__version__, "transformers", transformers.__version__, "sentencepiece", sentencepiece.__version__)
PY
echo "venv ready: $venv"
