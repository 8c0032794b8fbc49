#!/usr/bin/env bash
# bench/tls-bench.sh - coronet's TLS benchmark (bench/run.sh runs it as its
# "tls" workload; it also runs alone). Servers, each pinned to SERVER_CPU
# with taskset, one at a time: coronet (bench/tls_serve.lua on a tls://
# address), nginx with TLS (one worker, no master; config written into a
# temporary directory) and Go's crypto/tls (bench/peers/go_tls.go,
# GOMAXPROCS=1). One self-signed ECDSA P-256 certificate for all. Loads,
# pinned to LOADGEN_CPU:
#   hs_full     full TLS 1.3 handshakes/s: HS_PROCS `openssl s_time -new`
#               at once (s_time is sequential: one alone measures latency)
#   hs_resumed  resumed handshakes/s: `s_time -reuse -tls1_2` (TLS 1.2
#               session tickets: s_time never reads a TLS 1.3 ticket)
#               Each handshake load adds a row of the server's CPU time a
#               handshake (µs): the clients limit the rate, the servers
#               sit at 30-60 % of their core, so the rate shows the
#               clients and the CPU row what a server could do
#   echo64      64 B echo at 100 connections, msgs/s (bench/tls-load.c,
#               OpenSSL + epoll; nginx has no echo: n/a)
#   echo16k     16 KiB echo at 50 connections, MiB/s both ways (n/a nginx)
#   get16k      16 KiB HTTP/1.1 keep-alive GETs at 50 connections, MiB/s
#               (coronet: tls_serve.lua's minimal responder)
#   idle        server RSS per idle TLS connection, KiB, after TLS_IDLE
#               handshakes (50 at a time; 10,000: at 2000 the heap holes
#               the last handshakes' buffers leave weigh ~1 KiB a
#               connection, in every server) and TLS_SETTLE seconds idle
#               (what a server gives back once a burst is over, as
#               coronet's heap trim and Go's scavenger do, counts); the
#               RSS just after the burst is in the log; with nginx, a second row
#               counts what nginx reserves per worker_connections slot at
#               start, measured apart (nginx_reserve)
#   census      live heap bytes per idle TLS connection, as glibc's chunks
#               hold them, after TLS_IDLE handshakes, from a census of the
#               server's allocations (bench/alloc-census.c in front of
#               libc; Go: n/a, its heap is its own); the report lists,
#               per server, OpenSSL's share and the server's own blocks,
#               with their call sites
# and the server's CPU % of one core over each load (near 100: the server
# is the bottleneck; well under: the load side is). Every load runs
# TLS_ROUNDS times, the peers in turn, in reverse order every other round,
# after one untimed warm-up load: the first server measured on a cold
# machine got up to 20 % fewer handshakes than the same server run later.
# Each figure is the median of its rounds (of two: their mean). Prints a markdown
# table with coronet/peer ratios. Builds go to BUILD_DIR. Always exits 0; a
# peer that cannot run says so.
#   bench/tls-bench.sh        QUICK=1 bench/tls-bench.sh (2 s loads)
# Environment: CORONET, BUILD_DIR (/tmp/coronet-bench/build), SERVER_CPU
# (0), LOADGEN_CPU (1), QUICK, TLS_SECS (5), TLS_PEERS (coronet,nginx,go),
# TLS_LOADS (hs_full,hs_resumed,echo64,echo16k,get16k,idle,census),
# HS_PROCS (4),
# TLS_IDLE (10000; QUICK 2000), TLS_SETTLE (20; QUICK 5), TLS_ROUNDS (2;
# QUICK 1), TLS_PORT_BASE (17500).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
CORONET=${CORONET:-$ROOT/host/coronet}
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench/build}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
QUICK=${QUICK:-${BENCH_QUICK:-0}}
[ "$QUICK" = 1 ] && TLS_SECS=${TLS_SECS:-2} && TLS_IDLE=${TLS_IDLE:-2000} &&
    TLS_SETTLE=${TLS_SETTLE:-5} &&
    TLS_ROUNDS=${TLS_ROUNDS:-1}
