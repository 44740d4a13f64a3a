#!/usr/bin/env bash
# Webhook benchmark (issue 3): messages/s and latency through the whole path
# (signature check, dedupe, session actor, SQLite persistence, reply) with
# 1,000 distinct users, beside nginx answering a fixed TwiML (the HTTP
# ceiling here) and a minimal FastAPI + uvicorn app doing the signature check
# and a TwiML echo with no persistence. All over loopback, same machine, same
# run. Usage: bench/webhook/run.sh [SECONDS]   (figures go to stdout)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-10}"
SOUK_SETUP_EXTRA="nginx python3-fastapi python3-uvicorn python3-multipart" ./scripts/setup
./scripts/build build-release -Dbuildtype=release
. bench/lib.sh
WORK=$(mktemp -d /tmp/skb-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 0.5; rm -rf "$WORK"' EXIT
report() { # name, wrk output file; non-2xx answers are counted: they are not messages handled
  printf '%-34s %12s req/s   p50 %8s   p99 %8s   (%s requests, %s non-2xx)\n' "$1" "$(wrk_rps "$2")" \
    "$(wrk_lat "$2" 50%)" "$(wrk_lat "$2" 99%)" "$(wrk_total "$2")" "$(wrk_non2xx "$2")"
}

for f in warm:1 steady:2 half:3; do
  python3 bench/webhook/gen_requests.py "$WORK/${f%%:*}.tsv" 400000 1000 "$TOKEN" "$PUBLIC" "${f##*:}"
done
python3 bench/webhook/gen_requests.py "$WORK/first.tsv" 4000 0 "$TOKEN" "$PUBLIC" 4 --first
python3 bench/webhook/gen_requests.py "$WORK/first1.tsv" 4000 0 "$TOKEN" "$PUBLIC" 7 --first

# --- souk
PORT=$(free_port)
SOUK_DATA="$WORK/d" SOUK_PORT=$PORT SOUK_LISTEN=lo SOUK_PUBLIC_URL=$PUBLIC TWILIO_AUTH_TOKEN=$TOKEN \
SOUK_DEBOUNCE_MS=0 SOUK_LOG_LEVEL=warn SOUK_SESSIONS_MAX=50000 SOUK_SESSION_IDLE_S=3600 SOUK_AGENT=echo \
  build-release/souk serve >"$WORK/souk.log" 2>&1 &
SOUK_PID=$! # by pid: job numbers are reused once a job is reaped
wait_http "http://127.0.0.1:$PORT/readyz"
# first messages: every request spawns a session actor
# (sized so that no run uses up its file: every request is a new user)
wrk -t1 -c1 -d5s --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT" -- "$WORK/first1.tsv" >"$WORK/first1.txt"
report "souk first message (spawn), c=1" "$WORK/first1.txt"
wrk -t1 -c16 -d5s --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT" -- "$WORK/first.tsv" >"$WORK/first.txt"
report "souk first message (spawn), c=16" "$WORK/first.txt"
# warm: every one of the 1,000 users has a live session
bench_warm build-release/souk "http://127.0.0.1:$PORT" "$WORK/d" 1000 "$WORK/warm.tsv"
wrk -t1 -c64 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT" -- "$WORK/steady.tsv" >"$WORK/souk.txt"
report "souk (1,000 users, c=64)" "$WORK/souk.txt"
# latency at about half the maximum rate: fewer connections, closed loop
wrk -t1 -c4 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$PORT" -- "$WORK/half.tsv" >"$WORK/souk-half.txt"
report "souk (1,000 users, c=4)" "$WORK/souk-half.txt"
build-release/souk status --json >/dev/null 2>&1 || true
kill "$SOUK_PID"; wait "$SOUK_PID" 2>/dev/null || true

# --- nginx: fixed TwiML
NPORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx/pid; error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http { access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$NPORT;
    location / { default_type text/xml;
      return 200 '<?xml version="1.0" encoding="UTF-8"?><Response><Message>hi</Message></Response>'; } } }
CONF
nginx -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
wait_http "http://127.0.0.1:$NPORT/"
wrk -t1 -c64 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$NPORT" -- "$WORK/steady.tsv" >"$WORK/nginx.txt"
report "nginx fixed TwiML (c=64)" "$WORK/nginx.txt"
kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true

# --- FastAPI + uvicorn: signature check + echo, no persistence
FPORT=$(free_port)
# Debian's python3 (its fastapi and uvicorn), whatever python3 is first on PATH
TWILIO_AUTH_TOKEN=$TOKEN PUBLIC_URL=$PUBLIC /usr/bin/python3 -m uvicorn --app-dir bench/webhook fastapi_echo:app \
  --host 127.0.0.1 --port "$FPORT" --log-level warning &
wait_http "http://127.0.0.1:$FPORT/docs"
wrk -t1 -c64 -d"${SECS}s" --latency -s bench/webhook/wrk.lua "http://127.0.0.1:$FPORT" -- "$WORK/steady.tsv" >"$WORK/fastapi.txt"
report "FastAPI+uvicorn echo (c=64)" "$WORK/fastapi.txt"
