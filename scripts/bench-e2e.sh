#!/bin/sh
# End-to-end training throughput (issue 4's benchmark, issue 16 point 6):
# samples/s of single-process training, of 1 shard + 1 worker and of
# 2 shards + 2 workers on this machine, on the same generated world, in
# E2E_RUNS rounds; each round runs the three (in a rotated order, so a
# change of the machine's load falls on each in turn) and its ratios to
# single-process training are taken within the round. Printed: one line
# per run, then min/median/max over the rounds of every rate and ratio.
#
#   scripts/bench-e2e.sh [BINDIR]          (default bin)
#
# The world: funnel-gen --train E2E_TRAIN (300000) --test 1000 --seed 7.
# In process: funnel-worker train, rate read from its log line
# "trained N samples in T s (X samples/s)". Clusters: scripts/run-local.sh
# (ipc endpoints); their rate is the workers' samples added up over the
# longest worker's T (each worker's T runs from its start to its last
# push acknowledged, like the in-process one); the launcher's wall time,
# which adds starting the shards and their final flush, is shown beside it.
# Every run uses the default [model] and [train] settings (esm2, batch 512);
# run-local.sh gives each worker of a cluster its share of the cores
# (threads = cores / workers, at least 1) unless E2E_WORKER_OPT sets
# --threads; in process the default is 2 compute threads.
#
# CPU: each run also prints the CPU time (user + system) it used per 1000
# samples: the in-process worker's, a cluster's workers' and shards' added
# up (read from the workers' "batch timeline" log line and from the
# shards' /proc/PID/stat before they stop), and the machine's load average.
# On a shared machine other processes take a share of the cores that moves
# between runs; the CPU per sample does not depend on it, so
# "cpu in process / cpu cluster" is the efficiency the wall ratio would
# show on an idle machine whose cores every run keeps busy.
#
# Environment: E2E_TRAIN (impressions, default 300000), E2E_RUNS (rounds,
# default 3), E2E_WORKER_OPT and E2E_PS_OPT (extra "--key value" options for
# every worker / shard), E2E_AB ("--key value" worker options of a variant
# B of the 2 + 2 cluster, run in every round right after A, in alternating
# order, and printed as B / A: the A/B of one lever), E2E_AB_BIN (a
# directory of other funnel-ps and funnel-worker programs, e.g. a build of
# an older commit, for variant B: the A/B of a code change; alone or with
# E2E_AB), E2E_KEEP=1 keeps the scratch directory (printed) with every log.
set -u
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac

BIN=${1:-bin}
need_prog bench-e2e "$BIN" funnel-worker
need_prog bench-e2e "$BIN" funnel-gen
TRAIN=${E2E_TRAIN:-300000}
RUNS=${E2E_RUNS:-3}
W_OPT=${E2E_WORKER_OPT:-}
P_OPT=${E2E_PS_OPT:-}
AB=${E2E_AB:-}
AB_BIN=${E2E_AB_BIN:-}
[ -z "$AB_BIN" ] || need_prog bench-e2e "$AB_BIN" funnel-worker
[ -z "$AB_BIN" ] || need_prog bench-e2e "$AB_BIN" funnel-ps
AB_NAME="${AB:+$AB}${AB_BIN:+${AB:+, }programs of $AB_BIN}"
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
load() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?'; }

# "N T X" from the last "trained N samples in T s (X samples/s)" line of a
# worker log.
trained() {
    sed -n 's/.*trained \([0-9][0-9]*\) samples in \([0-9.][0-9.]*\) s (\([0-9][0-9]*\) samples\/s).*/\1 \2 \3/p' \
        "$1" | tail -n 1
}

# CPU seconds (user + system) of a worker, from its "batch timeline" line.
worker_cpu() {
    c=$(sed -n 's/.*process cpu \([0-9.][0-9.]*\) s user \([0-9.][0-9.]*\) s sys.*/\1 \2/p' "$1" |
        tail -n 1)
    [ -n "$c" ] || die "no 'process cpu' in $1"
    echo "$c" | awk '{ print $1 + $2 }'
}