TLS_ROUNDS=${TLS_ROUNDS:-2}
TLS_SECS=${TLS_SECS:-5}
TLS_IDLE=${TLS_IDLE:-10000}
TLS_SETTLE=${TLS_SETTLE:-20}
TLS_PEERS=${TLS_PEERS:-coronet,nginx,go}
TLS_LOADS=${TLS_LOADS:-hs_full,hs_resumed,echo64,echo16k,get16k,idle,census}
HS_PROCS=${HS_PROCS:-4}
PORT=${TLS_PORT_BASE:-17500}

WORK=$(mktemp -d /tmp/coronet-tls-bench.XXXXXX)
SPID=
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "tls-bench: $*" >&2; }
has() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }
# (taskset execs the program: $! of "taskset ... &" is the program's pid)
pin_l() { taskset -c "$LOADGEN_CPU" "$@"; }

# ---------------------------------------------------------------- setup
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    2>/dev/null || { echo "tls-bench: openssl cannot make a certificate"; exit 0; }
mkdir -p "$BUILD_DIR"
LOAD=$BUILD_DIR/tls-load
cc -O2 -o "$LOAD" "$BENCH/tls-load.c" -lssl -lcrypto 2>"$WORK/cc.err" ||
    { echo "tls-bench: cannot build bench/tls-load.c: $(head -3 "$WORK/cc.err")"; exit 0; }
GO_TLS=$BUILD_DIR/go_tls
if has "$TLS_PEERS" go; then
    (cd "$BENCH/peers" && GOCACHE=$BUILD_DIR/gocache go build -o "$GO_TLS" go_tls.go) \
        2>"$WORK/go.err" || { log "go peer: $(head -3 "$WORK/go.err")"; GO_TLS=; }
fi
NOTES=()
[ -x "$CORONET" ] || NOTES+=("coronet: $CORONET is not built")
command -v nginx >/dev/null || NOTES+=("nginx: not installed")
[ -n "$GO_TLS" ] || NOTES+=("go: the peer did not build")
CENSUS_SO=
if has "$TLS_LOADS" census; then
    CENSUS_SO=$BUILD_DIR/alloc-census.so
    cc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$CENSUS_SO" \
        "$BENCH/alloc-census.c" -ldl 2>"$WORK/cc.err" ||
        { NOTES+=("census: cannot build bench/alloc-census.c: $(head -3 "$WORK/cc.err")"); CENSUS_SO=; }
fi

mkdir -p "$WORK/nginx/logs" "$WORK/nginx/www" "$WORK/nginx/tmp"
printf 'hello\n' >"$WORK/nginx/www/hello"
head -c 16384 /dev/zero | tr '\0' x >"$WORK/nginx/www/16k"

nginx_conf() {   # port [worker_connections]
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections ${2:-20000}; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type text/plain;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    server {
        listen 127.0.0.1:$1 ssl backlog=4096;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        root $WORK/nginx/www;
    }
}
EOF
}

# port_free port: nothing listens there.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start name mode [file]: starts a server on a free port (SPID, SPORT);
# with a file, under the census, which writes it.
start() {
    local name=$1 mode=$2 i pre=()
    [ -n "${3:-}" ] && pre=(env "LD_PRELOAD=$CENSUS_SO" "CENSUS_OUT=$3")
    PORT=$((PORT + 1))
    while ! port_free "$PORT"; do PORT=$((PORT + 1)); done
    SPORT=$PORT
    case $name in
    coronet) taskset -c "$SERVER_CPU" "${pre[@]}" "$CORONET" "$BENCH/tls_serve.lua" "$mode" -q \
                 -l "tls://127.0.0.1:$SPORT" --tls-cert "$WORK/cert.pem" \
                 --tls-key "$WORK/key.pem" 2>>"$WORK/server.err" & ;;
    nginx) nginx_conf "$SPORT" "${NGX_SLOTS:-20000}"
           taskset -c "$SERVER_CPU" "${pre[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
               -e "$WORK/nginx/logs/error.log" 2>>"$WORK/server.err" & ;;
    go) GOMAXPROCS=1 taskset -c "$SERVER_CPU" "$GO_TLS" -addr "127.0.0.1:$SPORT" -mode "$mode" \
            -cert "$WORK/cert.pem" -key "$WORK/key.pem" 2>>"$WORK/server.err" & ;;
    esac
    SPID=$!
    for i in $(seq 100); do
        port_free "$SPORT" || return 0
        sleep 0.05
    done
    log "$name did not start: $(tail -2 "$WORK/server.err")"
    stop
    return 1
}

