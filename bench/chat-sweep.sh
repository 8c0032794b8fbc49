#!/usr/bin/env bash
# bench/chat-sweep.sh: chat capacity and broadcast reach, scripts/chat.lua
# beside the Go chat peer (../shared/bench/peers/go_chat.go), in one run.
#
#   bench/chat-sweep.sh                        # the sweep
#   bench/chat-sweep.sh --rates "2000 10000"
#   bench/chat-sweep.sh --reach --no-sweep --members 10000
#   bench/chat-sweep.sh --servers "coronet coronet-w2" -d 3
#   bench/chat-sweep.sh --repeat 3 -d 2 --no-reach   # a busy machine
#   bench/chat-sweep.sh --summarize DIR --repeat 3   # DIR's tables again
#
# Sweep: 100 members (--clients), lines/s in total from 2000 to 40000
# (--rates), every line due to the 99 others; deliveries per second,
# lost, p50/p99 latency from the scheduled send time, server CPU.
# Reach: a room of 10,000 members (--members) on 2 workers hears a few
# lines a second; the latency of each delivery is the time one line took
# to reach that member: p50, p99 and max over all deliveries.
# Servers: coronet (1 worker, CPU 0), coronet-old (the chat of before
# the group rewrite, git b2e895f: a channel and a writer task per member,
# 1 worker, CPU 0), coronet-w2 (--workers 2, CPUs 0-1), go (GOMAXPROCS=1,
# CPU 0), go-p2 (GOMAXPROCS=2, CPUs 0-1). The load
# generator runs on CPU 1: beside the two-core servers it shares a core,
# so compare those two with each other, and read the CPU columns.
# --repeat N runs the sweep N times, every server at a rate one after
# the other (interleaved: a busy moment hits all alike), and ends with
# the median p99, the lost deliveries and the members the server closed
# (the old chat closes those it finds too slow; lost counts only the
# deliveries due to members still connected), p99 as a ratio to
# coronet's, and the median server CPU per delivery. Results: $OUT_DIR
# (/tmp/coronet-bench/chat-<time>/results.md).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench}/build
OUT_DIR=${OUT_DIR:-/tmp/coronet-bench/chat-$(date +%Y%m%d-%H%M%S)}
RATES="2000 5000 10000 20000 30000 40000"
CLIENTS=100
MEMBERS=10000
DURATION=5
SERVERS="coronet coronet-old go coronet-w2 go-p2"
SWEEP=1 REACH=0 REPEAT=1 SUMMARIZE= # the reach of make bench is bench/reach.sh
if [ "${QUICK:-0}" = 1 ]; then RATES="2000 20000" DURATION=2; fi
OLD_REV=b2e895f # the chat of before the group rewrite
die() { echo "chat-sweep: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --rates) RATES=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --members) MEMBERS=$2; shift ;;
    -d) DURATION=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --repeat) REPEAT=$2; shift ;;
    --no-sweep) SWEEP=0 ;;
    --no-reach) REACH=0 ;;
    --summarize) SUMMARIZE=$2; shift ;;
    --reach) REACH=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
mkdir -p "$OUT_DIR" "$BUILD_DIR" || die "cannot make $OUT_DIR"
RESULTS=$OUT_DIR/results.md
say() { echo "$*" | tee -a "$RESULTS"; }

make -C "$ROOT" -s >/dev/null || die "make failed"
# The load generator: coronet's own (it ends when the server closed every
# client, as the old chat does under load on a busy machine; the shared
# one then waits for ever), or LOADGEN_SRC=$SHARED/loadgen.c.
LOADGEN_SRC=${LOADGEN_SRC:-$ROOT/bench/loadgen.c}
LOADGEN=$BUILD_DIR/loadgen-chat
cc -std=gnu11 -O2 -o "$LOADGEN" "$LOADGEN_SRC" -lpthread ||
  die "cannot build $LOADGEN_SRC"
GO_CHAT=$BUILD_DIR/go_chat
if [ ! -x "$GO_CHAT" ] && command -v go >/dev/null && [ -f "$SHARED/peers/go_chat.go" ]; then
  export GOCACHE=${GOCACHE:-$BUILD_DIR/go-cache}
  env -C "$BUILD_DIR" go build -o "$GO_CHAT" "$SHARED/peers/go_chat.go" || true
fi

OLD_CHAT=$BUILD_DIR/chat-$OLD_REV.lua
git -C "$ROOT" show "$OLD_REV:scripts/chat.lua" >"$OLD_CHAT" 2>/dev/null ||
  rm -f "$OLD_CHAT"

[ -x "$GO_CHAT" ] || echo "chat-sweep: no Go chat peer ($SHARED/peers/go_chat.go" \
  "and go needed; SHARED_BENCH names the folder): go, go-p2 cannot run" >&2

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
    coronet-old) [ -f "$OLD_CHAT" ] || return 1
               taskset -c 0 "$ROOT/host/coronet" "$OLD_CHAT" -q \
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

