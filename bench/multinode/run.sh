#!/usr/bin/env bash
# Several nodes on one store (issue 6): what a second node adds. Messages per
# second through the whole webhook path (echo answer, 1,000 users, every
# user's session live first) with one node, then with two nodes on the same
# store, each node loaded by its own wrk (as a load balancer would split the
# traffic), on a shared SQLite folder and on DynamoDB (dynalite). With two
# nodes a user's messages reach both nodes, so about half of them go through
# the lease path: stored by the node that got them, answered by the holder.
# Usage: bench/multinode/run.sh [SECONDS]   BUILD=build-release by default
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-10}"
. bench/lib.sh
bench_release
bench_work skm
bench_dynalite
export DYNAMODB_ENDPOINT="http://127.0.0.1:$DPORT" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

for f in warm:41 a:42 b:43; do
  python3 bench/webhook/gen_requests.py "$WORK/${f%%:*}.tsv" 200000 1000 "$TOKEN" "$PUBLIC" "${f##*:}" --body hi
done

start_node() { # store, node name: its port in $PORT_<name>, its pid in $PID_<name>
  local port; port=$(free_port)
  SOUK_DATA="$WORK/$1-$2" SOUK_STORE_DIR="$WORK/$1-db" SOUK_STORE=$1 SOUK_NODE_ID=$2 \
  SOUK_PORT=$port SOUK_LISTEN=lo SOUK_PUBLIC_URL=$PUBLIC TWILIO_AUTH_TOKEN=$TOKEN SOUK_DEBOUNCE_MS=0 \
  SOUK_LOG_LEVEL=warn SOUK_SESSIONS_MAX=50000 SOUK_SESSION_IDLE_S=3600 SOUK_AGENT=echo \
    "$BUILD/souk" serve >"$WORK/souk-$1-$2.log" 2>&1 &
  printf -v "PID_$2" '%s' $!
  printf -v "PORT_$2" '%s' "$port"
  wait_http "http://127.0.0.1:$port/readyz"
}

n=0
for store in sqlite dynamodb; do
  n=$((n + 1))
  export SOUK_TABLE_PREFIX="m${n}_"
  mkdir -p "$WORK/$store-db"
  SOUK_DATA="$WORK/$store-db" SOUK_STORE=$store "$BUILD/souk" db create >/dev/null 2>&1 || true
  start_node $store n1
  wrk -t1 -c32 -d3s -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT_n1" -- "$WORK/warm.tsv" >/dev/null
  wrk -t1 -c16 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT_n1" -- "$WORK/a.tsv" >"$WORK/one.txt"
  printf '%-9s one node    %8s msgs/s   p50 %8s  p99 %8s\n' $store "$(wrk_rps "$WORK/one.txt")" \
    "$(wrk_lat "$WORK/one.txt" 50%)" "$(wrk_lat "$WORK/one.txt" 99%)"
  start_node $store n2
  wrk -t1 -c32 -d3s -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT_n2" -- "$WORK/warm.tsv" >/dev/null
  wrk -t1 -c8 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT_n1" -- "$WORK/b.tsv" >"$WORK/two1.txt" &
  W=$!
  wrk -t1 -c8 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT_n2" -- "$WORK/a.tsv" >"$WORK/two2.txt"
  wait $W
  total=$(python3 -c "print('%.0f' % ($(wrk_rps "$WORK/two1.txt") + $(wrk_rps "$WORK/two2.txt")))")
  printf '%-9s two nodes   %8s msgs/s   p50 %8s  p99 %8s (node 1), %s / %s (node 2)\n' $store \
    "$total" "$(wrk_lat "$WORK/two1.txt" 50%)" "$(wrk_lat "$WORK/two1.txt" 99%)" \
    "$(wrk_lat "$WORK/two2.txt" 50%)" "$(wrk_lat "$WORK/two2.txt" 99%)"
  kill "$PID_n1" "$PID_n2"
  wait "$PID_n1" "$PID_n2" 2>/dev/null || true
done
