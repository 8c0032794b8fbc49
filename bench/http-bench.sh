#!/usr/bin/env bash
# bench/http-bench.sh - coronet's HTTP and WebSocket benchmark (bench/run.sh
# runs it as its "http" workload; it also runs alone). Prints markdown
# tables, each with the peers measured in the same run:
#
#  1. Keep-alive hello world, 100 connections: coronet
#     (bench/http-hello.lua) against nginx + Lua (content_by_lua, one
#     worker, the config of ../shared/bench/peers), nginx's own "return
#     200", Go net/http (GOMAXPROCS=1) and Node http. Beside req/s, the
#     server's own CPU time per request (from /proc): when the load
#     generator's one core is the limit, that is the fair figure; and the
#     part of it spent in the kernel (loopback TCP), which no server's
#     own code can make smaller.
#  2. The same with 16 requests pipelined per connection.
#  3. A 1 MiB static file, 10 connections: scripts/fileserver.lua against
#     nginx serving the same file.
#  The load generator is wrk -t1 (pipelining with bench/wrk-pipeline.lua),
#  or h2load --h1 -t1 (nghttp2-client; -m pipelines) when HTTP_LOAD=h2load
#  or when wrk is missing. The nginx + Lua row needs libnginx-mod-http-lua,
#  which on Debian 12 replaces Debian's LuaJIT packages with OpenResty's
#  (libluajit2-5.1-2; wrk and coronet run on it, the luajit command of the
#  luv, copas and cqueues peers goes): run this script alone then, as
#  bench/run.sh puts Debian's LuaJIT back for those peers.
#  4. WebSocket echo of 64 B messages over 100 connections: coronet
#     (bench/ws-echo.lua) against Node's ws (bench/node_ws_echo.js), load
#     from bench/ws-load.c.
#  5. Memory per idle WebSocket connection: WS_IDLE sockets held open
#     (ws-load idle), the server's RSS before and after, per connection.
#
# Server pinned to SERVER_CPU, load to LOADGEN_CPU. Always exits 0; a part
# that cannot run (a peer missing) says so in the output.
#   bench/http-bench.sh        QUICK=1 bench/http-bench.sh   (shorter)
# Environment: CORONET, BUILD_DIR (/tmp/coronet-bench/build), SHARED_BENCH
# (../shared/bench), SERVER_CPU (0), LOADGEN_CPU (1), QUICK, HTTP_SECS (5),
# HTTP_ROUNDS (2), WS_IDLE (5000), HTTP_PORT_BASE, HTTP_LOAD (wrk, else
# h2load).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORONET=${CORONET:-$ROOT/host/coronet}
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench/build}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench # from a worktree
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
QUICK=${QUICK:-${BENCH_QUICK:-0}}
if [ "$QUICK" = 1 ]; then
  HTTP_SECS=${HTTP_SECS:-2} HTTP_ROUNDS=${HTTP_ROUNDS:-1} WS_IDLE=${WS_IDLE:-1000}
fi
HTTP_SECS=${HTTP_SECS:-5}
HTTP_ROUNDS=${HTTP_ROUNDS:-2}
WS_IDLE=${WS_IDLE:-5000}
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
PORT=${HTTP_PORT_BASE:-$((17600 + $$ % 40 * 10))}

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
trap cleanup EXIT

# start NAME CMD...: spawns a server on SERVER_CPU (pid in LAST_PID), its
# errors to $BUILD_DIR/http-NAME.log.
start() {
  local name=$1; shift
  spawn "$SERVER_CPU" "$@" >/dev/null 2>>"$BUILD_DIR/http-$name.log"
}

