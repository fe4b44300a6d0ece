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
# REPEAT rounds (default 3), each running every framework once in turn; the table takes medians,
# since run-to-run noise on a shared VM is ±10 %.
for round in $(seq "${REPEAT:-3}"); do
  for w in mlp-bt gpm-head tfm-rm; do
    batch=1024; steps=20; [[ $w == tfm-rm ]] && { batch=2; steps=5; }
    for backend in cpu ndarray; do
      [[ $backend == ndarray && ( $w == tfm-rm || $round -gt 1 ) ]] && continue # one core: slow, once is enough
      add "$w" "prefscope $backend" "$("$BIN" bench --workload "$w" --batch "$batch" --steps "$steps" --backend "$backend" --json | tail -1)"
    done
    add "$w" pytorch "$("$PY" bench/torch_cpu.py --workload "$w" --batch "$batch" --steps "$steps" | tail -1)"
  done
  # The playground's default run, end to end (prefscope's includes its 13 evaluations and the run folder).
  for backend in cpu ndarray; do
    [[ $backend == ndarray && $round -gt 1 ]] && continue
    add playground "prefscope $backend" "$("$BIN" train --scenario cyclic --model gpm --seed 0 --backend "$backend" --out "$OUT/playground-$backend" --overwrite --json 2>/dev/null | tail -1)"
  done
  add playground pytorch "$("$PY" bench/torch_cpu.py --workload playground --steps 300 | tail -1)"
done

python3 - "$OUT/results.jsonl" "$CPU" "$CORES" > "$OUT/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs = {}
for r in rows:
    runs.setdefault((r["row"], r["framework"]), []).append(r)
torch = next(r for r in rows if r["framework"].startswith("pytorch"))
print(f"Machine: {sys.argv[2]}, {sys.argv[3]} cores. PyTorch: {torch['framework']} eager f32, {torch['threads']} threads. Medians over rounds.\n")
print("| workload | batch | prefscope backend | threads | prefscope pairs/s | PyTorch pairs/s | ratio | rounds |")
print("|---|---|---|---|---|---|---|---|")
med = lambda rs: statistics.median(r["pairs_per_second"] for r in rs)
fmt = lambda v: f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
for (row, fw), rs in runs.items():
    if fw.startswith("pytorch"):
        continue
    t = next(v for (r2, f2), v in runs.items() if r2 == row and f2.startswith("pytorch"))
    print(f"| {row} | {rs[0].get('batch', 128)} | {fw.split()[1]} | {rs[0].get('threads')} | {fmt(med(rs))} | {fmt(med(t))} | {med(rs) / med(t):.2f}× | {len(rs)} / {len(t)} |")
PY
cat "$OUT/table.md"
