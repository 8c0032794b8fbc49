#!/usr/bin/env bash
# bench/million.sh: many idle connections over several coronet processes
# sharing ONE address (--reuseport), opened by several load generator
# processes whose source addresses are spread over 127.0.0.0/8 (the open-
# file limit is per process: 20000 here). It holds them all, then has every
# connection do one 64-byte echo round trip, and reports: connections held,
# time to open them, server memory per connection (RSS, and the Lua heaps
# alone), kernel memory per connection (the Slab delta), and failed round
# trips (must be 0).
#
#   bench/million.sh                 # 100,000 connections (a few minutes)
#   bench/million.sh -n 1000000      # the million (needs ~2M descriptors
#                                    # system-wide and ~8 GiB of memory)
#   make bench-million [MILLION="-n 1000000"]
#
# Options: -n CONNS (100000), -s SERVERS (CONNS/15000 + 1), -c PER_LOADGEN
# (18000), -p PORT (17000), --hold SECS (600, bound of the whole hold),
# --server-cpu N (0), --loadgen-cpu N (1), --keepalive SECS (passed to the
# servers; their default, 60, when not given). Results go to
# $OUT_DIR (default /tmp/coronet-bench/million-<time>/): results.txt and
# the servers' and load generators' output.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=100000
SERVERS=
PER_LOADGEN=18000
PORT=17000
HOLD=600
KEEPALIVE=
SERVER_CPU=0
LOADGEN_CPU=1
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench/build}
OUT_DIR=${OUT_DIR:-/tmp/coronet-bench/million-$(date +%Y%m%d-%H%M%S)}

die() { echo "million: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    -n) CONNS=$2; shift ;;
    -s) SERVERS=$2; shift ;;
    -c) PER_LOADGEN=$2; shift ;;
    -p) PORT=$2; shift ;;
    --hold) HOLD=$2; shift ;;
    --keepalive) KEEPALIVE=$2; shift ;;
    --server-cpu) SERVER_CPU=$2; shift ;;
    --loadgen-cpu) LOADGEN_CPU=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
  shift
done
[ -n "$SERVERS" ] || SERVERS=$(( CONNS / 15000 + 1 ))
LOADGENS=$(( (CONNS + PER_LOADGEN - 1) / PER_LOADGEN ))
mkdir -p "$OUT_DIR" || die "cannot make $OUT_DIR"
RESULTS=$OUT_DIR/results.txt
say() { echo "$*" | tee -a "$RESULTS"; }

# -- Kernel limits ---------------------------------------------------------

nofile=$(ulimit -n)
file_max=$(cat /proc/sys/fs/file-max)
nr_open=$(cat /proc/sys/fs/nr_open)
somaxconn=$(cat /proc/sys/net/core/somaxconn)
read -r port_lo port_hi < /proc/sys/net/ipv4/ip_local_port_range
tcp_mem=$(cat /proc/sys/net/ipv4/tcp_mem)
syn_backlog=$(cat /proc/sys/net/ipv4/tcp_max_syn_backlog)
mem_kib=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
ports=$(( port_hi - port_lo + 1 ))
say "kernel limits:"
say "  nofile (per process)      $nofile"
say "  fs.file-max               $file_max"
say "  fs.nr_open                $nr_open"
say "  net.core.somaxconn        $somaxconn"
say "  ip_local_port_range       $port_lo-$port_hi ($ports ports per source address)"
say "  tcp_mem (pages)           $tcp_mem"
say "  tcp_max_syn_backlog       $syn_backlog"
say "  memory                    $(( mem_kib / 1024 )) MiB"
per_server=$(( CONNS / SERVERS + CONNS / SERVERS / 10 + 100 ))
[ "$per_server" -lt $(( nofile - 100 )) ] ||
  die "$SERVERS servers would hold ~$per_server connections each; the open-file limit is $nofile: use -s"
[ "$PER_LOADGEN" -lt $(( nofile - 100 )) ] ||
  die "-c $PER_LOADGEN is above the open-file limit $nofile"
[ $(( 2 * CONNS + 20000 )) -lt "$file_max" ] ||
  die "$CONNS connections need $(( 2 * CONNS )) descriptors; fs.file-max is $file_max"
# each load generator binds its own source addresses: ports per address
# toward one server, with a margin. connect() picks the port, and Linux
# searches the even half of the range first: once that half is taken,
# every connect walks the whole range (milliseconds each, at hundreds of
# thousands of sockets), so an address is given at most ~45% of the range
SRC_PER=$(( PER_LOADGEN / (ports * 9 / 20) + 1 ))
say "plan: $CONNS connections, $SERVERS coronet processes on 127.0.0.1:$PORT" \
  "(--reuseport), $LOADGENS load generators ($PER_LOADGEN each, $SRC_PER" \
  "source addresses each)"

# -- Build -------------------------------------------------------------------

make -C "$ROOT" -s >/dev/null || die "make failed"
CORONET=$ROOT/host/coronet
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
mkdir -p "$BUILD_DIR"
LOADGEN=$(build_loadgen "$BUILD_DIR") || die "cannot build the load generator"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "127.0.0.1:$PORT is in use: pick another with -p"
fi

