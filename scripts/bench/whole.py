#!/usr/bin/env python3
"""Whole-process benchmark: brief and CTranslate2 (and, with --transformers, transformers) each translate the same
lines the way a user runs them, as a fresh OS process per run: start-up, model loading and weight packing included.

  brief         target/release/brief translate --lines --model M --beams 4 --max-new-tokens 48 --threads 2
                --batch-size 32 --dtype D --no-cache --cache-dir EMPTY_TMP < input > output
  CTranslate2   scripts/bench/ct2_translate.py (ctranslate2.Translator, intra_threads=2, sentencepiece, beam 4,
                max_decoding_length 48, max_batch_size 32 examples)
  transformers  scripts/bench/hf_translate.py (generate, num_beams 4, max_new_tokens 48, batches of 32)

Models: the random weights with opus-mt-id-en's shapes that make_models.py writes to bench-out/models (and their
CTranslate2 conversion). Input: the first --lines non-blank lines of ../shared/evaldata/mt/panl_news_test.id.
--family t5 runs the flan-t5-base-shaped model instead, on the English panl_news_test.en with the input prefix
"summarize: " (brief: --translate-prefix; CTranslate2: the model's tokenizer.json through `tokenizers`).
Runs alternate (A B C A B C ...) --repeat times; reported: the median wall time, every run's time, the peak RSS of
the process (wait4), the output's size in target.spm tokens and in words (random weights: the outputs are not
English, the counts show that the systems did similar work), the time ratios brief f32 / CT2 float32, brief
int8 / CT2 int8, brief bf16 / CT2 int8 (below 1: brief is faster) and the share of words brief has in common with
that peer. Every process gets 2 threads (OMP_NUM_THREADS,
RAYON_NUM_THREADS) and, with --isa, the variables of scripts/bench/isa.py. A failed run is reported with its exit
status and the end of its stderr; the script then exits with status 1. Timing only: nothing here asserts a speed.

Usage: whole.py [--family marian|t5] [--lines 256] [--repeat 3] [--brief-precisions f32 (or f32,bf16,int8)]
                [--ct2-precisions float32,int8] [--transformers] [--isa avx512|avx2-vnni|avx2|portable]
                [--out bench-out/whole] [--brief target/release/brief]
       (scripts/bench/run.sh --whole builds brief and the models first, then runs this)
Output: OUT/results.md, OUT/results.json, OUT/outputs/*.txt
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import isa as isa_env  # noqa: E402  (the --isa variables, shared with bench.py)

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()  # read-only data
HERE = Path(__file__).resolve().parent
THREADS = 2
BEAMS, MAX_NEW_TOKENS, BATCH = 4, 48, 32
# brief precision → the CTranslate2 compute type it is compared with
PEERS = {"f32": "float32", "int8": "int8", "bf16": "int8"}
# The model families: directory under --models, default input, input prefix.
FAMILIES = {
    "marian": ("opus-mt-id-en", SHARED / "evaldata" / "mt" / "panl_news_test.id", ""),
    "t5": ("flan-t5-base", SHARED / "evaldata" / "mt" / "panl_news_test.en", "summarize: "),
}


# ---- the commands ----------------------------------------------------------------------------------------------

def model_dir(args):
    return args.models / FAMILIES[args.family][0]


def brief_command(args, precision, cache_dir):
    prefix = FAMILIES[args.family][2]
    return [args.brief, "translate", "--lines", "--model", str(model_dir(args)),
            "--beams", str(BEAMS), "--max-new-tokens", str(MAX_NEW_TOKENS), "--threads", str(THREADS),
            "--batch-size", str(BATCH), "--dtype", precision, "--no-cache", "--cache-dir", cache_dir] + \
        (["--translate-prefix", prefix] if prefix else [])


def ct2_command(args, precision):
    prefix = FAMILIES[args.family][2]
    return [sys.executable, str(HERE / "ct2_translate.py"), f"{model_dir(args)}-ct2",
            "--tokenizer", str(model_dir(args)), "--compute-type", precision,
            "--beams", str(BEAMS), "--max-decoding-length", str(MAX_NEW_TOKENS), "--batch", str(BATCH),
            "--threads", str(THREADS)] + (["--hf-tokenizer"] if args.hf_tokenizer else []) + \
        (["--t5", "--prefix", prefix] if args.family == "t5" else [])


def hf_command(args, precision):
    return [sys.executable, str(HERE / "hf_translate.py"), str(model_dir(args)), "--dtype", precision,
            "--beams", str(BEAMS), "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch", str(BATCH),
            "--threads", str(THREADS)]


def configurations(args):
    """(system, precision) pairs in the order they run within one round."""
    runs = [("brief", p) for p in args.brief_precisions.split(",") if p]
    runs += [("ctranslate2", p) for p in args.ct2_precisions.split(",") if p]
    if args.transformers:
        runs += [("transformers", "float32")]
    return runs


def child_env(isa):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), RAYON_NUM_THREADS=str(THREADS), HF_HUB_OFFLINE="1",
               PYTHONWARNINGS="ignore", CT2_VERBOSE="1", TOKENIZERS_PARALLELISM="false")
    env.update(isa_env.env_for(isa))
    return env


# ---- one run ---------------------------------------------------------------------------------------------------

def run_once(cmd, input_path, output_path, env, timeout_s):
    """Runs `cmd` < input > output; returns wall seconds, peak RSS, exit status and the end of stderr."""
    with open(input_path, "rb") as stdin, open(output_path, "wb") as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, env=env)
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; tell Popen
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    return {"seconds": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "rc": proc.returncode, "stderr": err}


def measure(args, system, precision, round_no, input_path, env):
    """One timed run of (system, precision); brief gets an empty cache directory of its own."""
    output = args.out / "outputs" / f"{system}-{precision}-run{round_no}.txt"
    cache_dir = tempfile.mkdtemp(prefix="brief-whole-cache-")
    try:
        cmd = {"brief": lambda: brief_command(args, precision, cache_dir),
               "ctranslate2": lambda: ct2_command(args, precision),
               "transformers": lambda: hf_command(args, precision)}[system]()
        # brief logs the kernel family it runs at info ("CPU kernels cpu_isa=avx2 ..."): only that line is asked for.
        run_env = dict(env, BRIEF_CACHE_DIR=cache_dir, BRIEF_LOG="warn,brief::models::runtime=info")
        run = run_once(cmd, input_path, output, run_env, args.timeout)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    run["output"] = str(output)
    run["command"] = " ".join(cmd)
    if system == "ctranslate2":
        run["ct2"] = isa_env.ct2_reported(run["stderr"])
    if system == "brief":
        run["brief_isa"] = isa_env.brief_reported(run["stderr"])
    run["stderr_tail"] = run.pop("stderr")[-2000:] if run["rc"] != 0 else ""
    return run


def probe_backends(args, input_path, env):
    """What CTranslate2 and its MKL dispatch to under `env`: one untimed 2-token run with both logging it."""
    cmd = ct2_command(args, "int8") + ["--max-decoding-length", "2"]
    with open(input_path, "rb") as stdin:
        done = subprocess.run(cmd, stdin=stdin, capture_output=True, env=dict(env, MKL_VERBOSE="1"),
                              timeout=args.timeout)
    err, out = done.stderr.decode(errors="replace"), done.stdout.decode(errors="replace")  # MKL logs to stdout
    return dict(isa_env.ct2_reported(err), mkl=isa_env.mkl_reported(out))


def report_run(system, precision, round_no, run):
    if run["rc"] == 0:
        print(f"  run {round_no}: {system:<12} {precision:<9} {run['seconds']:7.2f} s  "
              f"peak {run['peak_rss_mib']:6.0f} MiB", flush=True)
    else:
        print(f"  run {round_no}: {system} {precision} FAILED (exit status {run['rc']}):\n"
              + "\n".join("      " + l for l in run["stderr_tail"].splitlines()[-25:]), file=sys.stderr, flush=True)


# ---- what came out ---------------------------------------------------------------------------------------------

def output_size(path, count_tokens):
    lines = Path(path).read_text(encoding="utf-8").split("\n")[:-1]
    return {"output_lines": len(lines), "output_tokens": sum(count_tokens(l) for l in lines if l.strip()),
            "output_words": sum(len(l.split()) for l in lines), "empty_lines": sum(not l.strip() for l in lines)}


def same_words(a_path, b_path):
    """Share of words equal position by position, over the longer line of each pair (1.0: the same output)."""
    a = Path(a_path).read_text(encoding="utf-8").split("\n")
    b = Path(b_path).read_text(encoding="utf-8").split("\n")
    pairs = [(x.split(), y.split()) for x, y in zip(a, b)]
    same = sum(sum(p == q for p, q in zip(x, y)) for x, y in pairs)
    return same / max(1, sum(max(len(x), len(y)) for x, y in pairs))


def summarize(system, precision, runs, count_tokens, isa):
    good = [r for r in runs if r["rc"] == 0]
    row = {"system": system, "precision": precision, "runs": runs, "failed": len(runs) - len(good),
           "isa": isa or "auto"}
    if system == "ctranslate2" and good and good[0]["ct2"].get("isa"):
        row["isa"] = good[0]["ct2"]["isa"]  # what CT2 says it selected
    if system == "brief" and good and good[0].get("brief_isa"):
        row["isa"] = good[0]["brief_isa"]  # what brief says it runs
    if good:
        row["median_s"] = statistics.median(r["seconds"] for r in good)
        row["runs_s"] = [round(r["seconds"], 2) for r in good]
        row["peak_rss_mib"] = max(r["peak_rss_mib"] for r in good)
        row.update(output_size(good[0]["output"], count_tokens))
        row["output"] = good[0]["output"]
    return row


def add_ratios(rows):
    """brief's time and peak memory over its CTranslate2 peer's (PEERS)."""
    for row in rows:
        peer = next((p for p in rows if p["system"] == "ctranslate2" and p["precision"] == PEERS.get(row["precision"])
                     and "median_s" in p), None)
        if row["system"] == "brief" and peer and "median_s" in row:
            row["vs"] = f"ctranslate2 {peer['precision']}"
            row["time_ratio"] = row["median_s"] / peer["median_s"]
            row["memory_ratio"] = row["peak_rss_mib"] / peer["peak_rss_mib"]
            row["same_words_as_peer"] = same_words(row["output"], peer["output"])


# ---- the report ------------------------------------------------------------------------------------------------

def machine():
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((l.split(":", 1)[1].strip() for l in info if l.startswith("model name")), platform.processor())
    flags = next((l for l in info if l.startswith("flags")), "")
    features = [f for f in ("avx2", "avx_vnni", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
                if f" {f}" in flags]
    try:
        import ctranslate2
        ct2 = ctranslate2.__version__
    except ImportError:
        ct2 = None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": THREADS, "features": features, "ctranslate2": ct2,
            "python": platform.python_version()}


def markdown(report):
    title = (f"# Whole-process {report['task']}, {report['model']} shapes (random weights): {report['lines']} lines, "
             f"beam {BEAMS}, ≤{MAX_NEW_TOKENS} new tokens, {THREADS} threads, ISA {report['isa']}")
    lines = [title, "",
             "| system | precision | ISA | lines | median s | runs s | peak MiB | output tokens | output words | "
             "ratio (s ÷ CT2 peer s) | same words as peer |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---|---:|"]
    for r in report["results"]:
        if "median_s" not in r:
            lines.append(f"| {r['system']} | {r['precision']} | {r['isa']} | {report['lines']} | failed "
                         f"(exit {r['runs'][0]['rc']}) | – | – | – | – | – | – |")
            continue
        ratio = f"{r['time_ratio']:.2f} (vs {r['vs']})" if "time_ratio" in r else "–"
        same = f"{100 * r['same_words_as_peer']:.0f}%" if "same_words_as_peer" in r else "–"
        lines.append(f"| {r['system']} | {r['precision']} | {r['isa']} | {report['lines']} | {r['median_s']:.2f} | "
                     f"{', '.join(f'{s:.2f}' for s in r['runs_s'])} | {r['peak_rss_mib']:.0f} | "
                     f"{r['output_tokens']} | {r['output_words']} | {ratio} | {same} |")
    lines += failures(report["results"])
    m = report["machine"]
    lines += ["", "Wall time of the whole process (start-up, loading, packing, translation, output); peak RSS from "
              f"wait4. Output tokens: the output text re-tokenized with {report['token_counter']}, the same count for every system. "
              "brief, as transformers, ends a segment that reaches the limit with the model's forced </s> "
              "(generation_config's forced_eos_token_id); CTranslate2 does not, so its lines that never stop are one "
              "token longer.",
              f"Machine: {m['cpu']}, {m['cores']} cores ({m['threads']} threads used), {' '.join(m['features'])}; "
              f"ctranslate2 {m['ctranslate2']}; {report['brief_version']}."]
    b = report.get("ct2_backends") or {}
    if b:
        mkl = b.get("mkl") or "not reported"
        lines.append(f"CTranslate2 selected ISA {b.get('isa')}; its MKL dispatches to: {mkl}.")
    lines.append(f"Command: `{report['command']}`")
    return "\n".join(lines) + "\n"


def failures(rows):
    """Markdown lines giving each failed run's command, exit status and the end of its stderr."""
    lines = []
    for r in rows:
        for run in (run for run in r["runs"] if run["rc"] != 0):
            tail = run["stderr_tail"].strip().splitlines()[-12:] or ["(nothing on stderr)"]
            lines += ["", f"**{r['system']} {r['precision']} failed** (exit status {run['rc']}): `{run['command']}`",
                      "```", *tail, "```"]
    return lines