stop() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    SPID=
}

ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat" 2>/dev/null || echo 0; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$SPID/status" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

declare -A R CPU RS CPUS CENSUS=()
# measure name load value [cpu]: records one round's result.
measure() {
    RS[$1,$2]+=" $3" CPUS[$1,$2]+=" ${4:-}"
    log "$1 $2 = $3${4:+ (server CPU $4%)}"
}
# median values...: of numbers ("failed" if none; of two, their mean).
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '
        { v[NR] = $1 }
        END { if (!NR) { print "failed"; exit }
              m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              if (m == int(m) || m >= 100) { printf "%d\n", m + 0.5; exit }
              s = sprintf("%.2f", m); sub(/0$/, "", s); print s }'
}

# s_time_load kind: HS_PROCS s_time processes; prints handshakes/s.
s_time_load() {
    local args=(-new) i total=0 n
    [ "$1" = resumed ] && args=(-reuse -tls1_2)
    for i in $(seq "$HS_PROCS"); do
        pin_l openssl s_time -connect "127.0.0.1:$SPORT" "${args[@]}" \
            -time "$TLS_SECS" >"$WORK/stime.$i" 2>&1 &
    done
    wait   # in $(...): only the s_time processes are this shell's
    for i in $(seq "$HS_PROCS"); do
        # -reuse prints a first line for its one full handshake: the last
        # "N connections in" line is the one timed
        n=$(grep -oE '^[0-9]+ connections in [0-9.]+s' "$WORK/stime.$i" | tail -1 |
            awk '{print $1}')
        total=$((total + ${n:-0}))
    done
    echo $((total / TLS_SECS))
}

# idle_open: TLS_IDLE idle connections to the server (50 handshakes at a
# time) until the load says they are ready; IDLE_PID is the load's pid,
# IDLE_N how many are open.
idle_open() {
    local i
    taskset -c "$LOADGEN_CPU" "$LOAD" idle -p "$SPORT" -c "$TLS_IDLE" \
        --conc 50 >"$WORK/idle.out" &
    IDLE_PID=$!
    for i in $(seq 1200); do
        grep -q '^ready' "$WORK/idle.out" && break
        sleep 0.1
    done
    sleep 0.5
    IDLE_N=$(awk '/^ready/ {print $2}' "$WORK/idle.out")
}
idle_close() { kill "$IDLE_PID" 2>/dev/null; wait "$IDLE_PID" 2>/dev/null; }
# per_conn r0: KiB of the server's RSS now above r0, per idle connection.
per_conn() {
    awk -v a="$1" -v b="$(rss)" -v n="$IDLE_N" 'BEGIN {printf "%.2f", (b - a) / n}'
}

# census_snap file: signals the server until the census shows it took a
# snapshot (the file appears). A snapshot scans the census's table (a
# fraction of a second) and does nothing while the server is inside an
# allocation: the signal is sent again only after 3 s without the file,
# never while a snapshot may still be running.
census_snap() {
    local i
    for i in $(seq 150); do
        [ $((i % 30)) = 1 ] && kill -PWR "$SPID" 2>/dev/null
        sleep 0.1
        [ -e "$1" ] && return 0
    done
    return 1
}

