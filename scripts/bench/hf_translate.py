#!/usr/bin/env python3
"""Translates stdin to stdout, one line per line, with transformers (PyTorch, CPU), as a transformers user does
(the whole-process benchmark, scripts/bench/whole.py --transformers, runs it as its own process).

Loads the model and its tokenizer, generates in consecutive batches of --batch lines with beam search, decodes
without special tokens. An empty line in gives an empty line out.

Usage: hf_translate.py HF_MODEL_DIR [--dtype float32] [--beams 4] [--max-new-tokens 48] [--batch 32]
                       [--threads 2] < in > out
"""
import argparse
import sys

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer


def translate(args, lines):
    torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model, dtype=dtype).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    todo = [i for i, line in enumerate(lines) if line.strip()]
    out = [""] * len(lines)
    with torch.inference_mode():
        for start in range(0, len(todo), args.batch):
            chunk = todo[start:start + args.batch]
            enc = tok([lines[i] for i in chunk], return_tensors="pt", padding=True)
            generated = model.generate(**enc, num_beams=args.beams, do_sample=False,
                                       max_new_tokens=args.max_new_tokens)
            for i, text in zip(chunk, tok.batch_decode(generated, skip_special_tokens=True)):
                out[i] = text
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the transformers model directory")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    lines = sys.stdin.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    sys.stdout.write("".join(line.replace("\n", " ") + "\n" for line in translate(args, lines)))


if __name__ == "__main__":
    main()
