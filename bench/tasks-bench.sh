#!/usr/bin/env bash
# tasks-bench.sh: channel send/receive pairs per second, coronet against Go
# (GOMAXPROCS=1), dial+close rate against loopback, timers (sleeping tasks,
# after(), a million tasks waiting with a deadline: lateness and memory)
# and a connection's read_line against a JIT-compiled string.find loop.
# Prints a markdown table with ratios; exits 0 (a part that cannot run is
# reported as n/a).
#   bench/tasks-bench.sh            (from the source tree; builds nothing)
# Environment: CORONET (default host/coronet), PAIRS (default 1000000),
# DIAL_SECS (default 2), SLEEPERS (100000), MILLION (1000000 tasks waiting
# with a deadline, over MILLION_SPAN, 5 s), LINES_MIB (32), QUICK=1
# (smaller: a smoke run), BENCH_TMP (default a fresh temp dir), CPU (the
# CPU the benchmarks are pinned to, default 0; the echo server for the
# dial bench gets CPU+1 when there is one).
set -u
cd "$(dirname "$0")/.."
CORONET=${CORONET:-host/coronet}
QUICK=${QUICK:-${BENCH_QUICK:-0}}
if [ "$QUICK" = 1 ]; then
  PAIRS=${PAIRS:-300000} DIAL_SECS=${DIAL_SECS:-1}
  MILLION=${MILLION:-200000} MILLION_SPAN=${MILLION_SPAN:-1}
  LINES_MIB=${LINES_MIB:-8}
fi
PAIRS=${PAIRS:-1000000}
DIAL_SECS=${DIAL_SECS:-2}
SLEEPERS=${SLEEPERS:-100000}
MILLION=${MILLION:-1000000}
MILLION_SPAN=${MILLION_SPAN:-5}
LINES_MIB=${LINES_MIB:-32}
CPU=${CPU:-0}
TMP=${BENCH_TMP:-$(mktemp -d /tmp/coronet-tasks-bench.XXXXXX)}
mkdir -p "$TMP"

pin() { # pin CPU CMD...: run CMD on one CPU when taskset can
  local cpu=$1; shift
  if command -v taskset >/dev/null && taskset -c "$cpu" true 2>/dev/null; then
    taskset -c "$cpu" "$@"
  else
    "$@"
  fi
}
field() { # field KEY LINE: the value of KEY=value in LINE
  sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
  if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
fmt() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else
  printf "%\047d", v }' 2>/dev/null || echo "$1"; }

if [ ! -x "$CORONET" ]; then
  echo "tasks-bench: $CORONET is not built (make)" >&2
  exit 0
fi

# -- channels --------------------------------------------------------------
go_out=""
if command -v go >/dev/null; then
  if GOCACHE=${GOCACHE:-$TMP/gocache} go build -o "$TMP/chan_bench" \
      bench/chan_bench.go 2>"$TMP/go-build.log"; then
    go_out=$(GOMAXPROCS=1 pin "$CPU" "$TMP/chan_bench" -n "$PAIRS" -cap 128)
  else
    echo "tasks-bench: go build failed (see $TMP/go-build.log)" >&2
  fi
fi
cn_out=$(pin "$CPU" "$CORONET" --run bench/chan_bench.lua "$PAIRS" 128)
line() { grep "^$1" <<<"$2"; }
go_unbuf=$(field rate "$(line 'go unbuffered' "$go_out")")
go_buf=$(field rate "$(line 'go buffered' "$go_out")")
cn_unbuf=$(field rate "$(line 'coronet unbuffered' "$cn_out")")
cn_buf=$(field rate "$(line 'coronet buffered' "$cn_out")")
go_unbuf_cpu=$(field cpu_rate "$(line 'go unbuffered' "$go_out")")
go_buf_cpu=$(field cpu_rate "$(line 'go buffered' "$go_out")")
cn_unbuf_cpu=$(field cpu_rate "$(line 'coronet unbuffered' "$cn_out")")
cn_buf_cpu=$(field cpu_rate "$(line 'coronet buffered' "$cn_out")")

# -- dial+close ------------------------------------------------------------
d1=$(pin "$CPU" "$CORONET" --run bench/dial_bench.lua "$DIAL_SECS" 1)
d16=$(pin "$CPU" "$CORONET" --run bench/dial_bench.lua "$DIAL_SECS" 16)
# against a separate echo server process, on its own CPU when there is one
ext=""
srv_cpu=$((CPU + 1))
[ "$(nproc 2>/dev/null || echo 1)" -gt "$srv_cpu" ] || srv_cpu=$CPU
# not through pin: a backgrounded shell function is a subshell, and $!
# would name it rather than the server
if command -v taskset >/dev/null && taskset -c "$srv_cpu" true 2>/dev/null; then
  taskset -c "$srv_cpu" "$CORONET" scripts/echo.lua --listen 127.0.0.1:0 \
    2>"$TMP/echo.log" &