# ---- the driver ------------------------------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=256, help="first N non-blank lines of the input")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each system (the median is reported)")
    parser.add_argument("--brief-precisions", default="f32", help="comma-separated --dtype values (f32,bf16,int8)")
    parser.add_argument("--ct2-precisions", default="float32,int8",
                        help="comma-separated compute types (int8_float32 is int8 on the CPU, spelt out)")
    parser.add_argument("--transformers", action="store_true", help="also transformers float32 (slow)")
    parser.add_argument("--hf-tokenizer", action="store_true",
                        help="CT2 tokenizes with transformers' MarianTokenizer instead of sentencepiece alone")
    parser.add_argument("--isa", choices=isa_env.NAMES, help="force this kernel family (default: each its best)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="marian",
                        help="marian: opus-mt-id-en translating; t5: flan-t5-base summarizing English")
    parser.add_argument("--input", help="default: panl_news_test.id (marian) or .en (t5) of ../shared/evaldata/mt")
    parser.add_argument("--models", type=Path, default=ROOT / "bench-out" / "models")
    parser.add_argument("--brief", default=str(ROOT / "target" / "release" / "brief"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "whole")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed")
    args = parser.parse_args()
    args.input = args.input or str(FAMILIES[args.family][1])
    if args.transformers and args.family != "marian":
        parser.error("--transformers runs the Marian model only")
    return args


def prepare(args):
    """Checks what the runs need; writes the input; returns its path."""
    isa_env.check(args.isa)
    needed = [Path(args.brief), model_dir(args) / ("target.spm" if args.family == "marian" else "tokenizer.json")]
    if args.ct2_precisions:
        needed.append(Path(f"{model_dir(args)}-ct2") / "model.bin")
    for path in needed:
        if not path.exists():
            raise SystemExit(f"{path} is missing (scripts/bench/run.sh --whole builds brief and the models)")
    (args.out / "outputs").mkdir(parents=True, exist_ok=True)
    lines = [l for l in Path(args.input).read_text(encoding="utf-8").split("\n") if l.strip()][:args.lines]
    input_path = args.out / "input.txt"
    input_path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return input_path, len(lines)


def token_counter(args):
    """(tokens of a line, what counts them): target.spm for Marian, the model's tokenizer.json for T5."""
    if args.family == "marian":
        import sentencepiece
        spm = sentencepiece.SentencePieceProcessor(model_file=str(model_dir(args) / "target.spm"))
        return (lambda line: len(spm.encode(line))), "target.spm"
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(model_dir(args) / "tokenizer.json"))
    return (lambda line: len(tok.encode(line, add_special_tokens=False).ids)), "the model's tokenizer.json"


