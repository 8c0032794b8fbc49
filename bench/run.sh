#!/usr/bin/env bash
# bench/run.sh - coronet's benchmark (`make bench`). Runs coronet and, in the
# same run, the peer servers of ../shared/bench (C libuv, Go, Node, luv,
# Copas, cqueues) under the same loads: echo ping-pong from 1 to 10000
# connections, 16 KiB echo, idle memory at 10000 connections, chat
# fan-out, and two workers against one and against Go on two cores. Server
# pinned to one CPU, load generator to another. Then the sub-benchmarks
# (bench/*-bench.sh, chat-sweep.sh, reach.sh, conn-memory.sh, million.sh),
# each bounded in time; one that fails is noted and the others go on.
# Prints markdown tables with absolute numbers and coronet/peer ratios,
# draws the echo chart (bench/chart.sh) and saves everything under
# $OUT_DIR/results-<time>/. bench/README.md explains the numbers;
# `bench/run.sh --help` lists the options.
set -u -o pipefail

# NAME=VALUE arguments set the environment variables below (make style)
for a in "$@"; do
    case $a in [A-Z_]*=*) [[ ${a%%=*} =~ ^[A-Z_][A-Z0-9_]*$ ]] && export "${a?}" ;; esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[ -d "$SHARED" ] && SHARED=$(cd "$SHARED" && pwd)

OUT_DIR=${OUT_DIR:-/tmp/coronet-bench}
BUILD_DIR=${BUILD_DIR:-$OUT_DIR/build}
CORONET=${CORONET:-$ROOT/host/coronet}
ALL_WORKLOADS=echo,bulk,idle,chat,workers2,io,tasks,tls,redis,http,chat-sweep,reach,conn-memory,million,admin
WORKLOADS=${WORKLOADS:-$ALL_WORKLOADS}
PEERS=${PEERS:-default}
REPEAT=${REPEAT:-2}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
ECHO_CONNS=${ECHO_CONNS:-"1 10 100 1000 2000 10000"}
ECHO_SIZE=${ECHO_SIZE:-64}
BULK_CONNS=${BULK_CONNS:-50}
BULK_SIZE=${BULK_SIZE:-16384}
IDLE_CONNS=${IDLE_CONNS:-10000}
CHAT_CLIENTS=${CHAT_CLIENTS:-100}
CHAT_RATE=${CHAT_RATE:-2000}
CHAT_LOADGEN=${CHAT_LOADGEN:-auto}      # auto (shared if present), shared, own
W2_CONNS=${W2_CONNS:-"100 2000"}        # workers2: echo connections
W2_CHAT_RATES=${W2_CHAT_RATES:-"10000 20000 40000"}   # workers2: chat lines/s
W2_CHAT_P99=${W2_CHAT_P99:-100}         # ms: a chat rate is kept up with at p99 <= this, 0 lost
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT_BASE=${PORT_BASE:-17300}
PRIME_TIMEOUT=${PRIME_TIMEOUT:-5}
SUB_TIMEOUT=${SUB_TIMEOUT:-}            # seconds for each sub-benchmark (default: its own, sub_timeout)
MILLION_CONNS=${MILLION_CONNS:-100000}  # million: idle connections (QUICK: 20000)
MEMORY_CONNS=${MEMORY_CONNS:-10000}     # conn-memory: idle connections (QUICK: 2000)
DISTURBED=${DISTURBED:-15}              # others_pct from which a load counts as disturbed
RETRIES=${RETRIES:-24}                  # extra rounds for disturbed loads, in all
QUIET_LEFT=${QUIET_WAIT:-60}            # seconds to wait for other programs to calm down, in all
TIME_BUDGET=${TIME_BUDGET:-1500}        # seconds: past 2/3 of it, no more retries or quiet waits
BENCH_INSTALL=${BENCH_INSTALL:-1}       # 1: apt-get missing peer runtimes when root
QUICK=${QUICK:-${BENCH_QUICK:-0}}

DEFAULT_PEERS=c_libuv,go,go_nosplice,node,luv,copas,cqueues,go_chat,node_chat
QUICK_PEERS=c_libuv,go,go_chat

