#!/usr/bin/env bash
# tasks-bench.sh: channel send/receive pairs per second, coronet against Go
# (GOMAXPROCS=1), dial+close rate against loopback, and sleeping tasks.
# Prints a markdown table with ratios; exits 0 (a part that cannot run is
# reported as n/a).
#   bench/tasks-bench.sh            (from the source tree; builds nothing)
# Environment: CORONET (default host/coronet), PAIRS (default 1000000),
# DIAL_SECS (default 2), BENCH_TMP (default a fresh temp dir), CPU (the
# CPU the benchmarks are pinned to, default 0; the echo server for the
# dial bench gets CPU+1 when there is one).
set -u
cd "$(dirname "$0")/.."
CORONET=${CORONET:-host/coronet}
PAIRS=${PAIRS:-1000000}
DIAL_SECS=${DIAL_SECS:-2}
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

# -- sleeping tasks ----------------------------------------------------------
cat >"$TMP/sleepers.lua" <<'LUA'
local coronet = require "coronet"
local n, how = tonumber(arg[1]), arg[2]
local wg, late = coronet.waitgroup(), {}
local t0 = coronet.now()
for i = 1, n do
  wg:add(1)
  local d = (i % 1000) / 1000 * 0.5
  coronet.spawn(function()
    local due = coronet.now() + d
    if how == "sleep" then coronet.sleep(d) else coronet.after(d):recv() end
    late[#late + 1] = coronet.now() - due
    wg:done()
  end)
end
wg:wait()
table.sort(late)
print(string.format("n=%d total=%.3f p50=%.2f p99=%.2f max=%.2f", n,
  coronet.now() - t0, late[math.ceil(n * 0.5)] * 1e3,
  late[math.ceil(n * 0.99)] * 1e3, late[n] * 1e3))
LUA
sleep_rows=""
for n in 10000 100000; do
  for how in sleep after; do
    r=$(pin "$CPU" "$CORONET" --run "$TMP/sleepers.lua" "$n" "$how")
    sleep_rows+="| $how() x $(fmt "$n") | $(field total " $r") s |"
    sleep_rows+=" $(field p50 " $r") | $(field p99 " $r") | $(field max " $r") |"$'\n'
  done
done

# -- the report --------------------------------------------------------------
echo "## coronet tasks: channels, dial, timers"
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
echo "| sleeping tasks (0..0.5 s) | total | late p50 ms | p99 ms | max ms |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf "%s" "$sleep_rows"
[ -n "${BENCH_TMP:-}" ] || rm -rf "$TMP"
exit 0
