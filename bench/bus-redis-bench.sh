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
NAME=bus-redis-bench
. "$(dirname "$0")/redis-common.sh"
if [ "$QUICK" = 1 ]; then ROUNDS=${ROUNDS:-1} BUS_N=${BUS_N:-20000}; fi
ROUNDS=${ROUNDS:-3}
BUS_N=${BUS_N:-200000}
BUS_RATE=${BUS_RATE:-10000}
BUS_SIZE=${BUS_SIZE:-64}
start_redis "$LOADGEN_CPU"

# run N RATE: one round; prints the subscriber's result line
run() {
  local n=$1 rate=$2 topic=bench$RANDOM out=$DIR/sub.$$.out
  : >"$out"
  bg "$SERVER_CPU" "$out" "$CORONET" -q --bus "unix:$SOCK" --run \
    "$ROOT/bench/bus-redis.lua" sub "$topic" "$n"
  local sub=$LAST_PID
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


echo "## coronet.bus between two processes through Redis"
echo
echo "redis-server $(redis_version),"\
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