usage() {
    cat <<EOF
usage: bench/run.sh [options]          (make bench runs it with no options)
  --quick               2 s loads, one round, peers $QUICK_PEERS, smaller
                        sub-benchmarks: a smoke run of everything
  -w, --workloads LIST  comma list of (default: all):
                        echo      64 B ping-pong at ECHO_CONNS connections
                        bulk      16 KiB ping-pong
                        idle      memory per idle connection
                        chat      chat fan-out, 100 members
                        workers2  echo at W2_CONNS and chat at W2_CHAT_RATES:
                                  --workers 2 and 1, Go at GOMAXPROCS 2 and 1
                        io tasks tls redis http: bench/io-bench.sh,
                                  tasks-bench.sh, tls-bench.sh, redis-bench.sh
                                  + bus-redis-bench.sh + chat-redis-bench.sh,
                                  http-bench.sh + http-instr.sh
                        chat-sweep reach conn-memory million:
                                  bench/chat-sweep.sh, reach.sh,
                                  conn-memory.sh, million.sh
                        admin     bench/admin-bench.sh: echo with and
                                  without the watchdog and --admin
  -p, --peers LIST      peers beside coronet: comma list, 'default', 'all' or
                        'none' (coronet alone). Names: $DEFAULT_PEERS
  -d, --duration S      measured seconds per load (default $DURATION)
  -r, --repeat N        rounds; each load runs N times, alternating the
                        order of servers; tables show the median (default $REPEAT)
      --no-install      never apt-get missing peer runtimes
  -h, --help
Environment (or NAME=VALUE arguments): OUT_DIR (/tmp/coronet-bench), BUILD_DIR, RESULTS_DIR, CORONET,
SHARED_BENCH (../shared/bench), WARMUP ($WARMUP), ECHO_CONNS ("$ECHO_CONNS"),
ECHO_SIZE, BULK_CONNS ($BULK_CONNS), BULK_SIZE, IDLE_CONNS ($IDLE_CONNS),
CHAT_CLIENTS, CHAT_RATE, CHAT_LOADGEN (auto|shared|own), W2_CONNS
("$W2_CONNS"), W2_CHAT_RATES ("$W2_CHAT_RATES"), W2_CHAT_P99 ($W2_CHAT_P99 ms),
MILLION_CONNS ($MILLION_CONNS), MEMORY_CONNS ($MEMORY_CONNS), SERVER_CPU (0),
LOADGEN_CPU (1), PORT_BASE, SUB_TIMEOUT (seconds for each sub-benchmark,
default its own), QUICK=1 (same as --quick, e.g. 'make bench QUICK=1'),
BENCH_INSTALL=0.
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    -w|--workloads) WORKLOADS=$2; shift ;;
    -p|--peers) PEERS=$2; shift ;;
    -d|--duration) DURATION=$2; shift ;;
    -r|--repeat) REPEAT=$2; shift ;;
    --no-install) BENCH_INSTALL=0 ;;
    [A-Z_]*=*) ;;   # handled above
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    DURATION=${QUICK_DURATION:-2}; WARMUP=0.5; REPEAT=1
    [ "$PEERS" = default ] && PEERS=$QUICK_PEERS
    IDLE_CONNS=${QUICK_IDLE_CONNS:-$IDLE_CONNS}
    W2_CHAT_RATES=${QUICK_W2_CHAT_RATES:-20000}
    MILLION_CONNS=${QUICK_MILLION_CONNS:-20000}
    MEMORY_CONNS=${QUICK_MEMORY_CONNS:-2000}
fi
[ "$PEERS" = default ] && PEERS=$DEFAULT_PEERS
[ "$PEERS" = all ] && PEERS=$DEFAULT_PEERS
[ "$PEERS" = none ] && PEERS=

log() { printf '%s\n' "$*" >&2; }
has() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }

T_START=$(date +%s)
elapsed() { echo $(($(date +%s) - T_START)); }

# ---------------------------------------------------------------- build
mkdir -p "$BUILD_DIR" || exit 2
if [ ! -x "$CORONET" ] || [ "$CORONET" = "$ROOT/host/coronet" ]; then
    make -s -C "$ROOT" host/coronet >&2 || { log "run.sh: building host/coronet failed"; exit 2; }
fi
LOADGEN=$BUILD_DIR/coronet-loadgen
CC=${CC:-cc}
if [ ! -x "$LOADGEN" ] || [ "$BENCH/loadgen.c" -nt "$LOADGEN" ]; then
    log "build: coronet-loadgen"
    "$CC" -std=gnu11 -O2 -Wall -Wextra -Werror -o "$LOADGEN" "$BENCH/loadgen.c" ||
        { log "run.sh: building bench/loadgen.c failed"; exit 2; }
fi

