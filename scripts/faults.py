#!/usr/bin/env python3
"""Fault tests of `brief serve` on loopback (standard library only): what happens to answers, `/health` and the
log when the disk under the cache fills up, when the cache file is damaged, and when model files are deleted or
truncated under a running server.

disk-full: the cache on a small tmpfs (needs root to mount it), filled up by another file while the server runs;
           then room again.
corrupt:   bytes of a stored translation changed inside the SQLite file (invisible to SQLite's own checks), then
           damaged pages; the server restarted on each.
models:    a copy of the model's weights truncated and its tokenizer and config deleted under a running server.

Usage: faults.py {disk-full,corrupt,models,all} --model DIR [--summary-model DIR] [--brief BIN] [--out DIR]
                 [--serve-arg=ARG ...]
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()
CACHE_FILE = "brief-cache.sqlite3"


class Server:
    """`brief serve` on a free port, its stderr kept."""

    def __init__(self, args, model, cache_dir, extra=()):
        cmd = [args.brief, "serve", "--bind", "127.0.0.1:0", "--model", str(model), "--cache-dir", str(cache_dir)]
        cmd += ["--summary-model", args.summary_model] if args.summary_model else ["--no-summary"]
        self.proc = subprocess.Popen(cmd + list(extra) + args.serve_arg, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, HF_HUB_OFFLINE="1"))
        self.log = []
        while True:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("brief serve exited before listening")
            if line.startswith("brief listening on "):
                self.url = line.split()[-1].strip()
                break
        threading.Thread(target=lambda: [self.log.append(l) for l in self.proc.stderr], daemon=True).start()
        for _ in range(1200):
            try:
                if urllib.request.urlopen(self.url + "/health", timeout=5).status == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise SystemExit("brief serve did not become ready")

    def call(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def translate(self, texts):
        status, body, _ = self.call("/v1/translate", {"texts": texts})
        if status != 200:
            return status, []
        return status, [(t["text"], t["cached"]) for t in json.loads(body)["translations"]]

    def health(self):
        status, body, _ = self.call("/health")
        return status, json.loads(body)

    def lines(self, needle):
        return [l.strip() for l in self.log if needle in l]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def sentences(n, start=0):
    path = SHARED / "evaldata" / "mt" / "panl_news_test.id"
    lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    return lines[start:start + n]


def translate_all(server, texts, chunk=10):
    """Translates `texts` in requests of `chunk`; returns the statuses and the (text, cached) pairs."""
    statuses, out = {}, []
    for i in range(0, len(texts), chunk):
        status, got = server.translate(texts[i:i + chunk])
        statuses[status] = statuses.get(status, 0) + 1
        out += got
    return statuses, out


def disk_full(args):
    mount = Path(tempfile.mkdtemp(prefix="brief-full-"))
    size_mb = 4
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)]).returncode != 0:
        raise SystemExit("disk-full needs root to mount a small tmpfs")
    try:
        server = Server(args, args.model, mount / "cache")
        stored = sentences(40)
        _, first = translate_all(server, stored)
        filler = mount / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                full_error = str(e)
        fresh = sentences(200, start=1000)
        started = time.perf_counter()
        statuses, answers = translate_all(server, fresh)
        seconds = time.perf_counter() - started
        again_statuses, again = translate_all(server, stored)
        health_full = server.health()
        status_brief, _, headers = server.call("/v1/briefs", {"text": "\n\n".join(sentences(6, start=300)),
                                                             "name": "full.txt"})
        filler.unlink()
        after_statuses, _ = translate_all(server, sentences(20, start=1300))
        health_after = server.health()
        report = {
            "tmpfs_mb": size_mb,
            "filler_stopped_by": full_error,
            "fresh_requests_while_full": statuses,
            "fresh_sentences_answered": sum(1 for t, _ in answers if t is not None),
            "seconds_for_200_fresh_sentences": round(seconds, 2),
            "stored_sentences_served_from_cache_while_full": sum(1 for (t, c), (t0, _) in zip(again, first)
                                                                  if c and t == t0),
            "stored_requests_while_full": again_statuses,
            "health_while_full": {"http": health_full[0], "status": health_full[1]["status"],
                                  "cache": health_full[1]["checks"]["cache"]},
            "brief_while_full": {"http": status_brief, "location": headers.get("location")},
            "requests_after_room_again": after_statuses,
            "health_after": {"http": health_after[0], "status": health_after[1]["status"]},
            "log": server.lines("cache writes"),
        }
        server.stop()
        return report
    finally:
        subprocess.run(["umount", str(mount)])


def corrupt(args):
    cache = Path(tempfile.mkdtemp(prefix="brief-corrupt-"))
    texts = sentences(100, start=500)
    server = Server(args, args.model, cache)
    _, first = translate_all(server, texts)
    server.stop()
    db = sqlite3.connect(cache / CACHE_FILE)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file, where the bytes are changed
    db.close()

    # One byte of one stored translation, changed in the file itself. A row's columns lie one after another in
    # the file, so the input followed by the output is found once; the byte flipped is in the middle of the output.
    db_path = cache / CACHE_FILE
    data = bytearray(db_path.read_bytes())
    rows = sqlite3.connect(db_path).execute("SELECT input, output FROM entries").fetchall()
    victim, output = next((i, o) for i, o in rows if len(o) >= 8 and data.count((i + o).encode()) == 1)
    at = data.find((victim + output).encode()) + len(victim.encode())
    flip = at + len(output.encode()) // 2
    data[flip] ^= 0x01
    db_path.write_bytes(bytes(data))
    integrity = sqlite3.connect(db_path).execute("PRAGMA integrity_check").fetchone()[0]
    check = subprocess.run([args.brief, "cache", "--cache-dir", str(cache), "check"], capture_output=True, text=True)

    server = Server(args, args.model, cache)
    statuses, again = translate_all(server, texts)
    served_from_cache = sum(1 for _, c in again if c)
    identical = sum(1 for (t, _), (t0, _) in zip(again, first) if t == t0)
    status, metrics, _ = server.call("/metrics")
    corrupt_metric = [l for l in metrics.decode().splitlines() if l.startswith("brief_cache_corrupt_total")]
    health = server.health()[1]
    byte_flip = {
        "sqlite_integrity_check_after_the_flip": integrity,
        "brief_cache_check": {"exit": check.returncode, "stdout": check.stdout.strip().splitlines(),
                              "stderr": check.stderr.strip()},
        "requests": statuses,
        "sentences": len(texts),
        "served_from_cache": served_from_cache,
        "identical_to_before": identical,
        "metric": corrupt_metric,
        "health": {"status": health["status"], "corrupt_dropped": health["checks"]["cache"]["corrupt_dropped"]},
        "log": server.lines("checksum"),
    }
    server.stop()
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()

    # Damaged pages: 16 KiB of the file overwritten in the middle.
    data = bytearray(db_path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle:middle + 16384] = b"\xa5" * 16384
    db_path.write_bytes(bytes(data))
    started = time.perf_counter()
    server = Server(args, args.model, cache)
    ready_seconds = time.perf_counter() - started
    statuses, third = translate_all(server, texts)
    health = server.health()[1]
    pages = {
        "file_bytes": len(data),
        "overwritten": f"{middle}..{middle + 16384}",
        "seconds_to_ready": round(ready_seconds, 2),
        "health": {"status": health["status"], "quarantined": health["checks"]["cache"]["quarantined"]},
        "requests": statuses,
        "identical_to_before": sum(1 for (t, _), (t0, _) in zip(third, first) if t == t0),
        "log": server.lines("damaged"),
    }
    server.stop()
    shutil.rmtree(cache)
    return {"byte_flip": byte_flip, "damaged_pages": pages}


def models(args):
    work = Path(tempfile.mkdtemp(prefix="brief-models-"))
    model = work / "model"
    shutil.copytree(args.model, model)
    texts = sentences(30, start=1400)
    server = Server(args, model, work / "cache", ["--no-cache", "--watch-interval-secs", "2"])
    _, before = translate_all(server, texts)
    weights = next(p for p in (model / "model.safetensors", model / "pytorch_model.bin") if p.exists())
    size = weights.stat().st_size
    os.truncate(weights, size // 2)
    (model / "source.spm").unlink()
    (model / "config.json").unlink()
    time.sleep(3)
    logged_by_watcher = server.lines("model files changed")
    statuses, after = translate_all(server, texts)
    health = server.health()
    report = {
        "weights": f"{weights.name}: {size} -> {size // 2} bytes; source.spm and config.json deleted",
        "requests_after": statuses,
        "identical_answers": f"{sum(1 for a, b in zip(after, before) if a[0] == b[0])} of {len(texts)}",
        "health": {"http": health[0], "status": health[1]["status"],
                   "model_files": health[1]["checks"]["model_files"]},
        "log_within_3_s": logged_by_watcher,
    }
    server.stop()
    restart = subprocess.run([args.brief, "translate", "--model", str(model), "--no-cache"], input="Halo.",
                             capture_output=True, text=True, timeout=120)
    report["restart_on_the_damaged_files"] = {"exit": restart.returncode, "stderr": restart.stderr.strip()[-300:]}
    shutil.rmtree(work)
    return report


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["disk-full", "corrupt", "models", "all"])
    p.add_argument("--brief", default=str(ROOT / "target" / "release" / "brief"))
    p.add_argument("--model", required=True)
    p.add_argument("--summary-model")
    p.add_argument("--out", default=str(ROOT / "bench-out" / "faults"))
    p.add_argument("--serve-arg", action="append", default=[], help="one more `brief serve` argument (repeatable)")
    args = p.parse_args()
    modes = {"disk-full": disk_full, "corrupt": corrupt, "models": models}
    chosen = list(modes) if args.mode == "all" else [args.mode]
    report = {m: modes[m](args) for m in chosen}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.mode}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
