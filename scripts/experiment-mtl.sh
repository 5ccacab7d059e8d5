#!/bin/sh
# The task-conflict experiment of issue 15 (docs/results-mtl.md), after the
# MMoE paper's synthetic study: worlds whose click and conversion drivers
# correlate 1, 0.5 and 0 (funnel-gen --task_corr, clickbait off so that
# nothing else ties the tasks), and esm2 heads on the concat, shared, mmoe
# and ple bottoms, in funnel and in the PyTorch reference
# (bench/torch_model.py, same sizes); every prediction file is scored by
# `funnel-worker eval --json` against the world's truth file, and
# scripts/mtl_table.py turns OUT/*.json into the markdown table (mean +-
# std over seeds of the AUC per task).
#
#   scripts/experiment-mtl.sh [BINDIR] [OUTDIR]
#
# Environment: SEEDS (default "1 2 3"), TORCH_SEEDS (default "1"), CORRS
# (default "1 0.5 0"), BOTTOMS (default "concat shared mmoe ple"), N_TRAIN
# (default 200000), N_TEST (default 100000). A finished run (its .json
# exists) is not run again, so the script can be resumed or extended. Every
# step runs under `nice`, one after the other. Sizes are modest so that it
# fits on a shared 2-core machine: towers 64,32, experts 64,32 (mmoe: 4
# experts; ple: 2 levels of 1 expert per task + 2 shared), shared bottom
# 64,32, embeddings 16 per slot, one epoch; the worlds have clickbait off
# and higher click and buy rates than the default (see WORLD).
set -eu
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac
BIN=${1:-bin}
need_prog experiment-mtl "$BIN" funnel-worker
OUT=${2:-/tmp/funnel-mtl}
SEEDS=${SEEDS:-"1 2 3"}
TORCH_SEEDS=${TORCH_SEEDS:-1}
CORRS=${CORRS:-"1 0.5 0"}
BOTTOMS=${BOTTOMS:-"concat shared mmoe ple"}
N_TRAIN=${N_TRAIN:-200000}
N_TEST=${N_TEST:-100000}
NICE="nice -n 10"
# more clicks and buys than the default world, so that the buy AUCs rest on
# enough positives (about 1% of impressions buy)
WORLD="--clickbait false --ctr 0.1 --action_rate 0.3 --buy_action_rate 0.3 --buy_noaction_rate 0.03"
SIZES="--towers 64,32 --expert_layers 64,32 --shared_layers 64,32 --experts 4"
mkdir -p "$OUT"
LOG="$OUT/run.log"

say() { echo "$(date '+%H:%M:%S') $*" | tee -a "$LOG"; }

gen_world() { # dir seed corr
    [ -f "$1/test.truth.tsv" ] && return 0
    say "funnel-gen --out $1 --seed $2 --task_corr $3"
    $NICE "$BIN/funnel-gen" --out "$1" --train "$N_TRAIN" --test "$N_TEST" --seed "$2" \
        --task_corr "$3" $WORLD > "$1.gen.log" 2>&1
}

evaluate() { # pred world-dir json
    $NICE "$BIN/funnel-worker" eval --pred "$1" --log "$2/test.tsv" --truth "$2/test.truth.tsv" \
        --json > "$3.tmp" 2> "$3.err"
    mv "$3.tmp" "$3"
    rm -f "$3.err"
}

run_funnel() { # world-dir tag bottom seed
    base="$OUT/$2-funnel-$3"
    [ -f "$base.json" ] && return 0
    rm -rf "$base.model"
    say "$2 funnel $3"
    $NICE "$BIN/funnel-worker" train --model_type esm2 --bottom "$3" $SIZES --seed "$4" \
        --model "$base.model" --metrics_file "$base.metrics.jsonl" --progress off \
        "$1/train.tsv" > "$base.train.log" 2>&1
    $NICE "$BIN/funnel-worker" predict --model "$base.model" --in "$1/test.tsv" \
        --out "$base.pred" > "$base.predict.log" 2>&1
    evaluate "$base.pred" "$1" "$base.json"
    rm -rf "$base.model" "$base.pred"
}

run_torch() { # world-dir tag bottom seed
    base="$OUT/$2-torch-$3"
    [ -f "$base.json" ] && return 0
    say "$2 torch $3"
    OMP_WAIT_POLICY=PASSIVE $NICE /usr/bin/python3 bench/torch_model.py train-eval --model esm2 \
        --bottom "$3" --towers 64,32 --expert-layers 64,32 --shared-layers 64,32 --experts 4 \
        --threads 1 --blas-threads 2 --seed "$4" \
        --train "$1/train.tsv" --test "$1/test.tsv" --pred "$base.pred" > "$base.log" 2>&1
    evaluate "$base.pred" "$1" "$base.json"
    rm -f "$base.pred"
}

cd "$(dirname "$0")/.."
say "experiment-mtl: bin $BIN, out $OUT, seeds $SEEDS (torch $TORCH_SEEDS), corrs $CORRS," \
    "bottoms $BOTTOMS, $N_TRAIN/$N_TEST lines, commit $(git rev-parse --short HEAD)"
for s in $SEEDS; do
    for c in $CORRS; do
        d="$OUT/world-c$c-s$s"
        gen_world "$d" "$s" "$c"
        for b in $BOTTOMS; do run_funnel "$d" "c$c-s$s" "$b" "$s"; done
        case " $TORCH_SEEDS " in
        *" $s "*) for b in $BOTTOMS; do run_torch "$d" "c$c-s$s" "$b" "$s"; done ;;
        esac
        rm -rf "$d" "$d.gen.log"
    done
done
say "done"
/usr/bin/python3 scripts/mtl_table.py "$OUT" | tee "$OUT/table.md"
