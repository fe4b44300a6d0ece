#!/usr/bin/env bash
# Stress check for `train --nodes 2`: PAIRS two-process runs at once (default 4, i.e. 8
# processes on the 2-core VM), ROUNDS times, each the 120-step cyclic GPM run; prints how many
# processes failed and their messages. Not part of CI (about a minute per 6 rounds): it is how
# the races of burn-collective 0.21 described in the README were measured.
#   bench/nodes_stress.sh [BIN]        (default target/release/prefscope)
set -uo pipefail
BIN=$(realpath "${1:-target/release/prefscope}")
PAIRS=${PAIRS:-4} ROUNDS=${ROUNDS:-6} BASE=${BASE:-12000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail=0 total=0
for r in $(seq "$ROUNDS"); do
  pids=()
  for p in $(seq "$PAIRS"); do
    # Ports below 32768: Linux gives outgoing connections local ports from 32768 up.
    port=$((BASE + (r * PAIRS + p) * 16))
    d=$WORK/r$r-p$p
    mkdir -p "$d/0" "$d/1"
    for rank in 1 0; do
      (cd "$d/$rank" && "$BIN" train --scenario cyclic --model gpm --steps 120 --batch 32 --json \
        --nodes 2 --node-rank $rank --coordinator 127.0.0.1:$port --peer-timeout 10 >out 2>err) &
      pids+=($!)
    done
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || fail=$((fail + 1))
    total=$((total + 1))
  done
done
echo "failed processes: $fail of $total ($((total / 2)) two-process runs)"
grep -h '^error' "$WORK"/*/*/err | cut -c1-220 | sort | uniq -c
[ "$fail" -eq 0 ]