NOTES=()
for w in ${WORKLOADS//,/ }; do
    has "$ALL_WORKLOADS" "$w" || NOTES+=("unknown workload '$w' ignored (known: $ALL_WORKLOADS)")
done
HAVE_SHARED=0
[ -d "$SHARED/peers" ] && HAVE_SHARED=1
if [ "$HAVE_SHARED" = 0 ] && [ -n "$PEERS" ]; then
    NOTES+=("../shared/bench is absent ($SHARED): coronet-only measurements with bench/loadgen.c, no peer ratios.")
    PEERS=
fi

# Peer runtimes: Debian packages, installed when missing and we are root.
install_missing() {
    local pkgs=() p
    command -v go >/dev/null || pkgs+=(golang-go)
    command -v node >/dev/null || pkgs+=(nodejs)
    command -v h2load >/dev/null || pkgs+=(nghttp2-client) # http-bench without wrk
    command -v valgrind >/dev/null || pkgs+=(valgrind) # http-instr
    command -v ab >/dev/null || pkgs+=(apache2-utils) # http-instr
    command -v luajit >/dev/null || pkgs+=(luajit)
    pkg-config --exists libuv 2>/dev/null || pkgs+=(libuv1-dev)
    for p in luv:lua-luv copas:lua-copas cqueues:lua-cqueues; do
        if ! command -v luajit >/dev/null || ! luajit -e "require '${p%%:*}'" 2>/dev/null; then
            pkgs+=("${p#*:}")
        fi
    done
    [ ${#pkgs[@]} -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ] || [ "$BENCH_INSTALL" != 1 ] || ! command -v apt-get >/dev/null; then
        NOTES+=("missing peer runtimes not installed: ${pkgs[*]} (run as root, or: apt-get install ${pkgs[*]})")
        return 0
    fi
    log "install: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get install -y -qq "${pkgs[@]}" >"$BUILD_DIR/apt.log" 2>&1 ||
        { timeout 120 apt-get update -qq >>"$BUILD_DIR/apt.log" 2>&1 &&
          timeout 300 apt-get install -y -qq "${pkgs[@]}" >>"$BUILD_DIR/apt.log" 2>&1; } ||
        NOTES+=("apt-get install ${pkgs[*]} failed (see $BUILD_DIR/apt.log); those peers are skipped")
}
[ -n "$PEERS" ] && install_missing

build_peer() {   # out src cmd...
    local out=$1 src=$2; shift 2
    [ -x "$out" ] && [ "$out" -nt "$src" ] && return 0
    log "build: $(basename "$out")"
    "$@" >>"$BUILD_DIR/build.log" 2>&1
}
if [ -n "$PEERS" ]; then
    if pkg-config --exists libuv 2>/dev/null; then
        # shellcheck disable=SC2046
        build_peer "$BUILD_DIR/c_libuv_echo" "$SHARED/peers/c_libuv_echo.c" "$CC" -O2 -Wall \
            -o "$BUILD_DIR/c_libuv_echo" "$SHARED/peers/c_libuv_echo.c" $(pkg-config --cflags --libs libuv)
    fi
    if command -v go >/dev/null; then
        [ -n "${GOCACHE:-}" ] || export GOCACHE=$BUILD_DIR/go-cache
        for g in go_echo go_chat; do
            # from inside BUILD_DIR so that no surrounding go.mod is used
            build_peer "$BUILD_DIR/$g" "$SHARED/peers/$g.go" \
                env -C "$BUILD_DIR" go build -o "$BUILD_DIR/$g" "$SHARED/peers/$g.go"
        done
    fi
fi

# ---------------------------------------------------------------- servers
# name|kind|command   kind: echo (echo, bulk, idle), idle (idle only), chat,
# echo2 and chat2 (two cores: the workers2 workload only, pinned to both
# SERVER_CPU and LOADGEN_CPU; the others are pinned to SERVER_CPU).
# %PORT% is replaced by the port. Every command is exec'd, so the PID we
# hold is the server's own (its CPU time and RSS are read from /proc).
Q_ROOT=$(printf %q "$ROOT"); Q_SH=$(printf %q "$SHARED"); Q_B=$(printf %q "$BUILD_DIR")
Q_CN=$(printf %q "$CORONET")
SERVERS="coronet|echo|$Q_CN $Q_ROOT/scripts/echo.lua --listen 127.0.0.1:%PORT%
coronet_chat|chat|$Q_CN $Q_ROOT/scripts/chat.lua --listen 127.0.0.1:%PORT%
coronet_w2|echo2|$Q_CN $Q_ROOT/scripts/echo.lua --workers 2 --listen 127.0.0.1:%PORT%
coronet_chat_w2|chat2|$Q_CN $Q_ROOT/scripts/chat.lua --workers 2 --listen 127.0.0.1:%PORT%
go_p2|echo2|GOMAXPROCS=2 $Q_B/go_echo %PORT%
go_chat_p2|chat2|GOMAXPROCS=2 $Q_B/go_chat %PORT%
c_libuv|echo|$Q_B/c_libuv_echo %PORT%
go|echo|GOMAXPROCS=1 $Q_B/go_echo %PORT%
go_nosplice|idle|GOMAXPROCS=1 $Q_B/go_echo -nosplice %PORT%
node|echo|node $Q_SH/peers/node_echo.js %PORT%
luv|echo|luajit $Q_SH/peers/luv_echo.lua %PORT%
copas|echo|luajit $Q_SH/peers/copas_echo.lua %PORT%
cqueues|echo|luajit $Q_SH/peers/cqueues_echo.lua %PORT%
go_chat|chat|GOMAXPROCS=1 $Q_B/go_chat %PORT%
node_chat|chat|node $Q_SH/peers/node_chat.js %PORT%"

server_cmd() { printf '%s\n' "$SERVERS" | awk -F'|' -v n="$1" '$1 == n { print $3 }'; }
server_kind() { printf '%s\n' "$SERVERS" | awk -F'|' -v n="$1" '$1 == n { print $2 }'; }

# why a server cannot run here, or nothing when it can
unavailable() {
    case $1 in
    coronet|coronet_w2) [ -x "$CORONET" ] || echo "no $CORONET" ;;
    coronet_chat|coronet_chat_w2)
        [ -f "$ROOT/scripts/chat.lua" ] || echo "scripts/chat.lua does not exist yet" ;;
    c_libuv) [ -x "$BUILD_DIR/c_libuv_echo" ] || echo "not built (libuv development files?)" ;;
    go|go_nosplice|go_p2) [ -x "$BUILD_DIR/go_echo" ] || echo "not built (go missing?)" ;;
    go_chat|go_chat_p2) [ -x "$BUILD_DIR/go_chat" ] || echo "not built (go missing?)" ;;
    node|node_chat) command -v node >/dev/null || echo "node not found" ;;
    luv|copas|cqueues)
        if ! command -v luajit >/dev/null; then echo "luajit not found"
        elif ! luajit -e "require '$1'" 2>/dev/null; then echo "luajit cannot load module '$1'"; fi ;;
    *) echo "unknown server" ;;
    esac
}

# ---------------------------------------------------------------- checks
NCPU=$(getconf _NPROCESSORS_ONLN)
PIN=1
if ! command -v taskset >/dev/null || [ "$SERVER_CPU" -ge "$NCPU" ] || [ "$LOADGEN_CPU" -ge "$NCPU" ]; then
    PIN=0
    NOTES+=("server and load NOT pinned (taskset missing or only $NCPU CPUs): numbers are less comparable")
fi
LG_PIN=()
[ "$PIN" = 1 ] && LG_PIN=(taskset -c "$LOADGEN_CPU")
# srv_pin NAME: the taskset prefix for that server (both CPUs for the
# two-core kinds), nothing when not pinning
srv_pin() {
    [ "$PIN" = 1 ] || return 0
    case $(server_kind "$1") in
    echo2|chat2) echo "taskset -c $SERVER_CPU,$LOADGEN_CPU" ;;
    *) echo "taskset -c $SERVER_CPU" ;;
    esac
}
ceil() { awk -v x="$1" 'BEGIN { printf "%d", x + 0.999 }'; }
LOAD_TIMEOUT=$(( $(ceil "$DURATION") + $(ceil "$WARMUP") + PRIME_TIMEOUT + 45 ))

STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS_DIR=${RESULTS_DIR:-$OUT_DIR/results-$STAMP}
mkdir -p "$RESULTS_DIR/raw" || exit 2
RES=$RESULTS_DIR/results.txt
: >"$RES"

# ---------------------------------------------------------------- helpers
SRV_PID= SRV_PORT= SRV_LOG= LG_PID=
NEXT_PORT=$PORT_BASE

