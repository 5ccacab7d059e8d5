#!/bin/sh
# Bytes on the wire per trained sample, and the wire_fp16 option's effect
# (issue 13): for each seed, a default world (funnel-gen defaults but
# --train WIRE_TRAIN --test WIRE_TEST --seed S) is trained by 1 worker on
# 2 shards (ipc:// endpoints on this machine), once with float32 rows and
# once with wire_fp16 = true (rows pulled as fp16, gradients pushed as
# bf16), then predicted (same setting) and evaluated against the truth.
#
#   scripts/bench-wire.sh [BINDIR]         (default bin)
#
# Bytes are counted, not estimated: the worker's PS client adds up the
# ZeroMQ payload of every request it sends (retries too) and every reply
# it receives, by request type, and logs them when it ends ("wire bytes
# ..."); here they are divided by the samples the run trained. One line
# per run, then per seed the AUC difference fp16 - fp32 of every task and
# the ratio of row bytes (PULL replies + PUSH requests).
#
# Environment: WIRE_TRAIN (impressions, default 1000000), WIRE_TEST
# (200000), WIRE_SEEDS ("1 2 3"), WIRE_KEEP=1 keeps the scratch directory.
set -u
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac

BIN=${1:-bin}
need_prog bench-wire "$BIN" funnel-worker
need_prog bench-wire "$BIN" funnel-ps
need_prog bench-wire "$BIN" funnel-gen
TRAIN=${WIRE_TRAIN:-1000000}
TEST=${WIRE_TEST:-200000}
SEEDS=${WIRE_SEEDS:-1 2 3}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-wire.XXXXXX") || exit 1
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    if [ "${WIRE_KEEP:-0}" = 1 ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# run SEED MODE(false|true): train, predict, eval; prints one line and
# leaves DIR/SEED-MODE.{train,eval}
run() {
    s=$1 m=$2 d="$DIR/$1-$2"
    PIDS=""
    for i in 0 1; do
        "$BIN/funnel-ps" --shard $i --shards 2 --listen "ipc://$d-$i.sock" --data "$d-data$i" \
            >"$d-ps$i.log" 2>&1 &
        PIDS="$PIDS $!"
    done
    eps="ipc://$d-0.sock,ipc://$d-1.sock"
    if ! "$BIN/funnel-worker" train --ps "$eps" --wire_fp16 "$m" \
        --metrics_file "$d.jsonl" "$DIR/w$s/train.tsv" >"$d.train" 2>&1 ||
        ! "$BIN/funnel-worker" predict --ps "$eps" --wire_fp16 "$m" --in "$DIR/w$s/test.tsv" \
            --out "$d.pred" >"$d.predict" 2>&1 ||
        ! "$BIN/funnel-worker" eval --pred "$d.pred" --log "$DIR/w$s/test.tsv" \
            --truth "$DIR/w$s/test.truth.tsv" --json >"$d.eval" 2>"$d.eval.log"; then
        echo "bench-wire: seed $s wire_fp16=$m failed; logs: $d.*" >&2
        WIRE_KEEP=1
        exit 1
    fi
    for p in $PIDS; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    PIDS=""
    python3 - "$d.train" "$d.eval" "$s" "$m" <<'PY'
import json, re, sys
train, ev, seed, mode = sys.argv[1:5]
t = open(train).read()
n, rate = re.search(r"trained (\d+) samples in [\d.]+ s \((\d+) samples/s\)", t).groups()
w = [int(x) for x in re.search(
    r"wire bytes \(\w+\): pull (\d+) out (\d+) in \((\d+) requests\), push (\d+) out (\d+) in "
    r"\((\d+)\), pull_dense (\d+) out (\d+) in \((\d+)\), push_dense (\d+) out (\d+) in \((\d+)\)",
    t).groups()]
n = int(n)
tasks = json.load(open(ev))["tasks"]
auc = " ".join("%s %.4f" % (k, v["auc"]) for k, v in tasks.items())
print("seed %s %-5s: %6s samples/s; bytes/sample: pull %.1f req + %.1f rep, push %.1f req + "
      "%.2f rep, dense pull %.1f + %.1f, dense push %.1f + %.2f, rows (pull rep + push req) %.1f; "
      "AUC %s" % (seed, "fp16" if mode == "true" else "fp32", rate, w[0] / n, w[1] / n, w[3] / n,
                  w[4] / n, w[6] / n, w[7] / n, w[9] / n, w[10] / n, (w[1] + w[3]) / n, auc))
PY
}

for s in $SEEDS; do
    "$BIN/funnel-gen" --out "$DIR/w$s" --train "$TRAIN" --test "$TEST" --seed "$s" \
        >"$DIR/gen$s.log" 2>&1 || { echo "bench-wire: funnel-gen failed: $DIR/gen$s.log" >&2; exit 1; }
    run "$s" false
    run "$s" true
    python3 - "$DIR/$s-false" "$DIR/$s-true" "$s" <<'PY'
import json, re, sys
a, b, seed = sys.argv[1:4]
ta = json.load(open(a + ".eval"))["tasks"]
tb = json.load(open(b + ".eval"))["tasks"]
def rows(p):
    t = open(p + ".train").read()
    g = re.search(r"pull \d+ out (\d+) in .*?push (\d+) out", t).groups()
    return int(g[0]) + int(g[1])
d = ["%s %+.4f" % (k, tb[k]["auc"] - ta[k]["auc"]) for k in ta]
worst = max(abs(tb[k]["auc"] - ta[k]["auc"]) for k in ta)
print("seed %s fp16 - fp32 AUC: %s (largest |diff| %.4f, %s 0.002); row bytes fp16/fp32 %.3f"
      % (seed, " ".join(d), worst, "within" if worst <= 0.002 else "OVER", rows(b) / rows(a)))
PY
    rm -rf "$DIR/w$s" "$DIR/$s"-*-data*
done
