#!/usr/bin/env python3
"""Soak and overload tests of `brief serve` on loopback (standard library only).

soak:     mixed traffic for --minutes (translate, /v1 translate, summarize, briefs, cache hits and misses, invalid
          requests) from --workers client threads, the server's resident memory sampled every 5 s. Reports the
          first and last minute's memory, requests by status, and any 5xx other than 503.
overload: --workers concurrent clients far above the sustainable rate against a small --max-queue: the excess must
          get 503 with Retry-After while the latency of accepted requests stays bounded.

Usage: soak.py soak --brief BIN --model DIR --summary-model DIR [--minutes 10] [--workers 8] [--out DIR]
       soak.py overload --brief BIN --model DIR [--seconds 60] [--workers 64] [--max-queue 16] [--out DIR]
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()


def start_server(args, extra):
    cache = tempfile.mkdtemp(prefix="brief-soak-")
    cmd = [args.brief, "serve", "--bind", "127.0.0.1:0", "--model", args.model, "--cache-dir", cache] + extra
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    while True:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit("brief serve exited before listening")
        if line.startswith("brief listening on "):
            url = line.split()[-1].strip()
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    for _ in range(600):
        try:
            if urllib.request.urlopen(url + "/health", timeout=5).status == 200:
                return proc, url
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise SystemExit("brief serve did not become ready")


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def call(url, method="GET", body=None, content_type="application/json", timeout=120):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status, retry = r.status, r.headers.get("Retry-After")
    except urllib.error.HTTPError as e:
        e.read()
        status, retry = e.code, e.headers.get("Retry-After")
    return status, time.perf_counter() - started, retry


def sentences():
    lines = []
    for name in ("panl_news_test.id", "ntrex128.id"):
        lines += [l for l in (SHARED / "evaldata" / "mt" / name).read_text(encoding="utf-8").splitlines() if l.strip()]
    english = [l for l in (SHARED / "evaldata" / "mt" / "panl_news_test.en").read_text(encoding="utf-8").splitlines()
               if l.strip()]
    articles = [p.read_text(encoding="utf-8") for p in sorted((SHARED / "seeds").glob("*"))]
    return lines, english, articles


def soak(args):
    proc, url = start_server(args, ["--summary-model", args.summary_model, "--beams", "2", "--max-new-tokens", "16",
                                    "--summary-max-new-tokens", "16", "--max-body-bytes", "65536"])
    ids, english, articles = sentences()
    hot = ids[:200]  # a working set that is soon cached: hits
    stop = time.time() + args.minutes * 60
    counts, lock = {}, threading.Lock()

    def one(rng):
        r = rng.random()
        if r < 0.35:   # LibreTranslate, mostly cache hits
            return call(url + "/translate", "POST", {"q": rng.choice(hot), "source": "id", "target": "en"})
        if r < 0.50:   # misses: sentences with a fresh number in them
            q = f"{rng.choice(ids)} ({rng.randrange(10**9)})"
            return call(url + "/v1/translate", "POST", {"texts": [q, rng.choice(hot)]})
        if r < 0.60:
            return call(url + "/translate", "POST", {"q": f"<p>{rng.choice(hot)} <b>{rng.choice(hot)}</b></p>",
                                                       "source": "auto", "target": "en", "format": "html"})
        if r < 0.70:
            return call(url + "/v1/summarize", "POST", {"text": " ".join(rng.sample(english, 6))})
        if r < 0.74:
            return call(url + "/v1/briefs", "POST", {"text": rng.choice(articles)[:3000], "name": "soak.txt"})
        if r < 0.80:
            return call(url + rng.choice(["/v1/briefs", "/health", "/", "/languages", "/metrics"]))
        # Invalid requests: broken JSON, wrong fields and languages, oversized and unsupported bodies, no route.
        bad = rng.randrange(6)
        if bad == 0:
            return call(url + "/translate", "POST", b'{"q": "Halo', "application/json")
        if bad == 1:
            return call(url + "/translate", "POST", {"q": "Halo", "source": "id", "target": "fr"})
        if bad == 2:
            return call(url + "/v1/translate", "POST", {"texts": "not a list"})
        if bad == 3:
            return call(url + "/v1/translate", "POST", {"texts": ["x" * 70000]})
        if bad == 4:
            return call(url + "/translate", "POST", b"q=Halo", "text/plain")
        return call(url + "/v1/nothing")

    def worker(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            status, _, _ = one(rng)
            with lock:
                counts[status] = counts.get(status, 0) + 1

    samples = []
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
    started = time.time()
    for t in threads:
        t.start()
    while time.time() < stop:
        samples.append((round(time.time() - started, 1), rss_mib(proc.pid)))
        time.sleep(5)
    for t in threads:
        t.join()
    samples.append((round(time.time() - started, 1), rss_mib(proc.pid)))
    proc.terminate()
    proc.wait()
    first = [m for t, m in samples if t <= 60]
    last = [m for t, m in samples if t >= samples[-1][0] - 60]
    report = {
        "minutes": args.minutes, "workers": args.workers, "requests": sum(counts.values()),
        "by_status": dict(sorted(counts.items())),
        "server_errors": {s: n for s, n in counts.items() if s >= 500 and s != 503},
        "rss_first_minute_mib": {"mean": round(statistics.mean(first), 1), "max": round(max(first), 1)},
        "rss_last_minute_mib": {"mean": round(statistics.mean(last), 1), "max": round(max(last), 1)},
        "rss_samples": samples,
    }
    return report


def overload(args):
    proc, url = start_server(args, ["--no-summary", "--beams", "4", "--max-new-tokens", "48",
                                    "--max-queue", str(args.max_queue), "--no-cache"])
    ids, _, _ = sentences()
    stop = time.time() + args.seconds
    results, lock = [], threading.Lock()
    depth = []

    def worker(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            status, seconds, retry = call(url + "/translate", "POST",
                                          {"q": rng.choice(ids), "source": "id", "target": "en"})
            with lock:
                results.append((status, seconds, retry))
            if status == 503:
                time.sleep(0.05)  # a client that retries soon, not after Retry-After: pressure stays on

    def sample_depth():
        while time.time() < stop:
            try:
                text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
                depth.append(sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("brief_queue_depth")))
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(1)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
    threads.append(threading.Thread(target=sample_depth))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss = rss_mib(proc.pid)
    proc.terminate()
    proc.wait()
    ok = sorted(s for st, s, _ in results if st == 200)
    refused = [r for r in results if r[0] == 503]
    pct = lambda xs, p: round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else None
    return {
        "seconds": args.seconds, "workers": args.workers, "max_queue": args.max_queue,
        "by_status": {s: sum(1 for r in results if r[0] == s) for s in sorted({r[0] for r in results})},
        "accepted_per_s": round(len(ok) / args.seconds, 2),
        "accepted_latency_ms": {"p50": pct(ok, 0.5), "p95": pct(ok, 0.95), "p99": pct(ok, 0.99),
                                "max": pct(ok, 1.0)},
        "refused_with_retry_after": sum(1 for r in refused if r[2]),
        "refused_latency_ms_p99": pct(sorted(s for _, s, _ in refused), 0.99),
        "queue_depth_max": max(depth) if depth else None,
        "rss_after_mib": round(rss, 1),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["soak", "overload"])
    p.add_argument("--brief", default=str(ROOT / "target" / "release" / "brief"))
    p.add_argument("--model", required=True)
    p.add_argument("--summary-model")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=16)
    p.add_argument("--out", default=str(ROOT / "bench-out" / "soak"))
    args = p.parse_args()
    report = soak(args) if args.mode == "soak" else overload(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.mode}.json").write_text(json.dumps(report, indent=1))
    shown = {k: v for k, v in report.items() if k != "rss_samples"}
    print(json.dumps(shown, indent=1))


if __name__ == "__main__":
    main()
