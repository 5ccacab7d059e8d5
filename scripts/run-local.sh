#!/bin/sh
# Start a funnel cluster on this machine, train, and stop everything.
#
#   scripts/run-local.sh [--shards N] [--workers M] [--conf FILE] [--dir DIR]
#                        [--bin BINDIR] [--ps-opt "--key value ..."]
#                        [--worker-opt "--key value ..."] LOG...
#
# Starts N funnel-ps shards (ipc:// endpoints inside DIR, so parallel runs
# never clash) with their data under DIR/ps<i>, then M funnel-worker train
# processes (rank 0..M-1) over LOG..., waits for the workers, flushes and
# stops the shards, and leaves every process's log in DIR/logs. Whatever
# happens - a failing worker, Ctrl-C - every process it started is stopped.
# Exit status: 0 if every worker succeeded. BINDIR defaults to the bin/ of
# the checkout this script is in, wherever it is run from.
#
# With --keep the shards keep running after training (their endpoints are
# printed and written to DIR/endpoints); stop them with
#   scripts/run-local.sh --stop --dir DIR
set -u
. "$(dirname "$0")/lib.sh"

SHARDS=2 WORKERS=2 CONF="" DIR="cluster" BIN="$FUNNEL_TOP/bin" PS_OPT="" W_OPT="" KEEP=0 STOP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --shards) SHARDS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --conf) CONF=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --ps-opt) PS_OPT=$2; shift 2 ;;
    --worker-opt) W_OPT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --stop) STOP=1; shift ;;
    -h|--help) help_and_exit "$0" ;;
    --) shift; break ;;
    -*) echo "run-local: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
    esac
done

mkdir -p "$DIR/logs"
DIR=$(cd "$DIR" && pwd)
CONF_ARG=""
[ -n "$CONF" ] && CONF_ARG="--conf $CONF"

stop_pids() { # signal, pid file
    [ -f "$2" ] || return 0
    for p in $(cat "$2"); do kill "-$1" "$p" 2>/dev/null; done
}

wait_gone() { # pid file, seconds
    [ -f "$1" ] || return 0
    i=0
    while [ $i -lt $(($2 * 10)) ]; do
        alive=0
        for p in $(cat "$1"); do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}

stop_shards() {
    stop_pids TERM "$DIR/ps.pids"
    if ! wait_gone "$DIR/ps.pids" 30; then
        echo "run-local: shards did not stop in 30 s; killing them" >&2
        stop_pids KILL "$DIR/ps.pids"
    fi
    rm -f "$DIR/ps.pids"
}

if [ $STOP -eq 1 ]; then
    stop_shards
    exit 0
fi

[ $# -gt 0 ] || { echo "run-local: no log files given (see --help)" >&2; exit 2; }
need_prog run-local "$BIN" funnel-ps
need_prog run-local "$BIN" funnel-worker

cleanup() {
    stop_pids TERM "$DIR/worker.pids"
    wait_gone "$DIR/worker.pids" 10 || stop_pids KILL "$DIR/worker.pids"
    rm -f "$DIR/worker.pids"
    [ $KEEP -eq 1 ] && [ "${OK:-0}" -eq 1 ] || stop_shards
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EPS=""
: > "$DIR/ps.pids"
i=0
while [ $i -lt "$SHARDS" ]; do
    ep="ipc://$DIR/ps$i.sock"
    "$BIN/funnel-ps" $CONF_ARG --shard $i --shards "$SHARDS" --listen "$ep" \
        --data "$DIR/ps$i" $PS_OPT > "$DIR/logs/ps$i.log" 2>&1 &
    echo $! >> "$DIR/ps.pids"
    EPS="$EPS${EPS:+,}$ep"
    i=$((i + 1))
done
echo "$EPS" > "$DIR/endpoints"
echo "run-local: $SHARDS shard(s) at $EPS (logs in $DIR/logs)"

: > "$DIR/worker.pids"
i=0
while [ $i -lt "$WORKERS" ]; do
    "$BIN/funnel-worker" train $CONF_ARG --ps "$EPS" --rank $i --workers "$WORKERS" \
        --metrics_file "$DIR/logs/metrics-worker$i.jsonl" $W_OPT "$@" \
        > "$DIR/logs/worker$i.log" 2>&1 &
    echo $! >> "$DIR/worker.pids"
    i=$((i + 1))
done
echo "run-local: $WORKERS worker(s) training"

FAIL=0
for p in $(cat "$DIR/worker.pids"); do
    wait "$p" || FAIL=1
done
rm -f "$DIR/worker.pids"
if [ $FAIL -ne 0 ]; then
    echo "run-local: a worker failed; last lines of its log:" >&2
    for f in "$DIR"/logs/worker*.log; do tail -n 3 "$f" | sed "s|^|  $(basename "$f"): |" >&2; done
    exit 1
fi
OK=1
echo "run-local: training done"
exit 0
