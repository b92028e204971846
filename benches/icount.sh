#!/usr/bin/env bash
# Instructions per request for each variant, all threads counted:
# (I(N2) - I(N1)) / (N2 - N1) under valgrind --tool=callgrind, which counts
# instructions, not time, so the result does not depend on machine load.
# Usage: bash benches/icount.sh [N1] [N2]   (defaults 1000 and 6000)
# VARIANTS="bare otel_sampled" limits the run to those variants. Server
# variants are compared with bare, grpc_* (a unary tonic call) with
# grpc_bare, http_* (the server variant over real HTTP
# on 127.0.0.1, called by a bare client) with http_bare, client_* with
# client_bare; each base must come first in its group.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
n1=${1:-1000}
n2=${2:-6000}
# ALLOCATOR=mimalloc measures every variant with mimalloc as the global
# allocator instead of the system's.
features=()
[ "${ALLOCATOR:-system}" = mimalloc ] && features=(--features mimalloc)
cargo build --release -q -p otel-web-benches --bin icount "${features[@]}"
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
grpc_bare=""
http_bare=""
client_bare=""
printf '| variant | instructions/request | added over bare |\n| --- | --- | --- |\n'
variants=${VARIANTS:-bare otel_filtered_out otel_sampled otel_not_sampled otel_metrics_only otel_not_sampled_no_metrics tower_http_trace axum_tracing_opentelemetry instrumentation_tower floor_sampled floor_not_sampled grpc_bare grpc_otel_sampled grpc_otel_not_sampled grpc_tower_http_trace grpc_axum_tracing_opentelemetry grpc_instrumentation_tower http_bare http_otel_sampled http_otel_not_sampled client_bare client_otel_sampled client_otel_not_sampled client_reqwest_tracing}
for v in $variants; do
  a=$(count "$v" "$n1")
  b=$(count "$v" "$n2")
  per=$(( (b - a) / (n2 - n1) ))
  # Server variants are compared with bare, client variants with client_bare.
  case "$v" in
    bare) bare=$per ;;
    grpc_bare) grpc_bare=$per ;;
    http_bare) http_bare=$per ;;
    client_bare) client_bare=$per ;;
  esac
  case "$v" in
    client_*) base=${client_bare:-$per} ;;
    http_*) base=${http_bare:-$per} ;;
    grpc_*) base=${grpc_bare:-$per} ;;
    *) base=${bare:-$per} ;;
  esac
  printf '| %s | %d | %+d |\n' "$v" "$per" $(( per - base ))
done
