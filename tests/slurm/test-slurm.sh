#!/bin/sh
# make test-slurm: funnel under a real Slurm on this machine (root).
#
#   tests/slurm/test-slurm.sh [BINDIR]
#
# 1. starts munged, slurmctld and slurmd from a config in a scratch folder
#    (tests/slurm/slurm-up.sh; one node, loopback);
# 2. generates logs (funnel-gen), submits scripts/slurm/funnel.sbatch (2
#    shards + 2 workers, ranks and endpoints from Slurm's variables), waits
#    (at most 10 min) and checks the AUCs it printed against an in-process
#    run on the same data: ctr within 0.01, ctcvr within 0.02 (few buys in
#    the test log: the noisier task);
# 3. the daily refresh as Slurm jobs (scripts/slurm/refresh.sbatch): day 1
#    with its own shards inside the job; day 2 against 2 shards started here
#    from day 1's checkpoint (--ps, workers as an srun step); day 2's full
#    and delta exports must equal those of the same day refreshed by hand;
# 4. stops everything it started and removes the folder, also on failure.
#
# Prints the AUCs and the wall time of each job. Not part of `make test`:
# it needs root; 50 s on an idle 2-core machine, 2 to 3 min when busy.
set -eu
case "${1:-}" in
-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
esac
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${1:-$TOP/bin}" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "test-slurm: needs root (it starts munged, slurmctld, slurmd)" >&2; exit 2; }
for p in funnel-gen funnel-ps funnel-worker funnel-emb; do
    [ -x "$BIN/$p" ] || { echo "test-slurm: $BIN/$p missing: run make first" >&2; exit 2; }
done

S=$(mktemp -d /tmp/funnel-slurm-test.XXXXXX)
HAND_PIDS=""
cleanup() {
    rc=$?
    for p in $HAND_PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $HAND_PIDS; do wait "$p" 2>/dev/null || true; done
    if [ -f "$S/slurm.conf" ]; then
        SLURM_CONF="$S/slurm.conf" scancel --user=root 2>/dev/null || true
        sleep 1
    fi
    "$TOP/tests/slurm/slurm-up.sh" stop "$S"
    if [ $rc -ne 0 ]; then
        echo "test-slurm: FAILED; daemon and job logs:" >&2
        for f in "$S"/*.log "$S"/*.out; do [ -f "$f" ] && tail -n 5 "$f" | sed "s|^|  $(basename "$f"): |" >&2; done
    fi
    rm -rf "$S"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
auc() { # json file, task
    python3 -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["tasks"][sys.argv[2]]["auc"])' "$1" "$2" 2>/dev/null ||
        sed -n "s/.*\"$2\":{[^}]*\"auc\":\([0-9.]*\).*/\1/p" "$1"
}
within() { # a b tol
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}
submit() { # name, sbatch args...: wait at most 10 min; prints the job's output
    name=$1; shift
    t0=$(date +%s)
    # submitted from the checkout (SLURM_SUBMIT_DIR), run in the scratch folder
    if ! (cd "$TOP" && timeout 600 sbatch --wait --chdir="$S" --output="$S/$name.out" "$@" > /dev/null); then
        echo "test-slurm: job $name failed or took over 10 min:" >&2
        cat "$S/$name.out" >&2 || true
        return 1
    fi
    echo "test-slurm: job $name took $(($(date +%s) - t0)) s"
}

echo "test-slurm: starting munged, slurmctld, slurmd in $S"
"$TOP/tests/slurm/slurm-up.sh" start "$S" 8
export SLURM_CONF="$S/slurm.conf"

MODEL="--towers 64,32"
"$BIN/funnel-gen" --out "$S/data" --train 400000 --test 100000 --seed 7 > "$S/gen.log" 2>&1

# ---- funnel.sbatch: 2 shards + 2 workers vs in process ----
PORT=$(free_port)
submit funnel --ntasks=4 scripts/slurm/funnel.sbatch --bin "$BIN" --dir "$S/job" --port "$PORT" \
    --ps-opt "$MODEL" --worker-opt "$MODEL" --test "$S/data/test.tsv" \
    --truth "$S/data/test.truth.tsv" "$S/data/train.tsv"
