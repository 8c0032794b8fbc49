#!/usr/bin/env bash
# bench/conn-memory.sh: where an idle connection's memory goes. For each
# way a handler can wait (park: the least a task costs; read: a loop of
# conn:read(); copy: scripts/echo.lua's `return io.copy(conn, conn)`,
# which the host takes over, ending the task; copytask: an io.copy the
# task waits in; chat: a chat member) it
# opens CONNS idle connections to bench/idle_server.lua and prints the
# server's RSS and Lua heap growth per connection; then the sizes of the C
# records (from the debug info, with gdb) and of the Lua objects each
# connection holds (bench/lua_costs.lua).
#
#   bench/conn-memory.sh [-n CONNS] [MODE...]   (default 10000; park read copy copytask chat)
#   bench/conn-memory.sh --before chat          # also the chat of git
#                                               # revision BEFORE (b2e895f)
# Server on CPU 0, load generator on CPU 1 (taskset); PING=0: the copy
# modes' connections send nothing either. Results go to
# $OUT_DIR (/tmp/coronet-bench/memory-<time>/).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=10000
BEFORE=
MODES=()
BUILD_DIR=${BUILD_DIR:-/tmp/coronet-bench/build}
OUT_DIR=${OUT_DIR:-/tmp/coronet-bench/memory-$(date +%Y%m%d-%H%M%S)}
die() { echo "conn-memory: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    -n) CONNS=$2; shift ;;
    --before) BEFORE=b2e895f ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) MODES+=("$1") ;;
  esac
  shift
done
[ ${#MODES[@]} -gt 0 ] || MODES=(park read copy copytask chat)
mkdir -p "$OUT_DIR" "$BUILD_DIR" || die "cannot make $OUT_DIR"
make -C "$ROOT" -s >/dev/null || die "make failed"
CORONET=$ROOT/host/coronet
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
LOADGEN=$(build_loadgen "$BUILD_DIR") || die "cannot build the load generator"
RESULTS=$OUT_DIR/results.txt
say() { echo "$*" | tee -a "$RESULTS"; }

SPID= LPID=
cleanup() {
  for p in $LPID $SPID; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  LPID= SPID=
}
trap cleanup EXIT

lua_kib() { stats "$1" | field lua_kib; }

# measure NAME SCRIPT ARGS...: one server, CONNS idle connections
measure() {
  local name=$1 log=$OUT_DIR/$1.log
  shift
  taskset -c 0 "$CORONET" "$@" -l 127.0.0.1:0 >"$log" 2>&1 &
  SPID=$!
  wait_for "$log" "listening on" 20 || { say "$name: did not start"; cleanup; return; }
  local st port
  st=$(sed -n 's/.*stats on \([^ ]*\).*/\1/p' "$log" | head -1)
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
  # only the copy modes echo (PING=0: not they either, so that the blocks
  # a round trip leaves in the worker's pool do not count)
  local ping=--no-ping; case $name,${PING:-1} in copy*,1) ping= ;; esac
  sleep 0.5
  local r0 l0 r1 l1
  r0=$(rss_kib "$SPID"); l0=$(lua_kib "$st")
  taskset -c 1 "$LOADGEN" idle -p "$port" -c "$CONNS" --hold 600 $ping -q \
    >"$OUT_DIR/$name.loadgen" 2>&1 &
  LPID=$!
  wait_for "$OUT_DIR/$name.loadgen" "^ready" 300 || { say "$name: load generator failed"; cleanup; return; }
  sleep 2
  r1=$(rss_kib "$SPID"); l1=$(lua_kib "$st")
  awk -v n="$name" -v r0="$r0" -v r1="$r1" -v l0="$l0" -v l1="$l1" -v c="$CONNS" \
    'BEGIN { printf "| %s | %.0f B | %.0f B | %.0f B |\n", n, (r1 - r0) * 1024 / c,
             (l1 - l0) * 1024 / c, ((r1 - r0) - (l1 - l0)) * 1024 / c }' | tee -a "$RESULTS"
  cleanup
}

say "idle connections: $CONNS per run; growth of the server per connection"
say ""
say "| handler waits in | RSS | Lua heap | rest (C, allocator) |"
say "| --- | ---: | ---: | ---: |"
for m in "${MODES[@]}"; do
  measure "$m" "$ROOT/bench/idle_server.lua" "$m"
done
if [ -n "$BEFORE" ]; then
  d=$BUILD_DIR/before
  mkdir -p "$d/bench" "$d/scripts"
  cp "$ROOT/bench/idle_server.lua" "$d/bench/"
  git -C "$ROOT" show "$BEFORE:scripts/chat.lua" >"$d/scripts/chat.lua" ||
    die "no scripts/chat.lua at $BEFORE"
  measure "chat-$BEFORE" "$d/bench/idle_server.lua" chat
fi

say ""
say "C records (sizeof, from the debug info; malloc adds 8 B and rounds to 16;"
say "task records come in slabs of 64, without that):"
if command -v gdb >/dev/null; then
  gdb -batch -ex 'print sizeof(cn_conn_t)' \
    -ex 'print (int)&((cn_conn_t *)0)->h + sizeof(uv_tcp_t)' \
    -ex 'print sizeof(uv_tcp_t)' \
    -ex 'print sizeof(struct cn_task_s)' -ex 'print sizeof(cn_timer_t)' \
    -ex 'print sizeof(conn_box)' "$CORONET" 2>/dev/null |
    paste -d' ' <(printf '%s\n' "  cn_conn_t (a pipe's)" \
      "  cn_conn_t as a TCP connection allocates it" \
      "  uv_tcp_t (in cn_conn_t)" "  cn_task_t (task record)" \
      "  cn_timer_t (in cn_task_t)" "  conn_box (Lua object's data)") - |
    sed 's/\$[0-9]* = / /' | tee -a "$RESULTS"
else
  say "  (gdb not found)"
fi
say "  per task besides: its coroutine's place in the anchors (8 B, in"
say "  arrays of 4096) and in the scheduler's index (8 B, at most half full)"
say "  pool: up to 256 free 16 KiB blocks and 4096 small ones are kept for"
say "  reuse; copy's round trip fills some (amortized over the connections)"
say ""
say "Lua objects (measured):"
"$CORONET" --run "$ROOT/bench/lua_costs.lua" | sed 's/^/  /' | tee -a "$RESULTS"
say ""
say "results: $RESULTS"
