#!/usr/bin/env python3
"""The cluster test: a real redis-server, three `brief serve` replicas on the tiny fixture models sharing it
(`--store redis://...`), and nginx in front of them, all on loopback. Run by scripts/cluster_test.sh (which
.ci/run calls); prints one line with a figure per check and exits non-zero when one fails.

Checks:
  1. a sentence translated through replica A is a cache hit on replica B;
  2. a brief made through one replica is listed and served by every replica (API and reader page);
  3. a key limited to N requests a minute gets exactly N through nginx, whichever replicas answer;
  4. redis stopped during a load of requests: zero 5xx, /health degraded, and recovery once it is back;
  5. a replica killed during a load: nginx routes around it (zero failed requests) and no stored brief is lost;
  6. `brief batch --server` through nginx gives the same briefs as a local `brief batch`.

Usage: cluster_test.py --brief target/debug/brief [--replicas 3] [--keep]
"""
import argparse
import concurrent.futures as futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEEDS = ROOT.parent / "shared" / "seeds"
# The same quick searches as the Rust tests' servers (tests/common/server.rs).
SEARCH = ["--beams", "2", "--max-new-tokens", "8", "--summary-max-new-tokens", "10", "--summary-min-new-tokens", "2"]
MODELS = ["--model", str(FIXTURES / "marian" / "tiny"), "--summary-model", str(FIXTURES / "t5" / "t5-v1_1")]
RATE_LIMITED_KEY, RATE_LIMIT = "cluster-limited-3b9e", 7

failures = []


