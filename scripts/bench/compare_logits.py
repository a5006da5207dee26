#!/usr/bin/env python3
"""brief's teacher-forced logits against the reference's, on a benchmark model (too large to be a test fixture).

For the first N sentences: the float64 reference's greedy outputs are fed back to transformers in float32 and
float64 and to brief (examples/logits); reported is the relative error (max |diff| / max |float64|) of each
float32 implementation against float64, and of brief against transformers float32. Where brief's error is of
the same size as transformers' own, token differences between them come from float32 rounding, not semantics.

Usage: compare_logits.py MODEL_DIR [--prefix 'summarize: '] [--input FILE] [--n 8] [--brief-examples DIR]
"""
import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--prefix", default="")
    p.add_argument("--input", default=str(SHARED / "evaldata" / "mt" / "panl_news_test.id"))
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--brief-examples", default=str(ROOT / "target" / "release" / "examples"))
    args = p.parse_args()
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(args.model)
    lines = [l for l in Path(args.input).read_text(encoding="utf-8").split("\n") if l.strip()][:args.n]
    enc = tok([args.prefix + l for l in lines], return_tensors="pt", padding=True)
    m64 = AutoModelForSeq2SeqLM.from_pretrained(args.model, dtype=torch.float64).eval()
    m32 = AutoModelForSeq2SeqLM.from_pretrained(args.model, dtype=torch.float32).eval()
    with torch.inference_mode():
        out = m64.generate(**enc, num_beams=1, do_sample=False, max_new_tokens=args.new_tokens,
                           min_new_tokens=args.new_tokens)
        dec = out[:, :-1].contiguous()
        l64 = m64(**enc, decoder_input_ids=dec).logits
        l32 = m32(**enc, decoder_input_ids=dec).logits.double()
    with tempfile.TemporaryDirectory() as tmp:
        ids, got = Path(tmp) / "ids.safetensors", Path(tmp) / "logits.safetensors"
        save_file({"input_ids": enc["input_ids"].to(torch.int64).contiguous(),
                   "decoder_input_ids": dec.to(torch.int64)}, str(ids))
        subprocess.run([str(Path(args.brief_examples) / "logits"), "--model", args.model, "--ids", str(ids),
                        "--out", str(got)], check=True)
        brief = load_file(str(got))["logits"].double()
    scale = l64.abs().max()
    rel = lambda a, b: ((a - b).abs().max() / scale).item()
    top1 = lambda a, b: (a.argmax(-1) == b.argmax(-1)).double().mean().item()
    print(json.dumps({
        "model": args.model, "sentences": len(lines), "steps": dec.shape[1],
        "transformers_f32_vs_f64": rel(l32, l64), "brief_f32_vs_f64": rel(brief, l64),
        "brief_vs_transformers_f32": rel(brief, l32),
        "next_token_agreement": {"transformers_f32_vs_f64": top1(l32, l64), "brief_f32_vs_f64": top1(brief, l64)},
    }, indent=1))


if __name__ == "__main__":
    main()
