#!/usr/bin/env bash
# bench/io-bench.sh - coronet's Reader/Writer benchmark (bench/run.sh runs it
# as its "io" workload; it also runs alone). Prints markdown tables:
#
#  1. io.copy socket->socket: scripts/proxy.lua (two io.copy calls, moved
#     inside the host by its pump) against bench/c_relay.c, a plain C libuv
#     relay on one loop. Bulk: bench/io-load.c pushes IO_MIB MiB over
#     IO_CONNS connections through the relay to a sink that checks the
#     count. Ping-pong: 64 B echo at 100 connections through the relay to
#     an echo upstream (loadgen from ../shared/bench, else bench/loadgen.c).
#     Relay pinned to SERVER_CPU, everything else to LOADGEN_CPU; besides
#     throughput, the relay's own CPU time per GiB / per message (from
#     /proc), which stays fair when the load side is the bottleneck.
#  2. Line reading: bufio.reader (over a string reader and over a file) and
#     a connection's native read_line, against a plain LuaJIT loop of
#     string.find over the same data (bench/io-lines.lua).
#
# Builds go to BUILD_DIR (default /tmp/coronet-bench/build). Always exits 0;
# a part that cannot run says so in the output.
#   bench/io-bench.sh            QUICK=1 bench/io-bench.sh    (shorter)
# Environment: CORONET, BUILD_DIR, SERVER_CPU (0), LOADGEN_CPU (1), QUICK,
# IO_MIB (2048), IO_CONNS (4), IO_ROUNDS (3), IO_SECS (3), IO_PORT_BASE
# (first of 6 ports; default: a free block from 17400 on), LINES_MIB (32).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORONET=${CORONET:-$ROOT/host/coronet}
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench/build}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
QUICK=${QUICK:-${BENCH_QUICK:-0}}
if [ "$QUICK" = 1 ]; then
  IO_MIB=${IO_MIB:-512} IO_ROUNDS=${IO_ROUNDS:-1} IO_SECS=${IO_SECS:-2}
  LINES_MIB=${LINES_MIB:-16}
fi
IO_MIB=${IO_MIB:-2048}
IO_CONNS=${IO_CONNS:-4}
IO_ROUNDS=${IO_ROUNDS:-3}
IO_SECS=${IO_SECS:-3}
LINES_MIB=${LINES_MIB:-32}
PORT=${IO_PORT_BASE:-}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
trap 'cleanup; rm -f "$BUILD_DIR/io-bench-servers.$$.log"' EXIT

# start CPU CMD... spawns a server (pid in LAST_PID), its errors to the
# servers' log.
start() {
  local cpu=$1; shift
  spawn "$cpu" "$@" >/dev/null 2>>"$BUILD_DIR/io-bench-servers.$$.log"
}

# port_block: sets PORT to the first of 6 ports nobody listens on (another
# run of this script may hold the usual ones).
port_block() {
  local base=${PORT:-$((17400 + $$ % 50 * 10))} i k busy
  for i in $(seq 1 40); do
    busy=0
    for k in 0 1 2 3 4 5; do
      (exec 3<>"/dev/tcp/127.0.0.1/$((base + k))") 2>/dev/null && busy=1
    done
    [ "$busy" = 0 ] && { PORT=$base; return 0; }
    base=$((base + 10))
  done
  PORT=$base
}

# build OUT CC-ARGS...: compiles to a temporary name, then renames, so that
# a concurrent run's binary of the same name keeps running.
build() {
  local out=$1; shift
  cc "$@" -o "$out.$$" 2>>"$BUILD_DIR/io-build.$$.log" && mv -f "$out.$$" "$out"
}

# cpu_ticks PID: user + system time of a process, in clock ticks.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}


# -- Build ------------------------------------------------------------------
mkdir -p "$BUILD_DIR" || exit 0
: >"$BUILD_DIR/io-bench-servers.$$.log"
if [ ! -x "$CORONET" ]; then
  (cd "$ROOT" && make -s >/dev/null 2>&1) || { echo "io-bench: cannot build coronet"; exit 0; }