sed 's/^/  | /' "$S/funnel.out"
grep -q "rank 1 (SLURM_PROCID=1, Slurm) of 2 workers (SLURM_NTASKS=2, Slurm)" "$S/funnel.out" ||
    { echo "test-slurm: worker 1 did not take its rank from Slurm" >&2; exit 1; }

"$BIN/funnel-worker" train --model "$S/inproc" $MODEL "$S/data/train.tsv" > "$S/inproc.log" 2>&1
"$BIN/funnel-worker" predict --model "$S/inproc" $MODEL --in "$S/data/test.tsv" \
    --out "$S/inproc.pred" >> "$S/inproc.log" 2>&1
"$BIN/funnel-worker" eval --pred "$S/inproc.pred" --log "$S/data/test.tsv" --json > "$S/inproc.json"
FAIL=0
for t in ctr:0.01 ctcvr:0.02; do
    task=${t%:*} tol=${t#*:}
    a=$(auc "$S/job/eval.json" "$task") b=$(auc "$S/inproc.json" "$task")
    if within "$a" "$b" "$tol"; then v=ok; else v=FAIL; FAIL=1; fi
    echo "test-slurm: $task AUC: Slurm job $a, in process $b (tolerance $tol): $v"
done
[ $FAIL -eq 0 ] || exit 1

# ---- refresh.sbatch: day 1 self-started, day 2 against a running cluster ----
"$BIN/funnel-gen" --out "$S/w" --days 2 --train 100000 --test 20000 --seed 5 > "$S/gen2.log" 2>&1
OPTS="--towers 64,32 --expire_days 1"
mkdir -p "$S/rf/self" "$S/rf/run" "$S/rf/hand"
submit refresh1 --ntasks=1 scripts/slurm/refresh.sbatch --day 1 --out "$S/rf/self/ck1" --shards 2 \
    --workers 1 --worker-opt "$OPTS" --ps-opt "$OPTS" "$S/w/day1/train.tsv"
P=$(free_port)
P1=$(free_port)
for i in 0 1; do
    port=$P; [ $i -eq 1 ] && port=$P1
    "$BIN/funnel-ps" --shard $i --shards 2 --listen "tcp://127.0.0.1:$port" --data "$S/rf/run/d$i" \
        --init_from "$S/rf/self/ck1" --checkpoint_root "$S/rf/run" $OPTS > "$S/rf-ps$i.log" 2>&1 &
    HAND_PIDS="$HAND_PIDS $!"
done
submit refresh2 --ntasks=1 scripts/slurm/refresh.sbatch --ps "tcp://127.0.0.1:$P,tcp://127.0.0.1:$P1" \
    --day 2 --prev "$S/rf/self/ck1" --out "$S/rf/run/ck2" --worker-opt "$OPTS" \
    --export-dir "$S/rf/run-exp" "$S/w/day2/train.tsv"
grep -E "refresh.sbatch|cluster:|checkpoint of|^(full|delta)|done" "$S/refresh2.out" | sed 's/^/  | /'
"$BIN/funnel-worker" ctl shutdown --ps "tcp://127.0.0.1:$P,tcp://127.0.0.1:$P1" > /dev/null
for p in $HAND_PIDS; do wait "$p" || true; done
HAND_PIDS=""
"$TOP/scripts/daily-refresh.sh" --bin "$BIN" --day 2 --prev "$S/rf/self/ck1" --out "$S/rf/hand/ck2" \
    --shards 2 --workers 1 --worker-opt "$OPTS" --ps-opt "$OPTS" --export-dir "$S/rf/hand-exp" \
    "$S/w/day2/train.tsv" > "$S/rf-hand.log" 2>&1
for f in full-day2.emb delta-day2.emb; do
    cmp "$S/rf/run-exp/$f" "$S/rf/hand-exp/$f" ||
        { echo "test-slurm: $f of the Slurm refresh differs from the one by hand" >&2; exit 1; }
done
echo "test-slurm: refresh day 2 on Slurm (--ps, srun workers) = by hand: full and delta exports identical"
echo "test-slurm: passed"