# only processes started here are signalled, by PID
cleanup() {
    [ -n "$LG_PID" ] && kill -TERM "$LG_PID" 2>/dev/null
    [ -n "$SRV_PID" ] && kill -TERM "$SRV_PID" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a TCP socket in LISTEN state on 127.0.0.1:$1 or 0.0.0.0:$1 (no ss needed)
listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" '$4 == "0A" && ($2 == "0100007F" p || $2 == "00000000" p) { f = 1 } END { exit !f }' \
        /proc/net/tcp 2>/dev/null
}
port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/tcp 2>/dev/null
}

start_server() {   # name -> SRV_PID, SRV_PORT
    local name=$1 cmd i
    cmd=$(server_cmd "$name")
    while port_in_use "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    SRV_PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
    cmd=${cmd//%PORT%/$SRV_PORT}
    SRV_LOG=$RESULTS_DIR/raw/$name.server.log
    echo "### $(date +%T) $cmd" >>"$SRV_LOG"
    local pin; pin=$(srv_pin "$name")
    $pin bash -c "exec env $cmd" >>"$SRV_LOG" 2>&1 &
    SRV_PID=$!
    for i in $(seq 1 200); do
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            wait "$SRV_PID" 2>/dev/null; SRV_PID=
            log "  $name: exited during startup (see $SRV_LOG)"
            return 1
        fi
        listening "$SRV_PORT" && { sleep 0.2; return 0; }
        sleep 0.05
    done
    log "  $name: not listening after 10 s"
    stop_server
    return 1
}

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    local i
    kill -TERM "$SRV_PID" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        echo "### run.sh: still running 5 s after SIGTERM, sent SIGKILL" >>"$SRV_LOG"
        kill -KILL "$SRV_PID" 2>/dev/null
    fi
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=
}

# lines of this run's server log (after the last ### marker) that look bad
log_problems() {
    awk '/^### / { n = 0; next } { l[++n] = $0 } END { for (i = 1; i <= n; i++) print l[i] }' "$SRV_LOG" 2>/dev/null |
        grep -aiE 'error|fatal|panic|abort|traceback|too many|refused|warn|bad argument|descriptor' |
        grep -viE 'listening on|^stack traceback:$'
}

record() { echo "$*" >>"$RES"; }

# a note naming the first bad-looking server log line of this run, if any
declare -A NOTED=()
log_note() {   # name workload round
    local n first
    n=$(log_problems | wc -l)
    [ "$n" -gt 0 ] || return 0
    first=$(log_problems | head -1 | cut -c1-160)
    [ -z "${NOTED[$1|$first]:-}" ] || return 0   # said once per server and message
    NOTED[$1|$first]=1
    NOTES+=("$1 $2 round $3: $n warning/error line(s) in raw/$1.server.log, first: \`$first\`")
}

proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
clk() { date +%s.%N; }
ticks() { awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# ticks of this shell's waited-for children (the load generator, once reaped)
child_ticks() { awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[14] + f[15] }' "/proc/$$/stat"; }
all_proc_ticks() { awk '/^cpu / { print $2 + $3 + $4 }' /proc/stat; }
cpu_snap() { awk '/^cpu[0-9]/ { b = $2 + $3 + $4 + $7 + $8 + $9; t = b + $5 + $6; printf "%s=%d:%d ", $1, b, t }' /proc/stat; }
cpu_busy() {   # snap0 snap1 cpuN -> busy percent
    awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN {
        n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "[=:]"); b0[kv[1]] = kv[2]; t0[kv[1]] = kv[3] }
        n = split(b, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "[=:]"); b1[kv[1]] = kv[2]; t1[kv[1]] = kv[3] }
        t = t1[c] - t0[c]; printf "%.0f", (t > 0 ? 100 * (b1[c] - b0[c]) / t : 0) }'
}

# ---------------------------------------------------------------- workloads
# One echo load against a fresh server; LAST_OTHERS is set to the CPU time of
# other programs (neither the server nor the load generator) during the
# measured window, in % of one core.
LAST_OTHERS=0
echo_load() {   # name workload round conns size
    local name=$1 wl=$2 round=$3 conns=$4 size=$5 out rc raw=$RESULTS_DIR/raw/$1.$2.$3
    local base="server=$name workload=$wl round=$round"
    LAST_OTHERS=0
    wait_quiet
    start_server "$name" || { record "$base status=server-failed"; return; }
    out=$(timeout "$LOAD_TIMEOUT" "${LG_PIN[@]}" "$LOADGEN" echo -c "$conns" -s "$size" -d "$DURATION" -w "$WARMUP" \
        --prime-timeout "$PRIME_TIMEOUT" --server-pid "$SRV_PID" -p "$SRV_PORT" 2>"$raw.err")
    rc=$?
    printf '%s\n' "$out" >"$raw.txt"
    sleep 0.1
    local alive=yes; kill -0 "$SRV_PID" 2>/dev/null || alive=no
    local nprob; nprob=$(log_problems | wc -l)
    out=$(printf '%s\n' "$out" | grep '^mode=' | tail -1)
    [ -n "$out" ] || out="status=no-output"
    LAST_OTHERS=$(printf '%s' "$out" | grep -oE 'others_pct=[0-9]+' | cut -d= -f2)
    LAST_OTHERS=${LAST_OTHERS:-0}
    # a server that died is not re-measured (its lost CPU time reads as others)
    [ "$alive" = yes ] || LAST_OTHERS=0
    record "$base $out rc=$rc server_alive=$alive srv_log_problems=$nprob"
    log "  $name: $(printf '%s' "$out" | grep -oE '(msgs_s|MiB_s|p99_us|errors|starved|srv_cpu_pct|lg_cpu_pct|others_pct)=[^ ]+' | tr '\n' ' ')rc=$rc"
    log_note "$name" "$wl" "$round"
    stop_server
}

