#!/usr/bin/env bash
# bench/chat-sweep.sh: chat capacity, scripts/chat.lua beside the Go chat
# peer (../shared/bench/peers/go_chat.go), in one run.
#
#   bench/chat-sweep.sh                        # the sweep
#   bench/chat-sweep.sh --rates "2000 10000"
#   bench/chat-sweep.sh --servers "coronet coronet-w2" -d 3
#   QUICK=1 bench/chat-sweep.sh                # 2000 and 20000 lines/s, 2 s
#
# 100 members (--clients), lines/s in total from 2000 to 40000 (--rates),
# every line due to the 99 others; deliveries per second, lost, p50/p99
# latency from the scheduled send time, server and load generator CPU.
# Servers: coronet (1 worker, CPU 0), coronet-w2 (--workers 2, CPUs 0-1),
# go (GOMAXPROCS=1, CPU 0), go-p2 (GOMAXPROCS=2, CPUs 0-1). The load
# generator runs on CPU 1: beside the two-core servers it shares a core,
# so compare those two with each other, and read the CPU columns.
# (The reach of one line in a large room: bench/reach.sh.)
# Results: $OUT_DIR (/tmp/coronet-bench/chat-<time>/results.md).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench/build}
OUT_DIR=${OUT_DIR:-/tmp/coronet-bench/chat-$(date +%Y%m%d-%H%M%S)}
RATES="2000 5000 10000 20000 30000 40000"
CLIENTS=100
DURATION=5
if [ "${QUICK:-0}" = 1 ]; then RATES="2000 20000" DURATION=2; fi
SERVERS="coronet coronet-w2 go go-p2"
die() { echo "chat-sweep: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --rates) RATES=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    -d) DURATION=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
mkdir -p "$OUT_DIR" "$BUILD_DIR" || die "cannot make $OUT_DIR"
RESULTS=$OUT_DIR/results.md
say() { echo "$*" | tee -a "$RESULTS"; }

make -C "$ROOT" -s >/dev/null || die "make failed"
LOADGEN=$BUILD_DIR/loadgen-chat
if [ -f "$SHARED/loadgen.c" ]; then
  cc -O2 -o "$LOADGEN" "$SHARED/loadgen.c" -lpthread || die "cannot build $SHARED/loadgen.c"
else
  cc -std=gnu11 -O2 -o "$LOADGEN" "$ROOT/bench/loadgen.c" || die "cannot build the load generator"
fi
GO_CHAT=$BUILD_DIR/go_chat
if [ ! -x "$GO_CHAT" ] && command -v go >/dev/null && [ -f "$SHARED/peers/go_chat.go" ]; then
  export GOCACHE=${GOCACHE:-$BUILD_DIR/go-cache}
  env -C "$BUILD_DIR" go build -o "$GO_CHAT" "$SHARED/peers/go_chat.go" || true
fi

SPID=
stop_server() {
  [ -n "$SPID" ] || return
  kill -TERM "$SPID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  SPID=
}
trap stop_server EXIT

# start_server NAME PORT -> sets SPID; 1 when it cannot run
start_server() {
  local log=$OUT_DIR/$1.$2.log
  case $1 in
    coronet) taskset -c 0 "$ROOT/host/coronet" "$ROOT/scripts/chat.lua" -q \
               -l "127.0.0.1:$2" >"$log" 2>&1 & ;;
    coronet-w2) taskset -c 0,1 "$ROOT/host/coronet" "$ROOT/scripts/chat.lua" -q \
               --workers 2 -l "127.0.0.1:$2" >"$log" 2>&1 & ;;
    go) [ -x "$GO_CHAT" ] || return 1
        GOMAXPROCS=1 taskset -c 0 "$GO_CHAT" "$2" >"$log" 2>&1 & ;;
    go-p2) [ -x "$GO_CHAT" ] || return 1
        GOMAXPROCS=2 taskset -c 0,1 "$GO_CHAT" "$2" >"$log" 2>&1 & ;;
    *) return 1 ;;
  esac
  SPID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  stop_server
  return 1
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
field() { printf '%s\n' "$1" | grep -oE "(^| )$2=[^ ]+" | head -1 | cut -d= -f2; }

# run NAME PORT CLIENTS RATE SECS -> one table row
run() {
  local name=$1 port=$2 n=$3 rate=$4 secs=$5 out a b t0 t1 cpu
  start_server "$name" "$port" || { say "| $name | $n | $rate | (cannot run) | | | | | | |"; return; }
  a=$(ticks "$SPID"); t0=$(date +%s.%N)
  out=$(timeout $(( secs * 4 + 600 )) taskset -c 1 "$LOADGEN" chat -p "$port" -c "$n" \
    --rate "$rate" -d "$secs" 2>"$OUT_DIR/$name.$rate.$n.err" | grep '^mode=' | tail -1)
  t1=$(date +%s.%N); b=$(ticks "$SPID")
  cpu=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f%%", 100 * (b - a) / hz / (t1 - t0) }')
  printf '%s\n' "$out" >>"$OUT_DIR/raw.txt"
  say "| $name | $n | $rate | $(field "$out" deliveries_s) | $(field "$out" lost) |" \
    "$(field "$out" p50_us) | $(field "$out" p99_us) | $(field "$out" max_us) | $cpu |" \
    "$(field "$out" lg_cpu_pct)% |"
  stop_server
}

say "# chat: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; load generator on CPU 1"
say ""
PORT=$(( 18000 + RANDOM % 1000 ))
say "## Capacity: $CLIENTS members, lines/s in total (each to $(( CLIENTS - 1 )) others)"
say ""
say "| server | members | lines/s | deliveries/s | lost | p50 µs | p99 µs | max µs | server CPU (whole run) | loadgen CPU |"
say "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for rate in $RATES; do
  for s in $SERVERS; do
    PORT=$(( PORT + 1 ))
    run "$s" "$PORT" "$CLIENTS" "$rate" "$DURATION"
  done
done
say ""
say "raw: $OUT_DIR/raw.txt"
