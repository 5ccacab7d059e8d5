#!/bin/sh
# The model comparison of issue 3, reproducible (docs/results-auc.md):
#   for each seed S: funnel-gen --train 2000000 --test 500000 --seed S (the
#   default world); funnel's esm2, esmm and naive, one epoch each, dense init
#   seed S; the PyTorch reference of the same three (bench/torch_model.py,
#   init seed S); every prediction file scored by `funnel-worker eval --json`
#   against the truth file; then the ablation world (--action_informative
#   false, seed 1) with funnel's three models (and PyTorch's with
#   ABLATION_TORCH=1). scripts/auc_table.py turns OUT/*.json into markdown
#   tables (mean +- std over seeds, the criteria of issue 3, training losses),
#   written to OUT/table.md and printed.
#
#   scripts/experiment-auc.sh [BINDIR] [OUTDIR]
#
# Environment: SEEDS (default "1 2 3"), TORCH=0 skips PyTorch, ABLATION=0
# skips the ablation, ABLATION_TORCH=1 adds PyTorch to it, ABLATION_SEEDS
# (default "1"). A finished step (its .json exists) is not run again, so the
# script can be resumed or extended with more seeds. Every step runs under
# `nice`, one after the other (2 shared cores): about 9 minutes per seed for
# the six models, 3 for the funnel ablation.
#
# OUT keeps, per run: TAG-IMPL-MODEL.json (eval --json), .train.log / .log
# (training output), TAG-funnel-MODEL.metrics.jsonl (funnel's loss records);
# PyTorch's loss curve is in its .log (--progress). Worlds are kept in
# OUT/world-* (about 300 MB each); models and predictions are deleted.
set -eu
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac
BIN=${1:-bin}
need_prog experiment-auc "$BIN" funnel-worker
OUT=${2:-/tmp/funnel-auc}
SEEDS=${SEEDS:-"1 2 3"}
TORCH=${TORCH:-1}
ABLATION=${ABLATION:-1}
ABLATION_TORCH=${ABLATION_TORCH:-0}
ABLATION_SEEDS=${ABLATION_SEEDS:-1}
NICE="nice -n 10"
N_TRAIN=2000000
N_TEST=500000
mkdir -p "$OUT"
LOG="$OUT/run.log"

say() { echo "$(date '+%H:%M:%S') $*" | tee -a "$LOG"; }

gen_world() { # dir seed [extra funnel-gen options]
    d=$1 s=$2
    shift 2
    [ -f "$d/test.truth.tsv" ] && return 0
    say "funnel-gen --out $d --train $N_TRAIN --test $N_TEST --seed $s $*"
    $NICE "$BIN/funnel-gen" --out "$d" --train "$N_TRAIN" --test "$N_TEST" --seed "$s" "$@" \
        > "$d.gen.log" 2>&1
}

evaluate() { # pred world-dir json
    $NICE "$BIN/funnel-worker" eval --pred "$1" --log "$2/test.tsv" --truth "$2/test.truth.tsv" \
        --json > "$3.tmp" 2> "$3.err"
    mv "$3.tmp" "$3"
    rm -f "$3.err"
}

run_funnel() { # world-dir tag model seed
    d=$1 tag=$2 m=$3 s=$4
    base="$OUT/$tag-funnel-$m"
    [ -f "$base.json" ] && return 0
    rm -rf "$base.model" "$base.metrics.jsonl"
    say "$tag funnel $m: train"
    $NICE "$BIN/funnel-worker" train --model_type "$m" --seed "$s" --model "$base.model" \
        --metrics_file "$base.metrics.jsonl" --metrics_interval 2 --progress off \
        "$d/train.tsv" > "$base.train.log" 2>&1
    $NICE "$BIN/funnel-worker" predict --model_type "$m" --model "$base.model" \
        --in "$d/test.tsv" --out "$base.pred" > "$base.predict.log" 2>&1
    evaluate "$base.pred" "$d" "$base.json"
    rm -rf "$base.model" "$base.pred"
}

run_torch() { # world-dir tag model seed
    d=$1 tag=$2 m=$3 s=$4
    base="$OUT/$tag-torch-$m"
    [ -f "$base.json" ] && return 0
    say "$tag torch $m: train-eval"
    OMP_WAIT_POLICY=PASSIVE $NICE /usr/bin/python3 bench/torch_model.py train-eval --model "$m" \
        --threads 1 --blas-threads 2 --seed "$s" --progress 100 \
        --train "$d/train.tsv" --test "$d/test.tsv" --pred "$base.pred" > "$base.log" 2>&1
    evaluate "$base.pred" "$d" "$base.json"
    rm -f "$base.pred"
}

cd "$(dirname "$0")/.."
say "experiment-auc: bin $BIN, out $OUT, seeds $SEEDS, torch $TORCH, ablation $ABLATION" \
    "(seeds $ABLATION_SEEDS, torch $ABLATION_TORCH), commit $(git rev-parse --short HEAD)"
for s in $SEEDS; do
    d="$OUT/world-seed$s"
    gen_world "$d" "$s"
    for m in esm2 esmm naive; do run_funnel "$d" "seed$s" "$m" "$s"; done
    if [ "$TORCH" = 1 ]; then
        for m in esm2 esmm naive; do run_torch "$d" "seed$s" "$m" "$s"; done
    fi
done
if [ "$ABLATION" = 1 ]; then
    for s in $ABLATION_SEEDS; do
        d="$OUT/world-ablation$s"
        gen_world "$d" "$s" --action_informative false
        for m in esm2 esmm naive; do run_funnel "$d" "ablation$s" "$m" "$s"; done
        if [ "$ABLATION_TORCH" = 1 ]; then
            for m in esm2 esmm naive; do run_torch "$d" "ablation$s" "$m" "$s"; done
        fi
    done
fi
say "done"
/usr/bin/python3 scripts/auc_table.py "$OUT" | tee "$OUT/table.md"