# CPU% (of one core) used by processes over a short sample: between loads
# nothing of ours runs, so this is what other programs are doing right now
busy_now() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 }' /proc/stat); sleep 0.3
    b=$(awk '/^cpu / { print $2 + $3 + $4 }' /proc/stat)
    awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%d", 100 * (b - a) / hz / 0.3 }'
}
# wait (from a shared budget of QUIET_WAIT seconds) until the machine is quiet
wait_quiet() {
    local b
    while [ "$QUIET_LEFT" -gt 0 ] && [ "$(elapsed)" -lt $((TIME_BUDGET * 2 / 3)) ]; do
        b=$(busy_now)
        [ "$b" -lt "$DISTURBED" ] && return 0
        [ "$QUIET_WARNED" = 1 ] || log "  other programs busy (${b}% CPU); waiting for quiet (budget ${QUIET_LEFT}s)"
        QUIET_WARNED=1
        sleep 0.7; QUIET_LEFT=$((QUIET_LEFT - 1))
    done
}
QUIET_WARNED=0

idle_load() {   # name round
    local name=$1 round=$2 n=$IDLE_CONNS raw=$RESULTS_DIR/raw/$1.idle.$2 i st=ok
    local base="server=$name workload=idle round=$round"
    wait_quiet
    start_server "$name" || { record "$base status=server-failed"; return; }
    sleep 0.5
    local r0 a0 f0 r1 a1 f1
    r0=$(proc_kib "$SRV_PID" VmRSS); a0=$(proc_kib "$SRV_PID" RssAnon); f0=$(fd_count "$SRV_PID")
    "${LG_PIN[@]}" "$LOADGEN" idle -c "$n" -p "$SRV_PORT" --hold 60 --connect-timeout 20 \
        >"$raw.txt" 2>"$raw.err" &
    LG_PID=$!
    for i in $(seq 1 500); do   # up to 25 s for connects and one round trip each
        grep -q '^ready' "$raw.txt" && break
        kill -0 "$LG_PID" 2>/dev/null || break
        sleep 0.05
    done
    if grep -q '^ready' "$raw.txt"; then
        # every connection has echoed once, so the server holds them all;
        # let it settle (GC, lazily freed buffers) before reading RSS
        local fl=-1 fc stall=0
        for i in $(seq 1 50); do
            fc=$(fd_count "$SRV_PID")
            [ "$fc" -ge $((f0 + n)) ] && break
            if [ "$fc" = "$fl" ]; then stall=$((stall + 1)); else stall=0; fl=$fc; fi
            [ "$stall" -ge 10 ] && break
            sleep 0.1
        done
        sleep 1
    else
        st=connect-failed
    fi
    r1=$(proc_kib "$SRV_PID" VmRSS); a1=$(proc_kib "$SRV_PID" RssAnon); f1=$(fd_count "$SRV_PID")
    kill -0 "$SRV_PID" 2>/dev/null || st=server-died
    kill -TERM "$LG_PID" 2>/dev/null
    wait "$LG_PID" 2>/dev/null
    LG_PID=
    local ready pinged
    ready=$(awk '/^ready/ { print $2 }' "$raw.txt")
    pinged=$(grep -oE 'pinged=[0-9]+' "$raw.txt" | cut -d= -f2)
    local lgp; lgp=$(grep '^mode=' "$raw.txt" | grep -oE '(closed_by_peer|connect_s|errors)=[^ ]+' | tr '\n' ' ')
    local line ok=1
    case $st in server-died|connect-failed) ok=0 ;; esac
    line=$(awk -v ok="$ok" -v n="$n" -v ready="${ready:-0}" -v pinged="${pinged:-0}" -v r0="${r0:-0}" -v r1="${r1:-0}" \
        -v a0="${a0:-0}" -v a1="${a1:-0}" -v f0="$f0" -v f1="$f1" 'BEGIN {
        acc = f1 - f0; if (acc > n) acc = n
        printf "conns=%d ready=%d pinged=%d held=%d rss0_kib=%d rss1_kib=%d anon0_kib=%d anon1_kib=%d fds0=%d fds1=%d", n, ready, pinged, acc, r0, r1, a0, a1, f0, f1
        if (ok && pinged > 0) printf " rss_per_conn=%.0f anon_per_conn=%.0f fds_per_conn=%.2f", (r1 - r0) * 1024 / pinged, (a1 - a0) * 1024 / pinged, (f1 - f0) / pinged }')
    [ "$st" = ok ] && [ "${pinged:-0}" -lt "$n" ] && st=partial
    local nprob; nprob=$(log_problems | wc -l)
    record "$base mode=idle $line $lgp status=$st srv_log_problems=$nprob"
    log_note "$name" idle "$round"
    log "  $name: $(printf '%s' "$line" | grep -oE '(pinged|rss_per_conn|anon_per_conn|fds_per_conn)=[^ ]+' | tr '\n' ' ')status=$st"
    stop_server
}

