#!/usr/bin/env bash
# bench/bus-redis-bench.sh - coronet.bus between two processes through one
# Redis (--bus): a publisher process and a subscriber process
# (bench/bus-redis.lua) on a private redis-server (unix socket in a
# temporary folder). Measures messages/s flat out and the latency from
# publish to delivery (p50, p99, max) flat out and at a steady RATE.
# redis-server pinned to LOADGEN_CPU, both coronet processes to
# SERVER_CPU. Prints a markdown table (median of ROUNDS by rate).
#   bench/bus-redis-bench.sh      QUICK=1 bench/bus-redis-bench.sh (smoke)
# Environment: CORONET, SERVER_CPU (0), LOADGEN_CPU (1), QUICK, ROUNDS (3),
# BUS_N (messages flat out: 200000), BUS_RATE (steady: 10000/s for 3 s),
# BUS_SIZE (64 bytes). Always exits 0; says so when it cannot run.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORONET=${CORONET:-$ROOT/host/coronet}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
QUICK=${QUICK:-${BENCH_QUICK:-0}}
if [ "$QUICK" = 1 ]; then ROUNDS=${ROUNDS:-1} BUS_N=${BUS_N:-20000}; fi
ROUNDS=${ROUNDS:-3}
BUS_N=${BUS_N:-200000}
BUS_RATE=${BUS_RATE:-10000}
BUS_SIZE=${BUS_SIZE:-64}
REDIS_SERVER=$(command -v redis-server || true)

if [ -z "$REDIS_SERVER" ]; then
  echo "bus-redis-bench: redis-server is needed (Debian: redis-server)"
  exit 0
fi
[ -x "$CORONET" ] || (cd "$ROOT" && make -s >/dev/null 2>&1) ||
  { echo "bus-redis-bench: cannot build coronet"; exit 0; }

DIR=$(mktemp -d /tmp/coronet-bus-bench.XXXXXX)
SOCK=$DIR/redis.sock
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT

PIN=0
command -v taskset >/dev/null 2>&1 && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] && PIN=1
pin() {
  local cpu=$1; shift
  if [ "$PIN" = 1 ]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

# bg CPU OUT CMD...: CMD in the background on CPU, output to OUT; its pid
# (taskset execs it) in LAST
bg() {
  local cpu=$1 out=$2; shift 2
  if [ "$PIN" = 1 ]; then taskset -c "$cpu" "$@" >"$out" 2>>"$DIR/err.log" &
  else "$@" >"$out" 2>>"$DIR/err.log" & fi
  LAST=$!
  PIDS+=("$LAST")
}

bg "$LOADGEN_CPU" "$DIR/redis.log" "$REDIS_SERVER" --port 0 --unixsocket \
  "$SOCK" --save "" --appendonly no --dir "$DIR" --loglevel warning
for _ in $(seq 1 100); do
  [ "$(redis-cli -s "$SOCK" ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done
[ "$(redis-cli -s "$SOCK" ping 2>/dev/null)" = PONG ] ||
  { echo "bus-redis-bench: redis-server did not start"; exit 0; }

# run N RATE: one round; prints the subscriber's result line
run() {
  local n=$1 rate=$2 topic=bench$RANDOM out=$DIR/sub.$$.out
  : >"$out"
  bg "$SERVER_CPU" "$out" "$CORONET" -q --bus "unix:$SOCK" --run \
    "$ROOT/bench/bus-redis.lua" sub "$topic" "$n"
  local sub=$LAST
  for _ in $(seq 1 200); do
    grep -q ready "$out" &&
      [ "$(redis-cli -s "$SOCK" pubsub numsub "coronet:bus:0:$topic" | tail -1)" = 1 ] &&
      break
    sleep 0.025
  done
  pin "$SERVER_CPU" "$CORONET" -q --bus "unix:$SOCK" --run \
    "$ROOT/bench/bus-redis.lua" pub "$topic" "$n" "$rate" "$BUS_SIZE" \
    >/dev/null 2>>"$DIR/err.log"
  wait "$sub"
  grep received= "$out"
}

field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'; }

echo "## coronet.bus between two processes through Redis"
echo
echo "redis-server $("$REDIS_SERVER" --version | awk '{ print $3 }' | sed 's/v=//'),"\
  "unix socket, on CPU $LOADGEN_CPU; publisher and subscriber processes on"\
  "CPU $SERVER_CPU; $BUS_SIZE-byte messages; median of $ROUNDS"
echo
echo "| load | messages | delivered | msg/s | p50 µs | p99 µs | max µs |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
steady_n=$((BUS_RATE * 3))
[ "$QUICK" = 1 ] && steady_n=$BUS_RATE
for load in "flat out:$BUS_N:0" "$BUS_RATE/s:$steady_n:$BUS_RATE"; do
  label=${load%%:*} rest=${load#*:} n=${rest%%:*} rate=${rest#*:}
  lines=()
  for _ in $(seq 1 "$ROUNDS"); do lines+=("$(run "$n" "$rate")"); done
  med() { printf '%s\n' "${lines[@]}" | field "$1" | median; }
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$n" \
    "$(med received)" "$(med rate)" "$(med p50_us)" "$(med p99_us)" "$(med max_us)"
done
if [ -s "$DIR/err.log" ]; then
  echo
  echo "errors:"
  head -5 "$DIR/err.log"
fi
exit 0