# census_sum file n: one line from the census of n idle connections:
# chunk bytes blocks asked openssl_chunk own_chunk other_chunk (per
# connection; a site and size counts as per connection when at least
# 0.9 n of its blocks appeared, else as other). OpenSSL's blocks are those
# with a frame in libssl/libcrypto or an OpenSSL function.
CENSUS_AWK='
    function ossl(line) {
        return line ~ /(CRYPTO_|OPENSSL_|SSL_|BIO_|EVP_|X509|libssl|libcrypto)/
    }
    { per = $1 / n; line = $0
      if ($1 >= 0.9 * n) {
          chunk += per * $3; asked += per * $2; blocks += per
          if (ossl(line)) o += per * $3; else own += per * $3
      } else other += per * $3 }'
census_sum() {
    awk -v n="$2" "$CENSUS_AWK"'
        END { printf "%d %.1f %d %d %d %d\n", chunk, blocks, asked, o, own, other }' "$1"
}

run_load() {   # name load
    local name=$1 load=$2 mode=echo t0 t1 w0 w1 out v census=
    case $load in get16k) mode=http ;; esac
    case $name,$load in nginx,echo*|go,census) RS[$name,$load]=n/a; return ;; esac
    if [ "$load" = census ]; then
        [ -n "$CENSUS_SO" ] || { RS[$name,$load]+=" failed"; return; }
        census=$WORK/census.$name
        rm -f "$census" "$census.first"
    fi
    start "$name" "$mode" ${census:+"$census"} || { RS[$name,$load]+=" failed"; return; }
    t0=$(ticks) w0=$(date +%s%N)
    case $load in
    hs_full) v=$(s_time_load full) ;;
    hs_resumed) v=$(s_time_load resumed) ;;
    echo64) out=$(pin_l "$LOAD" echo -p "$SPORT" -c 100 -s 64 -d "$TLS_SECS" -w 1)
            v=$(grep -oE 'msgs_s=[0-9]+' <<<"$out" | cut -d= -f2) ;;
    echo16k) out=$(pin_l "$LOAD" echo -p "$SPORT" -c 50 -s 16384 -d "$TLS_SECS" -w 1)
             v=$(grep -oE 'mib_s=[0-9.]+' <<<"$out" | cut -d= -f2) ;;
    get16k) out=$(pin_l "$LOAD" get -p "$SPORT" -c 50 --path /16k -d "$TLS_SECS" -w 1)
            v=$(grep -oE 'mib_s=[0-9.]+' <<<"$out" | cut -d= -f2) ;;
    idle) local r0
          sleep 0.2
          r0=$(rss)
          idle_open
          if [ -n "$IDLE_N" ] && [ "$IDLE_N" -gt 0 ]; then
              log "$name idle: $(per_conn "$r0") KiB/conn just after the burst"
              sleep "$TLS_SETTLE"
              v=$(per_conn "$r0")
          fi
          idle_close ;;
    census) sleep 0.2
            if census_snap "$census.first"; then
                idle_open
                census_snap "$census" && [ -n "$IDLE_N" ] && [ "$IDLE_N" -gt 0 ] &&
                    CENSUS[$name]="$IDLE_N" && v=$(census_sum "$census" "$IDLE_N" |
                        awk '{print $1}') && cp "$census" "$WORK/census-kept.$name"
                idle_close
            fi ;;
    esac
    [ -n "${out:-}" ] && grep -q 'errors=[1-9]\|verify=mismatch' <<<"$out" &&
        NOTES+=("$name $load: $out")
    t1=$(ticks) w1=$(date +%s%N)
    stop
    measure "$name" "$load" "${v:-failed}" \
        $(( (t1 - t0) * 100 * 1000000000 / HZ / (w1 - w0 + 1) ))
    # the server's CPU per handshake: what it could do with its core to
    # itself (the clients are the limit of the rate)
    case $load in hs_*)
        [[ ${v:-} =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] && measure "$name" \
            "${load}_cpu" "$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$v" \
            -v s="$TLS_SECS" 'BEGIN {printf "%.0f", t / hz * 1e6 / (r * s)}')" ;;
    esac
}