chat_load() {   # name workload round rate
    local name=$1 wl=$2 round=$3 rate=$4 raw=$RESULTS_DIR/raw/$1.$2.$3 out rc
    local base="server=$name workload=$wl round=$round"
    LAST_OTHERS=0
    start_server "$name" || { record "$base status=server-failed"; return; }
    local lg=$LOADGEN which=own
    if [ "$CHAT_LOADGEN" != own ] && [ -x "$BUILD_DIR/shared-loadgen" ]; then lg=$BUILD_DIR/shared-loadgen; which=shared; fi
    local a b t0 t1 s0 s1 c0 c1 p0 p1
    wait_quiet
    a=$(ticks "$SRV_PID"); t0=$(clk); s0=$(cpu_snap); c0=$(child_ticks); p0=$(all_proc_ticks)
    local extra=(--server-pid "$SRV_PID" --prime-timeout "$PRIME_TIMEOUT")
    [ "$which" = shared ] && extra=()
    out=$(timeout "$LOAD_TIMEOUT" "${LG_PIN[@]}" "$lg" chat -c "$CHAT_CLIENTS" --rate "$rate" -d "$DURATION" \
        -w "$WARMUP" --drain 3 "${extra[@]}" -p "$SRV_PORT" 2>"$raw.err")
    rc=$?
    t1=$(clk); b=$(ticks "$SRV_PID"); s1=$(cpu_snap); c1=$(child_ticks); p1=$(all_proc_ticks)
    printf '%s\n' "$out" >"$raw.txt"
    sleep 0.1
    local alive=yes; kill -0 "$SRV_PID" 2>/dev/null || alive=no
    out=$(printf '%s\n' "$out" | grep '^mode=' | tail -1)
    [ -n "$out" ] || out="status=no-output"
    local own_cpu=
    if [ "$which" = shared ]; then   # CPU over the whole loadgen run (sync, load, drain)
        own_cpu=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "srv_cpu_pct=%.0f", (t1 > t0) ? 100 * (b - a) / hz / (t1 - t0) : 0 }')
        own_cpu="$own_cpu others_pct=$(awk -v p="$((p1 - p0 - (b - a) - (c1 - c0)))" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { x = (t1 > t0) ? 100 * p / hz / (t1 - t0) : 0; printf "%.0f", x < 0 ? 0 : x }')"
        own_cpu="$own_cpu cpu${SERVER_CPU}_busy_pct=$(cpu_busy "$s0" "$s1" "cpu$SERVER_CPU") cpu${LOADGEN_CPU}_busy_pct=$(cpu_busy "$s0" "$s1" "cpu$LOADGEN_CPU") cpu_window=whole"
    fi
    LAST_OTHERS=$(printf '%s' "$out $own_cpu" | grep -oE 'others_pct=[0-9]+' | head -1 | cut -d= -f2)
    LAST_OTHERS=${LAST_OTHERS:-0}
    local nprob; nprob=$(log_problems | wc -l)
    record "$base $out $own_cpu chat_loadgen=$which rc=$rc server_alive=$alive srv_log_problems=$nprob"
    log_note "$name" "$wl" "$round"
    log "  $name: $(printf '%s' "$out $own_cpu" | grep -oE '(deliveries_s|lost|dup|p99_us|errors|srv_cpu_pct|lg_cpu_pct)=[^ ]+' | tr '\n' ' ')rc=$rc ($which loadgen)"
    stop_server
}

# sub_timeout LABEL: seconds a sub-benchmark may take (SUB_TIMEOUT for all)
sub_timeout() {
    if [ -n "$SUB_TIMEOUT" ]; then echo "$SUB_TIMEOUT"; return; fi
    local full quick
    case $1 in
    io-bench|tasks-bench|redis-bench|bus-redis-bench) full=180 quick=90 ;;
    conn-memory) full=300 quick=120 ;;
    http-bench|reach) full=420 quick=150 ;;
    tls-bench) full=600 quick=150 ;; # two rounds and a warm-up
    chat-sweep) full=600 quick=150 ;;
    million) full=900 quick=240 ;;
    *) full=300 quick=120 ;;
    esac
    if [ "$QUICK" = 1 ]; then echo "$quick"; else echo "$full"; fi
}

# sub_bench LABEL SCRIPT [ARGS...]: runs one sub-benchmark, bounded in time,
# its stdout in raw/LABEL.txt (gathered into results.md), its own files in
# LABEL/ (OUT_DIR); a failure is noted and the run goes on
sub_bench() {
    local label=$1 script=$2 raw=$RESULTS_DIR/raw/$1.txt rc t t0
    shift 2
    if [ ! -x "$script" ]; then
        [ -e "$script" ] && NOTES+=("$(basename "$script") exists but is not executable: skipped")
        [ -e "$script" ] || NOTES+=("$(basename "$script") does not exist yet: skipped")
        return
    fi
    t=$(sub_timeout "$label")
    log "[$label] $script $* (at most ${t}s)"
    mkdir -p "$RESULTS_DIR/$label"
    t0=$(date +%s)
    QUICK=$QUICK BENCH_QUICK=$QUICK CORONET=$CORONET BUILD_DIR=$BUILD_DIR RESULTS_DIR=$RESULTS_DIR \
        OUT_DIR=$RESULTS_DIR/$label SHARED_BENCH=$SHARED SERVER_CPU=$SERVER_CPU LOADGEN_CPU=$LOADGEN_CPU \
        timeout --kill-after=5 "$t" "$script" "$@" >"$raw" 2>"$RESULTS_DIR/raw/$label.err" </dev/null
    rc=$?
    [ "$rc" = 124 ] && NOTES+=("$(basename "$script") stopped after ${t}s (SUB_TIMEOUT)")
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && NOTES+=("$(basename "$script") exited with status $rc (stderr: raw/$label.err)")
    echo "$label $rc $t $(basename "$script")" >>"$RESULTS_DIR/sub.txt"
    log "  $label: exit status $rc after $(($(date +%s) - t0)) s, $(grep -c '^|' "$raw") table lines"
}

# sub_report: every sub-benchmark's output, in the order they ran, with
# what went wrong when one failed (its headings one level down)
sub_report() {
    local label rc t script f
    [ -s "$RESULTS_DIR/sub.txt" ] || return 0
    while read -r label rc t script; do
        f=$RESULTS_DIR/raw/$label.txt
        echo "## bench/$script"
        echo
        case $rc in
        0) ;;
        124) printf '**Stopped after %s s** (its time bound); what it printed until then:\n\n' "$t" ;;
        *) printf '**Exited with status %s**; the end of its error output (raw/%s.err):\n\n' "$rc" "$label"
           echo '```'; tail -5 "$RESULTS_DIR/raw/$label.err"; echo '```'; echo ;;
        esac
        if [ ! -s "$f" ]; then echo "(no output)"
        elif grep -q '^|' "$f"; then sed 's/^#/##/' "$f"
        else echo '```'; cat "$f"; echo '```'; fi
        echo
    done <"$RESULTS_DIR/sub.txt"
}