# -- Helpers -------------------------------------------------------------------

SPIDS=() STATS=() LPIDS=()
cleanup() {
  for p in "${LPIDS[@]}" "${SPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${LPIDS[@]}" "${SPIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
slab_kib() { awk '/^Slab/ {print $2}' /proc/meminfo; }

servers_rss() { local s=0 p; for p in "${SPIDS[@]}"; do s=$(( s + $(rss_kib "$p") )); done; echo $s; }

# servers_stats -> "lua_kib connections" summed over the servers
servers_stats() {
  local lua=0 conns=0 a line
  for a in "${STATS[@]}"; do
    line=$(stats "$a") || continue
    lua=$(awk -v s="$lua" -v l="$line" 'BEGIN { split(l, f, /[= ]/); print s + f[2] }')
    conns=$(( conns + $(echo "$line" | sed 's/.*connections=\([0-9]*\).*/\1/') - 1 ))
  done
  echo "$lua $conns"
}

# -- Servers ---------------------------------------------------------------------

for i in $(seq "$SERVERS"); do
  log=$OUT_DIR/server-$i.log
  taskset -c "$SERVER_CPU" "$CORONET" "$ROOT/bench/idle_server.lua" \
    --listen "127.0.0.1:$PORT" --reuseport ${KEEPALIVE:+--keepalive "$KEEPALIVE"} \
    >"$log" 2>&1 &
  SPIDS+=($!)
  wait_for "$log" "listening on" 20 || die "server $i did not start: $(cat "$log")"
  STATS+=("$(sed -n 's/.*stats on \([^ ]*\).*/\1/p' "$log" | head -1)")
done
sleep 1
rss0=$(servers_rss)
read -r lua0 _ <<< "$(servers_stats)"
slab0=$(slab_kib)
say "servers up: ${#SPIDS[@]} (RSS $rss0 KiB, Lua heaps $lua0 KiB in all)"

# -- Load generators ---------------------------------------------------------

t0=$(now)
left=$CONNS
for i in $(seq 0 $(( LOADGENS - 1 ))); do
  n=$(( left < PER_LOADGEN ? left : PER_LOADGEN ))
  left=$(( left - n ))
  taskset -c "$LOADGEN_CPU" "$LOADGEN" idle -p "$PORT" -c "$n" \
    --src-first $(( i * SRC_PER )) --src-count "$SRC_PER" \
    --hold "$HOLD" --connect-timeout 300 --prime-timeout 120 -q \
    >"$OUT_DIR/loadgen-$i.out" 2>&1 &
  LPIDS+=($!)
done
for i in $(seq 0 $(( LOADGENS - 1 ))); do
  wait_for "$OUT_DIR/loadgen-$i.out" "^ready" 600 ||
    die "load generator $i never got ready: $(tail -3 "$OUT_DIR/loadgen-$i.out")"
done
t_open=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
held=0
for i in $(seq 0 $(( LOADGENS - 1 ))); do
  held=$(( held + $(sed -n 's/^ready \([0-9]*\).*/\1/p' "$OUT_DIR/loadgen-$i.out") ))
done
sleep 2
rss1=$(servers_rss)
read -r lua1 server_conns <<< "$(servers_stats)"
slab1=$(slab_kib)
tcp_pages=$(awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat)

# -- One round trip on every connection ----------------------------------------

for p in "${LPIDS[@]}"; do kill -USR1 "$p"; done
ok=0 failed=0
for i in $(seq 0 $(( LOADGENS - 1 ))); do
  f=$OUT_DIR/loadgen-$i.out
  wait_for "$f" "^rtt " 180 || { failed=$(( failed + 1 )); continue; }
  ok=$(( ok + $(sed -n 's/^rtt ok=\([0-9]*\).*/\1/p' "$f") ))
  failed=$(( failed + $(sed -n 's/^rtt .*failed=\([0-9]*\).*/\1/p' "$f") ))
done

# -- Report ----------------------------------------------------------------------

per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1024 / n; else print "-" }'; }
say ""
say "| measure | value |"
say "| --- | ---: |"
say "| connections asked | $CONNS |"
say "| connections held (load generators) | $held |"
say "| connections held (servers) | $server_conns |"
say "| time to open them all | $t_open s |"
say "| server RSS per connection | $(per "$rss0" "$rss1" "$held") B |"
say "| server Lua heap per connection | $(per "$lua0" "$lua1" "$held") B |"
say "| kernel Slab per connection | $(per "$slab0" "$slab1" "$held") B |"
say "| TCP memory once open, pages (tcp_mem: $(echo $tcp_mem)) | $tcp_pages |"
say "| round trips ok / failed | $ok / $failed |"
say "| servers, load generators | $SERVERS, $LOADGENS |"
say ""
say "results: $RESULTS"
[ "$failed" -eq 0 ] && [ "$held" -eq "$CONNS" ]
