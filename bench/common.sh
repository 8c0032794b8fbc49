# bench/common.sh - what the bench/*.sh scripts share; source it.
# Servers they start go in PIDS (cleanup stops them); pin CPU CMD runs CMD
# on one CPU when taskset and two CPUs are there (spawn CPU CMD: the same
# in the background, its PID in LAST_PID and added to PIDS); wait_port
# PORT [SECS] waits (5 s by default) until something listens there;
# wait_for FILE PATTERN SECS until FILE has a matching line; median reads
# numbers on stdin; ratio A B prints A/B with two decimals (n/a when
# unknown); field KEY picks KEY's value from "k=v k=v" on stdin; stats
# ADDR asks a server's stats listener for its line; rss_kib PID;
# nginx_conf MASTER PORT BODY prints a one-worker nginx.conf; build_loadgen
# DIR builds bench/loadgen.c there.

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}
note() { echo "$*" >&2; }

PIN=0
command -v taskset >/dev/null 2>&1 && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] && PIN=1
pin() {
  local cpu=$1; shift
  if [ "$PIN" = 1 ]; then taskset -c "$cpu" "$@"; else "$@"; fi
}
# spawn CPUS CMD...: pin in the background; the program's own PID (taskset
# execs it) in LAST_PID and PIDS
spawn() {
  local cpu=$1; shift
  if [ "$PIN" = 1 ]; then taskset -c "$cpu" "$@" & else "$@" & fi
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

wait_port() {
  local i
  for i in $(seq 1 $(( ${2:-5} * 20 ))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# wait_for FILE PATTERN SECS: until FILE has a line matching PATTERN
wait_for() {
  local end=$(( $(date +%s) + $3 ))
  while ! grep -q "$2" "$1" 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# stats ADDR -> the stats line of one server
stats() {
  local host=${1%:*} port=${1##*:} line
  exec 4<>"/dev/tcp/$host/$port" || return 1
  echo >&4
  read -r -t 30 line <&4
  exec 4>&-
  echo "$line"
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# nginx_conf MASTER PORT BODY: an nginx.conf of one worker (master_process
# MASTER: on or off), its files under the prefix's logs/ and tmp/, serving
# location / on 127.0.0.1:PORT with BODY (e.g. "return 200 'hello\n';")
nginx_conf() {
  printf 'daemon off; master_process %s; worker_processes 1;
pid logs/nginx.pid; error_log logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  server { listen 127.0.0.1:%s backlog=4096;
    location / { default_type text/plain; %s } } }\n' "$1" "$2" "$3"
}

# build_loadgen DIR: prints the path of bench/loadgen.c built into DIR
# (rebuilt when the source is newer); 1 when it does not build
build_loadgen() {
  local lg=$1/coronet-loadgen src
  src=$(dirname "${BASH_SOURCE[0]}")/loadgen.c
  if [ ! -x "$lg" ] || [ "$src" -nt "$lg" ]; then
    ${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -o "$lg" "$src" >&2 || return 1
  fi
  echo "$lg"
}
