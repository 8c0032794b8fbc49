#!/usr/bin/env bash
# bench/chat-redis-bench.sh - chat fan-out across processes: 100 members
# (CHAT_CLIENTS) sending CHAT_RATE lines/s in total, every line to every
# other member, against scripts/chat.lua as one process, and as two
# processes sharing the address (--reuseport) and a bus through one Redis
# (--bus, a private redis-server on a unix socket). The load is the chat
# mode of ../shared/bench/loadgen.c (else bench/loadgen.c); it checks every
# delivery. Chat processes and redis-server pinned to SERVER_CPU, the load
# to LOADGEN_CPU. Prints a markdown table (median of ROUNDS by
# deliveries/s) with the 2-process / 1-process ratios.
#   bench/chat-redis-bench.sh     QUICK=1 bench/chat-redis-bench.sh (smoke)
# Environment: CORONET, SERVER_CPU (0), LOADGEN_CPU (1), QUICK, ROUNDS (3),
# CHAT_CLIENTS (100), CHAT_RATE (2000), DURATION (3), WARMUP (1), PORT
# (default: a free one). Always exits 0; says so when it cannot run.
NAME=chat-redis-bench
. "$(dirname "$0")/redis-common.sh"
if [ "$QUICK" = 1 ]; then ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2}; fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CHAT_CLIENTS=${CHAT_CLIENTS:-100}
CHAT_RATE=${CHAT_RATE:-2000}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[ -f "$ROOT/scripts/chat.lua" ] || { echo "$NAME: no scripts/chat.lua"; exit 0; }

LOADGEN=$DIR/loadgen
SRC=$SHARED/loadgen.c
[ -f "$SRC" ] || SRC=$ROOT/bench/loadgen.c
cc -O2 -pthread -o "$LOADGEN" "$SRC" 2>"$DIR/build.log" ||
  { echo "chat-redis-bench: cannot build $SRC"; exit 0; }

free_port() {
  local p
  for p in $(seq $((17500 + $$ % 300)) 17999); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# load SETUP: starts the chat as SETUP says (one | two), runs the chat
# load, prints its result line
load() {
  local port; port=${PORT:-$(free_port)}
  if [ "$1" = two ]; then
    start_redis "$SERVER_CPU"
    for _ in 1 2; do
      bg "$SERVER_CPU" "$DIR/servers.log" "$CORONET" "$ROOT/scripts/chat.lua" \
        -q --reuseport --bus "unix:$SOCK" -l "127.0.0.1:$port"
    done
    sleep 0.5 # both bridges up, both listening
  else
    bg "$SERVER_CPU" "$DIR/servers.log" "$CORONET" "$ROOT/scripts/chat.lua" \
      -q -l "127.0.0.1:$port"
  fi
  wait_port "$port" 10
  pin "$LOADGEN_CPU" "$LOADGEN" chat -p "$port" -c "$CHAT_CLIENTS" \
    --rate "$CHAT_RATE" -d "$DURATION" -w "$WARMUP" --drain 3 2>>"$DIR/load.log" |
    grep '^mode=' | tail -1
  cleanup
}


declare -A RES
for round in $(seq 1 "$ROUNDS"); do
  for setup in one two; do RES[$setup]+="$(load "$setup")"$'\n'; done
done
med() { printf '%s' "${RES[$1]}" | grep . | field "$2" | median; }

echo "## chat across processes: $CHAT_CLIENTS members, $CHAT_RATE lines/s"
echo
echo "scripts/chat.lua as one process, and as two (--reuseport, --bus through"\
  "one redis-server on a unix socket); median of $ROUNDS; load from"\
  "$(basename "$(dirname "$SRC")")/loadgen.c"
echo
echo "| setup | deliveries/s | lost | p50 µs | p99 µs | max µs |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for setup in one two; do
  label="1 process"; [ "$setup" = two ] && label="2 processes + Redis"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$(med "$setup" deliveries_s)" \
    "$(med "$setup" lost)" "$(med "$setup" p50_us)" "$(med "$setup" p99_us)" \
    "$(med "$setup" max_us)"
done
echo
echo "2 processes ÷ 1: deliveries/s $(ratio "$(med two deliveries_s)" "$(med one deliveries_s)"),"\
  "p99 $(ratio "$(med two p99_us)" "$(med one p99_us)")"
exit 0
