#!/usr/bin/env bash
# Instructions and simulated cache misses per request of the served app:
# each variant served by `loadserver` with one tokio worker under
# `valgrind --tool=callgrind --cache-sim=yes`, driven by wrk over 127.0.0.1
# with a sampled traceparent, once for SHORT and once for LONG seconds; the
# per-request figures are the differences between the two runs divided by
# the difference in requests wrk completed, so start-up and shutdown cancel
# out. Every thread of the server is counted (the export thread too).
# Usage: bash benches/served.sh [variants...]   (default: bare
# otel_filtered_out otel_not_sampled otel_sampled instrumentation_tower)
# Needs valgrind and wrk (apt-get install valgrind wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
short=${SHORT:-4}
long=${LONG:-12}
variants=${*:-bare otel_filtered_out otel_not_sampled otel_sampled instrumentation_tower}
cargo build --release -q -p otel-web-benches --bin loadserver
bin=target/release/loadserver
port=18900
hdr="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# Prints "<requests> <event totals...>" for one run of $1 seconds of variant $2.
run() {
  local secs=$1 variant=$2 out pid reqs
  port=$((port + 1))
  out=$(mktemp)
  WORKERS=1 valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$out" \
    "$bin" "$variant" "$port" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  reqs=$(wrk -t1 -c4 -d"${secs}s" -H "$hdr" "http://127.0.0.1:$port/users/42?x=1" |
    awk '/requests in/ {print $1}')
  # The server has no graceful shutdown; valgrind writes its totals on TERM.
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  # Events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw, summed over threads.
  echo "$reqs $(grep -h '^summary:' "$out"* |
    awk '{for (i = 2; i <= NF; i++) s[i] += $i} END {for (i = 2; i <= 10; i++) printf "%d ", s[i]}')"
  rm -f "$out"*
}

printf '| variant | instructions | L1i misses | L1d read misses | L1d write misses |\n'
printf '| --- | --- | --- | --- | --- |\n'
for v in $variants; do
  a=$(run "$short" "$v")
  b=$(run "$long" "$v")
  awk -v v="$v" -v a="$a" -v b="$b" 'BEGIN {
    split(a, x, " "); split(b, y, " "); n = y[1] - x[1]
    if (n <= 0) { print "| " v " | no requests counted | | | |"; exit }
    # x[2] Ir, x[5] I1mr, x[6] D1mr, x[7] D1mw
    printf "| %s | %d | %d | %d | %d |\n", v, (y[2] - x[2]) / n, (y[5] - x[5]) / n, (y[6] - x[6]) / n, (y[7] - x[7]) / n
  }'
done