def brief_version(path):
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        return version or f"{path} --version printed nothing"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"brief --version failed: {e}"


def main():
    args = parse_args()
    input_path, n = prepare(args)
    env = child_env(args.isa)
    runs = configurations(args)
    measured = {run: [] for run in runs}
    print(f"whole-process benchmark: {n} lines, {args.repeat} rounds, ISA {args.isa or 'auto'}", flush=True)
    for round_no in range(1, args.repeat + 1):
        for system, precision in runs:
            if any(r["rc"] != 0 for r in measured[(system, precision)]):
                continue  # it failed once: the next rounds would too
            run = measure(args, system, precision, round_no, input_path, env)
            report_run(system, precision, round_no, run)
            measured[(system, precision)].append(run)
    backends = probe_backends(args, input_path, env) if args.ct2_precisions else {}
    count_tokens, counter = token_counter(args)
    rows = [summarize(s, p, r, count_tokens, args.isa) for (s, p), r in measured.items()]
    add_ratios(rows)
    forced = {k: env[k] for k in isa_env.env_for("portable") if k in env}
    report = {"machine": machine(), "brief_version": brief_version(args.brief), "command": " ".join(sys.argv),
              "lines": n, "repeat": args.repeat, "family": args.family, "model": FAMILIES[args.family][0],
              "task": "translation" if args.family == "marian" else "summarization", "token_counter": counter, "isa": args.isa or "auto", "isa_env": forced,
              "ct2_backends": backends, "threads": THREADS,
              "beams": BEAMS, "max_new_tokens": MAX_NEW_TOKENS, "batch": BATCH, "results": rows}
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    (args.out / "results.md").write_text(markdown(report))
    print(markdown(report))
    failed = [f"{r['system']} {r['precision']}" for r in rows if r["failed"]]
    if failed:
        raise SystemExit(f"failed runs: {', '.join(failed)} (exit status and stderr above and in results.json)")


if __name__ == "__main__":
    main()