stop() {
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# proc_sum PID FILE AWK: the sum over PID and its children (nginx's
# worker) of what AWK prints from /proc/P/FILE.
proc_sum() {
  local p sum=0 t
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    t=$(awk "$3" "/proc/$p/$2" 2>/dev/null)
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
ticks() { proc_sum "$1" stat '{ print $14 + $15 }'; }    # user + system
sys_ticks() { proc_sum "$1" stat '{ print $15 }'; }       # system
rss_kib() { proc_sum "$1" status '/^VmRSS:/ { print $2 }'; }

# load SECS URL CONNS DEPTH: the load generator's run against URL for
# SECS with CONNS connections and DEPTH requests in flight on each
# (pipelined when above 1); prints its output. A 1 s run is a warm-up.
load() {
  local secs=$1 url=$2 conns=$3 depth=$4
  if [ "$HTTP_LOAD" = h2load ]; then
    pin "$LOADGEN_CPU" h2load --h1 -t1 -c"$conns" -m"$depth" -D"$secs" "$url" 2>&1
  elif [ "$depth" -gt 1 ]; then
    pin "$LOADGEN_CPU" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s "$url" \
      -s "$ROOT/bench/wrk-pipeline.lua" -- "$depth" 2>&1
  else
    pin "$LOADGEN_CPU" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s "$url" 2>&1
  fi
}

# load_rate PID URL CONNS DEPTH: runs load for HTTP_SECS, prints
# "REQS_PER_S CPU_US_PER_REQ SYS_US_PER_REQ" (the server's CPU, and the
# part of it spent in the kernel).
load_rate() {
  local pid=$1 url=$2 t0 t1 s0 s1 out rps bad
  t0=$(ticks "$pid") s0=$(sys_ticks "$pid")
  out=$(load "$HTTP_SECS" "$url" "$3" "$4")
  t1=$(ticks "$pid") s1=$(sys_ticks "$pid")
  if [ "$HTTP_LOAD" = h2load ]; then
    rps=$(printf '%s\n' "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
    bad=$(printf '%s\n' "$out" | grep -E '^requests:|^status codes:' |
      grep -vE ' 0 failed, 0 errored| [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx')
  else
    rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
    bad=$(printf '%s\n' "$out" | grep 'Non-2xx\|Socket errors')
  fi
  [ -n "$bad" ] && note "$HTTP_LOAD $url: $bad"
  awk -v r="${rps:-0}" -v d=$((t1 - t0)) -v k=$((s1 - s0)) -v tick="$TICK" \
    -v s="$HTTP_SECS" 'BEGIN { if (r > 0) printf "%.0f %.2f %.2f\n", r,
      d / tick * 1e6 / (r * s), k / tick * 1e6 / (r * s); else print "0 0 0" }'
}

# -- Servers -----------------------------------------------------------------
mkdir -p "$BUILD_DIR" || exit 0
if [ ! -x "$CORONET" ]; then
  (cd "$ROOT" && make -s >/dev/null 2>&1) || { echo "http-bench: cannot build coronet"; exit 0; }
fi
if [ -z "${HTTP_LOAD:-}" ]; then
  HTTP_LOAD=wrk
  command -v wrk >/dev/null 2>&1 || HTTP_LOAD=h2load
fi
command -v "$HTTP_LOAD" >/dev/null 2>&1 ||
  { echo "http-bench: neither wrk nor h2load (nghttp2-client) is installed"; exit 0; }

HAVE_GO=0 HAVE_NODE=0 HAVE_NGINX=0 HAVE_NODE_WS=0
if command -v go >/dev/null 2>&1 && [ -f "$SHARED/peers/go_http.go" ]; then
  GOCACHE=$BUILD_DIR/gocache GO111MODULE=off go build -o "$BUILD_DIR/go_http.$$" \
    "$SHARED/peers/go_http.go" 2>>"$BUILD_DIR/http-build.log" &&
    mv -f "$BUILD_DIR/go_http.$$" "$BUILD_DIR/go_http" && HAVE_GO=1
fi
command -v node >/dev/null 2>&1 && [ -f "$SHARED/peers/node_http.js" ] && HAVE_NODE=1
[ "$HAVE_NODE" = 1 ] && [ -d "$ROOT/t/node/node_modules/ws" ] && HAVE_NODE_WS=1
NGINX_MODULES=$(nginx -V 2>&1 | tr ' ' '\n' | sed -n 's/^--modules-path=//p')
NGINX_MODULES=${NGINX_MODULES:-/usr/lib/nginx/modules}
if command -v nginx >/dev/null 2>&1 && [ -f "$NGINX_MODULES/ngx_http_lua_module.so" ]; then
  HAVE_NGINX=1
fi
cc -O2 -o "$BUILD_DIR/ws-load.$$" "$ROOT/bench/ws-load.c" 2>>"$BUILD_DIR/http-build.log" &&
  mv -f "$BUILD_DIR/ws-load.$$" "$BUILD_DIR/ws-load"
WSLOAD=$BUILD_DIR/ws-load

# nginx_dir NAME CONF_TEXT: an nginx prefix directory with that config.
nginx_dir() {
  local d=$BUILD_DIR/nginx-$1.$$
  mkdir -p "$d/conf" "$d/logs" "$d/tmp"
  ln -sfn "$NGINX_MODULES" "$d/modules"
  printf '%s\n' "$2" >"$d/conf/nginx.conf"
  echo "$d"
}

STATIC_DIR=$BUILD_DIR/static.$$
mkdir -p "$STATIC_DIR"
head -c 1048576 /dev/urandom >"$STATIC_DIR/1mib.bin"
NGINX_DIRS=()
trap 'cleanup; rm -rf "$STATIC_DIR" "${NGINX_DIRS[@]}"' EXIT

# start_server KIND PORT: starts one server; pid in LAST_PID ("" if none).
start_server() {
  local kind=$1 port=$2 d
  LAST_PID=
  case $kind in
  coronet) start "$kind" "$CORONET" "$ROOT/bench/http-hello.lua" --listen "127.0.0.1:$port" ;;
  coronet_static) start "$kind" "$CORONET" "$ROOT/scripts/fileserver.lua" --listen "127.0.0.1:$port" -- "$STATIC_DIR" ;;
  coronet_ws) start "$kind" "$CORONET" "$ROOT/bench/ws-echo.lua" --listen "127.0.0.1:$port" ;;
  go) [ "$HAVE_GO" = 1 ] && GOMAXPROCS=1 start "$kind" "$BUILD_DIR/go_http" "$port" ;;
  node) [ "$HAVE_NODE" = 1 ] && start "$kind" node "$SHARED/peers/node_http.js" "$port" ;;
  node_ws) [ "$HAVE_NODE_WS" = 1 ] && start "$kind" node "$ROOT/bench/node_ws_echo.js" "$port" ;;
  nginx_lua)
    [ "$HAVE_NGINX" = 1 ] || return
    d=$(nginx_dir lua "$(sed "s/%PORT%/$port/g" "$SHARED/peers/nginx_lua.conf")")
    NGINX_DIRS+=("$d")
    start "$kind" nginx -p "$d/" -c conf/nginx.conf -e logs/error.log ;;
  nginx_return)
    # nginx's own "return 200" (no Lua): what nginx + Lua can at best
    # reach, and the row that stands in when the Lua module cannot be
    # installed
    command -v nginx >/dev/null 2>&1 || return
    d=$(nginx_dir return "$(nginx_conf on "$port" "return 200 'hello\n';")")
    NGINX_DIRS+=("$d")
    start "$kind" nginx -p "$d/" -c conf/nginx.conf -e logs/error.log ;;
  nginx_static)
    command -v nginx >/dev/null 2>&1 || return
    d=$(nginx_dir static "daemon off; master_process on; worker_processes 1;
pid logs/nginx.pid; error_log logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 1000000;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  server { listen 127.0.0.1:$port backlog=4096; root $STATIC_DIR; } }")
    NGINX_DIRS+=("$d")
    start "$kind" nginx -p "$d/" -c conf/nginx.conf -e logs/error.log ;;
  esac
  if [ -n "$LAST_PID" ] && ! wait_port "$port"; then
    note "http-bench: $kind did not start (see $BUILD_DIR/http-$kind.log)"
    stop "$LAST_PID"
    LAST_PID=
  fi
}

