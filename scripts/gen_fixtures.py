#!/usr/bin/env python3
"""Builds the parity fixtures under tests/fixtures/ with the reference implementation (transformers + torch).

Run it through scripts/gen_fixtures.sh, which creates the virtual environment first. CI does not need it: the
fixtures it writes are committed. What it writes:

  tests/fixtures/tokenizer/opus-mt-id-en.json.gz
      Reference MarianTokenizer ids for every line of ../shared/seeds/* and ../shared/evaldata/mt/*.id (with each
      file's sha256), for generated adversarial strings, and reference decodes of random id sequences.
  tests/fixtures/marian/<name>/
      A random-weight MarianMT model (config.json, generation_config.json, weights, tokenizer files unless it uses
      the real opus-mt-id-en tokenizer), expected.json (inputs, generate() outputs per case, decoded texts) and
      logits.safetensors (teacher-forced logits on the greedy outputs, for the relative-error check).
  tests/fixtures/t5/<name>/
      The same for random-weight T5 models (v1.0: relu, tied and rescaled output; v1.1/FLAN: gated-gelu, separate
      lm_head; mT5), with a tokenizer.json made here from a SentencePiece model trained on evaldata English text,
      and the reference's relative-position buckets.

Random weights give near-tied logits, so weights are drawn with unit-scale variance; every case is also run in
float64 and must give the same tokens, which shows no decision is knife-edge at float32 precision.
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer, T5Config,
                          T5ForConditionalGeneration, T5Tokenizer)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BRIEF_SHARED") or ROOT / ".." / "shared").resolve()  # read-only data
OPUS = SHARED / "models" / "opus-mt-id-en"

# Sentences of very different lengths, so that a batch is heavily padded.
ID_TEXTS = [
    "Ya.",
    "Presiden Joko Widodo meresmikan Bendungan Sadawarna di Kabupaten Subang, Jawa Barat, pada Selasa (12/3/2024), "
    "yang dibangun dengan anggaran Rp 1.250,5 miliar dan diharapkan mengairi ribuan hektare sawah di sekitarnya.",
    "Harga beras naik lagi.",
    "Dr. Siti Nurhaliza, S.H., mengatakan bahwa kebijakan baru itu akan mulai berlaku bulan depan.",
]
EN_TEXTS = [
    "Yes.",
    "President Joko Widodo inaugurated the Sadawarna Dam in Subang Regency, West Java, on Tuesday, which was built "
    "with a budget of 1.25 trillion rupiah and is expected to irrigate thousands of hectares of rice fields.",
    "Rice prices rose again.",
]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fuzz_lines(n=2000, seed=7):
    """Strings that stress normalisation: whitespace runs, controls, NFKC folds, emoji, RTL, special tokens."""
    rng = random.Random(seed)
    alphabet = list("abc XYZ  \t\u00a0\u3000\u200b\u2581．,;:!?\"'«»()[]0123456789.") + [
        "</s>", "<unk>", "<pad>", ">>id<<", "<s>", "\u0301", "e\u0301", "\ufb01", "ｱ", "①", "²", "😀",
        "👩‍👩‍👧", "中文", "العربية", "שלום", "\u200f", "\x00", "\x1c", "\x7f", "™", "…", "Ⅻ", "ﬀ", "\ufeff",
        "\u2028", "  ", "Dr.", "1.250,5", "222", "....", "Rp", "tidak",
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(n)]


def write_tokenizer_fixture(out_dir):
    tok = MarianTokenizer.from_pretrained(str(OPUS))
    files = sorted((SHARED / "seeds").glob("*")) + sorted((SHARED / "evaldata" / "mt").glob("*.id"))
    records = []
    for path in files:
        lines = path.read_text(encoding="utf-8").split("\n")
        records.append({
            "file": str(path.relative_to(SHARED)),
            "sha256": sha256(path),
            "ids": [tok(line)["input_ids"] for line in lines],
        })
    fuzz = fuzz_lines()
    rng = np.random.default_rng(11)
    vocab = len(tok.encoder)
    decode_ids = [rng.integers(0, vocab, size=int(rng.integers(0, 30))).tolist() for _ in range(500)]
    # Mostly ordinary pieces; some sequences start with a bare "▁" or hold special ids.
    decode_ids += [[tok.encoder["▁"], 6, 2, tok.pad_token_id, 0, 9], [1, 1, 2, 3], [tok.encoder["▁"]] * 3 + [6]]
    fixture = {
        "files": records,
        "texts": fuzz,
        "text_ids": [tok(t)["input_ids"] for t in fuzz],
        "decode_ids": decode_ids,
        "decoded": tok.batch_decode(decode_ids, skip_special_tokens=True, use_source_tokenizer=False),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(out_dir / "opus-mt-id-en.json.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"tokenizer fixture: {len(records)} files, {sum(len(r['ids']) for r in records)} lines", file=sys.stderr)


def train_spm(lines, prefix, vocab_size, normalization):
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(prefix), vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, normalization_rule_name=normalization, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, seed_sentencepiece_size=20000, minloglevel=2,
    )
    return Path(f"{prefix}.model")


def build_tiny_tokenizer(dest, separate_vocabs, normalization):
    """A Marian tokenizer trained here on evaldata text: source.spm (Indonesian), target.spm (English), vocabs."""
    id_lines = (SHARED / "evaldata" / "mt" / "panl_news_valid.id").read_text(encoding="utf-8").splitlines()[:1500]
    en_lines = (SHARED / "evaldata" / "mt" / "panl_news_valid.en").read_text(encoding="utf-8").splitlines()[:1500]
    with tempfile.TemporaryDirectory() as tmp:
        src = train_spm(id_lines, Path(tmp) / "src", 300, normalization)
        tgt = train_spm(en_lines, Path(tmp) / "tgt", 260, normalization)
        shutil.copy(src, dest / "source.spm")
        shutil.copy(tgt, dest / "target.spm")

    def pieces(path):
        from sentencepiece import sentencepiece_model_pb2 as pb

        m = pb.ModelProto()
        m.ParseFromString(path.read_bytes())
        return [p.piece for p in m.pieces if p.type == 1]

    src_pieces, tgt_pieces = pieces(dest / "source.spm"), pieces(dest / "target.spm")
    head = ["</s>", "<unk>", "<pad>"] if separate_vocabs else ["</s>", "<unk>"]
    if separate_vocabs:
        vocab = {p: i for i, p in enumerate(head + src_pieces)}
        target_vocab = {p: i for i, p in enumerate(head + tgt_pieces)}
        (dest / "target_vocab.json").write_text(json.dumps(target_vocab, ensure_ascii=False, indent=1))
    else:
        joint = head + list(dict.fromkeys(src_pieces + tgt_pieces))
        joint.append("<pad>")
        vocab = {p: i for i, p in enumerate(joint)}
        target_vocab = vocab
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1))
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "MarianTokenizer", "separate_vocabs": separate_vocabs, "model_max_length": 512,
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "clean_up_tokenization_spaces": True,
    }, indent=1))
    return len(vocab), len(target_vocab), vocab["<pad>"]


def randomize(model, seed, eos_id, eos_bias, emb_std, out_scale):
    """Random weights with well separated logits and varied outputs.

    Embedding rows have equal norms (no "hub" token wins every argmax) and are small next to the positions, so
    outputs change along the sequence; the last LayerNorm is scaled up so logits spread by a few units. LayerNorms
    and biases are random too, so that a missing term would show. `eos_bias` sets how soon sequences end.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue  # static sinusoids; a checkpoint that holds them holds these values
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2 and ("embed_tokens" in name or "shared" in name or "lm_head" in name):
                w = torch.randn(p.shape, generator=g)
                p.copy_(emb_std * p.shape[1] ** 0.5 * w / w.norm(dim=1, keepdim=True))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
        last = model.model.decoder.layers[-1].final_layer_norm.weight
        last.copy_(out_scale * (1.0 + 0.2 * torch.randn(last.shape, generator=g)))
        bias = 0.1 * torch.randn(model.final_logits_bias.shape, generator=g)
        bias[0, eos_id] += eos_bias
        model.final_logits_bias.copy_(bias)


