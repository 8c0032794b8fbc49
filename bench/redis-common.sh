# bench/redis-common.sh - what the Redis benchmarks share; sourced by
# bench/redis-bench.sh, bus-redis-bench.sh, chat-redis-bench.sh and
# chat-reach-bench.sh after they set NAME (for messages). Sets ROOT,
# CORONET, SERVER_CPU, LOADGEN_CPU, QUICK, DIR (a temporary folder, removed
# at exit with every process started by bg) and REDIS_SERVER; exits 0 with
# a note when redis-server or coronet is missing.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
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
PIDS=()
# stop_all ends every process bg started, by PID.
stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}
trap 'stop_all; rm -rf "$DIR"' EXIT

PIN=0
command -v taskset >/dev/null 2>&1 && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] && PIN=1
# pin CPU CMD...: runs CMD on CPU (when there are two CPUs and taskset).
pin() {
  local cpu=$1; shift
  if [ "$PIN" = 1 ]; then taskset -c "$cpu" "$@"; else "$@"; fi
}
# bg CPU OUT CMD...: CMD in the background on CPU, its output to OUT
# (appended); its own pid (taskset execs it) in LAST, stopped at exit.
bg() {
  local cpu=$1 out=$2; shift 2
  if [ "$PIN" = 1 ]; then taskset -c "$cpu" "$@" >>"$out" 2>&1 &
  else "$@" >>"$out" 2>&1 & fi
  LAST=$!
  PIDS+=("$LAST")
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

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
wait_port() {
  for _ in $(seq 1 400); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.025
  done
  return 1
}

redis_version() {
  "$REDIS_SERVER" --version | awk '{ print $3 }' | sed 's/v=//'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