# nginx_reserve: the bytes nginx reserves per worker_connections slot
# when it starts (a connection and its two event structures, all touched
# to link the free list), which an RSS taken after the start does not
# see: a fresh nginx's RSS at 20,000 slots less its RSS at 1000, over
# 19,000. Each is read once nginx has answered a request (its event loop
# runs after the slots are made). Prints nothing if nginx did not start.
nginx_reserve() {
    local slots rss_at=()
    for slots in 1000 20000; do
        NGX_SLOTS=$slots start nginx echo || return
        curl -sk --max-time 5 -o /dev/null "https://127.0.0.1:$SPORT/hello" ||
            { stop; return; }
        rss_at+=("$(rss)")
        stop
    done
    echo $(( (rss_at[1] - rss_at[0]) * 1024 / 19000 ))
}

PEER_LIST=()
for p in ${TLS_PEERS//,/ }; do
    case $p in
    coronet) [ -x "$CORONET" ] && PEER_LIST+=(coronet) ;;
    nginx) command -v nginx >/dev/null && PEER_LIST+=(nginx) ;;
    go) [ -n "$GO_TLS" ] && PEER_LIST+=(go) ;;
    esac
done
LOADS=()
for l in ${TLS_LOADS//,/ }; do LOADS+=("$l"); done
if [ ${#PEER_LIST[@]} -gt 0 ] && [ ${#LOADS[@]} -gt 0 ]; then
    log "warm-up: ${PEER_LIST[0]} ${LOADS[0]} (not counted)"
    run_load "${PEER_LIST[0]}" "${LOADS[0]}"
    unset "RS[${PEER_LIST[0]},${LOADS[0]}]" "CPUS[${PEER_LIST[0]},${LOADS[0]}]"
fi
for l in "${LOADS[@]}"; do
    for r in $(seq "$TLS_ROUNDS"); do
        order=("${PEER_LIST[@]}")
        if [ $((r % 2)) = 0 ]; then
            order=()
            for ((i = ${#PEER_LIST[@]} - 1; i >= 0; i--)); do order+=("${PEER_LIST[i]}"); done
        fi
        for p in "${order[@]}"; do run_load "$p" "$l"; done
    done
    for p in "${PEER_LIST[@]}"; do
        # shellcheck disable=SC2086 # the rounds' values, one word each
        case ${RS[$p,$l]:-} in n/a) R[$p,$l]=n/a ;;
        *) R[$p,$l]=$(median ${RS[$p,$l]:-}) CPU[$p,$l]=$(median ${CPUS[$p,$l]:-}) ;;
        esac
        # shellcheck disable=SC2086
        case $l in hs_*) R[$p,${l}_cpu]=$(median ${RS[$p,${l}_cpu]:-}) ;; esac
    done
done
# the report's rows: each load, a handshake load's CPU row after it
ROWS=()
for l in "${LOADS[@]}"; do
    ROWS+=("$l")
    case $l in hs_*) ROWS+=("${l}_cpu") ;; esac
done

NGX_RESERVE=
if has "$TLS_LOADS" idle && [[ " ${PEER_LIST[*]} " == *" nginx "* ]]; then
    NGX_RESERVE=$(nginx_reserve)
    log "nginx reserves ${NGX_RESERVE:-?} B per worker_connections slot"
fi

# ---------------------------------------------------------------- report
unit() {
    case $1 in hs_*_cpu) echo "µs of server CPU a handshake (lower is better)" ;;
    hs_*) echo "handshakes/s" ;; echo64) echo "msgs/s" ;;
    idle) echo "KiB/conn (lower is better)" ;;
    census) echo "B/conn in heap chunks (lower is better)" ;; *) echo "MiB/s" ;; esac
}
ratio() {   # a b [lower]
    awk -v a="$1" -v b="$2" -v low="${3:-0}" 'BEGIN {
        if (a + 0 <= 0 || b + 0 <= 0) { print "-"; exit }
        printf "%.2f", low ? b / a : a / b }'
}
echo "## TLS (bench/tls-bench.sh)"
echo
echo "ECDSA P-256 certificate; server on CPU $SERVER_CPU, load on CPU $LOADGEN_CPU;"
echo "${TLS_SECS}s per load, median of $TLS_ROUNDS rounds (peer order reversed every"
echo "other round, after a warm-up); handshakes by $HS_PROCS parallel openssl s_time;"
echo "echo and GET by bench/tls-load.c (OpenSSL + epoll). Server CPU % in ()."
echo "Ratios are coronet/peer (for idle memory and CPU a handshake, peer/coronet: above 1"
echo "= coronet smaller)."
echo
hdr="| load | unit |" sep="| --- | --- |"
for p in "${PEER_LIST[@]}"; do hdr+=" $p |"; sep+=" ---: |"; done
for p in "${PEER_LIST[@]}"; do
    [ "$p" != coronet ] && hdr+=" coronet/$p |" && sep+=" ---: |"
