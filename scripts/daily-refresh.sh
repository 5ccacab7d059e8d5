#!/bin/sh
# Daily incremental refresh: train today's logs on top of yesterday's model,
# expire stale rows, checkpoint as today, and export what changed.
#
#   scripts/daily-refresh.sh --day D --out CKPT_D [--prev CKPT_PREV]
#       [--shards N] [--workers M] [--conf FILE] [--bin BINDIR]
#       [--work DIR] [--export-dir DIR] [--worker-opt "..."] [--ps-opt "..."] LOG...
#   scripts/daily-refresh.sh --ps ENDPOINTS [--srun] --day D --out CKPT_D ... LOG...
#
# 1. starts N shards on this machine, each restored from --prev (a cluster
#    checkpoint; without --prev the model starts cold), with day D;
# 2. M workers train on LOG... (today's logs);
# 3. rows unseen for longer than their slot's expire_days are deleted;
# 4. a checkpoint of the whole job is written to CKPT_D (META + shard-I):
#    the shards get CKPT_D's parent as their checkpoint_root and its last
#    component as the checkpoint's name; an existing CKPT_D is refused;
# 5. with --export-dir, a full export of day D and, with --prev, the delta
#    since the previous day (puts and tombstones) are written there, and
#    the serving bundle bundle-D/ (docs/BUNDLE.md; with --prev, its delta)
#    that funnel-serve loads or applies live;
# 6. everything it started is stopped, also on failure.
#
# With --ps ENDPOINTS (a comma list, @FILE or a pattern such as
# tcp://funnel-ps-{0..3}.funnel-ps:7700) it refreshes a cluster that already
# runs instead of starting one: the shards keep yesterday's state, so step 1
# becomes `ctl begin-day` and --prev only names the checkpoint the delta is
# taken against; the M workers run on this machine, or with --srun as one
# `srun --ntasks=M` step (ranks from Slurm; scripts/slurm/refresh.sbatch;
# their metrics-workerR.jsonl land in the current directory).
# The shards write the checkpoint under their own checkpoint_root, which
# must be CKPT_D's parent on a filesystem this machine sees (else an error
# says where they wrote); the shards are left running.
set -eu
. "$(dirname "$0")/lib.sh"

DAY="" OUT="" PREV="" SHARDS=2 WORKERS=2 CONF="" BIN="$FUNNEL_TOP/bin" WORK="" EXPORT="" W_OPT="" P_OPT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --day) DAY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --prev) PREV=$2; shift 2 ;;
    --shards) SHARDS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --conf) CONF=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --export-dir) EXPORT=$2; shift 2 ;;
    --worker-opt) W_OPT=$2; shift 2 ;;
    --ps-opt) P_OPT=$2; shift 2 ;;
    --ps) PS=$2; shift 2 ;;   # running cluster
    --srun) SRUN=1; shift ;;  # running cluster: workers as one srun step
    -h|--help) help_and_exit "$0" ;;
    --) shift; break ;;
    -*) echo "daily-refresh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ -n "$DAY" ] && [ -n "$OUT" ] && [ $# -gt 0 ] ||
    { echo "daily-refresh: need --day D, --out CKPT and today's logs (see --help)" >&2; exit 2; }
[ -z "$PREV" ] || [ -f "$PREV/META" ] ||
    { echo "daily-refresh: $PREV is not a checkpoint (no META)" >&2; exit 2; }
[ ! -e "$OUT" ] ||
    { echo "daily-refresh: $OUT exists; checkpoints are never overwritten: give a new --out" >&2; exit 2; }
mkdir -p "$(dirname "$OUT")"
CK_ROOT=$(cd "$(dirname "$OUT")" && pwd)
CK_NAME=$(basename "$OUT")

WORK=${WORK:-$OUT.work}
rm -rf "$WORK"
mkdir -p "$WORK"
CONF_ARG=""
[ -n "$CONF" ] && CONF_ARG="--conf $CONF"
INIT=""
[ -n "$PREV" ] && INIT="--init_from $(cd "$PREV" && pwd)"
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