# table TITLE PATH CONNS DEPTH KIND...: req/s and CPU per request of each
# server kind, medians over HTTP_ROUNDS, with coronet's ratios.
table() {
  local title=$1 path=$2 conns=$3 depth=$4; shift 4
  local kinds=("$@") kind round port r rps cpu sys
  declare -A RPS CPU SYS
  for round in $(seq 1 "$HTTP_ROUNDS"); do
    for kind in "${kinds[@]}"; do
      port=$((PORT + 1))
      start_server "$kind" "$port"
      [ -n "$LAST_PID" ] || continue
      load 1 "http://127.0.0.1:$port$path" 10 1 >/dev/null # warm-up
      r=$(load_rate "$LAST_PID" "http://127.0.0.1:$port$path" "$conns" "$depth")
      read -r rps cpu sys <<<"$r"
      RPS[$kind]+="$rps " CPU[$kind]+="$cpu " SYS[$kind]+="$sys "
      stop "$LAST_PID"
    done
  done
  echo "### $title"
  echo
  echo "| server | req/s | server CPU µs/req | of which kernel | coronet req/s ratio | coronet CPU/req ratio |"
  echo "|---|---:|---:|---:|---:|---:|"
  local c_rps c_cpu
  c_rps=$(printf '%s\n' ${RPS[${kinds[0]}]:-} | median)
  c_cpu=$(printf '%s\n' ${CPU[${kinds[0]}]:-} | median)
  for kind in "${kinds[@]}"; do
    if [ -z "${RPS[$kind]:-}" ]; then
      echo "| $kind | not run | | | | |"
      continue
    fi
    rps=$(printf '%s\n' ${RPS[$kind]} | median)
    cpu=$(printf '%s\n' ${CPU[$kind]} | median)
    sys=$(printf '%s\n' ${SYS[$kind]} | median)
    echo "| $kind | $rps | $cpu | $sys | $(ratio "$c_rps" "$rps") | $(ratio "$c_cpu" "$cpu") |"
  done
  echo
}

