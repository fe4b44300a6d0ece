#!/usr/bin/env bash
# Build, check and time prefscope on an NVIDIA machine in one go.
#
#   bench/gpu.sh [OUT_DIR]        (default OUT_DIR: bench/out)
#
# PREFSCOPE_BIN=path/to/prefscope skips the build (e.g. a binary built elsewhere with
# `cargo build --release -p prefscope-cli --features cuda`; CUDA needs no toolkit at build time).
# Every figure is written with the card, backend and precision to OUT_DIR/results.jsonl, and a
# Markdown table for BENCHMARKS.md to OUT_DIR/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/out}
mkdir -p "$OUT"
BIN=${PREFSCOPE_BIN:-}
if [[ -z "$BIN" ]]; then
  cargo build --release -p prefscope-cli --features cuda,wgpu
  BIN=${CARGO_TARGET_DIR:-target}/release/prefscope
fi
CARD=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo "unknown GPU")
echo "card: $CARD" | tee "$OUT/card.txt"

# 1. Correctness on the GPU before any timing: the same run on CPU and CUDA must agree.
cpu=$("$BIN" train --scenario cyclic --model gpm --seed 0 --out "$OUT/check-cpu" --overwrite --json | tail -1)
gpu=$("$BIN" train --scenario cyclic --model gpm --seed 0 --out "$OUT/check-cuda" --overwrite --backend cuda --json | tail -1)
python3 - "$cpu" "$gpu" <<'PY'
import json, sys
cpu, gpu = (json.loads(a) for a in sys.argv[1:3])
d = abs(cpu["final_loss"] - gpu["final_loss"])
print(f"check: cpu loss {cpu['final_loss']:.6f} acc {cpu['eval_accuracy']:.4f} | cuda loss {gpu['final_loss']:.6f} acc {gpu['eval_accuracy']:.4f}")
if d > 1e-3 or gpu["eval_accuracy"] < 0.95:
    sys.exit(f"CUDA run disagrees with the CPU run (|Δloss| = {d:.2e}): not timing a wrong kernel")
PY

# 2. Every workload at every precision the backend offers (warm-up excluded, device synced).
: > "$OUT/results.jsonl"
for w in mlp-bt gpm-head tfm-rm; do
  for p in f32 f16 bf16 bf16-mixed f16-mixed; do
    steps=20; [[ $w == tfm-rm ]] && steps=10
    if line=$("$BIN" bench --workload "$w" --backend cuda --precision "$p" --steps "$steps" --warmup 3 --json 2>"$OUT/$w-$p.err" | tail -1); then
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["card"]=sys.argv[2]; print(json.dumps(d))' "$line" "$CARD" | tee -a "$OUT/results.jsonl"
    else
      echo "{\"workload\": \"$w\", \"precision\": \"$p\", \"error\": $(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()[-300:]))' "$OUT/$w-$p.err")}" | tee -a "$OUT/results.jsonl"
    fi
  done
done

python3 - "$OUT/results.jsonl" "$CARD" > "$OUT/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"| workload | card | backend | precision | pairs/s | step (ms) | TFLOP/s |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if "error" in r:
        print(f"| {r['workload']} | {sys.argv[2]} | cuda | {r['precision']} | failed | | |")
    else:
        print(f"| {r['workload']} | {r['card']} | {r['backend']} | {r['precision']} | {r['pairs_per_second']:,.0f} | {1e3 * r['median_step_seconds']:.2f} | {r['tflops']:.1f} |")
PY
cat "$OUT/table.md"
