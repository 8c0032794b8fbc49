#!/bin/sh
# bench/soak.sh: the soak test (`make soak SOAK_SECONDS=3600`). Runs
# bench/soak/soak.lua against the example services for SOAK_SECONDS
# (default 120), then draws its samples with gnuplot. Everything goes to
# SOAK_OUT (default /tmp/coronet-soak/soak-TIME/): samples.csv,
# verdict.txt, soak.png, log.txt (what it printed), chart.gp. Exits 1 when
# the soak fails (a resource grows after the warm-up, a client error, a
# failed reload, an unclean stop). Other settings (environment): see the
# head of bench/soak/soak.lua (SOAK_INTERVAL, SOAK_RELOAD, SOAK_WARMUP,
# SOAK_ECHO_CONNS, SOAK_CHAT_MEMBERS, SOAK_SEED).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORONET=${CORONET:-$ROOT/host/coronet}
SOAK_SECONDS=${SOAK_SECONDS:-120}
OUT=${SOAK_OUT:-/tmp/coronet-soak/soak-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
unset CORONET_EDGE # the soak's servers run as users run them
ulimit -n 20000 2>/dev/null || true
echo "soak: ${SOAK_SECONDS}s; results in $OUT"
status=0
"$CORONET" --run "$ROOT/bench/soak/soak.lua" "$SOAK_SECONDS" "$OUT" \
  2>&1 | tee "$OUT/log.txt" || true
grep -q "^soak: PASS" "$OUT/verdict.txt" 2>/dev/null || status=1
if command -v gnuplot >/dev/null 2>&1 && [ -f "$OUT/chart.gp" ]; then
  gnuplot "$OUT/chart.gp" && echo "soak: chart $OUT/soak.png"
else
  echo "soak: gnuplot missing: no chart"
fi
exit $status
