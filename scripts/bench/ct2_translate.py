#!/usr/bin/env python3
"""Translates stdin to stdout, one line per line, with CTranslate2, as a CTranslate2 user does (the whole-process
benchmark, scripts/bench/whole.py, runs it as its own process).

Loads the converted model, tokenizes with the Marian model's source.spm (+ "</s>", as transformers' MarianTokenizer
does), translates in batches of at most --batch examples, detokenizes with target.spm. An empty line in gives an
empty line out. Threads: --threads intra-op threads, one replica (CT2_FORCE_CPU_ISA forces the kernel family).

--t5: the model is a T5 one, tokenized with its tokenizer.json (`tokenizers`, "</s>" appended by its
post-processor), each line prefixed with --prefix (e.g. "summarize: ").

Usage: ct2_translate.py CT2_MODEL_DIR --tokenizer HF_MODEL_DIR [--compute-type int8] [--beams 4]
                        [--max-decoding-length 48] [--batch 32] [--threads 2] [--hf-tokenizer]
                        [--t5 --prefix "summarize: "] < in > out
"""
import argparse
import sys

import ctranslate2

EOS = "</s>"


def spm_tokenizer(model_dir):
    """(encode, decode) with sentencepiece alone: the lightest start-up a CT2 user can have."""
    import sentencepiece as spm

    source = spm.SentencePieceProcessor(model_file=f"{model_dir}/source.spm")
    target = spm.SentencePieceProcessor(model_file=f"{model_dir}/target.spm")
    encode = lambda line: source.encode(line, out_type=str) + [EOS]
    # Pieces of the shared vocabulary that target.spm lacks come back raw, "▁" included: spaced as Marian does.
    decode = lambda tokens: target.decode_pieces([t for t in tokens if t != EOS]).replace("▁", " ").strip()
    return encode, decode


def hf_tokenizer(model_dir):
    """(encode, decode) with transformers' MarianTokenizer, as in CTranslate2's own Marian guide."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    encode = lambda line: tok.convert_ids_to_tokens(tok.encode(line))
    decode = lambda tokens: tok.decode(tok.convert_tokens_to_ids(tokens), skip_special_tokens=True)
    return encode, decode


def t5_tokenizer(model_dir, prefix):
    """(encode, decode) with the T5 model's tokenizer.json, as a CTranslate2 user of T5 does."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    encode = lambda line: tok.encode(prefix + line).tokens
    # Tokens of the model's vocabulary beyond the tokenizer's (random weights produce them) are skipped, as
    # `tokenizers` skips such ids when brief decodes.
    ids = lambda tokens: [i for i in map(tok.token_to_id, tokens) if i is not None]
    decode = lambda tokens: tok.decode(ids(tokens), skip_special_tokens=True)
    return encode, decode


def translate(args, lines):
    translator = ctranslate2.Translator(args.model, device="cpu", compute_type=args.compute_type,
                                        intra_threads=args.threads, inter_threads=1)
    if args.t5:
        encode, decode = t5_tokenizer(args.tokenizer, args.prefix)
    else:
        encode, decode = (hf_tokenizer if args.hf_tokenizer else spm_tokenizer)(args.tokenizer)
    todo = [i for i, line in enumerate(lines) if line.strip()]
    results = translator.translate_batch([encode(lines[i]) for i in todo], beam_size=args.beams,
                                         max_decoding_length=args.max_decoding_length,
                                         max_batch_size=args.batch, batch_type="examples")
    out = [""] * len(lines)
    for i, result in zip(todo, results):
        out[i] = decode(result.hypotheses[0])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the CTranslate2 model directory")
    parser.add_argument("--tokenizer", required=True, help="the Marian model directory (source.spm, target.spm)")
    parser.add_argument("--compute-type", default="default", help="float32, int8, int8_float32, ...")
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--max-decoding-length", type=int, default=48)
    parser.add_argument("--batch", type=int, default=32, help="most examples per batch")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--hf-tokenizer", action="store_true", help="tokenize with transformers' MarianTokenizer")
    parser.add_argument("--t5", action="store_true", help="a T5 model: tokenize with its tokenizer.json")
    parser.add_argument("--prefix", default="", help="prepended to every line (T5: e.g. 'summarize: ')")
    args = parser.parse_args()
    lines = sys.stdin.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    sys.stdout.write("".join(line.replace("\n", " ") + "\n" for line in translate(args, lines)))


if __name__ == "__main__":
    main()
