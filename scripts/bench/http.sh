#!/usr/bin/env bash
# The HTTP path under load: `brief serve` (release build) with the opus-mt-id-en-shaped random model on loopback,
# driven by wrk with LibreTranslate-style requests of one real sentence each (../shared/evaldata/mt/*.id).
#   1. misses, 1 connection       (every sentence new: the latency of one request through the whole service)
#   2. misses, 32 connections     (dynamic batching merges concurrent requests)
#   3. hits, 32 connections       (the same sentences again: answered from the disk cache)
# Results: bench-out/http/results.md (wrk's latency distribution, requests/s, tokens generated from /metrics).
# Options (env): DURATION (s, default 30), BEAMS (4), MAX_NEW_TOKENS (48), PORT (18080).
# Needs wrk (Debian: apt-get install wrk) and the models of scripts/bench/run.sh (made on demand).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
duration=${DURATION:-30}
beams=${BEAMS:-4}
max_new=${MAX_NEW_TOKENS:-48}
port=${PORT:-18080}
out=bench-out/http
venv=${BRIEF_VENV:-$root/.venv}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ ! -d bench-out/models/opus-mt-id-en ]; then
    [ -x "$venv/bin/python" ] || scripts/setup_venv.sh "$venv"
    PYTHONWARNINGS=ignore "$venv/bin/python" scripts/bench/make_models.py bench-out/models
fi
cargo build --release --locked --bin brief
mkdir -p "$out"
rm -rf "$out/cache"

# One JSON body per line: every Indonesian sentence of evaldata once (6,000 lines; a 30 s run uses far fewer).
python3 - "$out/bodies.txt" <<'EOF'
import json, sys
from pathlib import Path
shared = Path("../shared/evaldata/mt")
lines = []
for name in ("panl_news_test.id", "panl_news_valid.id", "ntrex128.id", "nusax_test.id"):
    lines += [l.strip() for l in (shared / name).read_text(encoding="utf-8").splitlines() if l.strip()]
seen, bodies = set(), []
for l in lines:
    if l not in seen:
        seen.add(l)
        bodies.append(json.dumps({"q": l, "source": "id", "target": "en"}, ensure_ascii=False))
Path(sys.argv[1]).write_text("\n".join(bodies) + "\n", encoding="utf-8")
EOF
cat > "$out/requests.lua" <<EOF
-- Each request takes the next body; START and COUNT pick a window of the file (COUNT 0: the whole file).
local bodies = {}
for line in io.lines("$out/bodies.txt") do bodies[#bodies + 1] = line end
local start = tonumber(os.getenv("START") or "0")
local count = tonumber(os.getenv("COUNT") or "0")
if count == 0 then count = #bodies end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = bodies[start + (i % count) + 1]
  i = i + 1
  return wrk.format(nil, "/translate", nil, body)
end
EOF

RAYON_NUM_THREADS=2 target/release/brief serve --model bench-out/models/opus-mt-id-en --no-summary \
    --bind "127.0.0.1:$port" --cache-dir "$out/cache" --beams "$beams" --max-new-tokens "$max_new" \
    --batch-size 32 > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    curl -sf "127.0.0.1:$port/health" >/dev/null && break
    sleep 0.1
done
curl -sf "127.0.0.1:$port/health" >/dev/null || { cat "$out/serve.log"; exit 1; }

metric() { curl -s "127.0.0.1:$port/metrics" | awk -v m="$1" '$1 ~ "^"m {s += $2} END {print s + 0}'; }
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$server/status"; }
report="$out/results.md"
{
    echo "| scenario | connections | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | tokens/s generated | cache hits | RSS MiB after |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$report"
settle() { # until the model has finished what earlier scenarios left in flight (a batch takes < 8 s)
    local a b
    while true; do
        a=$(metric brief_tokens_generated_total); sleep 8; b=$(metric brief_tokens_generated_total)
        [ "$a" = "$b" ] && return
    done
}
run() { # name connections start count
    local tokens0 hits0 tokens1 hits1
    settle
    tokens0=$(metric brief_tokens_generated_total)
    hits0=$(metric brief_cache_hits_total)
    START=$3 COUNT=$4 wrk -t1 -c"$2" -d"${duration}s" --timeout 60s --latency -s "$out/requests.lua" \
        "http://127.0.0.1:$port" > "$out/$1.txt"
    tokens1=$(metric brief_tokens_generated_total)
    hits1=$(metric brief_cache_hits_total)
    python3 - "$out/$1.txt" "$1" "$2" "$((tokens1 - tokens0))" "$((hits1 - hits0))" "$duration" "$(rss)" >> "$report" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
name, conns, tokens, hits, duration, rss = sys.argv[2:]
print(f"| {name} | {conns} | {rps:.1f} | {ms(50):.1f} | {ms(90):.1f} | {ms(99):.1f} | "
      f"{bad.group(1) if bad else 0}{' (' + errors.group(1) + ')' if errors else ''} | "
      f"{int(float(tokens)) / float(duration):.0f} | {int(float(hits))} | {rss} |")
EOF
    tail -1 "$report"
}
total=$(wc -l < "$out/bodies.txt")
# Misses: disjoint windows of sentences never sent before (a window far larger than a run can use).
run misses-c1 1 0 1000
run misses-c32 32 1000 $((total - 1000))
# Hits: the first 64 sentences, all translated once beforehand (most already by the first run).
head -64 "$out/bodies.txt" | while read -r body; do
    curl -sf -o /dev/null "127.0.0.1:$port/translate" -H 'content-type: application/json' --data-binary "$body"
done
run hits-c32 32 0 64
echo "brief serve: beams $beams, max new tokens $max_new, ${duration}s per scenario, $(nproc) cores" >> "$report"
cat "$report"