# ---------------------------------------------------------------- plan
# Servers: coronet first, then the selected peers that can run here.
ECHO_SERVERS=() IDLE_SERVERS=() CHAT_SERVERS=() W2_ECHO=() W2_CHAT=()
# the two-core servers come with their one-core selves: Go at GOMAXPROCS=2
# only when Go is among the peers
W2_PEERS=
has "$PEERS" go && W2_PEERS="$W2_PEERS go_p2"
has "$PEERS" go_chat && W2_PEERS="$W2_PEERS go_chat_p2"
for name in coronet coronet_chat ${PEERS//,/ } coronet_w2 coronet_chat_w2 $W2_PEERS; do
    kind=$(server_kind "$name")
    [ -n "$kind" ] || { NOTES+=("unknown peer '$name' ignored"); continue; }
    why=$(unavailable "$name")
    if [ -n "$why" ]; then NOTES+=("$name skipped: $why"); continue; fi
    case $kind in
    echo) ECHO_SERVERS+=("$name"); IDLE_SERVERS+=("$name") ;;
    idle) IDLE_SERVERS+=("$name") ;;
    chat) CHAT_SERVERS+=("$name") ;;
    echo2) W2_ECHO+=("$name") ;;
    chat2) W2_CHAT+=("$name") ;;
    esac
    case $name in coronet|go) W2_ECHO+=("$name") ;; coronet_chat|go_chat) W2_CHAT+=("$name") ;; esac