def rows(sequences):
    """generate() rows without the decoder start token."""
    return [r[1:] for r in sequences.tolist()]


def run_cases(model, tok, texts, cases):
    batch = tok(texts, return_tensors="pt", padding=True)
    results = []
    model64 = MarianMTModel.from_pretrained(model.name_or_path, dtype=torch.float64).eval()
    for case in cases:
        kwargs = dict(case["options"])
        out = model.generate(**batch, do_sample=False, **kwargs)
        out64 = model64.generate(**batch, do_sample=False, **kwargs)
        if out.tolist() != out64.tolist():
            raise KnifeEdge(f"case {case['name']}: float32 and float64 disagree")
        results.append({
            "name": case["name"],
            "options": case["options"],
            "outputs": rows(out),
            "texts": tok.batch_decode(out, skip_special_tokens=True, use_source_tokenizer=False),
        })
    return batch, results


def teacher_forced_logits(model, batch, decoder_rows, start_id, columns):
    decoder_input_ids = torch.tensor([[start_id] + r for r in decoder_rows])
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=decoder_input_ids).logits
    return decoder_input_ids, logits[:, :, columns].contiguous()


def varied_lengths(model, batch, eos_id):
    """Greedy lengths show both early and late ends (so that sequences of a batch finish independently)."""
    with torch.no_grad():
        out = model.generate(**batch, num_beams=1, max_new_tokens=24, do_sample=False)
    lengths = [r.index(eos_id) + 1 if eos_id in r else len(r) for r in rows(out)]
    return min(lengths) < 20 and max(lengths) >= 5 and len(set(lengths)) >= 2, lengths


