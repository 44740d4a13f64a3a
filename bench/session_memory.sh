#!/usr/bin/env bash
# Private memory of idle session actors (issue 2: under 1 MiB each, so that
# 10,000 live users fit). Starts souk serve, sends one message from each of N
# users, waits for the sessions to go idle, and reads /proc/PID/smaps_rollup
# of every session actor: Private_Clean + Private_Dirty, and Pss.
# Usage: bench/session_memory.sh [USERS]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-50}"
BUILD="${BUILD:-build-release}"; [ "$BUILD" = build-release ] && ./scripts/build build-release -Dbuildtype=release
TOKEN=0123456789abcdef0123456789abcdef PUBLIC=https://bench.example.org
WORK=$(mktemp -d /tmp/skm-XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill %1 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
env MALLOC_PERTURB_= ${EXTRA_ENV:-} SOUK_DATA="$WORK/d" SOUK_PORT=$PORT SOUK_LISTEN=lo SOUK_PUBLIC_URL=$PUBLIC \
  TWILIO_AUTH_TOKEN=$TOKEN SOUK_DEBOUNCE_MS=0 SOUK_LOG_LEVEL=warn $BUILD/souk serve 2>"$WORK/log" &
for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.05; done
python3 bench/webhook/gen_requests.py "$WORK/req.tsv" "$N" "$N" "$TOKEN" "$PUBLIC" 9 --first
python3 - "$WORK/req.tsv" "$PORT" <<'PY'
import re, sys, urllib.request
for body, sig in (l.rstrip("\n").split("\t") for l in open(sys.argv[1])):
    req = urllib.request.Request("http://127.0.0.1:%s/webhooks/whatsapp" % sys.argv[2], data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})
    urllib.request.urlopen(req, timeout=10).read()
PY
sleep 6 # let every session finish its turn and settle into idle (its store handle goes after 5 s)
SOUK_DATA="$WORK/d" $BUILD/souk status --json | python3 -c '
import json, sys
pids = [a["pid"] for a in json.load(sys.stdin)["actors"] if a["role"] == "session"]
priv = []; pss = []
for pid in pids:
    f = {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in open("/proc/%d/smaps_rollup" % pid) if ":" in l and l.split(":")[0] in ("Pss", "Private_Clean", "Private_Dirty"))}
    priv.append(f["Private_Clean"] + f["Private_Dirty"]); pss.append(f["Pss"])
priv.sort(); pss.sort()
print("idle session actors: %d; private memory p50 %d KiB, max %d KiB; Pss p50 %d KiB" % (len(pids), priv[len(priv)//2], priv[-1], pss[len(pss)//2]))
'
