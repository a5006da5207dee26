#!/usr/bin/env bash
# Runs real Python LibreTranslate clients (libretranslatepy, deep-translator) against a running `brief serve` and
# checks their answers: scripts/lt_clients.py does the checks, this script makes its environment.
#
# Usage: scripts/lt_clients.sh --url http://127.0.0.1:PORT --expect EXPECT.json [lt_clients.py options]
#   EXPECT.json: a JSON object mapping Indonesian inputs to the exact English the server gives.
#
# The venv is ${BRIEF_CLIENT_VENV:-target/lt-clients-venv} (created once, reused while the pins below are
# unchanged); ${PYTHON:-python3} makes it and must be 3.10 or newer (libretranslatepy 2.1.4 uses `str | None`
# annotations). Installing needs the package index once; the checks themselves only talk to loopback.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${BRIEF_CLIENT_VENV:-$root/target/lt-clients-venv}
python=${PYTHON:-python3}

# The current releases on PyPI. Their request shapes are described in lt_clients.py.
pins=(
  "libretranslatepy==2.1.4"
  "deep-translator==1.11.4"
)

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "lt_clients.sh: $python is $("$python" --version 2>&1); Python 3.10 or newer is needed (set PYTHON)" >&2
    exit 2
  fi
  "$python" -m venv "$venv"
fi

stamp="$venv/.lt-clients-pins"
want=$(printf '%s\n' "${pins[@]}")
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
  printf '%s\n' "$want" > "$stamp"
fi

"$venv/bin/python" -c 'import libretranslatepy, deep_translator' || {
  echo "lt_clients.sh: the clients do not import in $venv; remove it to rebuild" >&2
  exit 2
}

exec "$venv/bin/python" "$root/scripts/lt_clients.py" "$@"
