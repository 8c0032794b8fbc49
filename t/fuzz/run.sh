#!/bin/sh
# t/fuzz/run.sh: runs libFuzzer harnesses (built by `make fuzz`), each for a
# while, on a scratch corpus seeded from its committed one.
#   t/fuzz/run.sh [-merge] BUILD_DIR SECONDS NAME...
# SECONDS is per harness; with FUZZ_TOTAL set in the environment, the
# harnesses share FUZZ_TOTAL seconds instead (at least 5 each). New inputs
# go to BUILD_DIR/work/NAME; the committed t/fuzz/corpus/NAME and
# t/fuzz/regress/NAME are only read; t/fuzz/NAME.dict, when there is one,
# is the harness's libFuzzer dictionary. A crash, leak or failed check fails
# the harness, and its reproducer's path is printed. -merge adds the inputs
# that reach new coverage from BUILD_DIR/work/NAME to t/fuzz/corpus/NAME.
set -u
merge=0
if [ "${1:-}" = -merge ]; then merge=1; shift; fi
build=$1 secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${FUZZ_TOTAL:-}" ]; then
  secs=$((FUZZ_TOTAL / $#))
  [ "$secs" -ge 5 ] || secs=5
fi
failed=""
for name in "$@"; do
  bin=$build/fuzz_$name work=$build/work/$name crash=$build/crash/$name
  log=$build/log/$name.log
  mkdir -p "$work" "$crash" "$build/log" "$here/corpus/$name"
  if [ $merge = 1 ]; then
    echo "fuzz $name: merging $work into t/fuzz/corpus/$name"
    "$bin" -merge=1 "$here/corpus/$name" "$work" >"$log" 2>&1 ||
      { tail -20 "$log"; failed="$failed $name"; }
    continue
  fi
  dict=""
  [ -f "$here/$name.dict" ] && dict="-dict=$here/$name.dict"
  seeds="$here/corpus/$name"
  [ -d "$here/regress/$name" ] && seeds="$seeds $here/regress/$name"
  echo "fuzz $name: ${secs}s (log: $log)"
  # shellcheck disable=SC2086  # seeds is a list of directories
  # shellcheck disable=SC2086  # dict is empty or one word
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 $dict \
       -print_final_stats=1 -artifact_prefix="$crash/" "$work" $seeds \
       >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$log" |
      sed "s/^/  /"
  else
    failed="$failed $name"
    echo "fuzz $name: FAILED; the last lines of its log:"
    tail -40 "$log" | sed "s/^/  /"
    grep -o "Test unit written to .*" "$log" | sed "s/^/  reproducer: /"
    echo "  replay: $bin <reproducer>; keep it as t/fuzz/regress/$name/<what>"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz: failed:$failed"
  exit 1
fi
