#!/usr/bin/env bash
# End-to-end throughput over loopback: each server variant (benches/src/lib.rs)
# served by `loadserver` (one tokio worker per core, or WORKERS) on 127.0.0.1,
# driven by wrk with a sampled traceparent. Variants run interleaved, ROUNDS
# times, each round starting one variant later, so machine noise falls on
# all of them alike; the table gives each variant's median requests/s and
# p99 over the rounds, and the median over rounds of its ratio to that
# round's bare run.
# Usage: bash benches/load.sh [seconds per run] [rounds]   (defaults 10 and 3)
# VARIANTS="bare otel_sampled" limits the run (bare must be among them).
# Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
secs=${1:-10}
rounds=${2:-3}
variants=${VARIANTS:-bare otel_filtered_out otel_sampled otel_not_sampled tower_http_trace axum_tracing_opentelemetry instrumentation_tower floor_sampled floor_not_sampled}
connections=${CONNECTIONS:-32}
cargo build --release -q -p otel-web-benches --bin loadserver
bin=target/release/loadserver
port=18080
results=$(mktemp)
trap 'rm -f "$results"' EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "server on port $1 did not start" >&2
  return 1
}

# p99 from wrk's latency distribution, in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v } }'
}

read -r -a list <<<"$variants"
count=${#list[@]}
for round in $(seq 1 "$rounds"); do
  # Each round starts one variant later, so no variant always runs first
  # (right after the previous round's last server was stopped).
  for i in $(seq 0 $((count - 1))); do
    v=${list[$(((i + round - 1) % count))]}
    port=$((port + 1))
    "$bin" "$v" "$port" &
    pid=$!
    wait_port "$port"
    url="http://127.0.0.1:$port/users/42?x=1"
    hdr="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    wrk -t1 -c"$connections" -d2s -H "$hdr" "$url" >/dev/null
    out=$(wrk -t1 -c"$connections" -d"${secs}s" --latency -H "$hdr" "$url")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    [ -n "$errors" ] && echo "$v: $errors" >&2
    echo "$v $round $rps $p99" >>"$results"
    printf 'round %d %-28s %10s req/s  p99 %s ms\n' "$round" "$v" "$rps" "$p99" >&2
  done
done

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# Ratios are taken within each round (to that round's bare run), then the
# median over rounds: bare's own rate moves from round to round.
ratios() {
  awk -v v="$1" -v col="$2" '
    $1 == "bare" { base[$2] = $col }
    $1 == v { val[$2] = $col }
    END { for (r in val) if (base[r] > 0) print val[r] / base[r] }' "$results"
}
printf '| variant | requests/s (median of %d) | vs bare (median of round ratios) | p99 ms | p99 vs bare |\n| --- | --- | --- | --- | --- |\n' "$rounds"
for v in $variants; do
  rps=$(awk -v v="$v" '$1 == v {print $3}' "$results" | median)
  p99=$(awk -v v="$v" '$1 == v {print $4}' "$results" | median)
  ratio=$(ratios "$v" 3 | median)
  p99_ratio=$(ratios "$v" 4 | median)
  awk -v v="$v" -v r="$rps" -v q="$ratio" -v p="$p99" -v pq="$p99_ratio" \
    'BEGIN { printf "| %s | %.0f | %.1f%% | %.3f | %.2fx |\n", v, r, 100 * q, p, pq }'
done
