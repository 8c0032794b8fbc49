#!/usr/bin/env bash
# bench/http-instr.sh - user-space instructions per keep-alive HTTP request
# (bench/run.sh runs it with its "http" workload; it also runs alone).
#
# Time per request on a shared machine moves by 10-30 % between runs; the
# count of instructions a server executes in user space per request moves
# by about 2 % (with how ab's requests batch). Each server runs under valgrind's cachegrind (no cache simulation)
# while `ab -k -c 10` sends it N requests; the same is done with 2000
# requests, and the difference divided by N is the figure (start-up and
# shutdown cancel out). The kernel's share (loopback TCP, the larger one)
# is not in it: bench/http-bench.sh measures the whole.
#
# Servers: coronet (bench/http-hello.lua), nginx's own `return 200` (one
# worker, no master), and nginx + Lua (../shared/bench's config) when
# libnginx-mod-http-lua is installed.
#   bench/http-instr.sh          INSTR_REQUESTS=5000 bench/http-instr.sh
# Environment: CORONET, INSTR_REQUESTS (20000; QUICK 5000), SHARED_BENCH,
# BUILD_DIR. Always exits 0; what cannot run is said in the output.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORONET=${CORONET:-$ROOT/host/coronet}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench # from a worktree
QUICK=${QUICK:-${BENCH_QUICK:-0}}
[ "$QUICK" = 1 ] && INSTR_REQUESTS=${INSTR_REQUESTS:-5000}
N=${INSTR_REQUESTS:-20000}
BASE=2000

echo "## bench/http-instr.sh (user-space instructions per request)"
echo
for tool in valgrind ab; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is not installed (apt-get install valgrind apache2-utils): skipped"
    exit 0
  fi
done

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
WORK=$(mktemp -d /tmp/coronet-http-instr.XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT

# free_port: a port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# nginx_prefix NAME CONF: an nginx prefix directory holding CONF.
nginx_prefix() {
  local d=$WORK/nginx-$1
  mkdir -p "$d/conf" "$d/logs" "$d/tmp"
  ln -sfn /usr/lib/nginx/modules "$d/modules"
  printf '%s\n' "$2" >"$d/conf/nginx.conf"
  echo "$d"
}

# count NAME REQUESTS: instructions of one run of server NAME serving
# REQUESTS keep-alive requests (nothing when it failed).
count() {
  local name=$1 n=$2 port d cmd out=$WORK/cg.$1.$2 pid
  port=$(free_port)
  case $name in
  coronet) cmd=("$CORONET" "$ROOT/bench/http-hello.lua" -q -l "127.0.0.1:$port") ;;
  nginx_return)
    d=$(nginx_prefix return "$(nginx_conf off "$port" "return 200 'hello\n';")")
    cmd=(nginx -p "$d/" -c conf/nginx.conf -e logs/error.log) ;;
  nginx_lua) # ../shared/bench's config, without a master process
    d=$(nginx_prefix lua "$(sed -e "s/%PORT%/$port/g" \
      -e 's/master_process on/master_process off/' "$SHARED/peers/nginx_lua.conf")")
    cmd=(nginx -p "$d/" -c conf/nginx.conf -e logs/error.log) ;;
  esac
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out" \
    "${cmd[@]}" 2>>"$WORK/$name.err" &
  pid=$!
  PIDS+=("$pid")
  if ! wait_port "$port" 30; then
    echo "$name did not start: $(tail -2 "$WORK/$name.err")" >&2
    cleanup
    return
  fi
  timeout 300 ab -q -k -n "$n" -c 10 "http://127.0.0.1:$port/" >"$WORK/ab.out" 2>&1
  kill -INT "$pid" 2>/dev/null # both end at SIGINT; cachegrind then writes
  wait "$pid" 2>/dev/null
  PIDS=()
  grep -q '^Failed requests: *0' "$WORK/ab.out" &&
    grep -q "^Complete requests: *$n" "$WORK/ab.out" || {
    echo "$name: ab did not complete $n requests" >&2; return; }
  awk '/^summary:/ {print $2}' "$out"
}

SERVERS=(coronet)
command -v nginx >/dev/null 2>&1 && SERVERS+=(nginx_return)
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] && [ -f "$SHARED/peers/nginx_lua.conf" ] &&
  SERVERS+=(nginx_lua)

declare -A PER
for s in "${SERVERS[@]}"; do
  a=$(count "$s" "$BASE" 2>>"$WORK/notes")
  b=$(count "$s" $((BASE + N)) 2>>"$WORK/notes")
  if [ -n "$a" ] && [ -n "$b" ]; then
    PER[$s]=$(( (b - a) / N ))
  else
    PER[$s]=failed
  fi
done

echo "$N keep-alive GET requests from ab -k -c 10 (less a $BASE-request run),"
echo "each server under cachegrind; lower is better."
echo
echo "| server | instructions per request | coronet / server |"
echo "| --- | ---: | ---: |"
for s in "${SERVERS[@]}"; do
  echo "| $s | ${PER[$s]} | $(ratio "${PER[coronet]//failed/}" "${PER[$s]//failed/}") |"
done
command -v nginx >/dev/null 2>&1 || echo "nginx is not installed: its rows are missing"
[ -s "$WORK/notes" ] && { echo; sed 's/^/note: /' "$WORK/notes"; }
exit 0