def write_marian_model(name, config_kwargs, gen_kwargs, seed, init, cases, texts, tokenizer_dir, save):
    """Builds, saves and runs one fixture model. The end-token bias is the first of a descending scan that gives
    varied greedy lengths and no float32/float64 disagreement."""
    tok = MarianTokenizer.from_pretrained(str(tokenizer_dir))
    batch = tok(texts, return_tensors="pt", padding=True)
    config = MarianConfig(**config_kwargs)
    for eos_bias in [x / 2 for x in range(40, -1, -1)]:
        torch.manual_seed(seed)
        model = MarianMTModel(config).eval()
        randomize(model, seed, config.eos_token_id, eos_bias=eos_bias, **init)
        ok, lengths = varied_lengths(model, batch, config.eos_token_id)
        if not ok:
            continue
        try:
            return write_marian_files(name, model, gen_kwargs, cases, texts, tokenizer_dir, save, seed)
        except KnifeEdge as e:
            print(f"{name}: eos bias {eos_bias}: {e}; trying the next", file=sys.stderr)
    raise SystemExit(f"{name}: no end-token bias gives varied, robust outputs")


class KnifeEdge(Exception):
    pass


def write_marian_files(name, model, gen_kwargs, cases, texts, tokenizer_dir, save, seed):
    config = model.config
    dest = ROOT / "tests" / "fixtures" / "marian" / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    model.generation_config = GenerationConfig(**gen_kwargs)
    save(model, dest)
    # Reload, so that the reference runs exactly what the files hold.
    model = MarianMTModel.from_pretrained(str(dest), dtype=torch.float32).eval()
    tok = MarianTokenizer.from_pretrained(str(tokenizer_dir))
    batch, results = run_cases(model, tok, texts, cases)
    greedy = next(r for r in results if r["options"].get("num_beams", 1) == 1)
    vocab = model.lm_head.out_features
    if vocab > 2048:
        rng = np.random.default_rng(seed)
        columns = sorted(set(rng.choice(vocab, 1021, replace=False).tolist()) | {0, 1, vocab - 1})
    else:
        columns = list(range(vocab))
    decoder_input_ids, logits = teacher_forced_logits(
        model, batch, greedy["outputs"], config.decoder_start_token_id, columns)
    save_file({
        "input_ids": batch["input_ids"].to(torch.int64),
        "attention_mask": batch["attention_mask"].to(torch.int64),
        "decoder_input_ids": decoder_input_ids.to(torch.int64),
        "columns": torch.tensor(columns, dtype=torch.int64),
        "logits": logits.to(torch.float32),
    }, str(dest / "logits.safetensors"))
    expected = {
        "model": name,
        "reference": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
        "tokenizer": "shared:models/opus-mt-id-en" if tokenizer_dir == OPUS else "fixture",
        "source_texts": texts,
        "input_ids": [[i for i, m in zip(ids, mask) if m] for ids, mask in
                      zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist())],
        "cases": results,
    }
    (dest / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1))
    eos = config.eos_token_id
    lengths = [[o.index(eos) + 1 if eos in o else len(o) for o in r["outputs"]] for r in results]
    print(f"{name}: output lengths per case {lengths}", file=sys.stderr)


