#!/bin/sh
# Start a funnel cluster on this machine, train, and stop everything.
#
#   scripts/run-local.sh [--shards N] [--workers M] [--conf FILE] [--dir DIR]
#                        [--bin BINDIR] [--ps-opt "--key value ..."]
#                        [--worker-opt "--key value ..."] [--curve] LOG...
#
# Starts N funnel-ps shards (ipc:// endpoints inside DIR, so parallel runs
# never clash) with their data under DIR/ps<i> (so their checkpoints, by
# default, under DIR/checkpoints/NAME), then M funnel-worker train
# processes (rank 0..M-1) over LOG..., waits for the workers, flushes and
# stops the shards, and leaves every process's log in DIR/logs. Whatever
# happens - a failing worker, Ctrl-C - every process it started is stopped.
# Exit status: 0 if every worker succeeded. BINDIR defaults to the bin/ of
# the checkout this script is in, wherever it is run from.
#
# With --curve the cluster talks CURVE (authenticated, encrypted): key
# pairs are made with funnel-ps keygen into DIR/keys (once; kept for later
# runs) - shard (every shard's), admin, and worker<i> allowed to push only
# as rank i - and DIR/keys/allow lists them. Operate a kept keyed cluster
# with the admin key, e.g.
#   funnel-worker ctl stats --ps $(cat DIR/endpoints) \
#       --curve_server_key DIR/keys/shard.pub --curve_secret_key DIR/keys/admin.key
#
# While the workers train, one line sums up the whole cluster (workers
# running, samples, samples/s, done, ETA, from their metrics files in
# DIR/logs): redrawn in place on a terminal, a plain line every 10 s
# otherwise (--progress plain|on|off|auto; auto: by whether stdout is a
# terminal). Each worker's own progress lines are in DIR/logs/worker<i>.log.
#
# Each worker trains with threads = the cores of this machine / M (at
# least 1): the workers share the cores, and more compute threads than
# cores only add hand-offs between threads that wait for a core (README,
# "End-to-end throughput"). A --threads in --worker-opt, or a
# threads key in the --conf file, is used instead.
#
# With --keep the shards keep running after training (their endpoints are
# printed and written to DIR/endpoints); stop them with
#   scripts/run-local.sh --stop --dir DIR
set -u
. "$(dirname "$0")/lib.sh"

SHARDS=2 WORKERS=2 CONF="" DIR="cluster" BIN="$FUNNEL_TOP/bin" PS_OPT="" W_OPT="" KEEP=0 STOP=0 CURVE=0
PROGRESS=auto
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
    --curve) CURVE=1; shift ;;
    --progress) PROGRESS=$2; shift 2 ;;
    --stop) STOP=1; shift ;;
    -h|--help) help_and_exit "$0" ;;
    --) shift; break ;;
    -*) echo "run-local: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
    esac
done
case "$PROGRESS" in
auto) if [ -t 1 ]; then PROGRESS=on; else PROGRESS=plain; fi ;;
on | off | plain) ;;
*) echo "run-local: --progress $PROGRESS: expected auto, on, off or plain" >&2; exit 2 ;;
esac

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

# --curve: keys made once, the allow-list written for this many workers
make_keys() {
    K="$DIR/keys"
    mkdir -p "$K" && chmod 700 "$K" || return 1
    i=0
    for name in shard admin $(while [ $i -lt "$WORKERS" ]; do echo "worker$i"; i=$((i + 1)); done); do
        [ -f "$K/$name.key" ] ||
            "$BIN/funnel-ps" keygen --out "$K/$name" > /dev/null || return 1
    done
    pub() { sed -n 's/^public-key = //p' "$K/$1.pub"; }
    {
        echo "# made by run-local.sh --curve: ROLE PUBKEY NAME [RANKS]"
        echo "admin $(pub admin) admin"
        i=0
        while [ $i -lt "$WORKERS" ]; do
            echo "worker $(pub "worker$i") worker$i $i"
            i=$((i + 1))
        done
    } > "$K/allow"
}
if [ $CURVE -eq 1 ]; then
    make_keys || { echo "run-local: cannot make keys in $DIR/keys" >&2; exit 1; }
    PS_OPT="--curve_secret_key $DIR/keys/shard.key --curve_allow $DIR/keys/allow $PS_OPT"
    echo "run-local: CURVE keys in $DIR/keys (admin key: $DIR/keys/admin.key)"