else
  "$CORONET" scripts/echo.lua --listen 127.0.0.1:0 2>"$TMP/echo.log" &
fi
srv=$!
addr=""
for _ in $(seq 1 100); do # up to 5 s for the startup line
  addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$TMP/echo.log" | head -1)
  [ -n "$addr" ] && break
  sleep 0.05
done
if [ -n "$addr" ]; then
  ext=$(pin "$CPU" "$CORONET" --run bench/dial_bench.lua "$DIAL_SECS" 1 "$addr")
fi
kill "$srv" 2>/dev/null
wait "$srv" 2>/dev/null

# -- timers: sleeping tasks and after() ----------------------------------------
# bench/timers_bench.lua: N tasks wait for deadlines spread over SPAN s
timer_rows=""
timer_row() { # N HOW SPAN
  local r
  r=$(pin "$CPU" "$CORONET" --run bench/timers_bench.lua "$1" "$2" "$3" 2>&1)
  timer_rows+="| $2() x $(fmt "$1") over $3 s | $(field start " $r") s |"
  timer_rows+=" $(field p50 " $r") | $(field p99 " $r") | $(field max " $r") |"
  timer_rows+=" $(fmt "$(field rss_task " $r")") |"
  timer_rows+=" $(fmt "$(field lua_task " $r")") |"$'\n'
}
timer_row "$SLEEPERS" sleep 0.5
timer_row "$SLEEPERS" after 0.5
timer_row "$MILLION" sleep "$MILLION_SPAN"

# -- line reading: read_line against a JIT-compiled string.find loop ---------
lines_out=$(pin "$CPU" "$CORONET" --run bench/io-lines.lua "$LINES_MIB" 3 2>&1)
lines_find=$(awk -F'\t' '$1 == "plain string.find" { print $2 }' <<<"$lines_out")
lines_conn=$(awk -F'\t' '$1 == "connection read_line (native)" { print $2 }' \
  <<<"$lines_out")
lines_buf=$(awk -F'\t' '$1 == "connection read_line, bytes buffered" \
  { print $2 }' <<<"$lines_out")

# -- the report --------------------------------------------------------------
echo "## coronet tasks: channels, dial, timers, line reading"
echo
echo "CPU $CPU pinned; Go with GOMAXPROCS=1; $(fmt "$PAIRS") pairs per case,"
echo "best of 3 runs; pairs/s by the wall clock and by the process's CPU"
echo "time (steadier when other work shares the CPU)."
echo
echo "| channel, 2 tasks | coronet pairs/s | Go pairs/s | coronet / Go |" \
  "coronet per CPU s | Go per CPU s | coronet / Go (CPU) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
echo "| unbuffered | $(fmt "$cn_unbuf") | $(fmt "$go_unbuf") |" \
  "$(ratio "$cn_unbuf" "$go_unbuf") | $(fmt "$cn_unbuf_cpu") |" \
  "$(fmt "$go_unbuf_cpu") | $(ratio "$cn_unbuf_cpu" "$go_unbuf_cpu") |"
echo "| buffered (128) | $(fmt "$cn_buf") | $(fmt "$go_buf") |" \
  "$(ratio "$cn_buf" "$go_buf") | $(fmt "$cn_buf_cpu") |" \
  "$(fmt "$go_buf_cpu") | $(ratio "$cn_buf_cpu" "$go_buf_cpu") |"
echo
echo "| dial+close, loopback | dials/s | errors |"
echo "| --- | ---: | ---: |"
echo "| in-process listener, 1 at a time | $(fmt "$(field rate "$d1")") |" \
  "$(field errors "$d1") |"
echo "| in-process listener, 16 at a time | $(fmt "$(field rate "$d16")") |" \
  "$(field errors "$d16") |"
echo "| echo server process, 1 at a time | $(fmt "$(field rate "$ext")") |" \
  "$(field errors "$ext") |"
echo
echo "Timers: each task waits for a deadline spread evenly over the span,"
echo "which starts once all of them have started (start = how long starting"
echo "them took); lateness of each wake; memory per waiting task (resident"
echo "set of the process, and the Lua heap), all parked at once."
echo
echo "| tasks | start | late p50 ms | p99 ms | max ms | bytes/task RSS |" \
  "bytes/task Lua |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
printf "%s" "$timer_rows"
echo
echo "| line reading, $LINES_MIB MiB | lines/s | ÷ string.find loop |"
echo "| --- | ---: | ---: |"
echo "| plain string.find + string.sub (JIT) | $(fmt "$lines_find") | 1.00 |"
echo "| connection read_line, bytes already buffered | $(fmt "$lines_buf") |" \
  "$(ratio "$lines_buf" "$lines_find") |"
echo "| connection read_line, loopback I/O included | $(fmt "$lines_conn") |" \
  "$(ratio "$lines_conn" "$lines_find") |"
[ -n "${BENCH_TMP:-}" ] || rm -rf "$TMP"
exit 0
