#!/bin/sh
# The main job end to end on an embedded default world:
# generate logs -> check them -> start 2 parameter-server shards and
# 2 workers -> train ESM2 -> predict the test log from the live cluster ->
# evaluate against the oracle -> stop everything. While the cluster trains
# one line shows the whole cluster's progress; worker 0 scores the test log
# every 250000 samples (--valid) and, with gnuplot installed, the training
# loss and held-out AUC per task are drawn to DEMO_DIR/metrics.png and .svg.
#
#   scripts/demo.sh [BINDIR]        (make demo runs it with bin/)
#
# Environment: DEMO_DIR (default demo-out), DEMO_TRAIN (1000000),
# DEMO_TEST (200000), DEMO_MODEL (esm2).
set -eu
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac

BIN=${1:-$FUNNEL_TOP/bin}
need_prog demo "$BIN" funnel-worker
OUT=${DEMO_DIR:-demo-out}
TRAIN=${DEMO_TRAIN:-1000000}
TEST=${DEMO_TEST:-200000}
MODEL=${DEMO_MODEL:-esm2}
CLUSTER="$OUT/cluster"

step() { printf '\n== %s\n' "$*"; }

rm -rf "$OUT"
mkdir -p "$OUT"
trap '"$FUNNEL_TOP"/scripts/run-local.sh --stop --dir "$CLUSTER" >/dev/null 2>&1 || true' EXIT

step "1/5 generate a synthetic world: $TRAIN training and $TEST test impressions"
"$BIN/funnel-gen" --out "$OUT/data" --train "$TRAIN" --test "$TEST" --seed 7

step "2/5 check the logs"
"$BIN/funnel-worker" check-data "$OUT/data/train.tsv"

step "3/5 train $MODEL on 2 parameter-server shards with 2 workers"
"$FUNNEL_TOP"/scripts/run-local.sh --bin "$BIN" --shards 2 --workers 2 --dir "$CLUSTER" --keep \
    --ps-opt "--model_type $MODEL --flush_interval 2" \
    --worker-opt "--model_type $MODEL --valid $OUT/data/test.tsv --valid_every 250000" \
    "$OUT/data/train.tsv"
tail -n 2 "$CLUSTER/logs/worker0.log"

step "4/5 predict the test log from the running cluster"
"$BIN/funnel-worker" predict --model_type "$MODEL" --ps "$(cat "$CLUSTER/endpoints")" \
    --in "$OUT/data/test.tsv" --out "$OUT/pred.tsv"

step "5/5 evaluate against the oracle (the generator's true probabilities)"
"$BIN/funnel-worker" eval --model_type "$MODEL" --pred "$OUT/pred.tsv" --log "$OUT/data/test.tsv" \
    --truth "$OUT/data/test.truth.tsv"

"$FUNNEL_TOP"/scripts/run-local.sh --stop --dir "$CLUSTER"
if command -v gnuplot > /dev/null 2>&1; then
    "$FUNNEL_TOP"/scripts/plot-metrics.sh --out "$OUT/metrics" --title "demo: worker 0" \
        "$CLUSTER/logs/metrics-worker0.jsonl" > /dev/null &&
        echo "metrics plotted: $OUT/metrics.png, $OUT/metrics.svg"
fi
printf '\nDone. Everything is under %s/ (logs: %s/logs, metrics: %s/logs/metrics-*.jsonl).\n' \
    "$OUT" "$CLUSTER" "$CLUSTER"