fi

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

# the workers' share of the cores, unless the caller chose the threads
THREADS_OPT=""
case " $W_OPT " in
*" --threads "* | *" --threads="*) ;;
*)
    if [ -z "$CONF" ] || ! grep -q '^[[:space:]]*threads[[:space:]]*=' "$CONF"; then
        cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
        t=$((cores / (WORKERS > 0 ? WORKERS : 1)))
        [ "$t" -ge 1 ] || t=1
        THREADS_OPT="--threads $t"
    fi
    ;;
esac

: > "$DIR/worker.pids"
i=0
while [ $i -lt "$WORKERS" ]; do
    KEY_OPT=""
    [ $CURVE -eq 1 ] && KEY_OPT="--curve_server_key $DIR/keys/shard.pub --curve_secret_key $DIR/keys/worker$i.key"
    "$BIN/funnel-worker" train $CONF_ARG --ps "$EPS" --rank $i --workers "$WORKERS" \
        --metrics_file "$DIR/logs/metrics-worker$i.jsonl" --metrics_interval 1 $KEY_OPT $THREADS_OPT $W_OPT "$@" \
        > "$DIR/logs/worker$i.log" 2>&1 &
    echo $! >> "$DIR/worker.pids"
    i=$((i + 1))
done
echo "run-local: $WORKERS worker(s) training${THREADS_OPT:+ ($THREADS_OPT each: this machine's cores / workers)}"

# The cluster's line: workers still running, and over the workers' latest
# metrics records of this run (the last non-"valid" record after their
# last "start"): samples this run, samples/s, done, ETA (the slowest).
cluster_line() { # running workers
    for i in $(seq 0 $((WORKERS - 1))); do
        f="$DIR/logs/metrics-worker$i.jsonl"
        [ -f "$f" ] && grep -v '"event":"valid"' "$f" | tail -n 1
    done | awk -v run="$1" -v all="$WORKERS" '
        function num(k,   m) { return match($0, "\"" k "\":[-0-9.e+]+") ? substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3) + 0 : -1 }
        { s = num("run_samples"); if (s > 0) n += s
          d = num("done"); t = num("time_s")
          if ($0 !~ /"event":"end"/) { r = num("samples_per_s"); if (r > 0) rate += r }
          else if (t > 0 && s > 0) rate += s / t
          if (d >= 0) { dsum += d; dn++ }
          if (d > 0.001 && d < 1 && t > 0) { e = t * (1 - d) / d; if (e > eta) eta = e } }
        END {
          line = sprintf("cluster: %d/%d workers running  %d samples  %.0f/s", run, all, n, rate)
          if (dn > 0) line = line sprintf("  %.0f%%", 100 * dsum / all)
          if (eta > 0) line = line sprintf("  ETA %dm%02ds", int(eta / 60), int(eta) % 60)
          print line }'
}

running() { # workers alive (not yet exited; a zombie has exited)
    n=0
    for p in $(cat "$DIR/worker.pids"); do
        st=$(ps -o stat= -p "$p" 2>/dev/null) || continue
        case "$st" in Z*) ;; *) n=$((n + 1)) ;; esac
    done
    echo $n
}

watch_workers() {
    [ "$PROGRESS" = off ] && return 0
    last=0 tick=0
    while :; do
        n=$(running)
        [ "$n" -eq 0 ] && break
        if [ "$PROGRESS" = on ]; then
            printf '\r%s\033[K' "$(cluster_line "$n")"
        elif [ $((tick - last)) -ge 10 ]; then
            cluster_line "$n"
            last=$tick
        fi
        sleep 1
        tick=$((tick + 1))
    done
    if [ "$PROGRESS" = on ]; then printf '\r%s\033[K\n' "$(cluster_line 0)"; else cluster_line 0; fi
}
watch_workers

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
