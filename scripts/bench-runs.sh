#!/bin/sh
# make bench: run every benchmark (scripts/bench.sh) BENCH_RUNS times
# (default 3) and print each figure as min/median/max over the runs, with
# the environment each run saw (date, load, CPU, OpenBLAS variables).
# Ratios inside one run (funnel against its bound or its peer) are measured
# in the same run, so the spread of a ratio says how noisy the machine was.
#
#   scripts/bench-runs.sh [BINDIR] [NAME...]     NAME as in scripts/bench.sh
#
# Output: BENCH_DIR (default bench-out)/run-K/ holds run K's files
# (env.txt and one NAME.txt a benchmark); BENCH_DIR/summary.txt the merged
# report (scripts/bench_summary.py), also printed at the end.
set -u
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac
BIN=${1:-bin}
need_prog bench "$BIN" funnel-ps
[ $# -gt 0 ] && shift
RUNS=${BENCH_RUNS:-3}
OUT=${BENCH_DIR:-bench-out}
HERE=$(cd "$(dirname "$0")" && pwd)
case "$RUNS" in '' | *[!0-9]* | 0)
    echo "bench: BENCH_RUNS=$RUNS: give a whole number of runs, 1 or more" >&2
    exit 2
    ;;
esac
mkdir -p "$OUT" || exit 1

stamp() { # file, when
    {
        echo "$2 $(date -u '+%Y-%m-%dT%H:%M:%SZ') load $(cut -d' ' -f1-3 /proc/loadavg)"
    } >>"$1"
}

dirs=""
k=1
while [ "$k" -le "$RUNS" ]; do
    d="$OUT/run-$k"
    rm -rf "$d" && mkdir -p "$d" || exit 1
    {
        echo "run $k of $RUNS"
        echo "cpu $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores"
        echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-(unset)} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-(unset)}"
    } >"$d/env.txt"
    stamp "$d/env.txt" start
    printf '\n######## run %d of %d\n' "$k" "$RUNS"
    BENCH_DIR="$d" "$HERE/bench.sh" "$BIN" "$@"
    stamp "$d/env.txt" end
    dirs="$dirs $d"
    k=$((k + 1))
done
# shellcheck disable=SC2086
python3 "$HERE/bench_summary.py" $dirs >"$OUT/summary.txt" || exit 1
printf '\n######## summary of %d runs (%s/summary.txt)\n' "$RUNS" "$OUT"
cat "$OUT/summary.txt"
