#!/usr/bin/env bash
# One souk node on DynamoDB (dynalite) versus SQLite (issue 6): messages per
# second through the whole webhook path, and the DynamoDB requests a message
# costs (reads and writes: what DynamoDB bills), counted by a proxy in front
# of dynalite (bench/dynamo/count_proxy.py) over every actor of the node.
# Two conversations: the echo answer (SOUK_AGENT=echo, the channel alone) and
# a product search answered by the built-in agent on the demo catalogue.
# Usage: bench/dynamo/run.sh [SECONDS]   BUILD=build-release by default
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-10}"
. bench/lib.sh
bench_release
bench_work skd
wrk_report() { # name, wrk output
  printf '%-44s %10s msgs/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" \
    "$(wrk_rps "$2")" "$(wrk_lat "$2" 50%)" "$(wrk_lat "$2" 99%)" "$(wrk_non2xx "$2")"
}

bench_dynalite
PPORT=$(free_port)
python3 bench/dynamo/count_proxy.py "$PPORT" "$DPORT" &
sleep 0.5

n=0
for agent in echo builtin; do
  body="hello"; [ $agent = builtin ] && body="show me running shoes"
  n=$((n + 1))
  python3 bench/webhook/gen_requests.py "$WORK/warm$n.tsv" 3000 1000 "$TOKEN" "$PUBLIC" $((10 + n)) --body hi
  python3 bench/webhook/gen_requests.py "$WORK/load$n.tsv" 200000 1000 "$TOKEN" "$PUBLIC" $((20 + n)) --body "$body"
  python3 bench/webhook/gen_requests.py "$WORK/count$n.tsv" 31 1 "$TOKEN" "$PUBLIC" $((30 + n)) --body "$body"
  # dynamodb-count: through the counting proxy (slower: no throughput taken there)
  for mode in sqlite dynamodb-count dynamodb; do
    store=${mode%-count}
    endpoint=$DPORT; [ $mode = dynamodb-count ] && endpoint=$PPORT
    export SOUK_DATA="$WORK/$mode-$agent" SOUK_STORE=$store SOUK_TABLE_PREFIX="b${n}_"
    export DYNAMODB_ENDPOINT="http://127.0.0.1:$endpoint" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
    "$BUILD/souk" db create >/dev/null
    "$BUILD/souk" import data/demo/products.jsonl >/dev/null 2>&1
    PORT=$(free_port)
    SOUK_PORT=$PORT SOUK_LISTEN=lo SOUK_PUBLIC_URL=$PUBLIC TWILIO_AUTH_TOKEN=$TOKEN SOUK_DEBOUNCE_MS=0 \
      SOUK_LOG_LEVEL=warn SOUK_SESSIONS_MAX=50000 SOUK_SESSION_IDLE_S=3600 SOUK_AGENT=$agent \
      "$BUILD/souk" serve >"$WORK/souk-$mode-$agent.log" 2>&1 &
    SPID=$!
    wait_http "http://127.0.0.1:$PORT/readyz"
    if [ $mode = dynamodb-count ]; then
      # requests per message: one user already talking sends 30 messages one
      # after the other (each answered inline); everything the node asks
      # DynamoDB meanwhile is counted, less its idle rate (the sender's scans
      # of the due index), measured first with no traffic
      python3 bench/dynamo/send_seq.py "http://127.0.0.1:$PORT" "$WORK/count$n.tsv" 1 0 >/dev/null
      sleep 2; curl -fs "http://127.0.0.1:$PPORT/reset" >/dev/null; sleep 4
      idle=$(curl -fs "http://127.0.0.1:$PPORT/reset")
      t0=$(date +%s.%N)
      python3 bench/dynamo/send_seq.py "http://127.0.0.1:$PORT" "$WORK/count$n.tsv" 30 1
      sleep 2   # the work after the inline answer (history, outbox), counted too
      t1=$(date +%s.%N)
      curl -fs "http://127.0.0.1:$PPORT/counts" | python3 -c '
import json, sys
c, idle = json.load(sys.stdin), json.loads(sys.argv[2])
secs, m = float(sys.argv[4]) - float(sys.argv[3]), 30
for k, v in idle.items():       # idle was counted over 4 s
    c[k] = c.get(k, 0) - v * secs / 4
reads = sum(v for k, v in c.items() if k in ("GetItem", "Query", "Scan", "BatchGetItem"))
writes = sum(v for k, v in c.items() if k in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"))
ops = ", ".join("%s %.1f" % (k, v / m) for k, v in sorted(c.items()))
print("%s answer on dynamodb, per message: %.1f reads + %.1f writes  [%s]; idle node: %.1f requests/s" % (sys.argv[1], reads / m, writes / m, ops, sum(idle.values()) / 4))' \
        "$agent" "$idle" "$t0" "$t1"
    else
      # every user's session live first
      wrk -t1 -c32 -d3s -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT" -- "$WORK/warm$n.tsv" >/dev/null
      wrk -t1 -c16 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT" -- "$WORK/load$n.tsv" >"$WORK/load-$mode-$agent.txt"
      wrk_report "$agent answer on $store (1,000 users, c=16)" "$WORK/load-$mode-$agent.txt"
    fi
    kill $SPID; wait $SPID 2>/dev/null || true
  done
done
