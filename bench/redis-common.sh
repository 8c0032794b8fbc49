# bench/redis-common.sh - what the Redis benchmarks share; sourced by
# bench/redis-bench.sh, bus-redis-bench.sh, chat-redis-bench.sh and
# chat-reach-bench.sh after they set NAME (for messages), with what
# bench/common.sh has. Sets ROOT, CORONET, SERVER_CPU, LOADGEN_CPU, QUICK,
# DIR (a temporary folder, removed at exit with every process started by
# bg) and REDIS_SERVER; exits 0 with a note when redis-server or coronet is
# missing.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
CORONET=${CORONET:-$ROOT/host/coronet}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
QUICK=${QUICK:-${BENCH_QUICK:-0}}
REDIS_SERVER=$(command -v redis-server || true)

[ -n "$REDIS_SERVER" ] ||
  { echo "$NAME: redis-server is needed (Debian: redis-server)"; exit 0; }
[ -x "$CORONET" ] || (cd "$ROOT" && make -s >/dev/null 2>&1) ||
  { echo "$NAME: cannot build coronet"; exit 0; }

DIR=$(mktemp -d "/tmp/coronet-$NAME.XXXXXX")
trap 'cleanup; rm -rf "$DIR"' EXIT

# bg CPU OUT CMD...: spawn with CMD's output appended to OUT.
bg() {
  local cpu=$1 out=$2; shift 2
  spawn "$cpu" "$@" >>"$out" 2>&1
}

# start_redis CPU: a redis-server on a unix socket in DIR, on CPU; sets
# SOCK and returns once it answers PING (exits 0 with a note if not).
start_redis() {
  SOCK=$DIR/redis.sock
  rm -f "$SOCK"
  bg "$1" "$DIR/redis.log" "$REDIS_SERVER" --port 0 --unixsocket "$SOCK" \
    --save "" --appendonly no --dir "$DIR" --loglevel warning
  for _ in $(seq 1 100); do
    [ "$(redis-cli -s "$SOCK" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "$NAME: redis-server did not start"
  cat "$DIR/redis.log"
  exit 0
}

redis_version() {
  "$REDIS_SERVER" --version | awk '{ print $3 }' | sed 's/v=//'
}
