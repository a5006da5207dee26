#!/usr/bin/env python3
"""Random-weight models with the exact shapes of Helsinki-NLP/opus-mt-id-en (with its real tokenizer from
../shared/models/opus-mt-id-en) and google/flan-t5-base, and the same weights converted for CTranslate2.

Weights are drawn like the parity fixtures' (unit-scale, well separated logits), so that greedy and beam decisions
are not knife-edge and systems running the same weights can be compared token by token.

Usage: make_models.py OUT_DIR [opus] [flan]   (creates OUT_DIR/{opus-mt-id-en,flan-t5-base}{,-ct2}; default both)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import GenerationConfig, MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()  # read-only data
OPUS = SHARED / "models" / "opus-mt-id-en"
sys.path.insert(0, str(ROOT / "scripts"))
import gen_fixtures  # noqa: E402  (the fixtures' weight initialisation)

# google/flan-t5-base's config.json (public; the fields that define the architecture and its generation).
FLAN_T5_BASE = {
    "d_ff": 2048, "d_kv": 64, "d_model": 768, "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1,
    "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0, "is_encoder_decoder": True,
    "layer_norm_epsilon": 1e-06, "model_type": "t5", "n_positions": 512, "num_decoder_layers": 12, "num_heads": 12,
    "num_layers": 12, "pad_token_id": 0, "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32, "vocab_size": 32128,
    "task_specific_params": {"summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 200,
                                               "min_length": 30, "no_repeat_ngram_size": 3, "num_beams": 4,
                                               "prefix": "summarize: "}},
}


def ct2_convert(src, dst):
    converter = Path(sys.executable).parent / "ct2-transformers-converter"
    if not converter.exists():
        print(f"ctranslate2 is not installed: no {dst.name}", file=sys.stderr)
        return
    if dst.exists():
        shutil.rmtree(dst)
    subprocess.run([str(converter), "--model", str(src),
                    "--output_dir", str(dst)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def opus(out):
    dest = out / "opus-mt-id-en"
    if not (dest / "model.safetensors").exists():
        config = json.loads((OPUS / "config.json").read_text())
        for k in ("_name_or_path", "transformers_version", "architectures", "id2label", "label2id", "_num_labels"):
            config.pop(k, None)
        torch.manual_seed(0)
        model = MarianMTModel(MarianConfig(**config)).eval()
        gen_fixtures.randomize(model, 0, config["eos_token_id"], eos_bias=0.0, emb_std=0.05, out_scale=20.0)
        gen = json.loads((OPUS / "generation_config.json").read_text())
        gen.pop("transformers_version", None)
        model.generation_config = GenerationConfig(**gen)
        model.save_pretrained(str(dest))
        for f in ("source.spm", "target.spm", "vocab.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(OPUS / f, dest / f)
    if not (out / "opus-mt-id-en-ct2" / "model.bin").exists():
        ct2_convert(dest, out / "opus-mt-id-en-ct2")


def flan(out):
    dest = out / "flan-t5-base"
    if not (dest / "model.safetensors").exists():
        dest.mkdir(parents=True, exist_ok=True)
        # A tokenizer.json of the T5 kind, trained on evaldata English (the real one is not reachable here).
        gen_fixtures.build_t5_tokenizer(dest, extra_ids=100, vocab_size=8000, max_lines=100000)
        torch.manual_seed(1)
        model = T5ForConditionalGeneration(T5Config(**FLAN_T5_BASE)).eval()
        gen_fixtures.randomize_t5(model, 1, eos_id=1, eos_scale=1.0)  # the fixtures' initialisation
        head = torch.randn(model.lm_head.weight.shape, generator=torch.Generator().manual_seed(2))
        head = head / head.norm(dim=1, keepdim=True) * 3.0
        gen_fixtures.save_t5(model, dest, head)
        model.generation_config.save_pretrained(str(dest))
    if not (out / "flan-t5-base-ct2" / "model.bin").exists():
        ct2_convert(dest, out / "flan-t5-base-ct2")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "bench-out" / "models")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    wanted = sys.argv[2:] or ["opus", "flan"]
    for name in wanted:
        {"opus": opus, "flan": flan}[name](out)
    print(f"models in {out}")


if __name__ == "__main__":
    main()
