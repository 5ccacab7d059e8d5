#!/bin/sh
# Daily incremental refresh: train today's logs on top of yesterday's model,
# expire stale rows, checkpoint as today, and export what changed.
#
#   scripts/daily-refresh.sh --day D --out CKPT_D [--prev CKPT_PREV]
#       [--shards N] [--workers M] [--conf FILE] [--bin BINDIR]
#       [--work DIR] [--export-dir DIR] [--worker-opt "..."] [--ps-opt "..."] LOG...
#
# 1. starts N shards on this machine, each restored from --prev (a cluster
#    checkpoint; without --prev the model starts cold), with day D;
# 2. M workers train on LOG... (today's logs);
# 3. rows unseen for longer than their slot's expire_days are deleted;
# 4. a checkpoint of the whole job is written to CKPT_D (META + shard-I):
#    the shards get CKPT_D's parent as their checkpoint_root and its last
#    component as the checkpoint's name; an existing CKPT_D is refused;
# 5. with --export-dir, a full export of day D and, with --prev, the delta
#    since the previous day (puts and tombstones) are written there;
# 6. everything it started is stopped, also on failure.
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
fi
echo "daily-refresh: day $DAY done: checkpoint $OUT${EXPORT:+, exports in $EXPORT}"
