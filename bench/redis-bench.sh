#!/usr/bin/env bash
# bench/redis-bench.sh - coronet.redis against redis-benchmark, the same
# load in the same run (bench/run.sh runs it as its "redis" workload; it
# also runs alone). One redis-server (its own, on a unix socket in a
# temporary folder) pinned to SERVER_CPU; each client pinned to
# LOADGEN_CPU in turn: redis-benchmark -c 1 -P DEPTH -t set,get (3-byte
# values, one key) and bench/redis-client.lua doing the same on one
# connection, 1, 16 and 128 commands in flight. Prints a markdown table of
# commands/s and the coronet / redis-benchmark ratio (median of ROUNDS).
#   bench/redis-bench.sh         QUICK=1 bench/redis-bench.sh (smoke run)
# Environment: CORONET, SERVER_CPU (0), LOADGEN_CPU (1), QUICK, ROUNDS (3),
# REDIS_N (commands per run at depth 1: 50000; deeper runs do 10x),
# DEPTHS ("1 16 128"). Always exits 0; says so when it cannot run.
NAME=redis-bench
. "$(dirname "$0")/redis-common.sh"
if [ "$QUICK" = 1 ]; then ROUNDS=${ROUNDS:-1} REDIS_N=${REDIS_N:-10000}; fi
ROUNDS=${ROUNDS:-3}
REDIS_N=${REDIS_N:-50000}
DEPTHS=${DEPTHS:-"1 16 128"}
REDIS_BENCHMARK=$(command -v redis-benchmark || true)
[ -n "$REDIS_BENCHMARK" ] ||
  { echo "redis-bench: redis-benchmark is needed (Debian: redis-tools)"; exit 0; }
start_redis "$SERVER_CPU"

# rb CMD N DEPTH: redis-benchmark's requests/s
rb() {
  pin "$LOADGEN_CPU" "$REDIS_BENCHMARK" -s "$SOCK" -c 1 -n "$2" -P "$3" \
    -t "$1" --csv 2>/dev/null | awk -F'"' -v t="$(echo "$1" | tr a-z A-Z)" \
    '$2 == t { print $4; exit }'
}
# cn CMD N DEPTH: coronet.redis's commands/s (empty on errors)
cn() {
  pin "$LOADGEN_CPU" "$CORONET" --run "$ROOT/bench/redis-client.lua" \
    "unix:$SOCK" "$1" "$2" "$3" 2>>"$DIR/client.log" |
    awk '/errors=0/ { sub("rps=", "", $1); print $1 }'
}

echo "## coronet.redis vs redis-benchmark (one connection, commands/s)"
echo
echo "redis-server $(redis_version),"\
  "unix socket; server on CPU $SERVER_CPU, client on CPU $LOADGEN_CPU;" \
  "median of $ROUNDS"
echo
echo "| command | in flight | coronet | redis-benchmark | ratio |"
echo "| --- | ---: | ---: | ---: | ---: |"
for depth in $DEPTHS; do
  n=$REDIS_N
  [ "$depth" -gt 1 ] && n=$((REDIS_N * 10))
  for cmd in set get; do
    a= b=
    for round in $(seq 1 "$ROUNDS"); do
      if [ $((round % 2)) = 1 ]; then
        a+="$(cn "$cmd" "$n" "$depth") "; b+="$(rb "$cmd" "$n" "$depth") "
      else
        b+="$(rb "$cmd" "$n" "$depth") "; a+="$(cn "$cmd" "$n" "$depth") "
      fi
    done
    ma=$(echo "$a" | tr ' ' '\n' | grep . | median)
    mb=$(echo "$b" | tr ' ' '\n' | grep . | median)
    printf '| %s | %s | %s | %s | %s |\n' "$(echo "$cmd" | tr a-z A-Z)" \
      "$depth" "${ma:-n/a}" "${mb:-n/a}" "$(ratio "$ma" "$mb")"
  done
done
if [ -s "$DIR/client.log" ]; then
  echo
  echo "coronet client errors:"
  head -5 "$DIR/client.log"
fi
exit 0
