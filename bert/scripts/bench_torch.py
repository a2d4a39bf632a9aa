#!/usr/bin/env python3
"""PyTorch (CPU) counterpart of `bench-bert`: same model files, same sentences.

Run `bench-bert` first: it writes config.json, model.safetensors, vocab.txt and
sentences.txt into --model-dir. Then:

    python3 bert/scripts/bench_torch.py --model-dir /tmp/keel-bench-bert --threads 8 [--seconds 20] [--batch 32]

Sentences are sorted by token length and run in batches of --batch with
padding to the longest in the batch (the same length bucketing the Rust engine
does). Prints sentences/s and peak RSS (ru_maxrss).
"""

import argparse
import os
import resource
import time

import torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertForSequenceClassification


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="/tmp/keel-bench-bert")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    # The same BERT pipeline the Rust engine builds from vocab.txt (lowercase, [CLS] … [SEP]).
    tok = BertWordPieceTokenizer(os.path.join(args.model_dir, "vocab.txt"), lowercase=True)
    tok.enable_truncation(512)
    model = BertForSequenceClassification.from_pretrained(args.model_dir)
    model.eval()
    load_s = time.perf_counter() - t
    with open(os.path.join(args.model_dir, "sentences.txt"), encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]

    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    batches = [[texts[i] for i in order[s : s + args.batch]] for s in range(0, len(order), args.batch)]

    def run(batch):
        encs = tok.encode_batch(batch)
        width = max(len(e.ids) for e in encs)
        ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in encs])
        mask = torch.tensor([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encs])
        return model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits.softmax(-1)

    def one_pass():
        for b in batches:
            run(b)

    with torch.inference_mode():
        run(texts[:1])  # warm-up
        done = 0
        t = time.perf_counter()
        while time.perf_counter() - t < args.seconds or done == 0:
            one_pass()
            done += len(texts)
        secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"torch={torch.__version__} threads={args.threads} texts={done} "
        f"mean_tokens={sum(lengths) / len(lengths):.1f} load_s={load_s:.2f} "
        f"sentences_per_s={done / secs:.1f} peak_rss_mib={peak:.0f} (before load {rss_before:.0f})"
    )


if __name__ == "__main__":
    main()
