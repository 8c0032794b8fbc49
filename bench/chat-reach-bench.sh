#!/usr/bin/env bash
# bench/chat-reach-bench.sh - broadcast reach across processes: a chat
# room of MEMBERS members over PROCS coronet processes sharing one address
# (--reuseport) and a bus through one Redis (--bus, a private redis-server
# on a unix socket); one member says one line; how long until it reached
# every other member (p50, p99, max; target: under 1 s at 100,000).
# The members are LOADERS processes of bench/chat-reach.lua; the servers
# listen on several loopback addresses (127.0.0.1..K, same port) so that
# the connections fit the ephemeral ports of one destination address.
# Each process needs MEMBERS/PROCS (servers) or MEMBERS/LOADERS (loaders)
# open files and some: the script raises its limit (ulimit -n) if it may.
# Not part of make bench (it takes the machine): the lead runs it.
#   bench/chat-reach-bench.sh            MEMBERS=2000 bench/chat-reach-bench.sh
# Environment: CORONET, MEMBERS (100000), PROCS (6), LOADERS (7), WORKERS
# (per chat process, 1), SETTLE (seconds after everyone joined, 3), PORT.
NAME=chat-reach-bench
. "$(dirname "$0")/redis-common.sh"
MEMBERS=${MEMBERS:-100000}
PROCS=${PROCS:-6}
LOADERS=${LOADERS:-7}
WORKERS=${WORKERS:-1}
SETTLE=${SETTLE:-3}

per_srv=$(( (MEMBERS + PROCS - 1) / PROCS * 11 / 10 + 200 )) # kernel spread is uneven
per_load=$(( (MEMBERS + LOADERS - 1) / LOADERS + 200 ))
need=$(( per_srv > per_load ? per_srv : per_load ))
[ "$(ulimit -n)" -ge "$need" ] || ulimit -n "$need" 2>/dev/null ||
  { echo "chat-reach-bench: needs ulimit -n $need (have $(ulimit -n)): raise PROCS/LOADERS or the limit"; exit 1; }

PORT=${PORT:-$((18000 + $$ % 1000))}
NADDR=$(( (MEMBERS + 19999) / 20000 ))
ADDRS= LISTEN=()
for i in $(seq 1 "$NADDR"); do
  ADDRS+="${ADDRS:+,}127.0.0.$i:$PORT"
  LISTEN+=(-l "127.0.0.$i:$PORT")
done

PIN=0 # every process on every CPU: the machine is the load's
start_redis 0
for p in $(seq 1 "$PROCS"); do
  bg 0 "$DIR/chat$p.log" "$CORONET" "$ROOT/scripts/chat.lua" -q --reuseport \
    --bus "unix:$SOCK" -w "$WORKERS" "${LISTEN[@]}"
done
wait_port "$PORT" 10
sleep 1 # every process listening, every bridge up

mkfifo "$DIR/go"
t0=$(date +%s.%N)
for l in $(seq 1 "$LOADERS"); do
  n=$(( MEMBERS / LOADERS + (l <= MEMBERS % LOADERS ? 1 : 0) ))
  if [ "$l" = 1 ]; then
    "$CORONET" --run "$ROOT/bench/chat-reach.lua" "$ADDRS" "$n" \
      "$DIR/lat$l" send <"$DIR/go" >"$DIR/load$l.out" 2>"$DIR/load$l.err" &
  else
    "$CORONET" --run "$ROOT/bench/chat-reach.lua" "$ADDRS" "$n" \
      "$DIR/lat$l" </dev/null >"$DIR/load$l.out" 2>"$DIR/load$l.err" &
  fi
  PIDS+=($!)
done
exec 3>"$DIR/go"
for _ in $(seq 1 3000); do
  [ "$(cat "$DIR"/load*.out 2>/dev/null | grep -c '^ready')" -ge "$LOADERS" ] && break
  sleep 0.1
done
joined=$(cat "$DIR"/load*.out | awk '/^ready/ { n += $2 } END { print n + 0 }')
t1=$(date +%s.%N)
sleep "$SETTLE"
echo go >&3
exec 3>&-
for _ in $(seq 1 6000); do
  [ "$(cat "$DIR"/load*.out | grep -c '^done')" -ge "$LOADERS" ] && break
  sleep 0.1
done
got=$(cat "$DIR"/load*.out | awk -F'[ =]' '/^done/ { g += $3; o += $5 } END { print g + 0 " " o + 0 }')
stats=$(cat "$DIR"/lat* | sort -n | awk '{ v[NR] = $1 } END {
  if (NR) printf "%.1f %.1f %.1f", v[int(NR * 0.5 + 0.5)] / 1e3, v[int(NR * 0.99 + 0.5)] / 1e3, v[NR] / 1e3
  else printf "n/a n/a n/a" }')
read -r p50 p99 max <<<"$stats"
read -r reached others <<<"$got"
echo "## chat broadcast reach across processes"
echo
echo "$MEMBERS members joined in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"\
  "over $PROCS processes ($WORKERS worker(s) each, --reuseport, --bus through"\
  "one redis-server), $LOADERS load processes; one line from one member"
echo
echo "| members | joined | reached | p50 ms | p99 ms | max ms | under 1 s |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"
under=$(awk -v m="$max" 'BEGIN { print (m != "n/a" && m < 1000) ? "yes" : "no" }')
echo "| $MEMBERS | $joined | $reached of $others | $p50 | $p99 | $max | $under |"
grep -h "error\|warn" "$DIR"/chat*.log | sort | uniq -c | sort -rn | head -5
exit 0