# run NAME PORT CLIENTS RATE SECS [ROUND] -> one table row (and one line
# "NAME RATE P99 LOST CLOSED DELIVERED CPU_NS" in $OUT_DIR/runs.txt)
run() {
  local name=$1 port=$2 n=$3 rate=$4 secs=$5 round=${6:-1} out a b t0 t1
  local cpu closed live delivered per
  start_server "$name" "$port" || {
    say "| $name | $n | $rate | (cannot run) | | | | | | | | |"; return; }
  a=$(ticks "$SPID"); t0=$(date +%s.%N)
  out=$(timeout $(( secs * 2 + 60 + n / 100 )) taskset -c 1 "$LOADGEN" chat \
    -p "$port" -c "$n" --rate "$rate" -d "$secs" \
    2>"$OUT_DIR/$name.$rate.$n.err" | grep '^mode=' | tail -1)
  t1=$(date +%s.%N); b=$(ticks "$SPID")
  cpu=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f%%", 100 * (b - a) / hz / (t1 - t0) }')
  live=$(field "$out" live) # coronet's load generator; the shared one: eof
  closed=$([ -n "$live" ] && echo $(( n - live )) || field "$out" eof)
  delivered=$(field "$out" delivered)
  per=$(awk -v a="$a" -v b="$b" -v d="${delivered:-0}" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (d > 0) printf "%.0f", (b - a) / hz * 1e9 / d; else print "-" }')
  printf 'server=%s round=%s %s\n' "$name" "$round" "$out" >>"$OUT_DIR/raw.txt"
  echo "$name $rate $(field "$out" p99_us) $(field "$out" lost) ${closed:-0}" \
    "${delivered:-0} $per" >>"$OUT_DIR/runs.txt"
  say "| $name | $n | $rate | $(field "$out" deliveries_s) | $(field "$out" lost)" \
    "| ${closed:-?} | $(field "$out" p50_us) | $(field "$out" p99_us)" \
    "| $(field "$out" max_us) | $cpu | $per | $round |"
  stop_server
}

# warm_up runs the first server once, unrecorded: the first run after the
# build was often the slowest of all.
warm_up() {
  local s=${SERVERS%% *}
  PORT=$(( PORT + 1 ))
  start_server "$s" "$PORT" || return
  timeout 60 taskset -c 1 "$LOADGEN" chat -p "$PORT" -c "$CLIENTS" \
    --rate "${RATES%% *}" -d 1 >/dev/null 2>&1
  stop_server
}

# summary: per rate and server over the rounds: the median p99, the lost
# deliveries and the members the server closed, p99 over coronet's; then
# the median server CPU per delivery (ns), which a busy machine disturbs
# least.
summary() {
  [ -s "$OUT_DIR/runs.txt" ] || return
  say "### Over $REPEAT round(s): median p99, lost, closed; p99 / coronet's"
  summary_table p99
  say ""
  say "### Over $REPEAT round(s): median server CPU per delivery (ns)"
  summary_table cpu
}

# summary_table p99|cpu: one row per rate, one column per server
summary_table() {
  say ""
  say "| lines/s | $(echo $SERVERS | sed 's/ / | /g') |"
  say "| ---: |$(for _ in $SERVERS; do printf ' ---: |'; done)"
  for rate in $RATES; do
    say "| $rate |$(awk -v rate="$rate" -v servers="$SERVERS" -v what="$1" '
      function median(name, col,   n, i, j, t, v) {
        n = 0
        for (i = 1; i <= cnt[name]; i++)
          if (val[name, i, col] != "-") v[++n] = val[name, i, col]
        if (n == 0) return -1
        for (i = 2; i <= n; i++)
          for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
          }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      }
      $2 == rate {
        c = ++cnt[$1]
        # a run that delivered nothing has no latency
        val[$1, c, 3] = $3 > 0 ? $3 : "-"
        val[$1, c, 7] = $7
        lost[$1] += $4; closed[$1] += $5
      }
      END {
        k = split(servers, s, " ")
        col = what == "cpu" ? 7 : 3
        base = cnt["coronet"] ? median("coronet", col) : -1
        for (i = 1; i <= k; i++) {
          m = cnt[s[i]] ? median(s[i], col) : -1
          if (m < 0) { printf " - |"; continue }
          if (what == "cpu") printf " %d", m
          else {
            printf " %.1f ms, %d lost", m / 1000, lost[s[i]]
            if (closed[s[i]] > 0) printf ", %d closed", closed[s[i]]
          }
          if (base > 0) printf " (%.2fx)", m / base
          printf " |"
        }
      }' "$OUT_DIR/runs.txt")"
  done
}

if [ -n "$SUMMARIZE" ]; then # the tables of an earlier run, to stdout
  OUT_DIR=$SUMMARIZE RESULTS=/dev/null
  summary
  exit 0
fi

say "# chat: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; load generator on CPU 1"
say ""
PORT=$(( 18000 + RANDOM % 1000 ))
if [ "$SWEEP" = 1 ]; then
  say "## Capacity: $CLIENTS members, lines/s in total (each to $(( CLIENTS - 1 )) others)"
  say ""
  say "| server | members | lines/s | deliveries/s | lost | closed | p50 µs | p99 µs | max µs | server CPU (whole run) | CPU ns / delivery | round |"
  say "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  warm_up
  for round in $(seq "$REPEAT"); do
    for rate in $RATES; do
      for s in $SERVERS; do
        PORT=$(( PORT + 1 ))
        run "$s" "$PORT" "$CLIENTS" "$rate" "$DURATION" "$round"
      done
    done
  done
  say ""
  summary
  say ""
fi
if [ "$REACH" = 1 ]; then
  say "## Broadcast reach: $MEMBERS members, 5 lines/s; latency = time for a line to reach a member"
  say ""
  say "| server | members | lines/s | deliveries/s | lost | closed | p50 µs | p99 µs | max µs | server CPU (whole run) | CPU ns / delivery | round |"
  say "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for s in coronet-w2 go-p2; do
    case " $SERVERS " in *" $s "*) ;; *) continue ;; esac
    PORT=$(( PORT + 1 ))
    run "$s" "$PORT" "$MEMBERS" 5 "$DURATION"
  done
  say ""
fi
say "raw: $OUT_DIR/raw.txt"