echo "## bench/http-bench.sh ($HTTP_LOAD -t1, ${HTTP_SECS}s per load, median of $HTTP_ROUNDS)"
echo
table "Keep-alive hello world, 100 connections" / 100 1 coronet nginx_lua \
  nginx_return go node
table "Pipelined 16 deep, 100 connections" / 100 16 \
  coronet nginx_lua nginx_return go node
table "Static file of 1 MiB, 10 connections" /1mib.bin 10 1 coronet_static nginx_static

# -- WebSocket ------------------------------------------------------------------
ws_echo() {
  local kind=$1 port=$((PORT + 2)) out t0 t1
  start_server "$kind" "$port"
  [ -n "$LAST_PID" ] || { echo "| $kind | not run | | |"; return; }
  t0=$(ticks "$LAST_PID")
  out=$(pin "$LOADGEN_CPU" "$WSLOAD" echo -p "$port" -c 100 -s 64 -d "$HTTP_SECS" -w 1 2>&1)
  t1=$(ticks "$LAST_PID")
  stop "$LAST_PID"
  local rate=${out#*msgs_s=}; rate=${rate%% *}
  awk -v k="$kind" -v r="${rate:-0}" -v d=$((t1 - t0)) -v tick="$TICK" -v s=$((HTTP_SECS + 1)) -v o="$out" \
    'BEGIN { printf "| %s | %s | %.2f | %s |\n", k, r, (r > 0 ? d / tick * 1e6 / (r * s) : 0), o }'
}

ws_idle() {
  local kind=$1 port=$((PORT + 3)) before after lp ready
  start_server "$kind" "$port"
  [ -n "$LAST_PID" ] || { echo "| $kind | not run | | |"; return; }
  sleep 0.5
  before=$(rss_kib "$LAST_PID")
  # exec: the coprocess's PID is the load generator's own (taskset execs
  # it), so that the kill below stops it and not only a subshell
  coproc WSIDLE {
    exec 2>&1
    if [ "$PIN" = 1 ]; then exec taskset -c "$LOADGEN_CPU" "$WSLOAD" idle -p "$port" -c "$WS_IDLE"; fi
    exec "$WSLOAD" idle -p "$port" -c "$WS_IDLE"
  }
  lp=$WSIDLE_PID
  read -r -t 60 ready <&"${WSIDLE[0]}"
  sleep 1
  after=$(rss_kib "$LAST_PID")
  kill "$lp" 2>/dev/null; wait "$lp" 2>/dev/null
  stop "$LAST_PID"
  awk -v k="$kind" -v b="$before" -v a="$after" -v n="$WS_IDLE" -v rd="${ready:-none}" \
    'BEGIN { printf "| %s | %d | %d | %.2f | %s |\n", k, b, a, (a - b) / n, rd }'
}

echo "### WebSocket echo, 64 B messages, 100 connections"
echo
echo "| server | messages/s | server CPU µs/msg (incl. warm-up) | ws-load |"
echo "|---|---:|---:|---|"
ws_echo coronet_ws
ws_echo node_ws
echo
echo "### Memory per idle WebSocket connection ($WS_IDLE connections)"
echo
echo "| server | RSS before KiB | RSS after KiB | KiB per connection | ws-load |"
echo "|---|---:|---:|---:|---|"
ws_idle coronet_ws
ws_idle node_ws
echo
[ "$HAVE_NGINX" = 1 ] || echo "nginx with the Lua module is not installed: no nginx_lua row"
[ "$HAVE_GO" = 1 ] || echo "go is not installed (or go_http.go missing): no go row"
[ "$HAVE_NODE_WS" = 1 ] || echo "t/node/node_modules/ws is missing (npm ci in t/node): no node_ws row"
exit 0
