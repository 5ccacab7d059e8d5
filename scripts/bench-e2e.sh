#!/bin/sh
# End-to-end training throughput (issue 4's benchmark): samples/s of
# single-process training, of 1 shard + 1 worker and of 2 shards + 2
# workers on this machine, on the same generated world; one line each and
# the ratios to single-process training.
#
#   scripts/bench-e2e.sh [BINDIR]          (default bin)
#
# The world: funnel-gen --train E2E_TRAIN (1000000) --test 1000 --seed 7.
# In process: funnel-worker train, rate read from its log line
# "trained N samples in T s (X samples/s)". Clusters: scripts/run-local.sh
# (ipc endpoints); their rate is the workers' samples added up over the
# longest worker's T (each worker's T runs from its start to its last
# push acknowledged, like the in-process one); the launcher's wall time,
# which adds starting the shards and their final flush, is shown beside it.
# Every run uses the default [model] and [train] settings (esm2, batch 512,
# 2 compute threads per worker), so a 2 + 2 cluster runs 4 workers'
# threads and 2 shards on this 2-core machine.
#
# Environment: E2E_TRAIN (impressions, default 1000000), E2E_WORKER_OPT
# and E2E_PS_OPT (extra "--key value" options for every worker / shard),
# E2E_KEEP=1 keeps the scratch directory (printed) with every log.
set -u
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac

BIN=${1:-bin}
need_prog bench-e2e "$BIN" funnel-worker
TRAIN=${E2E_TRAIN:-1000000}
W_OPT=${E2E_WORKER_OPT:-}
P_OPT=${E2E_PS_OPT:-}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-e2e.XXXXXX") || exit 1

cleanup() {
    for c in "$DIR"/c*; do
        [ -d "$c" ] && "$HERE/run-local.sh" --stop --dir "$c" >/dev/null 2>&1
    done
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        echo "bench-e2e: logs kept in $DIR" >&2
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "bench-e2e: $*" >&2
    exit 1
}

now() { date +%s.%N; }

# "N T X" from the last "trained N samples in T s (X samples/s)" line of a
# worker log.
trained() {
    sed -n 's/.*trained \([0-9][0-9]*\) samples in \([0-9.][0-9.]*\) s (\([0-9][0-9]*\) samples\/s).*/\1 \2 \3/p' \
        "$1" | tail -n 1
}

echo "bench-e2e: generating $TRAIN training impressions" >&2
"$BIN/funnel-gen" --out "$DIR/world" --train "$TRAIN" --test 1000 --seed 7 \
    > "$DIR/gen.log" 2>&1 || die "funnel-gen failed: $(tail -n 3 "$DIR/gen.log")"
LOG="$DIR/world/train.tsv"

# single process
echo "bench-e2e: training in process" >&2
t0=$(now)
"$BIN/funnel-worker" train --model "$DIR/model" --progress off $W_OPT "$LOG" \
    > "$DIR/local.log" 2>&1 || die "in-process training failed: $(tail -n 3 "$DIR/local.log")"
t1=$(now)
set -- $(trained "$DIR/local.log")
[ $# -eq 3 ] || die "no 'trained N samples in T s (X samples/s)' line in $DIR/local.log"
LOCAL_N=$1 LOCAL_T=$2 LOCAL_RATE=$3
printf 'in process: %d samples in %.1f s: %d samples/s (wall %.1f s)\n' \
    "$LOCAL_N" "$LOCAL_T" "$LOCAL_RATE" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"

# cluster SHARDS WORKERS: prints its line, sets RATE
cluster() {
    shards=$1 workers=$2 c="$DIR/c$1x$2"
    echo "bench-e2e: training with $shards shard(s) and $workers worker(s)" >&2
    t0=$(now)
    "$HERE/run-local.sh" --bin "$BIN" --shards "$shards" --workers "$workers" --dir "$c" \
        --ps-opt "$P_OPT" --worker-opt "--progress off $W_OPT" "$LOG" > "$c.log" 2>&1 ||
        die "run-local with $shards shard(s) and $workers worker(s) failed: $(tail -n 5 "$c.log")"
    t1=$(now)
    n=0 t=0 i=0
    while [ $i -lt "$workers" ]; do
        set -- $(trained "$c/logs/worker$i.log")
        [ $# -eq 3 ] || die "no 'trained N samples in T s' line in $c/logs/worker$i.log"
        n=$((n + $1))
        t=$(awk -v a="$t" -v b="$2" 'BEGIN { print (b > a ? b : a) }')
        i=$((i + 1))
    done
    RATE=$(awk -v n="$n" -v t="$t" 'BEGIN { printf "%.0f", n / t }')
    printf '%d shard(s) + %d worker(s): %d samples in %.1f s: %d samples/s (launcher wall %.1f s)\n' \
        "$shards" "$workers" "$n" "$t" "$RATE" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
}

cluster 1 1
R11=$RATE
cluster 2 2
R22=$RATE

awk -v l="$LOCAL_RATE" -v a="$R11" -v b="$R22" 'BEGIN {
    printf "ratios to in process: 1+1 %.2f, 2+2 %.2f; 2+2 / 1+1 %.2f\n", a / l, b / l, b / a
}'
printf '{"bench": "e2e", "train": %d, "local_samples_per_s": %d, "c1x1_samples_per_s": %d, "c2x2_samples_per_s": %d}\n' \
    "$TRAIN" "$LOCAL_RATE" "$R11" "$R22"
