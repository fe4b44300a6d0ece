#!/usr/bin/env bash
# prefscope on the CPU against PyTorch CPU eager f32 on the same machine, in one run.
#
#   bench/cpu.sh [OUT_DIR]        (default OUT_DIR: bench/out/cpu)
#
# PREFSCOPE_BIN=path/to/prefscope skips the build. PyTorch comes from the package registry into a
# cached virtualenv ($PREFSCOPE_CACHE or ~/.cache/prefscope, /torch-venv; about 5 GB, since the
# registry's wheel pulls its CUDA libraries even for CPU use). Never run in CI: a benchmark, not a
# test. Each row alternates the two frameworks, prefscope first, so both see the same machine.
# Writes OUT_DIR/results.jsonl (one line per figure) and OUT_DIR/table.md for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/out/cpu}
mkdir -p "$OUT"
BIN=${PREFSCOPE_BIN:-}
if [[ -z "$BIN" ]]; then
  cargo build --release -p prefscope-cli
  BIN=${CARGO_TARGET_DIR:-target}/release/prefscope
fi
VENV=${PREFSCOPE_CACHE:-$HOME/.cache/prefscope}/torch-venv
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch numpy
fi
PY="$VENV/bin/python"
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
CORES=$(nproc)
echo "machine: $CPU, $CORES cores; $("$PY" -c 'import torch; print("PyTorch", torch.__version__, "threads", torch.get_num_threads())')" | tee "$OUT/machine.txt"

: > "$OUT/results.jsonl"
add() { # add ROW_NAME FRAMEWORK JSON
  python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["row"]=sys.argv[1]; d["framework"]=sys.argv[2] if sys.argv[2]!="pytorch" else d["framework"]; print(json.dumps(d))' "$1" "$2" "$3" | tee -a "$OUT/results.jsonl"
}
for w in mlp-bt gpm-head tfm-rm; do
  batch=1024; steps=20; [[ $w == tfm-rm ]] && { batch=2; steps=5; }
  for backend in cpu ndarray; do
    [[ $backend == ndarray && $w == tfm-rm ]] && continue # one core on tfm-rm takes minutes
    add "$w" "prefscope $backend" "$("$BIN" bench --workload "$w" --batch "$batch" --steps "$steps" --backend "$backend" --json | tail -1)"
  done
  add "$w" pytorch "$("$PY" bench/torch_cpu.py --workload "$w" --batch "$batch" --steps "$steps" | tail -1)"
done
# The playground's default run, end to end (prefscope's includes its 13 evaluations and the run folder).
for backend in cpu ndarray; do
  add playground "prefscope $backend" "$("$BIN" train --scenario cyclic --model gpm --seed 0 --backend "$backend" --out "$OUT/playground-$backend" --overwrite --json 2>/dev/null | tail -1)"
done
add playground pytorch "$("$PY" bench/torch_cpu.py --workload playground --steps 300 | tail -1)"

python3 - "$OUT/results.jsonl" "$CPU" "$CORES" > "$OUT/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
torch = {r["row"]: r for r in rows if r["framework"].startswith("pytorch")}
print(f"Machine: {sys.argv[2]}, {sys.argv[3]} cores. PyTorch: {next(iter(torch.values()))['framework']} eager f32, {next(iter(torch.values()))['threads']} threads.\n")
print("| workload | batch | prefscope backend | threads | prefscope pairs/s | PyTorch pairs/s | ratio |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if r["framework"].startswith("pytorch"):
        continue
    t = torch[r["row"]]
    batch = r.get("batch", 128)
    print(f"| {r['row']} | {batch} | {r['framework'].split()[1]} | {r.get('threads')} | {r['pairs_per_second']:,.1f} | {t['pairs_per_second']:,.1f} | {r['pairs_per_second'] / t['pairs_per_second']:.2f}× |")
PY
cat "$OUT/table.md"