def save_safetensors_f16(model, dest):
    model.half().save_pretrained(str(dest), safe_serialization=True)


def save_safetensors_bf16(model, dest):
    model.to(torch.bfloat16).save_pretrained(str(dest), safe_serialization=True)


def save_pytorch_bin(model, dest):
    """The format the opus-mt repositories ship: a torch zip pickle of the state dict (tied tensors share storage)."""
    model.save_pretrained(str(dest))
    (dest / "model.safetensors").unlink()
    torch.save(model.state_dict(), dest / "pytorch_model.bin")


def save_sharded(model, dest):
    model.save_pretrained(str(dest), safe_serialization=True, max_shard_size="60KB")


def marian_fixtures():
    opus_config = json.loads((OPUS / "config.json").read_text())
    opus_gen = json.loads((OPUS / "generation_config.json").read_text())
    opus_gen.pop("transformers_version", None)
    base_cases = [
        {"name": "greedy", "options": {"num_beams": 1, "max_new_tokens": 24}},
        {"name": "beam4", "options": {"num_beams": 4, "max_new_tokens": 24}},
        {"name": "beam6", "options": {"num_beams": 6, "max_new_tokens": 24}},
    ]
    # n-best: every returned sequence is recorded, item by item, as generate() returns them.
    nbest_cases = [
        {"name": "beam4-n3", "options": {"num_beams": 4, "num_return_sequences": 3, "max_new_tokens": 24}},
        {"name": "beam4-n4-lp2-early", "options": {"num_beams": 4, "num_return_sequences": 4, "max_new_tokens": 24,
                                                   "length_penalty": 2.0, "early_stopping": True}},
        {"name": "beam5-n2-lp0.5-never", "options": {"num_beams": 5, "num_return_sequences": 2,
                                                     "max_new_tokens": 24, "length_penalty": 0.5,
                                                     "early_stopping": "never"}},
    ]
    # 1. The real opus-mt-id-en configuration and tokenizer, narrowed to keep the fixture small.
    opus = dict(opus_config)
    for k in ("_name_or_path", "transformers_version", "architectures", "id2label", "label2id", "_num_labels"):
        opus.pop(k, None)
    opus.update(d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32)
    write_marian_model(
        "opus-shape", opus, opus_gen, seed=1, init=dict(emb_std=0.05, out_scale=20.0),
        cases=base_cases + [
            {"name": "defaults", "options": {}},
            {"name": "forced-eos", "options": {"num_beams": 4, "max_new_tokens": 5}},
        ] + nbest_cases,
        texts=ID_TEXTS, tokenizer_dir=OPUS, save=save_safetensors_f16)

    tiny_gen = {"bad_words_ids": None, "bos_token_id": 0, "decoder_start_token_id": None, "eos_token_id": 0,
                "forced_eos_token_id": 0, "max_length": 64, "num_beams": 4, "pad_token_id": None}
    tiny_cases = base_cases + [
        {"name": "beam4-lp2-early", "options": {"num_beams": 4, "max_new_tokens": 24, "length_penalty": 2.0,
                                                "early_stopping": True}},
        {"name": "beam4-lp0.5-never", "options": {"num_beams": 4, "max_new_tokens": 24, "length_penalty": 0.5,
                                                  "early_stopping": "never"}},
    ] + nbest_cases
    # 2. Tiny, shared vocabulary, swish, pytorch_model.bin.
    with tempfile.TemporaryDirectory() as tmp:
        tokdir = Path(tmp)
        vocab, _, pad = build_tiny_tokenizer(tokdir, separate_vocabs=False, normalization="identity")
        cfg = dict(vocab_size=vocab, decoder_vocab_size=vocab, d_model=32, encoder_layers=2, decoder_layers=2,
                   encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                   activation_function="swish", scale_embedding=True, max_position_embeddings=128,
                   pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
                   share_encoder_decoder_embeddings=True, static_position_embeddings=True)
        gen = dict(tiny_gen, pad_token_id=pad, decoder_start_token_id=pad, bad_words_ids=[[pad]])
        write_marian_model("tiny", cfg, gen, seed=2, init=dict(emb_std=0.1, out_scale=10.0), cases=tiny_cases, texts=ID_TEXTS,
                           tokenizer_dir=tokdir, save=lambda m, d: (save_pytorch_bin(m, d), copy_tok(tokdir, d)))
    # 3. Separate vocabularies and embeddings, gelu, no embedding scale, sharded safetensors.
    with tempfile.TemporaryDirectory() as tmp:
        tokdir = Path(tmp)
        vocab, tvocab, pad = build_tiny_tokenizer(tokdir, separate_vocabs=True, normalization="identity")
        cfg = dict(vocab_size=vocab, decoder_vocab_size=tvocab, d_model=24, encoder_layers=2, decoder_layers=2,
                   encoder_attention_heads=3, decoder_attention_heads=3, encoder_ffn_dim=48, decoder_ffn_dim=48,
                   activation_function="gelu", scale_embedding=False, max_position_embeddings=128,
                   pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
                   share_encoder_decoder_embeddings=False, static_position_embeddings=True)
        gen = dict(tiny_gen, pad_token_id=pad, decoder_start_token_id=pad, bad_words_ids=[[pad]],
                   renormalize_logits=True)
        # transformers' beam search reshapes by config.vocab_size, so with decoder_vocab_size != vocab_size only
        # greedy search runs in the reference; beam search over decoder_vocab_size is covered by the other models.
        greedy_cases = [{"name": "greedy", "options": {"num_beams": 1, "max_new_tokens": 24}},
                        {"name": "greedy-defaults", "options": {"num_beams": 1}}]
        write_marian_model("tiny-separate-gelu", cfg, gen, seed=3, init=dict(emb_std=0.1, out_scale=10.0), cases=greedy_cases, texts=ID_TEXTS,
                           tokenizer_dir=tokdir, save=lambda m, d: (save_sharded(m, d), copy_tok(tokdir, d)))
    # 4. relu, untied lm_head, unequal encoder/decoder shapes, bf16 safetensors, no bad words, no forced EOS.
    with tempfile.TemporaryDirectory() as tmp:
        tokdir = Path(tmp)
        vocab, _, pad = build_tiny_tokenizer(tokdir, separate_vocabs=False, normalization="identity")
        cfg = dict(vocab_size=vocab, decoder_vocab_size=vocab, d_model=32, encoder_layers=3, decoder_layers=1,
                   encoder_attention_heads=4, decoder_attention_heads=2, encoder_ffn_dim=40, decoder_ffn_dim=56,
                   activation_function="relu", scale_embedding=True, max_position_embeddings=160,
                   pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=None,
                   share_encoder_decoder_embeddings=True, tie_word_embeddings=False, static_position_embeddings=True)
        gen = dict(tiny_gen, pad_token_id=pad, decoder_start_token_id=pad, forced_eos_token_id=None)
        write_marian_model("tiny-relu-untied", cfg, gen, seed=4, init=dict(emb_std=0.1, out_scale=10.0), cases=tiny_cases, texts=ID_TEXTS,
                           tokenizer_dir=tokdir, save=lambda m, d: (save_safetensors_bf16(m, d), copy_tok(tokdir, d)))


