#!/usr/bin/env bash
# Browser test of the reader pages: installs Debian's chromium when missing, makes briefs of the seed articles
# with `brief batch` and tiny fixture models, serves them with `brief serve` on loopback, and checks the pages in
# headless Chromium (scripts/browser/check.mjs): the reader and the translate page (/translate): DOM, layout on
# desktop and phone, escaping, errors shown, console errors, no outside requests. Screenshots go to
# target/browser-test/ (or $1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shots=${1:-$root/target/browser-test}
cd "$root"
# shellcheck source=lib/serve.sh
source scripts/lib/serve.sh

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}

if [ ! -d scripts/browser/node_modules/playwright-core ]; then
  (cd scripts/browser && npm ci --no-audit --no-fund --silent)
fi

# The test profile: `cargo test` has just built these dependencies, so nothing is compiled twice.
cargo build --locked --quiet --profile test
brief=$root/target/debug/brief
work=$(mktemp -d)
server_pid=""
keyed_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$keyed_pid" ] && kill "$keyed_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

models=(--model tests/fixtures/marian/tiny --summary-model tests/fixtures/t5/t5-v1_1
        --beams 2 --max-new-tokens 8 --summary-max-new-tokens 12 --summary-min-new-tokens 3)
export HF_HUB_OFFLINE=1 BRIEF_CACHE_DIR="$work/cache"

# Briefs made by the batch job...
"$brief" batch ../shared/seeds --out "$work/out" "${models[@]}" >/dev/null

# ...shown by the server, which also stores one made through the API, with markup in it.
serve_brief "$work/serve.log" "${models[@]}"
server_pid=$served_pid url=$served_url
curl -fsS "$url/v1/briefs" -H 'content-type: application/json' \
  -d '{"name": "<b>markup.txt", "text": "<script>window.__brief_pwned = true</script> Judul dengan markup\nIsi berita <b>tebal</b> & \"kutipan\".\n"}' \
  >/dev/null

# Sixty more through the API, for paging, search and the filters: four lines of real news each, from two outlets,
# published on different days.
python3 - "$work/sixty" <<'PY'
import json, os, sys
lines = [l.strip() for l in open("../shared/evaldata/mt/panl_news_test.id", encoding="utf-8") if l.strip()]
os.makedirs(sys.argv[1])
for i in range(60):
    body = {"name": f"berita-{i:02d}.txt", "text": "\n\n".join(lines[4 * i:4 * i + 4]) + "\n",
            "outlet": "Tempo" if i % 3 else "Kompas", "url": f"https://news.example/berita/{i}",
            "published_at": f"2024-05-{1 + i % 28:02d}"}
    json.dump(body, open(os.path.join(sys.argv[1], f"{i:02d}.json"), "w"))
PY
for f in "$work"/sixty/*.json; do
  curl -fsS -o /dev/null "$url/v1/briefs" -H 'content-type: application/json' --data-binary "@$f"
done

# A second server with a key and a character limit, for the translate page's key field and limit checks.
serve_brief "$work/serve-keyed.log" "${models[@]}" --api-key browser-test-key --char-limit 300 --cache-dir "$work/cache-keyed"
keyed_pid=$served_pid keyed=$served_url

node scripts/browser/check.mjs "$url" "$shots" "$keyed"