# CPU seconds (user + system) of the processes in a pid file, still running.
pids_cpu() {
    hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
    s=0
    for p in $(cat "$1"); do
        v=$(awk -v hz="$hz" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$p/stat" 2>/dev/null)
        s=$(awk -v a="$s" -v b="${v:-0}" 'BEGIN { print a + b }')
    done
    echo "$s"
}

# name value: append a value to the series NAME (a file in DIR)
add() { echo "$2" >> "$DIR/s.$1"; }

echo "bench-e2e: generating $TRAIN training impressions" >&2
"$BIN/funnel-gen" --out "$DIR/world" --train "$TRAIN" --test 1000 --seed 7 \
    > "$DIR/gen.log" 2>&1 || die "funnel-gen failed: $(tail -n 3 "$DIR/gen.log")"
LOG="$DIR/world/train.tsv"
echo "bench-e2e: $TRAIN samples, $RUNS rounds, $(nproc 2>/dev/null || echo '?') cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset: OpenBLAS detects)}, worker options '${W_OPT}', shard options '${P_OPT}'"

# in process: prints its line, sets RATE and CPU (ms per 1000 samples)
local_run() {
    echo "bench-e2e: training in process" >&2
    rm -rf "$DIR/model" "$DIR/model.metrics.jsonl"
    l0=$(load)
    t0=$(now)
    "$BIN/funnel-worker" train --model "$DIR/model" --progress off $W_OPT "$LOG" \
        > "$DIR/local.log" 2>&1 || die "in-process training failed: $(tail -n 3 "$DIR/local.log")"
    t1=$(now)
    set -- $(trained "$DIR/local.log")
    [ $# -eq 3 ] || die "no 'trained N samples in T s (X samples/s)' line in $DIR/local.log"
    RATE=$3
    CPU=$(awk -v c="$(worker_cpu "$DIR/local.log")" -v n="$1" 'BEGIN { printf "%.1f", 1e6 * c / n }')
    printf 'in process: %d samples in %.1f s: %d samples/s (wall %.1f s), cpu %s ms per 1k samples, load %s\n' \
        "$1" "$2" "$RATE" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$CPU" "$l0"
}

# cluster SHARDS WORKERS [TAG [WORKER_OPT [BINDIR]]]: prints its line, sets
# RATE and CPU
cluster() {
    shards=$1 workers=$2 tag=${3:-} opt=${4:-} bin=${5:-$BIN} c="$DIR/c$1x$2${3:-}"
    echo "bench-e2e: training with $shards shard(s) and $workers worker(s) $opt" >&2
    rm -rf "$c"
    l0=$(load)
    t0=$(now)
    "$HERE/run-local.sh" --bin "$bin" --shards "$shards" --workers "$workers" --dir "$c" --keep \
        --progress off --ps-opt "$P_OPT" --worker-opt "--progress off $W_OPT $opt" "$LOG" \
        > "$c.log" 2>&1 ||
        die "run-local with $shards shard(s) and $workers worker(s) failed: $(tail -n 5 "$c.log")"
    t1=$(now)
    cpu=$(pids_cpu "$c/ps.pids")
    "$HERE/run-local.sh" --stop --dir "$c" > /dev/null 2>&1
    n=0 t=0 i=0
    while [ $i -lt "$workers" ]; do
        set -- $(trained "$c/logs/worker$i.log")
        [ $# -eq 3 ] || die "no 'trained N samples in T s' line in $c/logs/worker$i.log"
        n=$((n + $1))
        t=$(awk -v a="$t" -v b="$2" 'BEGIN { print (b > a ? b : a) }')
        cpu=$(awk -v a="$cpu" -v b="$(worker_cpu "$c/logs/worker$i.log")" 'BEGIN { print a + b }')
        i=$((i + 1))
    done
    RATE=$(awk -v n="$n" -v t="$t" 'BEGIN { printf "%.0f", n / t }')
    CPU=$(awk -v c="$cpu" -v n="$n" 'BEGIN { printf "%.1f", 1e6 * c / n }')
    printf '%d shard(s) + %d worker(s)%s: %d samples in %.1f s: %d samples/s (launcher wall %.1f s), cpu %s ms per 1k samples, load %s\n' \
        "$shards" "$workers" "${tag:+ (B: $AB_NAME)}" "$n" "$t" "$RATE" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$CPU" "$l0"
}

r=0
while [ $r -lt "$RUNS" ]; do
    echo "round $((r + 1)) of $RUNS"
    # rotate the order: a change of load falls on each configuration in turn
    case $((r % 3)) in
    0) order="local c11 c22" ;;
    1) order="c11 c22 local" ;;
    *) order="c22 local c11" ;;
    esac
    for what in $order; do
        case $what in
        local) local_run; L=$RATE LC=$CPU ;;
        c11) cluster 1 1; A=$RATE AC=$CPU ;;
        c22)
            if [ -n "$AB_NAME" ] && [ $((r % 2)) -eq 1 ]; then
                cluster 2 2 b "$AB" "${AB_BIN:-$BIN}"; B=$RATE BC=$CPU
                cluster 2 2; C=$RATE CC=$CPU
            else
                cluster 2 2; C=$RATE CC=$CPU
                if [ -n "$AB_NAME" ]; then cluster 2 2 b "$AB" "${AB_BIN:-$BIN}"; B=$RATE BC=$CPU; fi
            fi
            ;;
        esac
    done
    add local "$L"; add c11 "$A"; add c22 "$C"
    add r11 "$(awk -v a="$A" -v l="$L" 'BEGIN { print a / l }')"
    add r22 "$(awk -v a="$C" -v l="$L" 'BEGIN { print a / l }')"
    add cpu_local "$LC"; add cpu_c11 "$AC"; add cpu_c22 "$CC"
    add e11 "$(awk -v a="$AC" -v l="$LC" 'BEGIN { print l / a }')"
    add e22 "$(awk -v a="$CC" -v l="$LC" 'BEGIN { print l / a }')"
    if [ -n "$AB_NAME" ]; then
        add c22b "$B"; add cpu_c22b "$BC"
        add rb "$(awk -v a="$B" -v l="$L" 'BEGIN { print a / l }')"
        add ab "$(awk -v a="$B" -v c="$C" 'BEGIN { print a / c }')"
        add eab "$(awk -v a="$BC" -v c="$CC" 'BEGIN { print c / a }')"
    fi
    r=$((r + 1))
