#!/usr/bin/env bash
# bench/admin-bench.sh: what seeing inside costs. Echo 64 B x 100
# connections (bench/loadgen.c) against scripts/echo.lua in three setups,
# interleaved in the same run:
#   bare      --task-slice 0 (no watchdog), no --admin
#   watchdog  the default --task-slice 1
#   admin     the default watchdog and --admin, /metrics scraped every second
# and their ratios to bare. Server on CPU $SERVER_CPU, load on $LOADGEN_CPU.
#   bench/admin-bench.sh                 # 3 rounds of 5 s each
#   QUICK=1 bench/admin-bench.sh        # a smoke run: 1 round of 2 s
# (make bench runs it as its "admin" workload.)
# Results: $OUT_DIR/admin-<time>/results.txt (one key=value line per load)
# and a summary table on stdout. A benchmark, not a test: it fails only
# when it cannot run.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORONET=${CORONET:-$ROOT/host/coronet}
OUT_DIR=${OUT_DIR:-/tmp/coronet-bench}
BUILD_DIR=${BUILD_DIR:-$OUT_DIR/build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
if [ "${QUICK:-0}" = 1 ]; then ROUNDS=1 DURATION=2; fi
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100}
SIZE=${SIZE:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT:-17420}
APORT=${APORT:-17421}
RUN=$OUT_DIR/admin-$(date +%Y%m%d-%H%M%S)
mkdir -p "$BUILD_DIR" "$RUN"
LOADGEN=$BUILD_DIR/coronet-loadgen
if [ ! -x "$LOADGEN" ] || [ "$ROOT/bench/loadgen.c" -nt "$LOADGEN" ]; then
  cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$LOADGEN" "$ROOT/bench/loadgen.c" ||
    { echo "admin-bench: building bench/loadgen.c failed"; exit 2; }
fi
# PIN_S, PIN_L: taskset (which execs its command: $! stays the server's
# PID) when there is one
PIN_S="" PIN_L=""
if command -v taskset >/dev/null 2>&1; then
  PIN_S="taskset -c $SERVER_CPU" PIN_L="taskset -c $LOADGEN_CPU"
fi

# wait_port PORT: until something listens there (5 s at most)
wait_port() {
  i=0
  while [ $i -lt 100 ]; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
    i=$((i + 1))
  done
  return 1
}

# one SETUP: starts the server, loads it, stops it; appends to results.txt
one() {
  setup=$1
  case $setup in
    bare) opts="--task-slice 0" ;;
    watchdog) opts="" ;;
    admin) opts="--admin 127.0.0.1:$APORT" ;;
  esac
  # shellcheck disable=SC2086  # opts and PIN_S are lists of words
  $PIN_S "$CORONET" "$ROOT/scripts/echo.lua" --listen "127.0.0.1:$PORT" \
    $opts -q >"$RUN/server-$setup.log" 2>&1 &
  spid=$!
  if ! wait_port "$PORT"; then
    echo "admin-bench: $setup: the server did not start"
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    return 1
  fi
  scraper=""
  if [ "$setup" = admin ]; then
    wait_port "$APORT" || echo "admin-bench: no admin port"
    (
      end=$(($(date +%s) + WARMUP + DURATION + 2))
      while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null -w "%{http_code} %{size_download}\n" \
          "http://127.0.0.1:$APORT/metrics" >>"$RUN/scrapes.txt"
        sleep 1
      done
    ) &
    scraper=$!
  fi
  # shellcheck disable=SC2086  # PIN_L is a list of words
  out=$($PIN_L "$LOADGEN" echo -p "$PORT" -c "$CONNS" -s "$SIZE" \
    -d "$DURATION" -w "$WARMUP" 2>>"$RUN/loadgen.err" | tail -1)
  [ -n "$scraper" ] && wait "$scraper"
  kill "$spid"
  wait "$spid" 2>/dev/null
  echo "setup=$setup $out" >>"$RUN/results.txt"
}

echo "admin-bench: $ROUNDS rounds of ${DURATION}s, echo ${SIZE} B x $CONNS; results in $RUN"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for setup in bare watchdog admin; do one "$setup"; done
  r=$((r + 1))
done
# Median msgs/s and p99 per setup, and the ratio to bare.
awk '
  { s = ""; m = ""; p = ""
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[1] == "setup") s = kv[2]
      if (kv[1] == "msgs_s") m = kv[2]
      if (kv[1] == "p99_us") p = kv[2]
    }
    if (s != "" && m != "") { n[s]++; ms[s, n[s]] = m; ps[s, n[s]] = p } }
  function median(arr, s, k,   i, j, t, v) {
    for (i = 1; i <= k; i++) v[i] = arr[s, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
      if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((k + 1) / 2)]
  }
  END {
    printf "| setup | msgs/s (median) | p99 us (median) | msgs/s / bare |\n"
    printf "|---|---|---|---|\n"
    b = median(ms, "bare", n["bare"])
    split("bare watchdog admin", order, " ")
    for (o = 1; o <= 3; o++) {
      s = order[o]
      if (!n[s]) continue
      m = median(ms, s, n[s])
      printf "| %s | %d | %.0f | %.3f |\n", s, m, median(ps, s, n[s]), m / b
    }
  }' "$RUN/results.txt" | tee "$RUN/summary.md"
if [ -f "$RUN/scrapes.txt" ]; then
  echo "scrapes: $(wc -l <"$RUN/scrapes.txt") ($(grep -vc '^200 ' "$RUN/scrapes.txt") not 200)"
fi