# --ps: refresh the cluster that already runs at $PS (see the header).
if [ -n "${PS:-}" ]; then
    echo "daily-refresh: day $DAY on the running cluster $PS${PREV:+ (delta against $PREV)}: training on $*"
    "$BIN/funnel-worker" ctl begin-day $CONF_ARG $W_OPT --ps "$PS" --day "$DAY"
    if [ "${SRUN:-0}" -eq 1 ]; then
        srun --ntasks="$WORKERS" --kill-on-bad-exit=1 "$BIN/funnel-worker" train $CONF_ARG \
            --ps "$PS" $W_OPT "$@"
    else
        trap 'for p in $(cat "$WORK/worker.pids" 2>/dev/null); do kill "$p" 2>/dev/null; done' EXIT
        i=0
        while [ $i -lt "$WORKERS" ]; do
            "$BIN/funnel-worker" train $CONF_ARG --ps "$PS" --rank $i --workers "$WORKERS" \
                --metrics_file "$WORK/metrics-worker$i.jsonl" $W_OPT "$@" > "$WORK/worker$i.log" 2>&1 &
            echo $! >> "$WORK/worker.pids"
            i=$((i + 1))
        done
        FAIL=0
        for p in $(cat "$WORK/worker.pids"); do wait "$p" || FAIL=1; done
        rm -f "$WORK/worker.pids"
        [ $FAIL -eq 0 ] || { tail -n 3 "$WORK"/worker*.log >&2; echo "daily-refresh: a worker failed (logs in $WORK)" >&2; exit 1; }
    fi
    "$BIN/funnel-worker" ctl begin-day $CONF_ARG $W_OPT --ps "$PS" --day "$DAY" --expire
    "$BIN/funnel-worker" ctl checkpoint $CONF_ARG $W_OPT --ps "$PS" --day "$DAY" --name "$CK_NAME" > "$WORK/checkpoint.txt"
    cat "$WORK/checkpoint.txt"
    WROTE=$(sed -n 's/^checkpoint of .* written to \(.*\) (day .*$/\1/p' "$WORK/checkpoint.txt")
    if [ ! -d "$OUT" ] || [ "$(cd "$OUT" && pwd -P)" != "$(cd "$WROTE" 2>/dev/null && pwd -P)" ]; then
        echo "daily-refresh: the shards wrote the checkpoint to $WROTE, not to --out $OUT: give the shards checkpoint_root = $CK_ROOT on a filesystem this machine shares, or --out under their root" >&2
        exit 1
    fi
    if [ -n "$EXPORT" ]; then
        mkdir -p "$EXPORT"
        "$BIN/funnel-emb" export $CONF_ARG "$OUT" --out "$EXPORT/full-day$DAY.emb"
        [ -z "$PREV" ] || "$BIN/funnel-emb" export $CONF_ARG "$OUT" --since "$PREV" --out "$EXPORT/delta-day$DAY.emb"
        "$BIN/funnel-emb" bundle "$OUT" ${PREV:+--since "$PREV"} --out "$EXPORT/bundle-$DAY"
    fi
    echo "daily-refresh: day $DAY done on $PS: checkpoint $OUT${EXPORT:+, exports in $EXPORT}"
    exit 0
fi

trap '"$SCRIPTS/run-local.sh" --stop --dir "$WORK" >/dev/null 2>&1 || true' EXIT

echo "daily-refresh: day $DAY${PREV:+ from $PREV}: training on $*"
"$SCRIPTS/run-local.sh" --bin "$BIN" --shards "$SHARDS" --workers "$WORKERS" --dir "$WORK" \
    ${CONF:+--conf "$CONF"} --keep --ps-opt "$INIT --day $DAY --checkpoint_root $CK_ROOT $P_OPT" --worker-opt "$W_OPT" "$@"
EP=$(cat "$WORK/endpoints")
echo "daily-refresh: day $DAY: expiring stale rows and writing checkpoint $OUT"
"$BIN/funnel-worker" ctl begin-day $CONF_ARG $W_OPT --ps "$EP" --day "$DAY" --expire
"$BIN/funnel-worker" ctl checkpoint $CONF_ARG $W_OPT --ps "$EP" --day "$DAY" --name "$CK_NAME"
"$SCRIPTS/run-local.sh" --stop --dir "$WORK"

if [ -n "$EXPORT" ]; then
    mkdir -p "$EXPORT"
    echo "daily-refresh: day $DAY: exporting to $EXPORT"
    "$BIN/funnel-emb" export $CONF_ARG "$OUT" --out "$EXPORT/full-day$DAY.emb"
    if [ -n "$PREV" ]; then
        "$BIN/funnel-emb" export $CONF_ARG "$OUT" --since "$PREV" --out "$EXPORT/delta-day$DAY.emb"
    fi
    "$BIN/funnel-emb" bundle "$OUT" ${PREV:+--since "$PREV"} --out "$EXPORT/bundle-$DAY"
fi
echo "daily-refresh: day $DAY done: checkpoint $OUT${EXPORT:+, exports in $EXPORT}"