done
echo "$hdr"
echo "$sep"
for l in "${ROWS[@]}"; do
    row="| $l | $(unit "$l") |"
    for p in "${PEER_LIST[@]}"; do
        v=${R[$p,$l]:-}
        c=${CPU[$p,$l]:-}
        row+=" $v${c:+ ($c%)} |"
    done
    for p in "${PEER_LIST[@]}"; do
        [ "$p" = coronet ] && continue
        low=0; case $l in idle|census|*_cpu) low=1 ;; esac
        row+=" $(ratio "${R[coronet,$l]:-}" "${R[$p,$l]:-}" "$low") |"
    done
    echo "$row"
done
# The idle row again with nginx's reserve per slot counted: a server
# sized for n connections reserves n slots before the first arrives.
if [ -n "$NGX_RESERVE" ] && [ -n "${R[nginx,idle]:-}" ]; then
    row="| idle + reserve | KiB/conn, nginx's per-slot reserve counted (lower is better) |"
    for p in "${PEER_LIST[@]}"; do
        v=${R[$p,idle]:-}
        [ "$p" = nginx ] && v=$(awk -v v="$v" -v r="$NGX_RESERVE" \
            'BEGIN { if (v + 0 > 0) printf "%.2f", v + r / 1024; else print v }')
        R[$p,reserve]=$v
        row+=" $v |"
    done
    for p in "${PEER_LIST[@]}"; do
        [ "$p" = coronet ] && continue
        row+=" $(ratio "${R[coronet,reserve]:-}" "${R[$p,reserve]:-}" 1) |"
    done
    echo "$row"
    echo
    echo "nginx reserves $NGX_RESERVE B per worker_connections slot at start (RSS of a"
    echo "fresh nginx at 20,000 slots less at 1000, over 19,000); the idle row's RSS"
    echo "growth does not see it. coronet and Go reserve nothing per connection."
fi
echo
if [ "${#CENSUS[@]}" -gt 0 ]; then
    echo "Census of the live heap blocks an idle TLS connection adds (the last"
    echo "round; per connection; a chunk is the block in glibc's heap, header"
    echo "and rounding included):"
    echo
    echo "| server | connections | blocks | bytes asked | in chunks | OpenSSL's | the server's own | not one per connection |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for p in "${PEER_LIST[@]}"; do
        [ -n "${CENSUS[$p]:-}" ] || continue
        read -r chunk blocks asked o own other < <(census_sum "$WORK/census-kept.$p" "${CENSUS[$p]}")
        echo "| $p | ${CENSUS[$p]} | $blocks | $asked | $chunk | $o | $own | $other |"
    done
    echo
    for p in "${PEER_LIST[@]}"; do
        [ -n "${CENSUS[$p]:-}" ] || continue
        echo "$p's own blocks, one per connection (count per connection, size asked, call site):"
        awk -v n="${CENSUS[$p]}" "$CENSUS_AWK"'
            $1 >= 0.9 * n && !ossl($0) {
                site = $4; for (i = 5; i <= NF; i++) site = site " " $i
                printf "- %.1f x %d B: %s\n", $1 / n, $2, site }' \
            "$WORK/census-kept.$p"
        echo
    done
fi
[ "${#NOTES[@]}" -gt 0 ] && printf -- '- %s\n' "${NOTES[@]}" && echo
exit 0