fi
UV_FLAGS=$(pkg-config --cflags --libs libuv 2>/dev/null || echo -luv)
RELAY=$BUILD_DIR/c_relay LOAD=$BUILD_DIR/io-load LOADGEN=$BUILD_DIR/io-loadgen
build "$RELAY" -O2 "$ROOT/bench/c_relay.c" $UV_FLAGS ||
  { echo "io-bench: cannot build bench/c_relay.c (see $BUILD_DIR/io-build.$$.log)"; RELAY=; }
build "$LOAD" -O2 -pthread "$ROOT/bench/io-load.c" ||
  { echo "io-bench: cannot build bench/io-load.c"; LOAD=; }
LOADGEN_SRC=$SHARED/loadgen.c
[ -f "$LOADGEN_SRC" ] || LOADGEN_SRC=$ROOT/bench/loadgen.c
build "$LOADGEN" -O2 -pthread "$LOADGEN_SRC" || LOADGEN=
rm -f "$BUILD_DIR/io-build.$$.log"
port_block

# -- 1. Relay: bulk and ping-pong ------------------------------------------------
SINK_PORT=$PORT ECHO_PORT=$((PORT + 1)) C_PORT=$((PORT + 2)) CN_PORT=$((PORT + 3))
C_PORT2=$((PORT + 4)) CN_PORT2=$((PORT + 5))

# relay_servers UPSTREAM_PORT C_PORT CN_PORT: starts both relays; pids in
# C_PID, CN_PID.
relay_servers() {
  start "$SERVER_CPU" "$RELAY" "$2" "$1"; C_PID=$LAST_PID
  start "$SERVER_CPU" "$CORONET" "$ROOT/scripts/proxy.lua" -q \
    --listen "127.0.0.1:$3" -- "127.0.0.1:$1"; CN_PID=$LAST_PID
  wait_port "$2" && wait_port "$3"
}

declare -A BULK CPU_GIB PP PP_US PP_P99
if [ -n "$RELAY" ] && [ -n "$LOAD" ]; then
  start "$LOADGEN_CPU" "$LOAD" sink "$SINK_PORT"
  if wait_port "$SINK_PORT" && relay_servers "$SINK_PORT" "$C_PORT" "$CN_PORT"; then
    for round in $(seq 1 "$IO_ROUNDS"); do
      order="c cn"; [ $((round % 2)) = 0 ] && order="cn c"
      for s in $order; do
        if [ "$s" = c ]; then p=$C_PORT pid=$C_PID; else p=$CN_PORT pid=$CN_PID; fi
        t0=$(cpu_ticks "$pid")
        out=$(pin "$LOADGEN_CPU" "$LOAD" blast "$p" "$IO_CONNS" "$IO_MIB")
        t1=$(cpu_ticks "$pid")
        note "bulk $s round $round: $out"
        if [ "$(echo "$out" | field verify)" = ok ]; then
          BULK[$s]+="$(echo "$out" | field MiB_s) "
          CPU_GIB[$s]+="$(awk -v d=$((t1 - t0)) -v tk="$TICK" -v m="$IO_MIB" 'BEGIN { printf "%.3f", d / tk / (m / 1024) }') "
        fi
      done
    done
  else
    echo "io-bench: the relay servers did not start (ports $PORT-$((PORT + 3)) busy?)"
  fi
  cleanup
  if [ -n "$LOADGEN" ]; then
    start "$LOADGEN_CPU" "$LOAD" echo "$ECHO_PORT"
    if wait_port "$ECHO_PORT" && relay_servers "$ECHO_PORT" "$C_PORT2" "$CN_PORT2"; then
      for round in $(seq 1 "$IO_ROUNDS"); do
        order="c cn"; [ $((round % 2)) = 0 ] && order="cn c"
        for s in $order; do
          if [ "$s" = c ]; then p=$C_PORT2 pid=$C_PID; else p=$CN_PORT2 pid=$CN_PID; fi
          t0=$(cpu_ticks "$pid")
          out=$(pin "$LOADGEN_CPU" "$LOADGEN" echo -p "$p" -c 100 -s 64 -d "$IO_SECS" -w 1 2>/dev/null)
          t1=$(cpu_ticks "$pid")
          note "ping-pong $s round $round: $out"
          rate=$(echo "$out" | field msgs_s) msgs=$(echo "$out" | field msgs)
          if [ -n "$rate" ] && [ "$(echo "$out" | field errors)" = 0 ]; then
            PP[$s]+="$rate "
            PP_P99[$s]+="$(echo "$out" | field p99_us) "
            # warm-up and measured seconds both cost CPU: per message of the whole run
            PP_US[$s]+="$(awk -v d=$((t1 - t0)) -v tk="$TICK" -v r="$rate" -v s="$IO_SECS" 'BEGIN { printf "%.2f", d / tk * 1e6 / (r * (s + 1)) }') "
          fi
        done
      done
    fi
    cleanup
  fi
