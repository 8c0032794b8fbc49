#!/usr/bin/env bash
# bench/reach.sh - broadcast reach: a chat room of MEMBERS members; one
# member says REACH_RATE lines a second for REACH_SECS seconds; for each
# line, how long until it had reached half, 99% and every one of the
# other members (bench/loadgen.c reach: the kernel's receive timestamps,
# so the load generator's own pace does not count). Reported over the
# lines: p50, p90 and max of the time until the whole room had the line.
# Servers: coronet-w2 (scripts/chat.lua --workers 2, CPUs SERVER_CPU and
# LOADGEN_CPU), coronet (1 worker, SERVER_CPU), go-p2 (the Go chat peer
# of ../shared/bench at GOMAXPROCS=2, both CPUs). The load generator is
# pinned to LOADGEN_CPU, so beside the two-core servers it shares a core;
# the CPU columns say how busy each side was. bench/run.sh runs it as its
# "reach" workload; it also runs alone.
#   bench/reach.sh               QUICK=1 bench/reach.sh (2000 members)
# Environment: CORONET, BUILD_DIR (/tmp/coronet-bench/build), SHARED_BENCH,
# SERVER_CPU (0), LOADGEN_CPU (1), QUICK, MEMBERS (10000), REACH_RATE (5),
# REACH_SECS (10), REACH_SERVERS ("coronet-w2 coronet go-p2"), REACH_PORT,
# OUT_DIR (/tmp/coronet-bench/reach-<time>: the servers' logs, raw.txt).
# Prints a markdown table; exits 0 (a server that cannot run says so).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORONET=${CORONET:-$ROOT/host/coronet}
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench/build}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
QUICK=${QUICK:-${BENCH_QUICK:-0}}
if [ "$QUICK" = 1 ]; then MEMBERS=${MEMBERS:-2000} REACH_SECS=${REACH_SECS:-3}; fi
MEMBERS=${MEMBERS:-10000}
REACH_RATE=${REACH_RATE:-5}
REACH_SECS=${REACH_SECS:-10}
REACH_SERVERS=${REACH_SERVERS:-"coronet-w2 coronet go-p2"}
PORT=${REACH_PORT:-$(( 18100 + RANDOM % 800 ))}
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
trap cleanup EXIT

mkdir -p "$BUILD_DIR" || exit 0
LOADGEN=$(build_loadgen "$BUILD_DIR") || { echo "reach: cannot build bench/loadgen.c"; exit 0; }
GO_CHAT=$BUILD_DIR/go_chat
if [ ! -x "$GO_CHAT" ] && command -v go >/dev/null && [ -f "$SHARED/peers/go_chat.go" ]; then
  GOCACHE=${GOCACHE:-$BUILD_DIR/go-cache} env -C "$BUILD_DIR" \
    go build -o "$GO_CHAT" "$SHARED/peers/go_chat.go" >/dev/null 2>&1
fi
BOTH=$SERVER_CPU,$LOADGEN_CPU
LOG=${OUT_DIR:-/tmp/coronet-bench/reach-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$LOG" || exit 0

# start NAME PORT: the server in the background (PIDS); 1 if it cannot run
start() {
  local log=$LOG/$1.log
  case $1 in
    coronet-w2) spawn "$BOTH" "$CORONET" "$ROOT/scripts/chat.lua" -q --workers 2 \
                  -l "127.0.0.1:$2" >"$log" 2>&1 ;;
    coronet) spawn "$SERVER_CPU" "$CORONET" "$ROOT/scripts/chat.lua" -q \
               -l "127.0.0.1:$2" >"$log" 2>&1 ;;
    go-p2) [ -x "$GO_CHAT" ] || return 1
           GOMAXPROCS=2 spawn "$BOTH" "$GO_CHAT" "$2" >"$log" 2>&1 ;;
    *) return 1 ;;
  esac
  wait_port "$2" || { cleanup; return 1; }
}

us() { awk -v x="$1" 'BEGIN { if (x == "") print "–"; else if (x < 0) print "never";
  else if (x < 1000) printf "%d µs", x;
  else if (x < 1e6) printf "%.1f ms", x / 1e3; else printf "%.2f s", x / 1e6 }'; }
field() { printf '%s\n' "$1" | grep -oE "(^| )$2=[^ ]+" | head -1 | cut -d= -f2; }

echo "## Broadcast reach: $MEMBERS members, one line every $(awk -v r="$REACH_RATE" \
  'BEGIN { printf "%g", 1 / r }') s for $REACH_SECS s"
echo
echo "For each line, the time from its send until the server's writes had put it in"
echo "the sockets of half, 99% and all of the other $((MEMBERS - 1)) members (kernel"
echo "receive timestamps); *whole room* gives p50, p90 and max over the lines."
echo "Load generator on CPU $LOADGEN_CPU; two-core servers share it. CPU: % of one"
echo "core while the lines went out."
echo
echo "| server | half the room (median line) | 99% (median line) | whole room p50 | p90 | max | lost | server CPU | loadgen CPU | read by loadgen: whole room p50 |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for s in $REACH_SERVERS; do
  PORT=$((PORT + 1))
  if ! start "$s" "$PORT"; then
    echo "| $s | (cannot run here) | | | | | | | | |"
    continue
  fi
  out=$(timeout $((REACH_SECS + 150)) taskset -c "$LOADGEN_CPU" "$LOADGEN" reach -p "$PORT" \
    -c "$MEMBERS" --rate "$REACH_RATE" -d "$REACH_SECS" -w 1 --drain 5 \
    --connect-timeout 60 --prime-timeout 60 --server-pid "${PIDS[-1]}" \
    2>"$LOG/$s.err" | grep '^mode=' | tail -1)
  cleanup
  if [ -z "$out" ]; then
    echo "| $s | (no result: $(tail -1 "$LOG/$s.err")) | | | | | | | | |"
    continue
  fi
  echo "$out" >>"$LOG/raw.txt"
  lost=$(field "$out" lost)
  [ "$(field "$out" sync)" = ok ] || lost="$lost (not all joined)"
  [ "$(field "$out" errors)" = 0 ] || lost="$lost, errors $(field "$out" errors)"
  echo "| $s | $(us "$(field "$out" half_us)") | $(us "$(field "$out" p99_us)") |" \
    "$(us "$(field "$out" all_p50_us)") | $(us "$(field "$out" all_p90_us)") |" \
    "$(us "$(field "$out" all_max_us)") | $lost | $(field "$out" srv_cpu_pct)% |" \
    "$(field "$out" lg_cpu_pct)% | $(us "$(field "$out" read_all_p50_us)") |"
done
echo
echo "raw: $LOG/raw.txt"
