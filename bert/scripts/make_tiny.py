#!/usr/bin/env python3
"""Builds the tiny random BERT classifier fixture and its reference logits.

Writes, into --out (default: bert/tests/fixtures/tiny-bert):
  vocab.txt, tokenizer.json, tokenizer_config.json  (lowercasing WordPiece)
  config.json, model.safetensors                     (BertForSequenceClassification.save_pretrained)
  pytorch_model.bin                                  (same weights, torch.save zip format)
  logits.json                                        (sentences, input_ids, attention_mask, logits)

Needs torch + transformers + tokenizers + safetensors (no network). Deterministic
(torch.manual_seed). Not run in CI; the Rust test `tests/parity.rs` checks candle against it.

    python3 bert/scripts/make_tiny.py --out bert/tests/fixtures/tiny-bert
"""

import argparse
import json
import os

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertConfig, BertForSequenceClassification

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """the a an of to in and or for on with at by from is was are were be been has have had
not no never it its this that these those we our they their you your he she his her i my me
company shares stock stocks price prices profit profits loss losses revenue revenues sales earnings
quarter year growth margin margins guidance outlook forecast estimates market markets investors
rose fell jumped plunged dropped gained climbed slumped surged declined increased decreased beat
missed raised cut warning strong weak record higher lower up down good bad better worse best worst
deal merger acquisition dividend debt cash bank banks rate rates inflation demand supply cost costs
release bug fix fixed blocked done moved qa review ticket issue issues customer customers team
deadline delayed shipped deploy deployed production incident outage resolved regression test tests
please thanks great excellent terrible happy unhappy angry pleased positive negative neutral
will would could should may might can must also very more most less least than then as so but if
new old next last first second third million billion percent per share analysts report reported
expected unexpected despite after before during while because""".split()
PIECES = "s es ed ing ly er est ment ness able ive tion al ful less ize ise".split()
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-$%&/+*#@")

SENTENCES = [
    "Shares plunged after the profit warning.",
    "Revenue rose 12% to $4 billion, beating estimates; the company raised its outlook for next year.",
    "Moved to QA.",
    "The deploy was BLOCKED by a regression — résumé of the incident: outage resolved, customers unhappy!",
    "Dividend unchanged",
    "Analysts expected weaker margins, but quarterly earnings surged and investors cheered the xyzzy deal.",
]


def build_vocab():
    vocab = list(SPECIAL)
    seen = set(vocab)
    for tok in WORDS + ["##" + p for p in PIECES] + CHARS + ["##" + c for c in CHARS]:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    i = 0
    while len(vocab) < 1000:  # filler so the vocab has the advertised size
        tok = f"[unused{i}]"
        i += 1
        vocab.append(tok)
    return vocab


def build_tokenizer(vocab):
    tok = Tokenizer(WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tiny-bert"))
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)

    vocab = build_vocab()
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    tok = build_tokenizer(vocab)
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 64}, f, indent=2)

    # Mixed case and FinBERT's order on purpose: the Rust side maps labels by name.
    id2label = {0: "Positive", 1: "NEGATIVE", 2: "neutral"}
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu",
        num_labels=3, id2label=id2label, label2id={v: k for k, v in id2label.items()}, pad_token_id=0,
    )
    try:
        config._attn_implementation = "eager"
    except Exception:  # noqa: BLE001 - older/newer transformers: default attention is fine too
        pass
    model = BertForSequenceClassification(config)
    # The default init (std 0.02) gives near-zero logits; spread weights so a 1e-4 check means something.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    model.eval()
    try:
        model.save_pretrained(out, safe_serialization=True)
    except TypeError:  # transformers versions without the argument save safetensors by default
        model.save_pretrained(out)
    torch.save(model.state_dict(), os.path.join(out, "pytorch_model.bin"))

    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    encs = tok.encode_batch(SENTENCES)
    input_ids = [e.ids for e in encs]
    mask = [e.attention_mask for e in encs]
    tokens = [e.tokens for e in encs]

    hf_ids = None
    try:  # cross-check with transformers' own tokenizer loaded from the saved files
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(out)
        hf_ids = hf(SENTENCES, padding=True)["input_ids"]
    except Exception as e:  # noqa: BLE001
        hf_ids = f"unavailable: {e}"

    with torch.no_grad():
        ids_t = torch.tensor(input_ids)
        logits = model(input_ids=ids_t, attention_mask=torch.tensor(mask), token_type_ids=torch.zeros_like(ids_t)).logits
        single = []
        for s in SENTENCES:
            e = tok.encode(s)
            t = torch.tensor([e.ids])
            single.append(model(input_ids=t, attention_mask=torch.ones_like(t), token_type_ids=torch.zeros_like(t)).logits[0].tolist())

    import transformers

    with open(os.path.join(out, "logits.json"), "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "sentences": SENTENCES,
                "tokens": tokens,
                "input_ids": input_ids,
                "attention_mask": mask,
                "hf_tokenizer_input_ids": hf_ids,
                "id2label": id2label,
                "logits": logits.tolist(),
                "unpadded_logits": single,
            },
            f,
            indent=1,
        )
    print("wrote", sorted(os.listdir(out)))
    print("hf tokenizer agrees:", hf_ids == input_ids)


if __name__ == "__main__":
    main()
