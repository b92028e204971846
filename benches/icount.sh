#!/usr/bin/env bash
# Instructions per request for each variant, all threads counted:
# (I(N2) - I(N1)) / (N2 - N1) under valgrind --tool=callgrind, which counts
# instructions, not time, so the result does not depend on machine load.
# Usage: bash benches/icount.sh [N1] [N2]   (defaults 1000 and 6000)
# VARIANTS="bare otel_sampled" limits the run to those variants (bare first).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
n1=${1:-1000}
n2=${2:-6000}
cargo build --release -q -p otel-web-benches --bin icount
bin=target/release/icount
count() {
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  # Sum the totals of every thread's dump.
  grep -h '^summary:' "$out"* | awk '{s += $2} END {print s}'
  rm -f "$out"*
}
bare=""
printf '| variant | instructions/request | added over bare |\n| --- | --- | --- |\n'
variants=${VARIANTS:-bare otel_sampled otel_not_sampled otel_metrics_only tower_http_trace axum_tracing_opentelemetry instrumentation_tower}
for v in $variants; do
  a=$(count "$v" "$n1")
  b=$(count "$v" "$n2")
  per=$(( (b - a) / (n2 - n1) ))
  [ -z "$bare" ] && bare=$per
  printf '| %s | %d | %+d |\n' "$v" "$per" $(( per - bare ))
done
