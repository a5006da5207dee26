#!/usr/bin/env python3
"""How far transformers' own reduced precision moves from its f32 on the same weights, measured as
examples/precision measures brief's: each sentence's greedy f32 output is fed back (teacher forcing) to the f32
and the reduced model, and their logits compared (max |reduced - f32| over max |f32|, per sentence), with how often
the two pick the same next token. Tells a property of the weights (how much they amplify rounding) from a defect
of one implementation.

Usage: reference_precision.py --model DIR [--input FILE] [--n 8] [--new-tokens 16] [--prefix "summarize: "]
                              [--dtype bfloat16|float16] [--device cpu|cuda]
"""
import argparse
import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()  # read-only data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", default=str(SHARED / "evaldata" / "mt" / "panl_news_test.en"))
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(args.model)
    load = lambda dtype: AutoModelForSeq2SeqLM.from_pretrained(args.model, dtype=dtype).to(args.device).eval()
    full, reduced = load(torch.float32), load(getattr(torch, args.dtype))
    lines = [l for l in Path(args.input).read_text(encoding="utf-8").split("\n") if l.strip()][:args.n]
    relative, same, positions = [], 0, 0
    with torch.inference_mode():
        for line in lines:
            enc = tok([args.prefix + line], return_tensors="pt").to(args.device)
            out = full.generate(**enc, num_beams=1, do_sample=False, min_new_tokens=args.new_tokens,
                                max_new_tokens=args.new_tokens)
            decoder_ids = out[:, :-1]
            a = full(**enc, decoder_input_ids=decoder_ids).logits[0].float()
            b = reduced(**enc, decoder_input_ids=decoder_ids).logits[0].float()
            relative.append(((a - b).abs().max() / a.abs().max()).item())
            same += (a.argmax(-1) == b.argmax(-1)).sum().item()
            positions += a.shape[0]
    print(json.dumps({"system": "transformers", "precision": args.dtype, "sentences": len(lines),
                      "positions": positions, "logits_relative_error_mean": sum(relative) / len(relative),
                      "logits_relative_error_max": max(relative), "same_next_token": same / positions}))


if __name__ == "__main__":
    main()