EN_SUMMARY_TEXTS = [
    "summarize: Rice prices rose again.",
    "summarize: President Joko Widodo inaugurated the Sadawarna Dam in Subang Regency, West Java, on Tuesday. The "
    "dam was built with a budget of 1.25 trillion rupiah and is expected to irrigate thousands of hectares of rice "
    "fields. Farmers in the region said they hoped the new reservoir would end years of drought, while officials "
    "promised that the water would also supply nearby towns. Construction began in 2019 and was delayed twice.",
    "summarize: The central bank kept its benchmark rate unchanged on Thursday, citing stable inflation.",
    "summarize: Yes.",
]


def build_t5_tokenizer(dest, extra_ids, vocab_size=400, max_lines=1500):
    """A T5 tokenizer.json: SentencePiece unigram trained on evaldata English, converted by transformers."""
    import sentencepiece as spm

    lines = []
    for name in ("panl_news_valid.en", "panl_news_test.en", "ntrex128.en"):
        lines += (SHARED / "evaldata" / "mt" / name).read_text(encoding="utf-8").splitlines()
    lines = lines[:max_lines]
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "spiece"
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=str(prefix), vocab_size=vocab_size, model_type="unigram",
            character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, minloglevel=2,
        )
        # transformers converts a directory's spiece.model into its tokenizers (fast) form on load.
        spm_dir = Path(tmp) / "spm"
        spm_dir.mkdir()
        shutil.copy(str(prefix) + ".model", spm_dir / "spiece.model")
        tok = T5Tokenizer.from_pretrained(str(spm_dir), extra_ids=extra_ids)
        assert len(tok) == vocab_size + extra_ids, len(tok)
        tok.save_pretrained(str(dest))
    for leftover in ("spiece.model",):
        if (dest / leftover).exists():
            (dest / leftover).unlink()
    return T5Tokenizer.from_pretrained(str(dest))


