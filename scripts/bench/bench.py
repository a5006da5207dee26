#!/usr/bin/env python3
"""Side-by-side benchmark of brief, transformers (PyTorch, CPU) and CTranslate2 on the same random weights.

Every configuration runs in its own process (so that its peak memory is its own), on the first N lines of
../shared/evaldata/mt/panl_news_test.id (or English references for T5), in consecutive batches, with every output
forced to exactly --new-tokens tokens (min = max), so that all systems do the same work. Reported: target
tokens/s, sentences/s, p50/p95 latency per sentence at batch 1, peak RSS, and token agreement with the reference
(transformers) where the weights are the same. --isa forces every worker onto one CPU kernel family (brief:
BRIEF_CPU_ISA, CTranslate2: CT2_FORCE_CPU_ISA, and their GEMM libraries: see scripts/bench/isa.py); the results
record it, with the ISA CTranslate2 reports it selected.

Usage: bench.py [--quick] [--isa avx512|avx2-vnni|avx2|portable] [--out bench-out]
       (scripts/bench/run.sh builds what it needs first)
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import isa as isa_env  # noqa: E402  (the --isa variables, shared with whole.py)

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()  # read-only data
THREADS = 2


# ---- workers (run in child processes) ------------------------------------------------------------------------

def lines_of(path, n):
    return [l for l in Path(path).read_text(encoding="utf-8").split("\n") if l.strip()][:n]


def worker_transformers(cfg):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    torch.set_num_threads(THREADS)
    device = cfg.get("device", "cpu")
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg["precision"]]
    started = time.perf_counter()
    model = AutoModelForSeq2SeqLM.from_pretrained(cfg["model"], dtype=dtype).to(device).eval()
    tok = AutoTokenizer.from_pretrained(cfg["model"])
    load_ms = (time.perf_counter() - started) * 1000
    lines = [cfg.get("prefix", "") + l for l in lines_of(cfg["input"], cfg["n"])]
    chunks = [tok(lines[i:i + cfg["batch"]], return_tensors="pt", padding=True).to(device)
              for i in range(0, len(lines), cfg["batch"])]

    def generate(enc):
        return model.generate(**enc, num_beams=cfg["beams"], do_sample=False, min_new_tokens=cfg["new_tokens"],
                              max_new_tokens=cfg["new_tokens"])

    outputs, batch_ms = [], []
    with torch.inference_mode():
        for enc in chunks[:cfg.get("warmup", 0)]:  # untimed, like brief's --warmup (a GPU's first launches)
            generate(enc)
        t0 = time.perf_counter()
        for enc in chunks:
            t = time.perf_counter()
            out = generate(enc).cpu()  # .cpu() waits for the GPU
            batch_ms.append((time.perf_counter() - t) * 1000)
            outputs += [row[1:].tolist() for row in out]
    seconds = time.perf_counter() - t0
    return finish(cfg, outputs, seconds, batch_ms, load_ms)


def worker_ctranslate2(cfg):
    import ctranslate2
    from transformers import AutoTokenizer

    started = time.perf_counter()
    translator = ctranslate2.Translator(cfg["ct2_model"], device="cpu", compute_type=cfg["precision"],
                                       inter_threads=1, intra_threads=THREADS)
    tok = AutoTokenizer.from_pretrained(cfg["model"])
    load_ms = (time.perf_counter() - started) * 1000
    lines = [cfg.get("prefix", "") + l for l in lines_of(cfg["input"], cfg["n"])]
    sources = [tok.convert_ids_to_tokens(tok(l)["input_ids"]) for l in lines]
    outputs, batch_ms = [], []
    t0 = time.perf_counter()
    for i in range(0, len(sources), cfg["batch"]):
        chunk = sources[i:i + cfg["batch"]]
        t = time.perf_counter()
        results = translator.translate_batch(chunk, beam_size=cfg["beams"], max_batch_size=cfg["batch"],
                                             min_decoding_length=cfg["new_tokens"],
                                             max_decoding_length=cfg["new_tokens"])
        batch_ms.append((time.perf_counter() - t) * 1000)
        outputs += [tok.convert_tokens_to_ids(r.hypotheses[0]) for r in results]
    seconds = time.perf_counter() - t0
    return finish(cfg, outputs, seconds, batch_ms, load_ms)


def finish(cfg, outputs, seconds, batch_ms, load_ms):
    if cfg.get("outputs"):
        Path(cfg["outputs"]).write_text("".join(json.dumps(o) + "\n" for o in outputs))
    tokens = sum(len(o) for o in outputs)
    return {"system": cfg["system"], "precision": cfg["precision"], "sentences": len(outputs), "tokens": tokens,
            "seconds": seconds, "load_ms": load_ms, "tokens_per_s": tokens / seconds,
            "sentences_per_s": len(outputs) / seconds, "batch_ms": batch_ms}


# ---- the driver ---------------------------------------------------------------------------------------------

def measure(cfg, brief_bin):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore",
               **isa_env.env_for(cfg.get("isa")))
    if cfg["system"] == "ctranslate2":
        env["CT2_VERBOSE"] = "1"  # it logs the ISA and GEMM backends it selected; recorded below
    if cfg["system"] == "brief":
        cmd = [str(brief_bin), "--model", cfg["model"], "--input", cfg["input"], "--n", str(cfg["n"]),
               "--batch", str(cfg["batch"]), "--beams", str(cfg["beams"]), "--new-tokens", str(cfg["new_tokens"]),
               "--precision", cfg["precision"], "--device", cfg.get("device", "cpu")]
        if cfg.get("prefix"):
            cmd += ["--prefix", cfg["prefix"]]
        if cfg.get("outputs"):
            cmd += ["--outputs", cfg["outputs"]]
        if cfg.get("warmup"):
            cmd += ["--warmup", str(cfg["warmup"])]
    else:
        cmd = [sys.executable, __file__, "--worker", json.dumps(cfg)]
    before = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    pid, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    if status != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["isa"] = cfg.get("isa") or "auto"
    if cfg["system"] == "ctranslate2":
        result["ct2"] = isa_env.ct2_reported(err)
        result["isa"] = result["ct2"].get("isa", result["isa"])  # what CT2 says it selected
    result["wall_s"] = time.perf_counter() - before
    result.update({k: cfg[k] for k in ("model_name", "beams", "batch", "new_tokens")})
    per_sentence = [ms / cfg["batch"] for ms in result.pop("batch_ms")]
    result["p50_ms"] = statistics.median(per_sentence)
    result["p95_ms"] = sorted(per_sentence)[min(len(per_sentence) - 1, int(0.95 * len(per_sentence)))]
    print(f"  {result['model_name']:<8} {result['system']:<12} {result['precision']:<13} beams {cfg['beams']} batch "
          f"{cfg['batch']:>2}: {result['tokens_per_s']:7.1f} tok/s, p50 {result['p50_ms']:7.1f} ms, "
          f"peak {result['peak_rss_mib']:6.0f} MiB", flush=True)
    return result


def agreement(a_path, b_path):
    a = [json.loads(l) for l in Path(a_path).read_text().splitlines()]
    b = [json.loads(l) for l in Path(b_path).read_text().splitlines()]
    same_seq = sum(x == y for x, y in zip(a, b))
    tokens = sum(min(len(x), len(y)) for x, y in zip(a, b))
    same_tok = sum(sum(p == q for p, q in zip(x, y)) for x, y in zip(a, b))
    return {"sequences_equal": same_seq / max(1, len(a)), "tokens_equal": same_tok / max(1, tokens)}


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    flags = next((l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")), "")
    features = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f" {f}" in flags]
    mem = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
    import torch
    import transformers
    try:
        import ctranslate2
        ct2 = ctranslate2.__version__
    except ImportError:
        ct2 = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": THREADS, "features": features, "memory_gib": round(mem / 2**20),
            "torch": torch.__version__, "transformers": transformers.__version__, "ctranslate2": ct2, "gpu": gpu}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    parser.add_argument("--out", default=str(ROOT / "bench-out"))
    parser.add_argument("--brief", default=str(ROOT / "target" / "release" / "examples" / "bench"))
    parser.add_argument("--quick", action="store_true", help="fewer sentences and configurations")
    parser.add_argument("--only", help="comma-separated systems (brief,transformers,ctranslate2)")
    parser.add_argument("--brief-precisions", default="f32", help="comma-separated brief precisions")
    parser.add_argument("--models", default="marian,t5")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration (the median is reported)")
    parser.add_argument("--isa", choices=isa_env.NAMES, help="force this CPU kernel family on every worker "
                        "(default: each system its best)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: brief and transformers on the GPU "
                        "(fp32 and fp16, beam 4, batch 64 and 1; brief precisions default to f32,f16)")
    args = parser.parse_args()
    if args.worker:
        cfg = json.loads(args.worker)
        fn = worker_transformers if cfg["system"] == "transformers" else worker_ctranslate2
        print(json.dumps(fn(cfg)))
        return

    isa_env.check(args.isa)
    out = Path(args.out)
    (out / "outputs").mkdir(parents=True, exist_ok=True)
    models = ROOT / "bench-out" / "models"  # where run.sh has make_models.py put them
    gpu = args.device != "cpu"
    # On a GPU, lent for minutes: 4 batches of 64 and 8 single sentences, after one untimed batch (its first
    # launches load kernels).
    n_big = 64 if args.quick else (256 if gpu else 500)
    n_one = 8 if args.quick or gpu else 40
    warmup = 1 if gpu else 0
    systems = args.only.split(",") if args.only else ["brief", "transformers"] + ([] if gpu else ["ctranslate2"])
    if gpu and args.brief_precisions == "f32":
        args.brief_precisions = "f32,f16"
    id_text = str(SHARED / "evaldata" / "mt" / "panl_news_test.id")
    en_text = str(SHARED / "evaldata" / "mt" / "panl_news_test.en")
    suites = {
        "marian": {"model": str(models / "opus-mt-id-en"), "ct2_model": str(models / "opus-mt-id-en-ct2"),
                   "input": id_text, "prefix": ""},
        "t5": {"model": str(models / "flan-t5-base"), "ct2_model": str(models / "flan-t5-base-ct2"),
               "input": en_text, "prefix": "summarize: "},
    }
    # How far brief's reduced precision moves from f32 (teacher-forced logits and next-token choice), first: on a
    # GPU lent for minutes, a run cut short still leaves these.
    precision_checks, failed_checks = reduced_precision(args, suites) if "brief" in systems else ([], [])
    runs_log = out / "runs.jsonl"  # every measurement as it is made, for runs cut short
    runs_log.write_text("")
    results = []
    for name in args.models.split(","):
        suite = suites[name]
        shapes = [(4, 32, n_big), (1, 32, n_big), (4, 1, n_one), (1, 1, n_one)]
        if gpu:
            shapes = [(4, 64, n_big), (4, 1, n_one)]
        elif name == "t5":
            # T5 is three times the size: fewer sentences, same shapes of work.
            shapes = [(4, 32, n_big // 4 if not args.quick else 32), (1, 32, n_big // 4 if not args.quick else 32),
                      (4, 1, n_one // 2), (1, 1, n_one // 2)]
        for beams, batch, n in shapes:
            runs = []
            if "transformers" in systems:
                runs += [("transformers", p) for p in (("float32", "float16") if gpu else ("float32",))]
            if "brief" in systems:
                runs += [("brief", p) for p in args.brief_precisions.split(",")]
            if "ctranslate2" in systems:
                runs += [("ctranslate2", p) for p in ("float32", "int8_float32", "int8")]
            # Repeats run interleaved (A B C A B C) and the median run by throughput is kept: this machine's speed
            # drifts by ±20% over minutes, which a single run would attribute to whichever system ran then.
            measured = {run: [] for run in runs}
            for _ in range(args.repeat):
                for system, precision in runs:
                    tag = f"{name}-{system}-{precision}-b{beams}-n{batch}"
                    cfg = dict(suite, system=system, precision=precision, beams=beams, batch=batch, n=n, device=args.device,
                               new_tokens=48, model_name=name, outputs=str(out / "outputs" / f"{tag}.jsonl"),
                               isa=args.isa, warmup=warmup)
                    measured[(system, precision)].append(measure(cfg, args.brief))
                    with runs_log.open("a") as f:
                        f.write(json.dumps(measured[(system, precision)][-1]) + "\n")
            for runs_of_one in measured.values():
                ranked = sorted(runs_of_one, key=lambda r: r["tokens_per_s"])
                median = dict(ranked[len(ranked) // 2])
                median["runs_tokens_per_s"] = [round(r["tokens_per_s"], 1) for r in runs_of_one]
                median["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs_of_one)
                results.append(median)
    # Agreement with the reference where the weights are the same.
    for r in results:
        ref = out / "outputs" / f"{r['model_name']}-transformers-float32-b{r['beams']}-n{r['batch']}.jsonl"
        mine = out / "outputs" / f"{r['model_name']}-{r['system']}-{r['precision']}-b{r['beams']}-n{r['batch']}.jsonl"
        if ref.exists() and mine.exists() and r["system"] != "transformers":
            r["agreement_with_transformers"] = agreement(ref, mine)
    # Token agreement of whole beam/greedy runs with f32 (same weights, same inputs).
    for check in precision_checks:
        name, precision = check["model_name"], check["precision"]
        for r in results:
            if r["model_name"] == name and r["system"] == "brief" and r["precision"] == precision:
                f32 = out / "outputs" / f"{name}-brief-f32-b{r['beams']}-n{r['batch']}.jsonl"
                mine = out / "outputs" / f"{name}-brief-{precision}-b{r['beams']}-n{r['batch']}.jsonl"
                if f32.exists():
                    check[f"tokens_equal_b{r['beams']}_n{r['batch']}"] = agreement(f32, mine)["tokens_equal"]
    report = {"machine": machine(), "command": " ".join(sys.argv), "isa": args.isa or "auto",
              "isa_env": isa_env.env_for(args.isa), "results": results, "precision": precision_checks}
    (out / "results.json").write_text(json.dumps(report, indent=1))
    (out / "results.md").write_text(markdown(report))
    print(markdown(report))
    if failed_checks:
        raise SystemExit(f"precision checks failed: {', '.join(failed_checks)} (their stderr is above)")


def reduced_precision(args, suites):
    """brief's reduced precisions against its f32: examples/precision for each model and precision. Returns the
    checks and the names of those that failed (reported, and the speed runs still made)."""
    checks, failed = [], []
    examples = Path(args.brief).parent
    for name in args.models.split(","):
        for precision in args.brief_precisions.split(","):
            if precision == "f32":
                continue
            suite = suites[name]
            cmd = [str(examples / "precision"), "--model", suite["model"], "--input", suite["input"],
                   "--n", "8" if args.quick else ("32" if args.device != "cpu" else "64"), "--precision", precision,
                   "--device", args.device]
            if suite["prefix"]:
                cmd += ["--prefix", suite["prefix"]]
            env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS), **isa_env.env_for(args.isa))
            run = subprocess.run(cmd, capture_output=True, env=env)
            if run.returncode != 0:
                # The head of stderr: the error, before any backtrace.
                print(f"  {name:<8} precision {precision:<5}: failed\n{run.stderr.decode()[:2000]}", flush=True)
                failed.append(f"{name} {precision}")
                continue
            check = json.loads(run.stdout)
            check["model_name"] = name
            print(f"  {name:<8} precision {precision:<5}: logits rel. error mean "
                  f"{check['logits_relative_error_mean']:.2e}, same next token {100 * check['same_next_token']:.1f}%",
                  flush=True)
            checks.append(check)
    return checks, failed


def markdown(report):
    rows = report["results"]
    lines = [f"# brief, transformers and CTranslate2 at engine level, ISA {report.get('isa', 'auto')}", "",
             "| model | system | precision | ISA | beams | batch | sentences | tok/s | sent/s | p50 ms | p95 ms | peak MiB | "
             "vs transformers | vs CT2 f32 | vs CT2 best | same tokens as transformers |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        peers = [p for p in rows if p["model_name"] == r["model_name"] and p["beams"] == r["beams"] and p["batch"] == r["batch"]]
        tf = next((p for p in peers if p["system"] == "transformers"), None)
        ct = next((p for p in peers if p["system"] == "ctranslate2" and p["precision"] == "float32"), None)
        best = max((p for p in peers if p["system"] == "ctranslate2"), key=lambda p: p["tokens_per_s"], default=None)
        ratio = lambda p: f"{r['tokens_per_s'] / p['tokens_per_s']:.2f}×" if p else "–"
        agree = r.get("agreement_with_transformers")
        same = f"{100 * agree['tokens_equal']:.1f}%" if agree else "–"
        lat = lambda v: f"{v:.1f}" if r["batch"] == 1 else "–"
        lines.append(f"| {r['model_name']} | {r['system']} | {r['precision']} | {r.get('isa', 'auto')} | {r['beams']} | {r['batch']} | {r['sentences']} | "
                     f"{r['tokens_per_s']:.1f} | {r['sentences_per_s']:.2f} | {lat(r['p50_ms'])} | {lat(r['p95_ms'])} | "
                     f"{r['peak_rss_mib']:.0f} | {ratio(tf)} | {ratio(ct)} | {ratio(best)} | {same} |")
    if report.get("precision"):
        lines += ["", "| model | precision | logits rel. error mean | max | same next token (teacher-forced) | "
                  "same tokens as brief f32 (runs) |", "|---|---|---:|---:|---:|---|"]
        for c in report["precision"]:
            runs = ", ".join(f"{k[len('tokens_equal_'):]}: {100 * v:.1f}%" for k, v in c.items()
                             if k.startswith("tokens_equal_"))
            lines.append(f"| {c['model_name']} | {c['precision']} | {c['logits_relative_error_mean']:.2e} | "
                         f"{c['logits_relative_error_max']:.2e} | {100 * c['same_next_token']:.1f}% | {runs} |")
    m = report["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores ({m['threads']} threads used), {m['memory_gib']} GiB, "
              f"{' '.join(m['features'])}{'; GPU ' + m['gpu'] if m.get('gpu') else ''}; torch {m['torch']}, "
              f"transformers {m['transformers']}, ctranslate2 {m['ctranslate2']}.", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
