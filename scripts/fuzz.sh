#!/usr/bin/env bash
# The long fuzz campaign, by hand: every reader's target for RUNS executions (1,000,000 by
# default) under AddressSanitizer, with the limits the readers promise (no input over 1 s, no
# allocation over 256 MB). Prints one row per target for the README's reliability table.
# Needs the nightly toolchain and cargo-fuzz (`cargo xtask fuzz` installs the pinned version).
#   scripts/fuzz.sh [TARGET…]     RUNS=N  JOBS=N (parallel targets, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1000000}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pairs_jsonl gpm_jsonl config_toml checkpoint embeddings comparisons tokenizer)
out=tests/out/fuzz-campaign
mkdir -p "$out"
cargo +nightly fuzz build --features libfuzzer >&2
run_one() {
  local t=$1 work=$out/$1
  mkdir -p "$work/corpus"
  local dirs=("$work/corpus" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  local start=$SECONDS status=ok
  cargo +nightly fuzz run --features libfuzzer "$t" "${dirs[@]}" -- \
    -runs="$RUNS" -timeout=1 -malloc_limit_mb=256 -rss_limit_mb=2048 -max_len=16384 \
    -artifact_prefix="$work/" -print_final_stats=1 >"$work/log" 2>&1 || status=FAILED
  local execs rss
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo '?')
  printf '| %s | %s | %s s | %s MB | %s |\n' "$t" "$execs" "$((SECONDS - start))" "$rss" "$status"
}
echo "| target | executions | time | peak RSS | result |"
echo "|---|---|---|---|---|"
export -f run_one; export RUNS out
printf '%s\n' "${targets[@]}" | xargs -P "${JOBS:-1}" -I{} bash -c 'run_one {}'