def randomize_t5(model, seed, eos_id, eos_scale):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name in ("shared.weight", "lm_head.weight"):
                w = torch.randn(p.shape, generator=g)
                p.copy_(w / w.norm(dim=1, keepdim=True) * 3.0)
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
        head = model.lm_head.weight
        head[eos_id] *= eos_scale
        for ln in [model.decoder.final_layer_norm.weight]:
            ln.mul_(4.0)


def save_t5(model, dest, untied_head):
    """save_pretrained, then (for v1.1) the separate lm_head written in, as real FLAN-T5 checkpoints have it:
    transformers 5.17's T5Config always ties on save, but loads an untied checkpoint correctly."""
    model.save_pretrained(str(dest))
    if untied_head is not None:
        from safetensors.torch import load_file

        path = dest / "model.safetensors"
        tensors = load_file(str(path))
        tensors["lm_head.weight"] = untied_head.contiguous()
        save_file(tensors, str(path), metadata={"format": "pt"})
        config = json.loads((dest / "config.json").read_text())
        config["tie_word_embeddings"] = False
        # As in the FLAN-T5 and mT5 configs on the hub: no scale_decoder_outputs key, so the output is not rescaled.
        config.pop("scale_decoder_outputs", None)
        (dest / "config.json").write_text(json.dumps(config, indent=2))


