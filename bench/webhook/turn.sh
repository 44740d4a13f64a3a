#!/usr/bin/env bash
# A full conversation turn through the webhook (issue 4): 1,000 users each
# asking the built-in agent a product search on the demo catalogue, answered
# inline (the agent classifies, calls search_products on a tool actor, and
# formats the list). Usage: bench/webhook/turn.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-10}"
./scripts/setup
./scripts/build build-release -Dbuildtype=release
. bench/lib.sh
bench_work skt
PORT=$(free_port)
export SOUK_DATA="$WORK/d"
build-release/souk import data/demo/products.jsonl >/dev/null 2>&1
SOUK_PORT=$PORT SOUK_LISTEN=lo SOUK_PUBLIC_URL=$PUBLIC TWILIO_AUTH_TOKEN=$TOKEN SOUK_DEBOUNCE_MS=0 \
  SOUK_LOG_LEVEL=warn SOUK_SESSIONS_MAX=50000 SOUK_SESSION_IDLE_S=3600 SOUK_AGENT=builtin \
  build-release/souk serve >"$WORK/souk.log" 2>&1 &
for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.05; done
python3 bench/webhook/gen_requests.py "$WORK/warm.tsv" 3000 1000 "$TOKEN" "$PUBLIC" 5 --body "hi"
python3 bench/webhook/gen_requests.py "$WORK/turn.tsv" 200000 1000 "$TOKEN" "$PUBLIC" 6 --body "show me running shoes"
bench_warm build-release/souk "http://127.0.0.1:$PORT" "$WORK/d" 1000 "$WORK/warm.tsv"
wrk -t1 -c16 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT" -- "$WORK/turn.tsv" >"$WORK/turn.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/turn.txt")
p50=$(awk '$1=="50%" {print $2}' "$WORK/turn.txt"); p99=$(awk '$1=="99%" {print $2}' "$WORK/turn.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/turn.txt")
printf 'search turn through the webhook (1,000 users, c=16): %s msgs/s   p50 %s   p99 %s   non-2xx %s\n' \
  "$rps" "$p50" "$p99" "${non2xx:-0}"
