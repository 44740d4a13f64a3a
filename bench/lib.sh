# Shared by the benchmark scripts (bench/*/run.sh, bench/webhook/turn.sh),
# sourced once they are in the source folder: the token and public URL the
# generated webhook requests are signed with, a work folder, free ports,
# waiting for an HTTP answer, wrk's figures, dynalite.
TOKEN=0123456789abcdef0123456789abcdef
PUBLIC=https://bench.example.org

# bench_work NAME: WORK, a new folder /tmp/NAME-XXXXXX; at exit every job is
# killed and waited for, and the folder removed.
bench_work() {
  WORK=$(mktemp -d "/tmp/$1-XXXXXX")
  trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
}

# bench_release: BUILD (build-release unless set), configured as a release
# build and brought up to date (a no-op when it is: a stale binary would
# measure old code), after scripts/setup.
bench_release() {
  BUILD="${BUILD:-build-release}"
  ./scripts/setup
  ./scripts/build "$BUILD" -Dbuildtype=release
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# bench_warm SOUK URL DATA N FILE: wrk rounds of FILE at URL until souk
# status (SOUK binary, SOUK_DATA=DATA) lists N live sessions (at most 20
# rounds), so the measured run spawns none.
bench_warm() {
  local live=0
  for _ in $(seq 20); do
    wrk -t1 -c32 -d2s -s bench/webhook/wrk.lua "$2" -- "$5" >/dev/null
    live=$(SOUK_DATA="$3" "$1" status --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"sessions_live\"])")
    [ "$live" -ge "$4" ] && return 0
  done
  echo "warning: only $live of $4 sessions live after warming" >&2
}
# wait_http URL: 0 once it answers 2xx, 1 after about 20 s.
wait_http() { for _ in $(seq 400); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }

# wrk's figures, from its output file (run with --latency for the percentiles).
wrk_rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
wrk_lat() { awk -v q="$2" '$1==q {print $2}' "$1"; }          # file, 50% or 99%
wrk_total() { awk '/requests in/ {print $1}' "$1"; }
wrk_non2xx() { awk '/Non-2xx/ {print $NF}' "$1" | grep . || echo 0; }

# bench_dynalite: dynalite (tests/node_modules, from scripts/setup) on a free
# port, as a job; the port in DPORT, its log in $WORK/dynalite.log.
bench_dynalite() {
  DPORT=$(free_port)
  node tests/node_modules/dynalite/cli.js --host 127.0.0.1 --port "$DPORT" --createTableMs 0 \
    >"$WORK/dynalite.log" 2>&1 &
  wait_http "http://127.0.0.1:$DPORT/" || true
}