def bucket_table(num_buckets, max_distance):
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-600, 601)
    return {
        "num_buckets": num_buckets, "max_distance": max_distance, "relative": rel.tolist(),
        "bidirectional": T5Attention._relative_position_bucket(rel, True, num_buckets, max_distance).tolist(),
        "unidirectional": T5Attention._relative_position_bucket(rel, False, num_buckets, max_distance).tolist(),
    }


def write_t5_model(name, config_kwargs, seed, untied, model_type, cases):
    dest = ROOT / "tests" / "fixtures" / "t5" / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tok = build_t5_tokenizer(dest, extra_ids=8)
    batch = tok(EN_SUMMARY_TEXTS, return_tensors="pt", padding=True)
    config_kwargs = dict(config_kwargs, vocab_size=len(tok), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    for eos_scale in [1.0 + x / 4 for x in range(0, 20)]:
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(T5Config(**config_kwargs)).eval()
        randomize_t5(model, seed, 1, eos_scale)
        head = torch.randn(model.lm_head.weight.shape, generator=torch.Generator().manual_seed(seed + 100)) if untied else None
        if head is not None:
            head = head / head.norm(dim=1, keepdim=True) * 3.0
            head[1] *= eos_scale
        with tempfile.TemporaryDirectory() as tmp:
            save_t5(model, Path(tmp), head)
            probe = T5ForConditionalGeneration.from_pretrained(tmp, dtype=torch.float32).eval()
            with torch.no_grad():
                out = probe.generate(**batch, num_beams=1, max_new_tokens=24, do_sample=False)
        lengths = [r.index(1) + 1 if 1 in r else len(r) for r in rows(out)]
        if not (min(lengths) < 20 and max(lengths) >= 5 and len(set(lengths)) >= 2):
            continue
        for f in dest.iterdir():
            if f.name.endswith(".safetensors") or f.name in ("config.json", "generation_config.json"):
                f.unlink()
        save_t5(model, dest, head)
        if model_type != "t5":
            config = json.loads((dest / "config.json").read_text())
            config["model_type"] = model_type
            config["architectures"] = ["MT5ForConditionalGeneration"]
            (dest / "config.json").write_text(json.dumps(config, indent=2))
        ref = T5ForConditionalGeneration.from_pretrained(str(dest), dtype=torch.float32).eval()
        ref64 = T5ForConditionalGeneration.from_pretrained(str(dest), dtype=torch.float64).eval()
        try:
            results = []
            for case in cases:
                o = ref.generate(**batch, do_sample=False, **case["options"])
                o64 = ref64.generate(**batch, do_sample=False, **case["options"])
                if o.tolist() != o64.tolist():
                    raise KnifeEdge(f"case {case['name']}: float32 and float64 disagree")
                results.append({"name": case["name"], "options": case["options"], "outputs": rows(o),
                                "texts": tok.batch_decode(o, skip_special_tokens=True)})
        except KnifeEdge as e:
            print(f"{name}: eos scale {eos_scale}: {e}; trying the next", file=sys.stderr)
            continue
        greedy = results[0]
        decoder_input_ids = torch.tensor([[0] + r for r in greedy["outputs"]])
        with torch.no_grad():
            logits = ref(**batch, decoder_input_ids=decoder_input_ids).logits
        save_file({
            "input_ids": batch["input_ids"].to(torch.int64),
            "attention_mask": batch["attention_mask"].to(torch.int64),
            "decoder_input_ids": decoder_input_ids.to(torch.int64),
            "columns": torch.arange(logits.shape[-1], dtype=torch.int64),
            "logits": logits.to(torch.float32).contiguous(),
        }, str(dest / "logits.safetensors"))
        expected = {
            "model": name,
            "reference": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
            "tokenizer": "fixture",
            "source_texts": EN_SUMMARY_TEXTS,
            "input_ids": [[i for i, m in zip(ids, mask) if m] for ids, mask in
                          zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist())],
            "cases": results,
            "buckets": [bucket_table(config_kwargs["relative_attention_num_buckets"],
                                     config_kwargs["relative_attention_max_distance"]), bucket_table(32, 128)],
        }
        (dest / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1))
        lens = [[o.index(1) + 1 if 1 in o else len(o) for o in r["outputs"]] for r in results]
        print(f"{name}: output lengths per case {lens}", file=sys.stderr)
        return
    raise SystemExit(f"{name}: no end-token scale gives varied, robust outputs")


