#!/usr/bin/env python3
"""PyTorch CPU eager f32 on the shapes `prefscope bench` times (bench/README.md).

One training step = forward + backward + AdamW (lr 1e-4), the same shapes, losses and optimiser
as prefscope's, on random inputs with a fixed seed. Prints one JSON object per workload, with
the median of the timed steps, as `prefscope bench --json` does; bench/cpu.sh pairs the two.

    python bench/torch_cpu.py --workload mlp-bt --batch 1024
    python bench/torch_cpu.py --workload playground --steps 300
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(d_in, hidden, d_out):
    layers, widths = [], [d_in, *hidden, d_out]
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.GELU())  # exact (erf) GELU, as prefscope's
    return nn.Sequential(*layers)


def unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gpm_score(c, r):
    # Sum over 2-d blocks of (c0 r1 - c1 r0): the skew-symmetric GPM score.
    n, two_k = c.shape
    c, r = c.view(n, two_k // 2, 2), r.view(n, two_k // 2, 2)
    return (c[..., 0] * r[..., 1] - c[..., 1] * r[..., 0]).sum(-1)


def head_step(kind, d_in, hidden, k, tau, batch, n_items=None):
    """A step of a reward head on embeddings; pairs are rows (chosen, rejected) of one table."""
    g = torch.Generator().manual_seed(0)
    n_items = n_items or 2 * batch
    items = torch.randn(n_items, d_in, generator=g)
    model = mlp(d_in, hidden, 1 if kind == "bt" else 2 * k)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4 if n_items == 2 * batch else 1e-2)
    chosen = torch.arange(0, 2 * batch, 2) % n_items
    rejected = (chosen + 1) % n_items

    def step(idx=None):
        c_idx, r_idx = (chosen, rejected) if idx is None else idx
        out = model(torch.cat([items[c_idx], items[r_idx]]))
        c, r = out[: len(c_idx)], out[len(c_idx):]
        logit = (c - r).squeeze(-1) if kind == "bt" else gpm_score(unit(c), unit(r)) / tau
        loss = -F.logsigmoid(logit).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    params = sum(p.numel() for p in model.parameters())
    return step, 6.0 * params * 2.0


def tfm_step(batch):
    cfg = dict(vocab=8192, d=512, layers=6, heads=8, ff=2048, t=256)
    torch.manual_seed(0)

    class Tfm(nn.Module):
        def __init__(self):
            super().__init__()
            self.token = nn.Embedding(cfg["vocab"], cfg["d"])
            self.position = nn.Embedding(cfg["t"], cfg["d"])
            layer = nn.TransformerEncoderLayer(cfg["d"], cfg["heads"], cfg["ff"], dropout=0.0, activation="gelu", norm_first=True, batch_first=True)
            self.blocks = nn.TransformerEncoder(layer, cfg["layers"], enable_nested_tensor=False)
            self.norm = nn.LayerNorm(cfg["d"])
            self.head = nn.Linear(cfg["d"], 1)

        def forward(self, tokens):
            n, t = tokens.shape
            x = self.token(tokens) + self.position(torch.arange(t).expand(n, t))
            mask = nn.Transformer.generate_square_subsequent_mask(t)
            h = self.blocks(x, mask=mask, is_causal=True)
            return self.head(self.norm(h[:, -1]))

    model = Tfm()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(0, cfg["vocab"], (2 * batch, cfg["t"]))

    def step():
        out = model(tokens).squeeze(-1)
        loss = -F.logsigmoid(out[:batch] - out[batch:]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    d, t, l = cfg["d"], cfg["t"], cfg["layers"]
    params = l * (4 * d * d + 2 * d * cfg["ff"]) + cfg["vocab"] * d + d
    return step, 2.0 * (6.0 * params * t + 12.0 * l * t * t * d)


def timed(step, warmup, steps):
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        loss = step()
        if not math.isfinite(loss):
            raise SystemExit(f"non-finite loss {loss}")
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def playground(steps):
    """The page's default run: the cyclic scenario's shape (2-D points, 1600 training pairs over
    200 items), GPM with hidden [64, 64], k = 1, tau = 0.1, batch 128, lr 1e-2; the steps are
    timed end to end (prefscope's figure also includes its evaluations and run folder)."""
    step, _ = head_step("gpm", 2, [64, 64], 1, 0.1, 128, n_items=200)
    g = torch.Generator().manual_seed(1)
    pairs = torch.randint(0, 200, (1600, 2), generator=g)
    t = time.perf_counter()
    for _ in range(steps):
        idx = pairs[torch.randint(0, 1600, (128,), generator=g)]
        step((idx[:, 0], idx[:, 1]))
    return (time.perf_counter() - t) / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["mlp-bt", "gpm-head", "tfm-rm", "playground"])
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    if a.workload == "playground":
        per_step = playground(a.steps)
        out = dict(batch=128, median_step_seconds=per_step, pairs_per_second=128 / per_step, tflops=None)
    else:
        batch = a.batch or (2 if a.workload == "tfm-rm" else 1024)
        if a.workload == "tfm-rm":
            step, flops = tfm_step(batch)
        else:
            step, flops = head_step("bt" if a.workload == "mlp-bt" else "gpm", 1024, [4096], 4, 1.0, batch)
        median = timed(step, a.warmup, a.steps)
        out = dict(batch=batch, median_step_seconds=median, pairs_per_second=batch / median, tflops=flops * batch / median / 1e12)
    out.update(workload=a.workload, framework=f"pytorch {torch.__version__}", threads=torch.get_num_threads(), precision="f32")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