else
  echo "io-bench: relay part skipped (no C compiler or libuv headers)"
fi

med() { echo "$1" | tr ' ' '\n' | grep . | median; }
row() { # label C coronet
  printf '| %s | %s | %s | %s |\n' "$1" "${2:-n/a}" "${3:-n/a}" "$(ratio "${3:-}" "${2:-}")"
}

echo "### io.copy socket to socket: scripts/proxy.lua vs a C libuv relay"
echo
echo "Relay on CPU $SERVER_CPU, load and upstream on CPU $LOADGEN_CPU; median of $IO_ROUNDS rounds."
echo
echo "| load | C relay (bench/c_relay.c) | coronet proxy (2 × io.copy) | coronet ÷ C |"
echo "|---|---|---|---|"
row "bulk $IO_MIB MiB over $IO_CONNS conns, MiB/s (higher is better)" "$(med "${BULK[c]:-}")" "$(med "${BULK[cn]:-}")"
row "relay CPU seconds per GiB moved (lower is better)" "$(med "${CPU_GIB[c]:-}")" "$(med "${CPU_GIB[cn]:-}")"
row "echo 64 B × 100 conns through the relay, msgs/s" "$(med "${PP[c]:-}")" "$(med "${PP[cn]:-}")"
row "relay CPU µs per echoed message (lower is better)" "$(med "${PP_US[c]:-}")" "$(med "${PP_US[cn]:-}")"
row "echo p99 latency µs (lower is better)" "$(med "${PP_P99[c]:-}")" "$(med "${PP_P99[cn]:-}")"
echo

# -- 2. Line reading ----------------------------------------------------------------
echo "### Line reading: bufio and native read_line vs plain string.find"
echo
out=$(pin "$SERVER_CPU" "$CORONET" --run "$ROOT/bench/io-lines.lua" "$LINES_MIB" 3 2>&1)
base=$(echo "$out" | awk -F'\t' '$1 == "plain string.find" { print $2 }')
if [ -z "$base" ]; then
  echo "bench/io-lines.lua failed:"
  echo '```'
  echo "$out" | tail -5
  echo '```'
else
  lines=$(echo "$out" | awk -F'\t' '$1 == "lines" { print $2 }')
  echo "$LINES_MIB MiB, $lines lines of 1-120 bytes (some ending in \\r\\n), on CPU $SERVER_CPU; best of 3."
  echo
  echo "| reader | lines/s | ÷ plain string.find |"
  echo "|---|---|---|"
  echo "$out" | awk -F'\t' -v base="$base" '
    $1 != "lines" && $1 != "bytes" && NF == 2 {
      printf "| %s | %.0f | %.2f |\n", $1, $2, $2 / base }'
fi
exit 0