def t5_fixtures():
    cases = [
        {"name": "greedy", "options": {"num_beams": 1, "max_new_tokens": 24}},
        {"name": "beam4", "options": {"num_beams": 4, "max_new_tokens": 24}},
        {"name": "beam4-ngram3-min", "options": {"num_beams": 4, "max_new_tokens": 30, "no_repeat_ngram_size": 3,
                                                 "min_length": 12}},
        {"name": "summarization-style", "options": {"num_beams": 4, "max_new_tokens": 30, "no_repeat_ngram_size": 3,
                                                    "min_new_tokens": 6, "length_penalty": 2.0,
                                                    "early_stopping": True}},
        {"name": "greedy-ngram2-min", "options": {"num_beams": 1, "max_new_tokens": 20, "no_repeat_ngram_size": 2,
                                                  "min_length": 8}},
        {"name": "beam4-n3", "options": {"num_beams": 4, "num_return_sequences": 3, "max_new_tokens": 24}},
        {"name": "summarization-style-n2", "options": {"num_beams": 4, "num_return_sequences": 2,
                                                       "max_new_tokens": 30, "no_repeat_ngram_size": 3,
                                                       "min_new_tokens": 6, "length_penalty": 2.0,
                                                       "early_stopping": True}},
        # No length in the request nor in the generation config: transformers 5.24+ makes 20 new tokens.
        {"name": "defaults", "options": {}},
        {"name": "beam4-n2-defaults", "options": {"num_beams": 4, "num_return_sequences": 2}},
    ]
    # T5 v1.0: relu feed-forward, tied output embedding with d_model^-0.5 rescaling; few buckets, short distance.
    write_t5_model("t5-v1_0", dict(d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
                                   feed_forward_proj="relu", relative_attention_num_buckets=16,
                                   relative_attention_max_distance=32), seed=5, untied=False, model_type="t5",
                   cases=cases)
    # T5 v1.1 / FLAN-T5: gated-gelu, separate lm_head; d_kv * heads != d_model; 3 encoder, 2 decoder layers.
    write_t5_model("t5-v1_1", dict(d_model=32, d_kv=16, num_heads=3, d_ff=48, num_layers=3, num_decoder_layers=2,
                                   feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                                   relative_attention_max_distance=64), seed=6, untied=True, model_type="t5",
                   cases=cases)
    # mT5-style checkpoint: model_type mt5 with the v1.1 architecture.
    write_t5_model("mt5", dict(d_model=24, d_kv=8, num_heads=2, d_ff=40, num_layers=2, num_decoder_layers=1,
                               feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                               relative_attention_max_distance=128), seed=7, untied=True, model_type="mt5",
                   cases=cases[:3])


def copy_tok(src, dest):
    for f in src.iterdir():
        shutil.copy(f, dest / f.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["tokenizer", "marian", "t5"], help="build one group of fixtures")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.only in (None, "tokenizer"):
        write_tokenizer_fixture(ROOT / "tests" / "fixtures" / "tokenizer")
    if args.only in (None, "marian"):
        marian_fixtures()
    if args.only in (None, "t5"):
        t5_fixtures()


if __name__ == "__main__":
    main()