done

# NAME LABEL FORMAT: "LABEL: min / median / max" of series NAME
mmm() {
    sort -g "$DIR/s.$1" | awk -v label="$2" -v f="$3" '
        { v[NR] = $1 }
        END {
            med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%s: " f " / " f " / " f " (min / median / max of %d)\n", label, v[1], med, v[NR], NR
        }'
}
echo "summary over $RUNS rounds:"
mmm local "in process samples/s" "%.0f"
mmm c11 "1+1 samples/s" "%.0f"
mmm c22 "2+2 samples/s" "%.0f"
mmm r11 "1+1 / in process (same round)" "%.2f"
mmm r22 "2+2 / in process (same round)" "%.2f"
mmm cpu_local "in process cpu ms per 1k samples" "%.1f"
mmm cpu_c11 "1+1 cpu ms per 1k samples" "%.1f"
mmm cpu_c22 "2+2 cpu ms per 1k samples" "%.1f"
mmm e11 "cpu efficiency 1+1 (cpu in process / cpu 1+1)" "%.2f"
mmm e22 "cpu efficiency 2+2 (cpu in process / cpu 2+2)" "%.2f"
if [ -n "$AB_NAME" ]; then
    mmm c22b "2+2 B ($AB_NAME) samples/s" "%.0f"
    mmm rb "2+2 B / in process" "%.2f"
    mmm ab "B / A: 2+2 B / 2+2 (same round)" "%.2f"
    mmm eab "B / A cpu efficiency (cpu A / cpu B)" "%.2f"
fi
med() { sort -g "$DIR/s.$1" | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '{"bench": "e2e", "train": %d, "runs": %d, "local_samples_per_s": %.0f, "c1x1_samples_per_s": %.0f, "c2x2_samples_per_s": %.0f, "c1x1_ratio": %.3f, "c2x2_ratio": %.3f, "c2x2_cpu_efficiency": %.3f}\n' \
    "$TRAIN" "$RUNS" "$(med local)" "$(med c11)" "$(med c22)" "$(med r11)" "$(med r22)" "$(med e22)"
