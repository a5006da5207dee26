#!/usr/bin/env python3
"""Writes tests/fixtures/align/marian.json: the reference's teacher-forced cross-attention for a few (Indonesian,
English) pairs on the tiny Marian fixtures, and the word alignment it implies. The other fixtures are untouched.

For each model and pair: `model(input_ids, decoder_input_ids, output_attentions=True).cross_attentions[layer]`
averaged over heads, in float64, each pair alone (no padding), with `decoder_input_ids` the start token followed by
`MarianTokenizer(text_target=translation).input_ids[:-1]`, and `layer` the penultimate decoder layer (brief's
default). Run with the project's venv: `BRIEF_VENV=/work/main/.venv; $BRIEF_VENV/bin/python scripts/gen_align_fixture.py`.
"""
import json
from pathlib import Path

import torch
from transformers import MarianMTModel, MarianTokenizer

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["tiny", "tiny-separate-gelu"]
PAIRS = [
    ["Ya.", "Yes."],
    ["Presiden Joko Widodo meresmikan bendungan.", "President Joko Widodo inaugurated the dam."],
    ["Harga beras naik lagi.", "Rice prices rose again."],
    ["Dr. Siti Nurhaliza mengatakan (12/3) kebijakan baru itu berlaku.", "Dr. Siti Nurhaliza said (12/3) the new policy applies."],
]


def words(pieces):
    """The word of each piece: a new one at each `▁` (None before the first piece is seen: word 0)."""
    out, word = [], None
    for p in pieces:
        word = 0 if word is None else word + (1 if p.startswith("\u2581") else 0)
        out.append(word)
    return out


def align(rows, src_words, n_src, tgt_words, n_tgt):
    mass = [[0.0] * n_src for _ in range(n_tgt)]
    seen = [False] * n_tgt
    for row, tw in zip(rows, tgt_words):
        if tw is None or tw >= n_tgt:
            continue
        seen[tw] = True
        for weight, sw in zip(row, src_words):
            if sw is not None and sw < n_src:
                mass[tw][sw] += weight
    return [max(range(n_src), key=lambda i: (m[i], -i)) if s and n_src else None for m, s in zip(mass, seen)]


def main():
    out = {"pairs": PAIRS, "models": {}}
    for name in MODELS:
        d = ROOT / "tests" / "fixtures" / "marian" / name
        tok = MarianTokenizer.from_pretrained(str(d))
        model = MarianMTModel.from_pretrained(str(d), dtype=torch.float64, attn_implementation="eager").eval()
        layer = max(model.config.decoder_layers - 2, 0)
        start = model.config.decoder_start_token_id
        cases = []
        for source, target in PAIRS:
            src_ids = tok(source).input_ids
            tgt_ids = tok(text_target=target).input_ids
            src_pieces = tok.spm_source.encode(source, out_type=str)
            tgt_pieces = tok.spm_target.encode(target, out_type=str)
            assert len(src_pieces) + 1 == len(src_ids) and len(tgt_pieces) + 1 == len(tgt_ids)
            with torch.no_grad():
                o = model(input_ids=torch.tensor([src_ids]), decoder_input_ids=torch.tensor([[start] + tgt_ids[:-1]]),
                          output_attentions=True)
            rows = [[round(x, 10) for x in row] for row in o.cross_attentions[layer][0].mean(0).tolist()]
            src_words = words(src_pieces) + [None]
            tgt_words = words(tgt_pieces) + [None]
            cases.append({
                "source_ids": src_ids, "target_ids": tgt_ids, "attention": rows,
                "alignment": align(rows, src_words, len(source.split()), tgt_words, len(target.split())),
            })
        out["models"][name] = {"layer": layer, "cases": cases}
    dest = ROOT / "tests" / "fixtures" / "align" / "marian.json"
    dest.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
