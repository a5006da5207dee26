#!/usr/bin/env bash
# The Atom feed read by a real feed parser: builds brief (the test profile), serves the tiny fixture models on
# loopback, makes a few briefs through POST /v1/briefs (one with the article's outlet, address and date), and
# checks /feed.atom with Python's feedparser from PyPI (scripts/feed_check.py) against GET /v1/briefs/{id}.
# The venv is target/feed-venv (created once, reused while the pin below is installed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=lib/serve.sh
source scripts/lib/serve.sh
venv=$root/target/feed-venv
pin="feedparser==6.0.14"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ "$(cat "$venv/.feed-pin" 2>/dev/null)" != "$pin" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$pin"
  echo "$pin" >"$venv/.feed-pin"
fi

# The test profile: `cargo test` has just built these dependencies, so nothing is compiled twice.
cargo build --locked --quiet --profile test
brief=$root/target/debug/brief
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

models=(--model tests/fixtures/marian/tiny --summary-model tests/fixtures/t5/t5-v1_1
        --beams 2 --max-new-tokens 8 --summary-max-new-tokens 12 --summary-min-new-tokens 3)
export HF_HUB_OFFLINE=1
serve_brief "$work/serve.log" "${models[@]}" --cache-dir "$work/cache"
server_pid=$served_pid url=$served_url

post() {
  curl -sS -o "$work/answer.json" -w '%{http_code}' "$url/v1/briefs" -H 'content-type: application/json' -d "$1"
}
[ "$(post '{"name": "beras.txt", "text": "Harga beras naik\nHarga beras di pasar naik lagi minggu ini.\n"}')" = 201 ]
[ "$(post '{"name": "kereta.txt", "text": "Kereta <cepat> & \"baru\"\nKereta cepat mulai beroperasi hari ini.\n"}')" = 201 ]
meta='{"name": "banjir.txt", "text": "Banjir di Jakarta\nHujan deras membuat banjir di Jakarta.\n",
  "outlet": "Kompas", "url": "https://www.kompas.example/read/2026/11/23/banjir", "published_at": "2026-11-23T08:30:00+07:00"}'
status=$(post "$meta")
[ "$status" = 201 ] || { echo "POST /v1/briefs answered $status: $(cat "$work/answer.json")"; exit 1; }

"$venv/bin/python" scripts/feed_check.py "$url"