def report(ok, name, figure):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {figure}", flush=True)
    if not ok:
        failures.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None, timeout=60):
    """(status, parsed JSON or text, headers) for any status; (0, error text, {}) when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            raw, status, head = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, head = e.read(), e.code, dict(e.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout) as e:
        return 0, str(e), {}
    try:
        return status, json.loads(raw), head
    except ValueError:
        return status, raw.decode(errors="replace"), head


def wait_until(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    raise SystemExit(f"cluster test: {what} within {seconds} s")


class Cluster:
    def __init__(self, brief, replicas, work):
        self.brief, self.work, self.n = brief, work, replicas
        self.redis_port = free_port()
        self.redis = None
        self.replicas = {}  # index -> (process, url, log path)
        self.nginx = None
        self.lb = None
        keys = work / "keys.txt"
        keys.write_text(f"{RATE_LIMITED_KEY} requests_per_minute={RATE_LIMIT}\ncluster-open-51ac\n")
        self.keys = keys

    def start_redis(self):
        data = self.work / "redis"
        data.mkdir(exist_ok=True)
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(data), "--appendonly", "yes", "--appendfsync", "always",
             "--maxmemory-policy", "volatile-lru"],
            stdout=open(self.work / "redis.log", "ab"), stderr=subprocess.STDOUT)
        wait_until(lambda: self.redis_ping(), 10, "redis-server did not answer")

    def redis_ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop_redis(self):
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()

    def store_url(self):
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_replica(self, i):
        port = free_port()
        log = self.work / f"replica-{i}.log"
        args = [self.brief, "serve", "--bind", f"127.0.0.1:{port}", *MODELS, *SEARCH,
                "--cache-dir", str(self.work / f"cache-{i}"), "--store", self.store_url(),
                "--store-prefix", "cluster-test:", "--api-keys", str(self.keys),
                "--rate-requests-per-minute", "0", "--rate-chars-per-minute", "0"]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
                                   env=dict(os.environ, HF_HUB_OFFLINE="1"))
        url = f"http://127.0.0.1:{port}"
        self.replicas[i] = (process, url, log)
        return url

    def ready(self, url):
        status, body, _ = call("GET", url + "/health", timeout=5)
        return status == 200 and isinstance(body, dict) and body.get("status") == "ready"

    def start_nginx(self):
        port = free_port()
        conf = self.work / "nginx.conf"
        upstream = "\n".join(f"    server {u.removeprefix('http://')} max_fails=1 fail_timeout=2s;"
                             for _, u, _ in self.replicas.values())
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(f"""{user}worker_processes 1;
pid {self.work}/nginx.pid;
error_log {self.work}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {self.work}/nginx-access.log;
  client_body_temp_path {self.work}/nginx-body;
  proxy_temp_path {self.work}/nginx-proxy;
  fastcgi_temp_path {self.work}/nginx-fastcgi;
  uwsgi_temp_path {self.work}/nginx-uwsgi;
  scgi_temp_path {self.work}/nginx-scgi;
  client_max_body_size 2m;
  upstream brief {{
{upstream}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://brief;
      proxy_http_version 1.1;
      proxy_set_header Host $host:$server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error timeout http_502 non_idempotent;
      proxy_connect_timeout 2s;
      proxy_read_timeout 120s;
    }}
  }}
}}
""")
        self.nginx = subprocess.Popen(["nginx", "-p", str(self.work), "-c", str(conf), "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=open(self.work / "nginx.out", "ab"))
        self.lb = f"http://127.0.0.1:{port}"
        wait_until(lambda: call("GET", self.lb + "/languages", timeout=2)[0] == 200, 20, "nginx did not answer")

    def stop(self):
        for process, _, _ in self.replicas.values():
            if process.poll() is None:
                process.terminate()
        for p in [self.nginx, self.redis]:
            if p and p.poll() is None:
                p.terminate()
        for process, _, _ in self.replicas.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def auth(key="cluster-open-51ac"):
    return {"Authorization": f"Bearer {key}"}


def check_cache_across_replicas(c):
    (_, a, _), (_, b, _) = c.replicas[0], c.replicas[1]
    text = f"Harga beras naik lagi di pasar {time.time_ns()}."
    first = call("POST", a + "/v1/translate", {"texts": [text]}, auth())
    second = call("POST", b + "/v1/translate", {"texts": [text]}, auth())
    ok = first[0] == 200 and second[0] == 200 and not first[1]["translations"][0]["cached"] \
        and second[1]["translations"][0]["cached"] and first[1]["translations"][0]["text"] == second[1]["translations"][0]["text"]
    report(ok, "a sentence translated by replica A is a cache hit on replica B",
           f"A cached={first[1]['translations'][0]['cached'] if first[0] == 200 else first}, "
           f"B cached={second[1]['translations'][0]['cached'] if second[0] == 200 else second}")


def make_brief(url, name, text):
    status, body, head = call("POST", url + "/v1/briefs", {"text": text, "name": name}, auth())
    return status, body, head


def check_briefs_everywhere(c):
    text = (SEEDS / sorted(os.listdir(SEEDS))[0]).read_text()
    status, brief, head = make_brief(c.replicas[2][1], "seed.txt", text)
    seen = []
    for i, (_, url, _) in c.replicas.items():
        listed = call("GET", url + "/v1/briefs", headers=auth())
        page = call("GET", url + f"/briefs/{brief.get('id')}", timeout=10)
        ids = [b["id"] for b in listed[1]["briefs"]] if listed[0] == 200 else []
        seen.append(brief.get("id") in ids and page[0] == 200 and brief["headline"]["english"] in str(page[1]))
    report(status == 201 and all(seen), "a brief made by one replica is listed and served by every replica",
           f"status {status}, listed and served by {sum(seen)} of {len(seen)} replicas")
    return brief.get("id")


def check_rate_limit(c):
    body = {"q": "Halo", "source": "id", "target": "en"}
    statuses = [call("POST", c.lb + "/translate", body, auth(RATE_LIMITED_KEY))[0] for _ in range(3 * RATE_LIMIT)]
    granted, limited = statuses.count(200), statuses.count(429)
    report(granted == RATE_LIMIT and limited == 2 * RATE_LIMIT,
           f"a key limited to {RATE_LIMIT} requests a minute gets exactly {RATE_LIMIT} through nginx",
           f"{granted} answered, {limited} refused with 429 of {len(statuses)} (other: {len(statuses) - granted - limited})")


def load(url, n, texts_of, path="/v1/translate", threads=8):
    def one(k):
        return call("POST", url + path, {"texts": texts_of(k)}, auth())[0]
    with futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def check_redis_outage(c):
    statuses = []
    with futures.ThreadPoolExecutor(1) as background:
        running = background.submit(load, c.lb, 60, lambda k: [f"Banjir merendam rumah nomor {k} di Bekasi."])
        time.sleep(0.3)
        c.stop_redis()
        time.sleep(1.0)
        degraded = [call("GET", u + "/health")[1].get("status") for _, u, _ in c.replicas.values()]
        statuses = running.result()
    more = load(c.lb, 20, lambda k: [f"Gempa mengguncang Sulawesi {k}."])
    c.start_redis()
    recovered = wait_until(lambda: all(c.ready(u) for _, u, _ in c.replicas.values()), 30, "the replicas did not recover")
    text = f"Kereta cepat beroperasi {time.time_ns()}."
    first = call("POST", c.replicas[0][1] + "/v1/translate", {"texts": [text]}, auth())
    again = call("POST", c.replicas[1][1] + "/v1/translate", {"texts": [text]}, auth())
    writes_back = again[0] == 200 and again[1]["translations"][0]["cached"]
    five = sum(1 for s in statuses + more if s >= 500 or s == 0)
    report(five == 0 and all(d == "degraded" for d in degraded) and recovered and writes_back,
           "redis stopped under load: no 5xx, degraded, recovered",
           f"{len(statuses) + len(more)} requests, {five} 5xx; health during the outage {degraded}; "
           f"after restart all ready, a new sentence shared again: {writes_back}")


def check_replica_killed(c, earlier_brief):
    text = (SEEDS / sorted(os.listdir(SEEDS))[1]).read_text()
    with futures.ThreadPoolExecutor(1) as background:
        running = background.submit(load, c.lb, 60, lambda k: [f"Pemerintah menaikkan harga {k}."])
        time.sleep(0.3)
        victim, _, _ = c.replicas[1]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        statuses = running.result()
    status, brief, _ = make_brief(c.lb, "after-kill.txt", text)
    listed = call("GET", c.lb + "/v1/briefs", headers=auth())
    ids = {b["id"] for b in listed[1]["briefs"]} if listed[0] == 200 else set()
    failed = sum(1 for s in statuses if s != 200)
    report(failed == 0 and status == 201 and {earlier_brief, brief.get("id")} <= ids,
           "a replica killed under load: nginx routes around it, no brief lost",
           f"{len(statuses)} requests, {failed} failed; briefs listed {len(ids)}, the earlier and the new one among them: "
           f"{ {earlier_brief, brief.get('id')} <= ids}")


def comparable(brief):
    """A brief without what differs between two runs by nature (timings)."""
    brief = dict(brief)
    brief.pop("timings", None)
    brief.pop("created_at", None)
    return brief


def check_batch_server(c, brief_bin):
    articles = c.work / "articles"
    shutil.copytree(SEEDS, articles)
    local, remote = c.work / "batch-local", c.work / "batch-remote"
    common = ["--beams", "2", "--max-new-tokens", "8", "--summary-max-new-tokens", "10", "--summary-min-new-tokens", "2"]
    subprocess.run([brief_bin, "batch", str(articles), "--out", str(local), *MODELS, *common,
                    "--cache-dir", str(c.work / "cache-local")], check=True, capture_output=True,
                   env=dict(os.environ, HF_HUB_OFFLINE="1"))
    done = subprocess.run([brief_bin, "batch", str(articles), "--out", str(remote), "--server", c.lb,
                           "--api-key", "cluster-open-51ac", *common], capture_output=True, text=True)
    names = sorted(p.name for p in local.glob("*.json") if p.name != "index.json")
    same = []
    for name in names:
        a, b = local / name, remote / name
        same.append(b.exists() and comparable(json.loads(a.read_text())) == comparable(json.loads(b.read_text())))
    report(done.returncode == 0 and names and all(same), "brief batch --server through nginx equals a local batch",
           f"exit {done.returncode}; {sum(same)} of {len(names)} briefs the same" + (f"; {done.stderr[-300:]}" if done.returncode else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brief", default=str(ROOT / "target" / "debug" / "brief"))
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="brief-cluster-"))
    os.chmod(work, 0o755)
    cluster = Cluster(args.brief, args.replicas, work)
    try:
        cluster.start_redis()
        for i in range(args.replicas):
            cluster.start_replica(i)
        wait_until(lambda: all(cluster.ready(u) for _, u, _ in cluster.replicas.values()), 120, "the replicas did not load")
        cluster.start_nginx()
        check_cache_across_replicas(cluster)
        brief_id = check_briefs_everywhere(cluster)
        check_rate_limit(cluster)
        check_redis_outage(cluster)
        check_replica_killed(cluster, brief_id)
        check_batch_server(cluster, args.brief)
    finally:
        cluster.stop()
        if failures or args.keep:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{6 - len(failures)} of 6 checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
