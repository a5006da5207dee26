#!/usr/bin/env bash
# The real LibreTranslate client libraries (libretranslatepy, deep-translator; scripts/lt_clients.sh) against a
# `brief serve` on the tiny fixture model: starts the server on a free loopback port, writes what the server's own
# JSON /translate answers for each input (the expectation: every client must get exactly that), runs the clients,
# stops the server. Called by .ci/run after `cargo test` (which built target/debug/brief).
#   scripts/lt_clients_ci.sh [path/to/brief]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
brief=${1:-$root/target/debug/brief}
[ -x "$brief" ] || { echo "lt_clients_ci.sh: $brief is not built (cargo build first)" >&2; exit 2; }
work=$(mktemp -d)
log="$work/serve.log"
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

HF_HUB_OFFLINE=1 "$brief" serve --bind 127.0.0.1:0 --model "$root/tests/fixtures/marian/tiny" --no-summary \
  --beams 2 --max-new-tokens 8 --cache-dir "$work/cache" 2>"$log" &
pid=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's/^brief listening on \(http:[^ ]*\)$/\1/p' "$log" | head -1)
  if [ -n "$url" ] && curl -sf "$url/health" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "lt_clients_ci.sh: the server stopped:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
curl -sf "$url/health" >/dev/null || { echo "lt_clients_ci.sh: the server did not get ready" >&2; cat "$log" >&2; exit 1; }

# The expectation, from the plainest request (JSON, source id).
python3 - "$url" "$work/expect.json" <<'PY'
import json, sys, urllib.request
url, out = sys.argv[1], sys.argv[2]
texts = ["Apa kabar?", "Gempa mengguncang Sulawesi Tengah pada Senin pagi.", "Presiden meresmikan bendungan baru di Jawa Barat.",
         "Banjir merendam ratusan rumah di Jakarta & Bekasi (5/1)."]
expect = {}
for q in texts:
    body = json.dumps({"q": q, "source": "id", "target": "en"}).encode()
    req = urllib.request.Request(url + "/translate", data=body, headers={"Content-Type": "application/json"})
    expect[q] = json.load(urllib.request.urlopen(req, timeout=60))["translatedText"]
json.dump(expect, open(out, "w"), ensure_ascii=False, indent=1)
PY
python3 -c "import json,sys; e=json.load(open(sys.argv[1])); sys.exit(0 if sum(1 for v in e.values() if v) >= 3 else \"lt_clients_ci.sh: the tiny model gave fewer than 3 non-empty translations: \" + json.dumps(e))" "$work/expect.json"
"$root/scripts/lt_clients.sh" --url "$url" --expect "$work/expect.json"
