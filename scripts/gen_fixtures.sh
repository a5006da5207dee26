#!/usr/bin/env bash
# Regenerates the parity fixtures in tests/fixtures/ with the reference implementation (see gen_fixtures.py).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${BRIEF_VENV:-$here/.venv}
[ -x "$venv/bin/python" ] || "$here/scripts/setup_venv.sh" "$venv"
PYTHONWARNINGS=ignore exec "$venv/bin/python" "$here/scripts/gen_fixtures.py" "$@"
