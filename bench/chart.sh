#!/usr/bin/env bash
# bench/chart.sh - the echo chart of a bench/run.sh results folder: 64-byte
# ping-pong throughput (msgs/s) and round-trip latency (p50 solid, p99
# dashed) against the number of connections, coronet beside every peer of
# that run, medians over rounds (bench/report.awk); a cell whose run had a
# problem is left out. Writes echo.png and echo.svg (gnuplot).
#   bench/chart.sh RESULTS_DIR [OUT_DIR]     (OUT_DIR: RESULTS_DIR/charts)
# bench/run.sh calls it after its report; bench/charts/ holds the images
# the README shows. The coronet line is the thick one.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "chart: $*" >&2; exit 1; }
[ $# -ge 1 ] && [ -f "$1/results.txt" ] || die "usage: bench/chart.sh RESULTS_DIR [OUT_DIR]"
RES=$1
OUT=${2:-$RES/charts}
command -v gnuplot >/dev/null || die "gnuplot is not installed (Debian: gnuplot-nox)"
mkdir -p "$OUT" || die "cannot make $OUT"

# the connection counts measured, in order
conns=$(grep -oE 'workload=echo_c[0-9]+' "$RES/results.txt" | cut -dc -f3 | sort -nu | tr '\n' ' ')
[ -n "$conns" ] || die "no echo loads in $RES/results.txt"
DATA=$OUT/echo.dat
rm -f "$DATA"
touch "$RES/notes.txt" "$RES/env.txt"
ECHO_CONNS=$conns CHART_DATA=$DATA awk -f "$ROOT/bench/report.awk" \
  "$RES/env.txt" "$RES/notes.txt" "$RES/results.txt" >/dev/null || die "report.awk failed"
[ -s "$DATA" ] || die "no chart data"
size=$(grep -oE 'echo=[0-9]+B' "$RES/env.txt" | grep -oE '[0-9]+' || echo 64)
when=$(awk '/^date:/ { print substr($2, 1, 10) }' "$RES/env.txt")
cores=$(grep -oE '[0-9]+ CPUs' "$RES/env.txt" | head -1)
rounds=$(grep -oE 'rounds=[0-9]+ duration=[0-9.]+s' "$RES/env.txt" | sed 's/rounds=\([0-9]*\) duration=/\1 round(s) of /')
sub="${when:-?}, ${cores:-?}, ${rounds:-?}: server on one CPU, load generator (one thread) on another"

plot() {   # terminal-setup output
  gnuplot <<EOF
set terminal $1
set encoding utf8
set micro
set output "$2"
set datafile missing "NaN"
stats "$DATA" using 1 nooutput
n = STATS_blocks
set multiplot layout 1,2 title "Echo, $size-byte ping-pong, one message in flight per connection\n{/*0.8 $sub}"
set logscale x
set xlabel "connections"
set grid
set key top left
set format y "%.0s%c"
set ylabel "round trips per second"
plot for [i=0:n-1] "$DATA" index i using 1:2 with linespoints lw (i ? 1.5 : 3) lc i+1 pt 7 \
  title columnheader(2) noenhanced
set logscale y
set format y "%.0s %cs"
set ylabel "round-trip time (p50 solid, p99 dashed)"
set key top left
plot for [i=0:n-1] "$DATA" index i using 1:(\$3 / 1e6) with linespoints lw (i ? 1.5 : 3) lc i+1 \
       pt 7 title columnheader(2) noenhanced, \
     for [i=0:n-1] "$DATA" index i using 1:(\$4 / 1e6) with linespoints lw (i ? 1 : 2) dt 2 lc i+1 \
       pt 6 notitle
unset multiplot
EOF
}
plot 'pngcairo size 1200,500 font "sans,10"' "$OUT/echo.png" || die "gnuplot (png) failed"
plot 'svg size 1200,500 dynamic font "sans,10"' "$OUT/echo.svg" || die "gnuplot (svg) failed"
echo "$OUT/echo.png $OUT/echo.svg"