done
if { has "$WORKLOADS" chat || has "$WORKLOADS" workers2; } && [ ${#CHAT_SERVERS[@]} -gt 0 ]; then
    if [ "$CHAT_LOADGEN" != own ] && [ -f "$SHARED/loadgen.c" ]; then
        # the brief's chat load: ../shared/bench's loadgen in its chat mode
        if [ ! -x "$BUILD_DIR/shared-loadgen" ] || [ "$SHARED/loadgen.c" -nt "$BUILD_DIR/shared-loadgen" ]; then
            log "build: shared-loadgen (../shared/bench/loadgen.c, for chat)"
            "$CC" -O2 -Wall -o "$BUILD_DIR/shared-loadgen" "$SHARED/loadgen.c" -lpthread >>"$BUILD_DIR/build.log" 2>&1 ||
                NOTES+=("../shared/bench/loadgen.c did not build: chat uses bench/loadgen.c")
        fi
    fi
fi
# rounds alternate the order of the servers, so drift of the machine's speed
# during a workload falls on both sides of every ratio
order() {   # round names... -> names in this round's order
    local r=$1; shift
    if [ $((r % 2)) = 1 ]; then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)   results: $RESULTS_DIR"
    echo "machine: $(uname -sr), $NCPU CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); open-file limit $(ulimit -n)"
    echo "pinning: server on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU (taskset: $([ "$PIN" = 1 ] && echo yes || echo NO))"
    echo "coronet: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- host lua scripts 2>/dev/null || echo ' + uncommitted changes'), $("$CORONET" --version 2>&1 | head -1)"
    echo "peers: $(go version 2>/dev/null | awk '{ print $3 }') node-$(node -v 2>/dev/null) $(luajit -v 2>/dev/null | awk '{ print $1 "-" $2 }') libuv-$(pkg-config --modversion libuv 2>/dev/null)"
    echo "settings: rounds=$REPEAT duration=${DURATION}s warmup=${WARMUP}s echo=${ECHO_SIZE}B@[$ECHO_CONNS] bulk=${BULK_SIZE}B@$BULK_CONNS idle=$IDLE_CONNS chat=${CHAT_CLIENTS}@${CHAT_RATE}/s workers2=echo@[$W2_CONNS],chat@[$W2_CHAT_RATES]/s"
    echo "workloads: $WORKLOADS"
} >"$RESULTS_DIR/env.txt"
log "results: $RESULTS_DIR"
log "servers: echo [${ECHO_SERVERS[*]}] idle [${IDLE_SERVERS[*]}] chat [${CHAT_SERVERS[*]:-}]"

# Workload-major: every round of one load (all servers) runs before the next
# load starts, so the numbers compared in one table are taken close in time.
# A server none of whose rounds was undisturbed by other programs gets up to
# two extra rounds (from a shared budget), right after the regular ones.
declare -A CLEAN=()
run_rounds() {   # workload-label fn args... (fn called as: fn server workload round args...)
    local wl=$1 fn=$2 round s extra; shift 2
    local -a servers=("${WL_SERVERS[@]}")
    for round in $(seq 1 "$REPEAT"); do
        log "[$WL_TITLE, round $round/$REPEAT]"
        for s in $(order "$round" "${servers[@]}"); do
            "$fn" "$s" "$wl" "$round" "$@"
            [ "$LAST_OTHERS" -lt "$DISTURBED" ] && CLEAN[$s.$wl]=$((${CLEAN[$s.$wl]:-0} + 1))
        done
    done
    for extra in 1 2; do
        round=$((REPEAT + extra))
        for s in "${servers[@]}"; do
            [ "${CLEAN[$s.$wl]:-0}" -gt 0 ] && continue
            [ "$RETRIES" -gt 0 ] && [ "$(elapsed)" -lt $((TIME_BUDGET * 2 / 3)) ] || return 0
            RETRIES=$((RETRIES - 1))
            log "[$WL_TITLE, extra round for $s: every round so far disturbed by other programs]"
            "$fn" "$s" "$wl" "$round" "$@"
            [ "$LAST_OTHERS" -lt "$DISTURBED" ] && CLEAN[$s.$wl]=$((${CLEAN[$s.$wl]:-0} + 1))
        done
    done
}
echo_fn() { echo_load "$1" "$2" "$3" "$4" "$5"; }
chat_fn() { chat_load "$1" "$2" "$3" "$4"; }
if has "$WORKLOADS" echo; then
    for c in $ECHO_CONNS; do
        WL_SERVERS=("${ECHO_SERVERS[@]}"); WL_TITLE="echo ${ECHO_SIZE} B, $c conns"
        run_rounds "echo_c$c" echo_fn "$c" "$ECHO_SIZE"
    done
fi
if has "$WORKLOADS" bulk; then
    WL_SERVERS=("${ECHO_SERVERS[@]}"); WL_TITLE="echo ${BULK_SIZE} B, $BULK_CONNS conns"
    run_rounds bulk echo_fn "$BULK_CONNS" "$BULK_SIZE"
fi
if has "$WORKLOADS" chat && [ ${#CHAT_SERVERS[@]} -gt 0 ]; then
    WL_SERVERS=("${CHAT_SERVERS[@]}"); WL_TITLE="chat $CHAT_CLIENTS clients, $CHAT_RATE lines/s"
    run_rounds chat chat_fn "$CHAT_RATE"
fi
# two workers (and Go on two cores) share LOADGEN_CPU with the load generator
if has "$WORKLOADS" workers2; then
    for c in $W2_CONNS; do
        WL_SERVERS=("${W2_ECHO[@]}"); WL_TITLE="workers2: echo ${ECHO_SIZE} B, $c conns"
        run_rounds "w2_echo_c$c" echo_fn "$c" "$ECHO_SIZE"
    done
    if [ ${#W2_CHAT[@]} -gt 0 ]; then
        for r in $W2_CHAT_RATES; do
            WL_SERVERS=("${W2_CHAT[@]}"); WL_TITLE="workers2: chat $CHAT_CLIENTS clients, $r lines/s"
            run_rounds "w2_chat_r$r" chat_fn "$r"
        done
    fi
fi
# idle memory is not noisy like throughput: one round
if has "$WORKLOADS" idle; then
    log "[idle] $IDLE_CONNS connections"
    for s in "${IDLE_SERVERS[@]}"; do idle_load "$s" 1; done
fi
has "$WORKLOADS" chat && [ ! -f "$ROOT/scripts/chat.lua" ] &&
    log "chat: scripts/chat.lua does not exist yet; coronet has no chat row"
has "$WORKLOADS" io && sub_bench io-bench "$BENCH/io-bench.sh"
has "$WORKLOADS" tasks && sub_bench tasks-bench "$BENCH/tasks-bench.sh"
has "$WORKLOADS" tls && sub_bench tls-bench "$BENCH/tls-bench.sh"
has "$WORKLOADS" redis && sub_bench redis-bench "$BENCH/redis-bench.sh"
has "$WORKLOADS" redis && sub_bench bus-redis-bench "$BENCH/bus-redis-bench.sh"
has "$WORKLOADS" redis && sub_bench chat-redis-bench "$BENCH/chat-redis-bench.sh"
has "$WORKLOADS" http && sub_bench http-bench "$BENCH/http-bench.sh"
has "$WORKLOADS" http && sub_bench http-instr "$BENCH/http-instr.sh"
has "$WORKLOADS" chat-sweep && sub_bench chat-sweep "$BENCH/chat-sweep.sh"
has "$WORKLOADS" reach && sub_bench reach "$BENCH/reach.sh"
has "$WORKLOADS" conn-memory && sub_bench conn-memory "$BENCH/conn-memory.sh" -n "$MEMORY_CONNS"
has "$WORKLOADS" million && sub_bench million "$BENCH/million.sh" -n "$MILLION_CONNS"
has "$WORKLOADS" admin && sub_bench admin-bench "$BENCH/admin-bench.sh"

echo "elapsed: $(($(date +%s) - T_START))s" >>"$RESULTS_DIR/env.txt"
printf '%s\n' "${NOTES[@]}" >"$RESULTS_DIR/notes.txt"
CHART=
if has "$WORKLOADS" echo; then
    if CHART=$("$BENCH/chart.sh" "$RESULTS_DIR" 2>"$RESULTS_DIR/raw/chart.err"); then
        log "chart: $CHART"
    else
        CHART=
        echo "bench/chart.sh failed: $(tail -1 "$RESULTS_DIR/raw/chart.err")" >>"$RESULTS_DIR/notes.txt"
    fi
fi

# ---------------------------------------------------------------- report
{
    ECHO_CONNS="$ECHO_CONNS" ECHO_SIZE="$ECHO_SIZE" BULK_SIZE="$BULK_SIZE" BULK_CONNS="$BULK_CONNS" \
    IDLE_CONNS="$IDLE_CONNS" CHAT_CLIENTS="$CHAT_CLIENTS" CHAT_RATE="$CHAT_RATE" REPEAT="$REPEAT" \
    DURATION="$DURATION" WARMUP="$WARMUP" SERVER_CPU="$SERVER_CPU" LOADGEN_CPU="$LOADGEN_CPU" \
    DISTURBED="$DISTURBED" W2_CHAT_P99="$W2_CHAT_P99" \
        awk -f "$BENCH/report.awk" "$RESULTS_DIR/env.txt" "$RESULTS_DIR/notes.txt" "$RES"
    if [ -n "$CHART" ]; then
        echo "### Chart: echo against connections (bench/chart.sh)"
        echo
        echo "![64-byte echo: round trips per second and round-trip time against connections](charts/echo.svg)"
        echo
    fi
    sub_report
} >"$RESULTS_DIR/results.md"
cat "$RESULTS_DIR/results.md"
log "saved: $RESULTS_DIR/results.md (every measured value: results.txt; logs: raw/)"
